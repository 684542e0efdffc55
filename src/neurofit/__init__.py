"""neurofit: fit neuron models (Brian2-style equations) to recordings."""
from .equations import EquationError
from .model import Model
from .simulate import SimulationError, SimulationResult, simulate
from .units import UnitError, parse_quantity, to_si

__version__ = "0.1.0"
__all__ = ["Model", "simulate", "SimulationResult", "SimulationError", "EquationError", "UnitError",
           "parse_quantity", "to_si"]
