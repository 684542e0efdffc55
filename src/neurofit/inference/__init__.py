"""Simulation-based inference: the ``Inferencer`` (sbi), priors, summary features, diagnostics (simulation-based
calibration, coverage) and amortized population inference (one posterior for the cells of one protocol)."""
from ..exports import lazy_exports

_NAMES = {"Inferencer": "inferencer", "InferenceError": "inferencer", "BoxPrior": "inferencer",
          "calc_prior": "inferencer", "get_param_dict": "inferencer",
          "FeatureError": "features", "infer_population": "amortized", "pooled_noise": "amortized",
          "PopulationPosteriors": "amortized"}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = list(_NAMES)
