"""Fitting: fitters (brian2modelfitting's TraceFitter, SpikeFitter, OnlineTraceFitter), metrics,
optimizers, parameter bounds, least-squares refinement, spike scores, identifiability, feature targets and
Pareto fronts."""
from ..exports import lazy_exports

_NAMES = {
    "Fitter": "fitters", "TraceFitter": "fitters", "SpikeFitter": "fitters", "OnlineTraceFitter": "fitters",
    "FitError": "fitters",
    "Optimizer": "optimizers", "NevergradOptimizer": "optimizers", "SkoptOptimizer": "optimizers",
    "calc_bounds": "optimizers",
    "Metric": "metrics", "TraceMetric": "metrics", "SpikeMetric": "metrics", "MSEMetric": "metrics",
    "GammaFactor": "metrics", "FeatureMetric": "metrics", "SpikeTraceMetric": "metrics",
    "feature_targets": "feature_targets", "FeatureTargets": "feature_targets", "SpikeVisibilityError": "feature_targets",
    "MissingFeatureWarning": "feature_targets",
    "identifiability": "identifiability", "confidence_intervals": "identifiability",
    "profile_likelihood": "identifiability",
    "fit_pareto": "multiobjective", "pareto_search": "multiobjective", "ParetoResult": "multiobjective",
    "Objective": "multiobjective", "per_feature": "multiobjective",
    "sweep_scores": "spike_scores",
    "parse_bounds": "bounds", "BoundsError": "bounds",
}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = list(_NAMES)
