"""Parameter bounds: the one reader of ``name=[low, high]``, ``[low, high, "log"]``, a fixed value or an
expression of other parameters, used by fitters, optimizers, inference and model reduction.

Expressions (``"2*gl"``, ``"El + 0.005"``) are read by ``expressions.parse_expression`` with the model's
parameters as the only names (plus units and functions): they are parsed, never evaluated."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from ..equations.expressions import ExpressionError, Scope, parse_expression
from ..errors import NeurofitError
from ..units import Dimension, UnitError, parse_quantity, shorten, to_si


class BoundsError(NeurofitError):
    """Bounds that cannot be used (the message names the parameter and what would be valid)."""


@dataclass
class ParameterSpace:
    """Free parameters with their (low, high) in SI, the log-scale ones, fixed values, expressions."""

    free: dict
    log_scale: set = field(default_factory=set)
    fixed: dict = field(default_factory=dict)
    expressions: dict = field(default_factory=dict)  # name -> sympy expression of free and fixed parameters


def _default_where(name: str) -> str:
    return f"bounds['{name}']"


def _expression(spec: str, scope: Scope, expected: Dimension | None, where: str, quantity_error: BoundsError):
    """A bounds expression of other parameters → sympy. A readable quantity in the wrong units raises
    ``quantity_error`` (the unit mismatch), not a syntax error."""
    try:
        expr, dim = parse_expression(spec, scope)
    except ExpressionError as err:
        try:
            parse_quantity(spec)
        except UnitError:
            raise BoundsError(f"{where} = '{shorten(spec)}': not a quantity or an expression of other "
                              f"parameters: {err}") from None
        raise quantity_error from None
    if dim is not None and expected is not None and not dim.is_dimensionless and dim != expected:
        raise BoundsError(f"{where} = '{shorten(spec)}' has units of {dim}, expected {expected}")
    return expr


def parse_bounds(bounds: dict, parameters, *, allow_fixed: bool = False, allow_expressions: bool = False,
                 require_all: bool = True, dimensions: dict | None = None, where=_default_where) -> ParameterSpace:
    """Read ``bounds`` for the model's ``parameters``; ``where(name)`` names a parameter in messages.

    Quantity strings are converted to SI (and checked against ``dimensions`` when given).
    """
    parameters = list(parameters)
    unknown = [n for n in bounds if n not in parameters]
    if unknown:
        raise BoundsError(f"{where(unknown[0])}: not a parameter of the model (parameters: {', '.join(parameters)})")
    if require_all:
        missing = [p for p in parameters if p not in bounds]
        if missing:
            also = ", a fixed value" if allow_fixed else ""
            raise BoundsError(f"no bounds for parameter(s) {', '.join(missing)}: give {missing[0]}=[low, high]{also}")
    space = ParameterSpace({})
    dimensions = dimensions or {}
    # dimensions unknown (None): expressions may mix SI numbers and parameters, e.g. "El + 0.005"
    scope = Scope({p: (sympy.Symbol(p, real=True), None) for p in parameters}, {},
                  unknown_hint=f"not a parameter, unit or function (parameters: {', '.join(parameters)})")

    def si(value, name):
        try:
            return to_si(value, dimensions.get(name) if isinstance(value, str) else None, name=where(name))
        except UnitError as err:
            raise BoundsError(str(err)) from None

    for name in parameters:
        if name not in bounds:
            continue
        spec = bounds[name]
        if isinstance(spec, (list, tuple)):
            spec = list(spec)
            scale = "linear"
            if len(spec) == 3 and spec[2] in ("log", "linear"):
                scale, spec = spec[2], spec[:2]
            if len(spec) != 2:
                raise BoundsError(f"{where(name)} = {shorten(repr(bounds[name]))}: expected [low, high] or "
                                  f"[low, high, 'log']")
            lo, hi = si(spec[0], name), si(spec[1], name)
            shown = f"[{lo:g}, {hi:g}]"
            if any(isinstance(v, str) for v in spec):  # as written, then in SI
                shown = f"[{shorten(spec[0])}, {shorten(spec[1])}] (SI {shown})"
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
                raise BoundsError(f"{where(name)} = {shown}: need finite low < high")
            if scale == "log":
                if lo <= 0:
                    raise BoundsError(f"{where(name)} = {shown}: a log-scale range needs low > 0 "
                                      f"(e.g. [{hi * 1e-4:g}, {hi:g}, 'log'])")
                space.log_scale.add(name)
            space.free[name] = (lo, hi)
        elif isinstance(spec, str):
            try:
                value = si(spec, name)
            except BoundsError as err:
                if not allow_expressions:
                    raise
                space.expressions[name] = _expression(spec, scope, dimensions.get(name), where(name), err)
                continue
            if not allow_fixed:
                raise BoundsError(f"{where(name)} = '{shorten(spec)}': expected [low, high] or [low, high, 'log']")
            space.fixed[name] = value
        elif allow_fixed and isinstance(spec, (int, float)):
            space.fixed[name] = float(spec)
        else:
            raise BoundsError(f"{where(name)} = {shorten(repr(spec))}: expected [low, high] or [low, high, 'log']")
    for name, expr in space.expressions.items():
        others = sorted({str(s) for s in expr.free_symbols} - set(space.free) - set(space.fixed))
        if others:
            raise BoundsError(f"{where(name)} = '{shorten(bounds[name])}': unknown name(s) {', '.join(others)} "
                              f"(must be free or fixed parameters)")
    if not space.free:
        raise BoundsError("no free parameter: give at least one name=[low, high]")
    return space
