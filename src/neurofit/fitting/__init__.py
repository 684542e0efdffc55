"""Fitting: fitters (brian2modelfitting's TraceFitter, SpikeFitter, OnlineTraceFitter), metrics,
optimizers, parameter bounds and least-squares refinement."""
from ..exports import lazy_exports

_NAMES = {
    "Fitter": "fitters", "TraceFitter": "fitters", "SpikeFitter": "fitters", "OnlineTraceFitter": "fitters",
    "FitError": "fitters",
    "Optimizer": "optimizers", "NevergradOptimizer": "optimizers", "SkoptOptimizer": "optimizers",
    "calc_bounds": "optimizers",
    "Metric": "metrics", "TraceMetric": "metrics", "SpikeMetric": "metrics", "MSEMetric": "metrics",
    "GammaFactor": "metrics", "FeatureMetric": "metrics",
    "parse_bounds": "bounds", "BoundsError": "bounds",
}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = list(_NAMES)
