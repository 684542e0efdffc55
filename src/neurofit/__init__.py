"""neurofit: fit neuron models (Brian2-style equations) to recordings.

The core (Model, simulate) is imported eagerly; fitting, optimizers, metrics and inference load on
first use so that ``import neurofit`` stays fast.
"""
from .equations.model import Model
from .equations.parser import EquationError
from .exports import lazy_exports
from .simulate import SimulationError, SimulationResult, simulate
from .units import UnitError, parse_quantity, to_si

__version__ = "0.1.0"

_LAZY = {
    "TraceFitter": "fitting.fitters", "SpikeFitter": "fitting.fitters", "OnlineTraceFitter": "fitting.fitters",
    "FitError": "fitting.fitters",
    "NevergradOptimizer": "fitting.optimizers", "SkoptOptimizer": "fitting.optimizers", "Optimizer": "fitting.optimizers",
    "MSEMetric": "fitting.metrics", "GammaFactor": "fitting.metrics", "FeatureMetric": "fitting.metrics",
    "TraceMetric": "fitting.metrics", "SpikeMetric": "fitting.metrics", "Metric": "fitting.metrics",
    "SpikeTraceMetric": "fitting.metrics", "fit_pareto": "fitting.multiobjective",
    "firing_rate": "fitting.metrics", "get_gamma_factor": "fitting.metrics", "calc_eFEL": "fitting.metrics",
    "callback_text": "fitting.callbacks", "callback_none": "fitting.callbacks", "callback_setup": "fitting.callbacks",
    "ProgressBar": "fitting.callbacks", "make_dic": "fitting.callbacks", "get_param_dic": "fitting.callbacks",
    "calc_bounds": "fitting.optimizers",
    "Inferencer": "inference.inferencer", "MisspecificationWarning": "inference.inferencer",
    "read_recording": "data.recordings", "Recording": "data.recordings", "Sweep": "data.recordings",
    "QCSettings": "data.recordings",
    "NeurofitError": "errors",
}

__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["Model", "simulate", "SimulationResult", "SimulationError", "EquationError", "UnitError",
           "parse_quantity", "to_si", *_LAZY]
