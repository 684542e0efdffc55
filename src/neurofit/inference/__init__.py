"""Simulation-based inference: the ``Inferencer`` (sbi), priors, summary features and diagnostics
(simulation-based calibration, coverage)."""
from ..exports import lazy_exports

_NAMES = {"Inferencer": "inferencer", "InferenceError": "inferencer", "BoxPrior": "inferencer",
          "FeatureError": "features"}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = list(_NAMES)
