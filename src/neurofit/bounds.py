"""Parameter bounds: the one reader of ``name=[low, high]``, ``[low, high, "log"]``, a fixed value or an
expression of other parameters, used by fitters, optimizers, inference and model reduction."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from .units import UnitError, to_si


class BoundsError(ValueError):
    """Bounds that cannot be used (the message names the parameter and what would be valid)."""


@dataclass
class ParameterSpace:
    """Free parameters with their (low, high) in SI, the log-scale ones, fixed values, expressions."""

    free: dict
    log_scale: set = field(default_factory=set)
    fixed: dict = field(default_factory=dict)
    expressions: dict = field(default_factory=dict)


def _default_where(name: str) -> str:
    return f"bounds['{name}']"


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
                raise BoundsError(f"{where(name)} = {bounds[name]!r}: expected [low, high] or [low, high, 'log']")
            lo, hi = si(spec[0], name), si(spec[1], name)
            shown = f"[{lo:g}, {hi:g}]"
            if any(isinstance(v, str) for v in spec):  # as written, then in SI
                shown = f"[{spec[0]}, {spec[1]}] (SI {shown})"
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
            except BoundsError:
                if not allow_expressions:
                    raise
                try:
                    space.expressions[name] = sympy.sympify(spec)
                except (sympy.SympifyError, TypeError):
                    raise BoundsError(f"{where(name)} = '{spec}': not a quantity or an expression of other "
                                      f"parameters") from None
                continue
            if not allow_fixed:
                raise BoundsError(f"{where(name)} = '{spec}': expected [low, high] or [low, high, 'log']")
            space.fixed[name] = value
        elif allow_fixed and isinstance(spec, (int, float)):
            space.fixed[name] = float(spec)
        else:
            raise BoundsError(f"{where(name)} = {spec!r}: expected [low, high] or [low, high, 'log']")
    for name, expr in space.expressions.items():
        others = sorted({str(s) for s in expr.free_symbols} - set(space.free) - set(space.fixed))
        if others:
            raise BoundsError(f"{where(name)} = '{bounds[name]}': unknown name(s) {', '.join(others)} "
                              f"(must be free or fixed parameters)")
    if not space.free:
        raise BoundsError("no free parameter: give at least one name=[low, high]")
    return space
