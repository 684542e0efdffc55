"""The model language: equation text parsed (``parser``), expressions to sympy with dimensions
(``expressions``), and the ``Model`` they make (``model``). Imports nothing above ``units``."""
from .expressions import ExpressionError
from .model import Model
from .parser import EquationError

__all__ = ["Model", "EquationError", "ExpressionError"]
