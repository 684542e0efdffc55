"""What a backend must compute for one simulation: the step code plus events, after CSE."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .integrators import NOT_REFRACTORY, noise_symbol, step_code


@dataclass
class KernelSpec:
    """Backend-independent description of a compiled simulation loop."""

    method: str
    states: list
    parameters: list
    inputs: list
    noise: list
    record: list  # recordable names, recorded at the start of each step
    targets: list  # recordable names whose squared error to a target trace is accumulated online
    body: list  # [(symbol, expression)] in order
    updates: dict  # state -> expression (new value)
    record_values: dict  # name (recorded or target) -> expression of its value at step start
    threshold: object = None  # condition on the updated state
    reset: list = field(default_factory=list)  # [(target, op, expression)]
    refractory: tuple | None = None  # ("duration", seconds expr) | ("condition", boolean expr)
    uses_not_refractory: bool = False


def build_kernel(model, method: str, record=(), targets=()) -> KernelSpec:
    """Generate the symbolic step for ``model`` with ``method`` and eliminate common subexpressions.

    model: the ``Model``; method: a name from ``integrators.METHODS``; record: names (states or subexpressions)
    recorded at the start of each step; targets: names (states or subexpressions) compared online with a
    target trace. Returns the ``KernelSpec``.
    """
    code = step_code(model, method)
    record = list(record)
    # a state's value at step start is its symbol; a subexpression target not recorded joins the CSE outputs
    observed = record + [v for v in targets if v not in record and v not in model.states]
    outputs = [code.updates[s] for s in model.states] + [code.current[r] for r in observed]
    replacements, reduced = sympy.cse(
        [e for _, e in code.assignments] + outputs,
        symbols=sympy.numbered_symbols("_cse", real=True), optimizations=None)
    # assignments first became expressions; re-thread them through the CSE result
    n_assign = len(code.assignments)
    body = list(replacements)
    for (sym, _), expr in zip(code.assignments, reduced[:n_assign]):
        body.append((sym, expr))
    updates = dict(zip(model.states, reduced[n_assign:n_assign + len(model.states)]))
    record_values = dict(zip(observed, reduced[n_assign + len(model.states):]))
    record_values.update({v: model.symbol(v) for v in targets if v in model.states and v not in record})
    body = _drop_unused(_dependency_order(body), list(updates.values()) + list(record_values.values()))
    expand = model.expand
    refractory = None
    if model.refractory is not None:
        kind, expr = model.refractory
        refractory = (kind, expand(expr))
    return KernelSpec(
        method=method, states=list(model.states), parameters=list(model.parameters), inputs=list(model.inputs),
        noise=list(code.noise), record=record, targets=list(targets), body=body, updates=updates,
        record_values=record_values,
        threshold=expand(model.threshold) if model.threshold is not None else None,
        reset=[(st.target, st.op, expand(st.expr)) for st in model.reset], refractory=refractory,
        uses_not_refractory=code.uses_not_refractory)


def _dependency_order(body):
    """Order assignments so each comes after the symbols it uses (CSE replacements may use the
    temporaries of earlier RK stages, e.g. ``_mid_v``, which are assigned after them)."""
    defined = {sym for sym, _ in body}
    done, ordered, pending = set(), [], list(body)
    while pending:
        rest = []
        for sym, expr in pending:
            if (expr.free_symbols & defined) <= done:
                ordered.append((sym, expr))
                done.add(sym)
            else:
                rest.append((sym, expr))
        if len(rest) == len(pending):
            raise RuntimeError(f"circular assignments in generated step code: {[str(s) for s, _ in rest]}")
        pending = rest
    return ordered


def _drop_unused(body, outputs):
    """Remove assignments nothing needs (e.g. subexpressions of later RK stages not used)."""
    # CSE may return plain numbers: strict sympify converts those and never parses text
    needed = set().union(*(sympy.sympify(e, strict=True).free_symbols for e in outputs)) if outputs else set()
    kept = []
    for sym, expr in reversed(body):
        if sym in needed:
            kept.append((sym, expr))
            needed |= expr.free_symbols
    return list(reversed(kept))


__all__ = ["KernelSpec", "build_kernel", "NOT_REFRACTORY", "noise_symbol"]
