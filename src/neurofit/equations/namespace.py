"""Constants from the caller's scope, as Brian2's ``get_local_namespace``: the names model text uses but does
not define, looked up (never evaluated) among the local, then global, variables of a calling frame."""
from __future__ import annotations

import ast
import numbers
import sys

from ..units import UNITS, shorten
from .expressions import ALL_FUNCTIONS
from .model import NOISE_NAME, RESERVED_NAMES
from .parser import EquationError, parse_equations, parse_statements


def external_names(equations: str, threshold: str | None = None, reset: str | None = None, refractory=None,
                   expressions=(), origin: str = "equations") -> list[str]:
    """The identifiers model text uses without defining them: neither declared in ``equations`` nor reserved
    (t, dt, xi...), a unit or a known function.

    equations: the equations text (Brian2 syntax); threshold, reset, refractory: as for ``Model`` (a refractory
    that is not a string is ignored); expressions: further expression strings (e.g. initial values), of which
    those that are not Python expressions (quantity strings such as "-70 mV") are skipped; origin: the name of
    the equations in error messages. Returns the names in order of first use. Raises EquationError as
    ``Model`` does for equations or reset code that do not parse.
    """
    declarations = parse_equations(equations, origin).declarations
    declared = {d.name for d in declarations}
    texts = [d.expr for d in declarations if d.expr]
    texts += [t for t in (threshold, refractory) if isinstance(t, str)]
    if reset:
        texts += [st.expr for st in parse_statements(reset, "reset")]
    texts += [t for t in expressions if isinstance(t, str)]
    names = {}
    for text in texts:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            continue  # a quantity string, or a syntax error that Model reports with its line
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        used = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)), key=lambda n: n.col_offset)
        for node in used:
            if not (id(node) in called and node.id in ALL_FUNCTIONS):
                names.setdefault(node.id, None)
    return [n for n in names if n not in declared and n not in RESERVED_NAMES and n not in UNITS
            and not NOISE_NAME.match(n)]


def caller_namespace(names, level: int = 0) -> dict:
    """The values of ``names`` in the scope of a caller, as Brian2's ``get_local_namespace(level)``: its local
    variables, then its module's globals; a name found in neither is left out.

    names: identifiers to look up; level: how many frames above the caller of the function that calls
    ``caller_namespace`` (0: that function's caller, e.g. the user's script calling a fitter's constructor).
    Returns name → SI float. Raises EquationError (one line naming the variable) for a value that is not a
    real number (a string, a function, a module, an array...): model constants are never evaluated from code.
    """
    frame = sys._getframe(level + 2)
    try:
        scope = {**frame.f_globals, **frame.f_locals}
    finally:
        del frame
    found = {}
    for name in names:
        if name not in scope:
            continue
        value = scope[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise EquationError(f"'{name}' is used by the equations and found in the calling scope as "
                                f"{shorten(repr(value))} ({type(value).__name__}); constants must be numbers (SI), "
                                f"or give them with namespace={{'{name}': ...}}")
        found[name] = float(value)
    return found
