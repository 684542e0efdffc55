"""Print sympy expressions as numpy or C source (the one place both backends' arithmetic is written).

Every sympy symbol is printed as ``u_<name>`` (``symbol_name``): the model's names (states,
parameters, inputs, subexpressions, ``t``, ``dt``) and the step code's temporaries (``_cse0``,
``_k2_dv``, ``_Z_xi`` …) alike. Names that generated code declares itself (loop counters, buffers,
helpers, ``np``) never start with ``u_``, so no model name can shadow them or be a keyword of
C or Python.
"""
from __future__ import annotations

import sympy

SYMBOL_PREFIX = "u_"

# below these |z|, exprel(z) = (exp(z)-1)/z uses its Taylor series (error < 1e-16 / 1e-8 relative)
EXPREL_SERIES_BELOW = {"float64": 1e-5, "float32": 1e-3}
# below these |z|, exprel'(z) uses 1/2 + z/3 + z**2/8 (its closed form cancels catastrophically)
EXPREL_D_SERIES_BELOW = {"float64": 1e-3, "float32": 1e-1}

_NUMPY_FUNCS = {"exp": "np.exp", "log": "np.log", "sin": "np.sin", "cos": "np.cos", "tan": "np.tan",
                "sinh": "np.sinh", "cosh": "np.cosh", "tanh": "np.tanh", "asin": "np.arcsin",
                "acos": "np.arccos", "atan": "np.arctan", "Abs": "np.abs", "floor": "np.floor",
                "ceiling": "np.ceil", "sign": "np.sign", "expm1": "np.expm1", "log1p": "np.log1p",
                "exprel": "_exprel", "exprel_d": "_exprel_d"}
_C_FUNCS = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh",
            "cosh": "cosh", "tanh": "tanh", "asin": "asin", "acos": "acos", "atan": "atan", "Abs": "fabs",
            "floor": "floor", "ceiling": "ceil", "expm1": "expm1", "log1p": "log1p", "exprel": "nf_exprel",
            "exprel_d": "nf_exprel_d", "sign": "nf_sign"}


def symbol_name(name: str) -> str:
    """Source name of the symbol called ``name`` in generated code: ``u_<name>``."""
    return SYMBOL_PREFIX + name


