"""Integration methods: turn a Model into the symbolic code of one time step.

A step is a list of assignments (temporary symbol, expression) followed by the new value of
every state. Backends (numpy, C) print the same step code, so they compute the same numbers.

Conventions (as Brian2): inputs hold their sample k during the step from t = k·dt to (k+1)·dt;
``exponential_euler`` treats each equation as dx/dt = A·x + B and steps
x ← x + dt·f·exprel(A·dt) (= Brian2's (x + B/A)·exp(A·dt) − B/A, continuous at A = 0; exact for linear
equations). A is dx/dt's derivative in x when that is free of x; otherwise, as Brian2's
``get_conditionally_linear_system``, the expanded right-hand side (subexpressions substituted) is
collected in x: A is the coefficient of x and B every other term, even one non-linear in x (AdEx's
exp(v)), evaluated at the step's start; a term in a power of x (x**2) or no term linear in x at all is
refused, as Brian2 does. A noise
symbol ``xi`` becomes √dt·Z with Z ~ N(0, 1) drawn per neuron, step and noise name
(Euler–Maruyama). Equations flagged ``(unless refractory)`` are frozen while refractory.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import sympy

from ..equations.expressions import exprel
from ..equations.parser import EquationError

METHODS = ("euler", "rk2", "rk4", "exponential_euler", "euler_maruyama")
_ALIASES = {"euler-maruyama": "euler_maruyama", "milstein": None, "heun": None, "midpoint": "rk2",
            "exponential-euler": "exponential_euler", "exact": None, "linear": None}

NOT_REFRACTORY = sympy.Symbol("_not_refractory", real=True)


def noise_symbol(name: str) -> sympy.Symbol:
    """The standard normal draw that replaces noise ``name`` in a step."""
    return sympy.Symbol(f"_Z_{name}", real=True)


def unique_name(name: str, taken: set) -> str:
    """``name``, or ``name_1``, ``name_2`` … if taken; the result is added to ``taken``.

    Generated names are built from model names (``_k2_dv``: stage k2's dv/dt), so two of them can
    coincide (stage k2's value of a subexpression called ``dv`` is ``_k2_dv`` too); each must be a
    different symbol. Names that coincide with nothing stay as they are.
    """
    unique, n = name, 0
    while unique in taken:
        n += 1
        unique = f"{name}_{n}"
    taken.add(unique)
    return unique


@dataclass
class StepCode:
    """Symbolic code of one step: ``assignments`` in order, then ``updates`` (state → expression)."""

    assignments: list = field(default_factory=list)
    updates: dict = field(default_factory=dict)
    current: dict = field(default_factory=dict)  # recordable name -> symbol holding its value at step start
    noise: list = field(default_factory=list)
    uses_not_refractory: bool = False


def resolve_method(model, method: str | None) -> str:
    """Name → method; None picks as Brian2: exponential_euler when possible, else euler."""
    if method is None:
        return _default_method(model)
    name = _ALIASES.get(method, method)
    if name not in METHODS:
        raise ValueError(f"unknown integration method '{method}' (valid: {', '.join(METHODS)})")
    if model.noise and name not in ("euler", "euler_maruyama"):
        raise ValueError(f"method '{method}' cannot integrate the noise term(s) {', '.join(model.noise)}; "
                         f"use method='euler' (Euler–Maruyama)")
    if name == "euler" and model.noise:
        name = "euler_maruyama"
    return name


@functools.lru_cache(maxsize=64)
def _default_method(model) -> str:
    """The method for ``method=None``, decided once per model: exponential_euler when every equation is linear
    in its own variable (the coefficient A free of it), else euler; noise: euler_maruyama."""
    if model.noise:
        return "euler_maruyama"
    linear = all(total_derivative(model, a, model.symbol(s)) == 0 for s, a in _derivatives(model).items())
    return "exponential_euler" if linear else "euler"


def total_derivative(model, expr, variable: sympy.Symbol):
    """d expr / d variable, following subexpressions by the chain rule (keeping their symbols)."""
    result = sympy.diff(expr, variable)
    for name, sub in model.subexpressions.items():
        sym = model.symbol(name)
        if expr.has(sym):
            inner = total_derivative(model, sub, variable)
            if inner != 0:
                result += sympy.diff(expr, sym) * inner
    return result


def _split_noise(model, rhs):
    """rhs = drift + Σ g_j·xi_j → (drift, {name: g_j})."""
    diffusion = {}
    drift = rhs
    for name in model.noise:
        xi = model.symbol(name)
        g = sympy.diff(rhs, xi)
        if g.has(xi):
            raise EquationError(f"noise '{name}' must enter the equations linearly (as ... + sigma*{name})")
        if g != 0:
            diffusion[name] = g
        drift = drift.subs(xi, 0)
    return drift, diffusion


def _derivatives(model) -> dict:
    """state → d(drift)/d(state), following subexpressions by the chain rule."""
    return {state: total_derivative(model, _split_noise(model, rhs)[0], model.symbol(state))
            for state, rhs in model.rhs.items()}


def _linear_parts(model) -> dict:
    """state → A of dx/dt = A·x + B for exponential_euler (module docstring); EquationError (one line naming
    the equation) for an equation Brian2's exponential_euler refuses."""
    coefficients = {}
    for state, a in _derivatives(model).items():
        x = model.symbol(state)
        if total_derivative(model, a, x) != 0:
            a = _conditionally_linear_coefficient(model, state)
        coefficients[state] = a
    return coefficients


def _conditionally_linear_coefficient(model, state: str):
    """Brian2's A for an equation not linear in its variable: the coefficient of x in the expanded drift."""
    x = model.symbol(state)
    drift = model.expand(_split_noise(model, model.rhs[state])[0]).expand()
    parts = sympy.collect(drift, x, evaluate=False)
    if len(parts) > 2 or x not in parts:
        decl = next(d for d in model.declarations if d.name == state)
        raise EquationError(f"{decl.where(model.origin)}: exponential_euler needs d{state}/dt = A*{state} + B, a term "
                            f"linear in {state} and no other power of {state} (Brian2's conditionally linear form); "
                            f"use method='euler', 'rk2' or 'rk4'")
    return parts[x]


class _Builder:
    def __init__(self, model):
        self.model = model
        self.code = StepCode()
        self.t = model.symbol("t")
        self.dt = model.symbol("dt")
        # names of symbols the step uses; subexpressions join as they are assigned (first, under their names)
        self.taken = ({*model.symbols, *model.inputs, NOT_REFRACTORY.name}
                      | {noise_symbol(n).name for n in model.noise}) - set(model.subexpressions)

    def assign(self, name: str, expr) -> sympy.Symbol:
        """Append the assignment ``name = expr`` (under a fresh name if ``name`` is taken); its symbol."""
        sym = sympy.Symbol(unique_name(name, self.taken), real=True)
        self.code.assignments.append((sym, expr))
        return sym

    def stage(self, prefix: str, state_values: dict, t_value) -> dict:
        """Evaluate subexpressions and drifts at the given state; returns state → drift symbol."""
        m = self.model
        subs = {m.symbol(s): v for s, v in state_values.items()}
        if t_value is not self.t:
            subs[self.t] = t_value
        for name, expr in m.subexpressions.items():
            target = name if prefix == "" else f"_{prefix}_{name}"
            sym = self.assign(target, expr.xreplace(subs))
            if prefix == "":
                self.code.current[name] = sym
            subs[m.symbol(name)] = sym
        drifts = {}
        for state, rhs in m.rhs.items():
            drift, _ = _split_noise(m, rhs)
            drifts[state] = self.assign(f"_{prefix or 'k1'}_d{state}", self._frozen(state, drift.xreplace(subs)))
        return drifts

    def _frozen(self, state, expr):
        if state in self.model.unless_refractory:
            self.code.uses_not_refractory = True
            return expr * NOT_REFRACTORY
        return expr


def step_code(model, method: str) -> StepCode:
    """The symbolic step of ``model`` for ``method`` (a name from METHODS)."""
    b = _Builder(model)
    x = {s: model.symbol(s) for s in model.states}
    for s in model.states:
        b.code.current[s] = x[s]
    dt = b.dt
    if method in ("euler", "euler_maruyama"):
        k1 = b.stage("", x, b.t)
        subs = {model.symbol(n): b.code.current[n] for n in model.subexpressions}
        for s in model.states:
            update = x[s] + dt * k1[s]
            _, diffusion = _split_noise(model, model.rhs[s])
            for name, g in diffusion.items():
                update += b._frozen(s, g.xreplace(subs)) * sympy.sqrt(dt) * noise_symbol(name)
                if name not in b.code.noise:
                    b.code.noise.append(name)
            b.code.updates[s] = update
    elif method == "rk2":
        k1 = b.stage("", x, b.t)
        mid = {s: b.assign(f"_mid_{s}", x[s] + dt / 2 * k1[s]) for s in model.states}
        k2 = b.stage("k2", mid, b.t + dt / 2)
        b.code.updates = {s: x[s] + dt * k2[s] for s in model.states}
    elif method == "rk4":
        k1 = b.stage("", x, b.t)
        x2 = {s: b.assign(f"_x2_{s}", x[s] + dt / 2 * k1[s]) for s in model.states}
        k2 = b.stage("k2", x2, b.t + dt / 2)
        x3 = {s: b.assign(f"_x3_{s}", x[s] + dt / 2 * k2[s]) for s in model.states}
        k3 = b.stage("k3", x3, b.t + dt / 2)
        x4 = {s: b.assign(f"_x4_{s}", x[s] + dt * k3[s]) for s in model.states}
        k4 = b.stage("k4", x4, b.t + dt)
        b.code.updates = {s: x[s] + dt / 6 * (k1[s] + 2 * k2[s] + 2 * k3[s] + k4[s]) for s in model.states}
    elif method == "exponential_euler":
        coefficients = _linear_parts(model)
        k1 = b.stage("", x, b.t)
        subs = {model.symbol(n): b.code.current[n] for n in model.subexpressions}
        for s in model.states:
            a = b.assign(f"_A_{s}", b._frozen(s, coefficients[s].xreplace(subs)))
            b.code.updates[s] = x[s] + dt * k1[s] * exprel(a * dt)
    else:
        raise ValueError(f"unknown integration method '{method}' (valid: {', '.join(METHODS)})")
    return b.code
