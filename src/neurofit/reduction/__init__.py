"""Model reduction: fit a simple model to a complex one (or to data) under an ``Experiment`` protocol
(CompNeuroPy's ``OptNeuron`` API)."""
from ..exports import lazy_exports

_NAMES = {"OptNeuron": "optneuron", "Experiment": "optneuron", "Chunk": "optneuron", "Results": "optneuron",
          "ReductionResult": "optneuron", "ReductionError": "optneuron", "SpikeTrainLoss": "optneuron"}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = list(_NAMES)
