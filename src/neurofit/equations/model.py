"""The symbolic model: equations + namespace (+ threshold, reset, refractory) → one sympy model."""
from __future__ import annotations

import functools
import hashlib
import keyword
import re
from dataclasses import dataclass

import sympy

from ..units import DIMENSIONLESS, TIME, Dimension, UnitError, parse_quantity, parse_unit, shorten
from .expressions import ExpressionError, Scope, is_logical, make_rate_functions_safe, parse_expression
from .parser import EquationError, parse_equations, parse_statements

#: names of noise terms (xi, xi_1, xi_syn ...) and names the model language reserves
NOISE_NAME = re.compile(r"^xi(_\w+)?$")
RESERVED_NAMES = {"t", "dt", "xi", "i", "not_refractory", "lastspike"}


def _looks_like_input(name: str) -> bool:
    """Undeclared names accepted as inputs when ``inputs`` is not given: I, I_*, *_target."""
    return name == "I" or name.startswith("I_") or name.endswith("_target")


@dataclass(frozen=True)
class ResetStatement:
    target: str
    op: str
    expr: sympy.Expr
    source: str


class Model:
    """A neuron model in Brian2 equation syntax, as one symbolic (sympy) model.

    >>> Model("dv/dt = (El - v)/tau : volt", namespace={"El": "-65 mV", "tau": "10 ms"})

    equations: the equations text, one per line (``dx/dt = ... : unit``, ``name = ... : unit``,
    ``name : unit`` for a parameter; flags such as ``(unless refractory)``); namespace: constants used
    by the equations, name → SI number or quantity string ("10 ms"); inputs: the names given per time
    step at simulation (default None: undeclared names ``I``, ``I_*`` and ``*_target`` are inputs);
    threshold: spike condition such as "v > -50*mV" (None: no spikes); reset: statements run after a
    spike, one per line ("v = El"); refractory: dead time after a spike, as seconds (number), a duration
    string ("2 ms") or a condition ("v > -20*mV"); origin: the name used for the equations in error
    messages (e.g. a file name). A model without differential equations (``I = g*(v - E) : amp``) is
    algebraic: its subexpressions are computed from the inputs at every step. Raises EquationError (line,
    name and reason) for a syntax error, a reserved or unknown name, a unit that cannot be read, a dimension
    mismatch, a circular subexpression, neither a differential equation nor a subexpression, or
    reset/refractory without a threshold.

    Attributes: ``states`` (differential variables, in order), ``parameters`` (declared
    ``name : unit``), ``subexpressions`` (name → expression, dependency-ordered), ``inputs``
    (used, never defined: given per time step at simulation), ``noise`` (``xi`` names),
    ``rhs`` (state → dx/dt), ``threshold``, ``reset``, ``refractory``.
    """

    def __init__(self, equations: str, namespace: dict | None = None, inputs=None, threshold: str | None = None,
                 reset: str | None = None, refractory=None, origin: str = "equations"):
        self.equations = equations
        self.origin = origin
        self.namespace_text = dict(namespace or {})
        parsed = parse_equations(equations, origin)
        self.declarations = parsed.declarations
        self.constants = self._read_namespace(namespace or {})
        self.dimensions: dict[str, Dimension] = {}
        symbols = {}
        for decl in self.declarations:
            if decl.name in RESERVED_NAMES or NOISE_NAME.match(decl.name) or keyword.iskeyword(decl.name):
                raise EquationError(f"{decl.where(origin)}: '{decl.name}' is a reserved name")
            if decl.name.startswith("_"):
                raise EquationError(f"{decl.where(origin)}: '{decl.name}': names starting with '_' are reserved "
                                    f"for generated code")
            try:
                _, dim = parse_unit(decl.unit)
            except UnitError as err:
                raise EquationError(f"{decl.where(origin)}: {err}") from None
            self.dimensions[decl.name] = dim
            symbols[decl.name] = (sympy.Symbol(decl.name, real=True), dim)
        symbols["t"] = (sympy.Symbol("t", real=True), TIME)
        symbols["dt"] = (sympy.Symbol("dt", positive=True), TIME)
        self._noise_symbols = {}
        declared_inputs = None if inputs is None else list(inputs)
        if declared_inputs is not None:
            for name in declared_inputs:
                symbols.setdefault(name, (sympy.Symbol(name, real=True), None))
        self.scope = Scope(symbols, self.constants,
                           input_ok=None if declared_inputs is not None else _looks_like_input)
        self._add_noise_symbols(symbols)
        self.states = [d.name for d in self.declarations if d.kind == "diff"]
        self.parameters = [d.name for d in self.declarations if d.kind == "param"]
        self.unless_refractory = {d.name for d in self.declarations if "unless refractory" in d.flags}
        self.rhs, subexpressions = {}, {}
        for decl in self.declarations:
            if decl.kind == "param":
                continue
            expr, dim = self._parse(decl.expr, decl.where(origin))
            expected = self.dimensions[decl.name] / TIME if decl.kind == "diff" else self.dimensions[decl.name]
            if dim is not None and dim != expected:
                lhs = f"d{decl.name}/dt" if decl.kind == "diff" else decl.name
                raise EquationError(f"{decl.where(origin)}: dimension mismatch: the right-hand side has units of "
                                    f"{dim}, but {lhs} needs {expected} (unit ': {decl.unit}')")
            expr = make_rate_functions_safe(expr)
            (self.rhs if decl.kind == "diff" else subexpressions)[decl.name] = expr
        if declared_inputs is None:
            self.inputs = sorted(self.scope.new_inputs)
        else:
            used = set().union(*(e.free_symbols for e in [*self.rhs.values(), *subexpressions.values()])) \
                if self.rhs or subexpressions else set()
            self.inputs = [n for n in declared_inputs if sympy.Symbol(n, real=True) in used]
        self.subexpressions = self._order_subexpressions(subexpressions)
        self.noise = sorted(n for n, s in self._noise_symbols.items()
                            if any(e.has(s) for e in self.rhs.values()))
        if not self.states and not self.subexpressions:
            raise EquationError(f"{origin}: nothing to simulate: no differential equation ('dx/dt = ... : unit') and "
                                f"no subexpression ('name = ... : unit')")
        self.threshold_text, self.reset_text, self.refractory_spec = threshold, reset, refractory
        self.threshold = self._parse_condition(threshold, "threshold") if threshold else None
        self.reset = self._parse_reset(reset) if reset else []
        self.refractory = self._parse_refractory(refractory)
        if (self.reset or self.refractory) and self.threshold is None:
            raise EquationError(f"{origin}: reset/refractory given without a threshold; add threshold='v > ...'")

    # --- parsing helpers -------------------------------------------------------------------
    def _read_namespace(self, namespace: dict) -> dict:
        constants = {}
        for name, value in namespace.items():
            if isinstance(value, str):
                try:
                    constants[name] = parse_quantity(value)
                except UnitError as err:
                    raise EquationError(f"namespace['{name}']: {err}") from None
            else:
                try:
                    constants[name] = (float(value), None)
                except (TypeError, ValueError):
                    raise EquationError(f"namespace['{name}'] = {shorten(repr(value))}: expected a number (SI) or a "
                                        f"quantity string such as '10 nS'") from None
        return constants

    def _add_noise_symbols(self, symbols):
        for decl in self.declarations:
            for name in re.findall(r"\bxi(?:_\w+)?\b", decl.expr or ""):
                sym = sympy.Symbol(name, real=True)
                self._noise_symbols[name] = sym
                symbols[name] = (sym, TIME ** -0.5)

    def _parse(self, text: str, where: str):
        try:
            return parse_expression(text, self.scope)
        except ExpressionError as err:
            raise EquationError(f"{where}: {err}") from None

    def _order_subexpressions(self, subexpressions: dict) -> dict:
        ordered, visiting = {}, set()
        names = {sympy.Symbol(n, real=True): n for n in subexpressions}

        def visit(name, chain):
            if name in ordered:
                return
            if name in visiting:
                decl = next(d for d in self.declarations if d.name == name)
                raise EquationError(f"{decl.where(self.origin)}: circular definition ({' -> '.join(chain)})")
            visiting.add(name)
            for sym in subexpressions[name].free_symbols:
                if sym in names:
                    visit(names[sym], chain + [names[sym]])
            visiting.discard(name)
            ordered[name] = subexpressions[name]

        for name in subexpressions:
            visit(name, [name])
        return ordered

    def _parse_condition(self, text: str, what: str):
        where = f"{what} '{shorten(text)}'"
        expr, _ = self._parse(text, where)
        if not is_logical(expr):
            raise EquationError(f"{where}: must be a condition such as 'v > -50*mV'")
        return expr

    def _parse_reset(self, code: str) -> list:
        statements = []
        for st in parse_statements(code, "reset"):
            where = f"reset line {st.line}: '{st.source}'"
            if st.target not in self.states:
                raise EquationError(f"{where}: '{st.target}' is not a state variable (valid: {', '.join(self.states)})")
            expr, dim = self._parse(st.expr, where)
            target_dim = self.dimensions[st.target]
            expected = target_dim if st.op in ("=", "+=", "-=") else DIMENSIONLESS
            if dim is not None and dim != expected:
                raise EquationError(f"{where}: dimension mismatch: {dim} assigned to '{st.target}' ({target_dim})")
            statements.append(ResetStatement(st.target, st.op, expr, st.source))
        return statements

    def _parse_refractory(self, refractory):
        """None | ('duration', expr in s) | ('condition', boolean expr)."""
        if refractory is None or refractory is False:
            return None
        if isinstance(refractory, (int, float)):
            return ("duration", sympy.Float(float(refractory)))
        try:  # a quantity string such as "2 ms"
            value, dim = parse_quantity(str(refractory))
            if dim == TIME:
                return ("duration", sympy.Float(value))
        except UnitError:
            pass  # an expression: "2*ms", "(1 + rand())*ms", "v > -20*mV"
        where = f"refractory '{shorten(refractory)}'"
        expr, dim = self._parse(str(refractory), where)
        if is_logical(expr):
            return ("condition", expr)
        if dim is not None and dim != TIME:
            raise EquationError(f"{where}: must be a duration (e.g. '2 ms') or a condition (e.g. 'v > -20*mV'), "
                                f"got units of {dim}")
        return ("duration", expr)

    # --- public helpers ----------------------------------------------------------------------
    @property
    def symbols(self) -> dict:
        """Every name the equations may use (declared, inputs, t, dt, noise) → its sympy Symbol."""
        return {name: sym for name, (sym, _) in self.scope.symbols.items()}

    def symbol(self, name: str) -> sympy.Symbol:
        """The sympy Symbol of ``name`` (a declared variable, input, t or dt).

        name: the variable's name. Returns the model's Symbol, or a new real Symbol for a name the model
        does not know.
        """
        if name in self.scope.symbols:
            return self.scope.symbols[name][0]
        return sympy.Symbol(name, real=True)

    def _derive(self, equations: str | None = None, namespace: dict | None = None, **events) -> "Model":
        settings = {"threshold": self.threshold_text, "reset": self.reset_text, "refractory": self.refractory_spec}
        settings.update(events)
        return Model(equations or self.equations, namespace if namespace is not None else self.namespace_text,
                     inputs=self.inputs or None, origin=self.origin, **settings)

    def with_events(self, threshold=None, reset=None, refractory=None) -> "Model":
        """A copy of this model with threshold / reset / refractory replaced.

        threshold, reset, refractory: as for ``Model`` (None removes the event). Returns the new Model;
        raises EquationError as ``Model`` does.
        """
        return self._derive(threshold=threshold, reset=reset, refractory=refractory)

    def fix(self, values: dict) -> "Model":
        """A copy in which the given parameters are constants with these values.

        values: parameter name → SI number or quantity string ("10 nS"). Returns the new Model, whose
        ``parameters`` no longer include these names. Raises EquationError for a name that is not a
        parameter or a value that cannot be read.
        """
        unknown = [n for n in values if n not in self.parameters]
        if unknown:
            raise EquationError(f"fix: {', '.join(unknown)} not a parameter (parameters: {', '.join(self.parameters)})")
        drop = {d.line for d in self.declarations if d.kind == "param" and d.name in values}
        lines = [line for i, line in enumerate(self.equations.splitlines(), start=1) if i not in drop]
        return self._derive("\n".join(lines), {**self.namespace_text, **values})

    def expand(self, expr):
        """Substitute subexpressions (recursively) so that only states, parameters, inputs remain.

        expr: a sympy expression in the model's symbols. Returns the expression with every
        subexpression replaced by its definition.
        """
        subs = {}
        for name, sub in self.subexpressions.items():
            subs[self.symbol(name)] = sub.xreplace(subs)
        return expr.xreplace(subs)

    def recordable(self) -> list[str]:
        """Returns the names a simulation can record: the states, then the subexpressions."""
        return self.states + list(self.subexpressions)

    @functools.cached_property
    def content_hash(self) -> str:
        """Identifies the model (equations, namespace, inputs, events): equal models share compiled kernels."""
        text = repr((self.equations, sorted((k, str(v)) for k, v in self.namespace_text.items()), self.inputs,
                     self.threshold_text, self.reset_text, str(self.refractory_spec)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __eq__(self, other) -> bool:
        return isinstance(other, Model) and other.content_hash == self.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __repr__(self) -> str:
        return (f"Model(states={self.states}, parameters={self.parameters}, inputs={self.inputs}, "
                f"subexpressions={list(self.subexpressions)})")


def as_model(model) -> Model:
    """A Model, or equations text turned into one."""
    if isinstance(model, Model):
        return model
    if isinstance(model, str):
        return Model(model)
    raise TypeError(f"model must be a neurofit.Model or an equations string, not {type(model).__name__}")
