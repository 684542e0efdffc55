"""neurofit: fit neuron models (Brian2-style equations) to recordings.

The core (Model, simulate) is imported eagerly; fitting, optimizers, metrics and inference load on
first use so that ``import neurofit`` stays fast.
"""
from .equations import EquationError
from .model import Model
from .simulate import SimulationError, SimulationResult, simulate
from .units import UnitError, parse_quantity, to_si

__version__ = "0.1.0"

_LAZY = {
    "TraceFitter": "fitting", "SpikeFitter": "fitting", "OnlineTraceFitter": "fitting", "FitError": "fitting",
    "NevergradOptimizer": "optimizers", "SkoptOptimizer": "optimizers", "Optimizer": "optimizers",
    "MSEMetric": "metrics", "GammaFactor": "metrics", "FeatureMetric": "metrics", "TraceMetric": "metrics",
    "SpikeMetric": "metrics", "Metric": "metrics",
    "Inferencer": "inference",
    "read_recording": "recordings", "Recording": "recordings", "Sweep": "recordings",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'neurofit' has no attribute '{name}'")


__all__ = ["Model", "simulate", "SimulationResult", "SimulationError", "EquationError", "UnitError",
           "parse_quantity", "to_si", *_LAZY]
