"""Forward sensitivities: the exact derivative of the simulated trajectory w.r.t. parameters.

Forward-mode differentiation of the symbolic step code: every assignment a = f(...) gets
da/dp = Σ ∂f/∂s · ds/dp + ∂f/∂p, and each state x gets a new state S_x_p = dx/dp whose update is
the derivative of x's update. The result is again a KernelSpec, run by the same backends, so the
Jacobian is exact for the discrete integrator (not an approximation of the ODE's). Resets carry
the derivative of their assigned value; the shift of spike times is not differentiated.
"""
from __future__ import annotations

import sympy

from .integrators import NOT_REFRACTORY, noise_symbol, unique_name
from .kernel import KernelSpec


def sensitivity_name(state: str, parameter: str) -> str:
    """Name of the state (and record) d``state``/d``parameter`` in the extended KernelSpec."""
    return f"_S_{state}__{parameter}"


def with_sensitivities(spec: KernelSpec, parameters: tuple, outputs: tuple) -> KernelSpec:
    """Extend ``spec`` with states dx/dp for every state x and p in ``parameters``; record d(out)/dp.

    spec: the model's kernel; parameters: names of the parameters to differentiate by; outputs: recorded names
    (states or subexpressions) whose derivatives are recorded, as ``sensitivity_name(out, p)``. Returns the
    extended KernelSpec; ValueError (one line) for an unknown or repeated parameter or a name clash.
    """
    unknown = [p for p in parameters if p not in spec.parameters]
    if unknown:
        raise ValueError(f"sensitivities: {', '.join(unknown)} not a parameter (parameters: {', '.join(spec.parameters)})")
    if len(set(parameters)) != len(parameters):
        raise ValueError(f"sensitivities: a parameter is given twice ({', '.join(parameters)})")
    states = [sympy.Symbol(s, real=True) for s in spec.states]
    thetas = [sympy.Symbol(p, real=True) for p in parameters]
    taken = {*spec.states, *spec.parameters, *spec.inputs, *(noise_symbol(n).name for n in spec.noise),
             NOT_REFRACTORY.name, "t", "dt", *(sym.name for sym, _ in spec.body)}
    differentiated = dict.fromkeys([*spec.states, *outputs])  # a recorded state is among the states
    for name in (sensitivity_name(x, p) for x in differentiated for p in parameters):
        # names with '__' can make two of them alike (state a__b, parameter c vs state a, parameter b__c)
        if name in taken:
            raise ValueError(f"sensitivities: '{name}' would name two different things; rename the states or "
                             f"parameters whose names contain '__'")
        taken.add(name)
    # derivative of every known symbol w.r.t. each parameter
    deriv = {}
    for x in states:
        for p in parameters:
            deriv[(x, p)] = sympy.Symbol(sensitivity_name(x.name, p), real=True)

    def d(expr, p, theta):
        total = sympy.diff(expr, theta)
        for sym in expr.free_symbols:
            ds = deriv.get((sym, p))
            if ds is not None:
                total += sympy.diff(expr, sym) * ds
        return total

    body = []
    for sym, expr in spec.body:
        body.append((sym, expr))
        for p, theta in zip(parameters, thetas):
            value = d(expr, p, theta)
            if value != 0:
                dsym = sympy.Symbol(unique_name(f"_D_{sym.name}__{p}", taken), real=True)
                body.append((dsym, value))
                deriv[(sym, p)] = dsym
    updates = dict(spec.updates)
    new_states = list(spec.states)
    for x in states:
        for p, theta in zip(parameters, thetas):
            name = sensitivity_name(x.name, p)
            new_states.append(name)
            updates[name] = d(spec.updates[x.name], p, theta)
    reset = list(spec.reset)
    for target, op, expr in spec.reset:
        if op not in ("=", "+=", "-="):
            raise ValueError(f"sensitivities through reset '{target} {op} ...' are not supported; "
                             f"use finite differences (calc_gradient=False)")
        for p, theta in zip(parameters, thetas):
            reset.append((sensitivity_name(target, p), op, d(expr, p, theta)))
    record = list(spec.record)
    record_values = dict(spec.record_values)
    for out in outputs:
        for p, theta in zip(parameters, thetas):
            name = sensitivity_name(out, p)
            record.append(name)
            # a state's derivative is its sensitivity state; a subexpression's is its value differentiated
            record_values[name] = d(spec.record_values[out], p, theta)
    return KernelSpec(method=spec.method, states=new_states, parameters=spec.parameters, inputs=spec.inputs,
                      noise=spec.noise, record=record, targets=spec.targets, body=body, updates=updates,
                      record_values=record_values, threshold=spec.threshold, reset=reset,
                      refractory=spec.refractory, uses_not_refractory=spec.uses_not_refractory)