class Printer:
    """``Printer("numpy")`` or ``Printer("c", "float32")``; ``names`` maps symbols to source names
    (overriding ``symbol_name``, e.g. a state to its updated value)."""

    def __init__(self, target: str, dtype: str = "float64", names: dict | None = None):
        self.target = target
        self.dtype = dtype
        self.names = names or {}

    def __call__(self, expr) -> str:
        """Source text of ``expr``: a sympy expression or a number (never text, which sympify would evaluate)."""
        return self.p(sympy.sympify(expr, strict=True))

    def literal(self, value: float) -> str:
        """A float literal in the target's syntax (C: always with a point, ``f`` suffix for float32)."""
        text = repr(float(value))
        if self.target == "c":
            if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
                text += ".0"
            if self.dtype == "float32":
                text += "f"
        return text

    def func(self, name: str) -> str:
        """The target's name of math function ``name`` (sympy's name: ``exp``, ``Abs``, ``exprel`` …)."""
        if self.target == "numpy":
            return _NUMPY_FUNCS[name]
        base = _C_FUNCS[name]
        if self.dtype == "float32" and not base.startswith("nf_"):
            base += "f"
        return base

    def p(self, e) -> str:
        """Source text of the sympy expression ``e``; ValueError for what has no translation."""
        if e.is_Symbol:
            return self.names[e] if e in self.names else symbol_name(e.name)
        if e is sympy.true or e is sympy.false:
            if self.target == "numpy":
                return "True" if e is sympy.true else "False"
            return "1" if e is sympy.true else "0"
        if e.is_Number:
            if e.is_Rational and not e.is_Integer:
                return f"({self.literal(e.p)}/{self.literal(e.q)})"
            value = float(e)
            return f"({self.literal(value)})" if value < 0 else self.literal(value)
        if e.is_Add:
            terms = [self.p(a) for a in e.args]
            return "(" + " + ".join(terms) + ")"
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e.base, e.exp)
        if isinstance(e, sympy.Piecewise):
            return self._piecewise(e.args)
        if isinstance(e, sympy.core.relational.Relational):
            return f"({self.p(e.lhs)} {e.rel_op} {self.p(e.rhs)})"
        if isinstance(e, sympy.And):
            op = " & " if self.target == "numpy" else " && "
            return "(" + op.join(self.p(a) for a in e.args) + ")"
        if isinstance(e, sympy.Or):
            op = " | " if self.target == "numpy" else " || "
            return "(" + op.join(self.p(a) for a in e.args) + ")"
        if isinstance(e, sympy.Not):
            return f"(~{self.p(e.args[0])})" if self.target == "numpy" else f"(!{self.p(e.args[0])})"
        if isinstance(e, (sympy.Min, sympy.Max)):
            return self._minmax(e)
        if isinstance(e, sympy.Mod):
            if self.target == "numpy":
                return f"np.mod({self.p(e.args[0])}, {self.p(e.args[1])})"
            return f"{'fmodf' if self.dtype == 'float32' else 'fmod'}({self.p(e.args[0])}, {self.p(e.args[1])})"
        if isinstance(e, sympy.Function):  # exp, log ..., expm1, log1p, exprel, exprel_d
            name = type(e).__name__
            if name in _NUMPY_FUNCS:
                return f"{self.func(name)}({self.p(e.args[0])})"
        raise ValueError(f"cannot generate code for '{e}' ({type(e).__name__})")

    def _mul(self, e) -> str:
        numerator, denominator = [], []
        for factor in e.args:
            if factor.is_Pow and factor.exp.is_Number and factor.exp < 0:
                denominator.append(self._pow(factor.base, -factor.exp))
            elif factor.is_Rational and not factor.is_Integer and factor.p == 1:
                denominator.append(self.literal(factor.q))
            else:
                numerator.append(self.p(factor))
        text = "*".join(numerator) if numerator else self.literal(1.0)
        if denominator:
            text += "/" + (denominator[0] if len(denominator) == 1 else "(" + "*".join(denominator) + ")")
        return "(" + text + ")"

    def _pow(self, base, exp) -> str:
        b = self.p(base)
        if exp == 1:
            return b
        if exp.is_Integer and 2 <= int(exp) <= 4:
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and int(exp) < 0:
            return f"({self.literal(1.0)}/{self._pow(base, -exp)})"
        if exp == sympy.Rational(1, 2):
            return f"np.sqrt({b})" if self.target == "numpy" else f"{'sqrtf' if self.dtype == 'float32' else 'sqrt'}({b})"
        if exp == sympy.Rational(-1, 2):
            sq = self._pow(base, sympy.Rational(1, 2))
            return f"({self.literal(1.0)}/{sq})"
        if self.target == "numpy":
            return f"({b}**{self.p(exp)})"
        return f"{'powf' if self.dtype == 'float32' else 'pow'}({b}, {self.p(exp)})"

    def _piecewise(self, pieces) -> str:
        (value, cond), rest = pieces[0], pieces[1:]
        if cond is sympy.true or not rest:
            return self.p(value)
        other = self._piecewise(rest)
        if self.target == "numpy":
            return f"_where({self.p(cond)}, {self.p(value)}, {other})"
        return f"({self.p(cond)} ? {self.p(value)} : {other})"

    def _minmax(self, e) -> str:
        name = "minimum" if isinstance(e, sympy.Min) else "maximum"
        args = [self.p(a) for a in e.args]
        text = args[0]
        for a in args[1:]:
            if self.target == "numpy":
                text = f"np.{name}({text}, {a})"
            else:
                f = ("fmin" if name == "minimum" else "fmax") + ("f" if self.dtype == "float32" else "")
                text = f"{f}({text}, {a})"
        return text
