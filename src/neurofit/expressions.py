"""Expression strings → sympy, with dimension checking and safe rate functions.

Identifiers resolve, in order, to: model symbols (states, parameters, subexpressions,
inputs, ``t``, ``dt``, noise ``xi``), namespace constants (substituted as numbers),
units (``mV`` → 1e-3), functions (``exp``, ``sqrt``, ``exprel``, ``clip``, ``int`` …).
"""
from __future__ import annotations

import ast
import math

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p

from .units import DIMENSIONLESS, Dimension, UNITS


class exprel(sympy.Function):
    """(exp(z) - 1) / z, continuous at z = 0 (Brian2's ``exprel``)."""

    def fdiff(self, argindex=1):
        return exprel_d(self.args[0])

    @classmethod
    def eval(cls, z):
        if z.is_Number:
            return sympy.Float(1.0) if z == 0 else (sympy.exp(z) - 1) / z


class exprel_d(sympy.Function):
    """d/dz exprel(z) = (exp(z)(z - 1) + 1) / z**2, continuous at z = 0 (value 1/2)."""

    @classmethod
    def eval(cls, z):
        if z.is_Number:
            return sympy.Float(0.5) if z == 0 else (sympy.exp(z) * (z - 1) + 1) / z ** 2


_FUNCTIONS = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos,
    "tan": sympy.tan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan, "abs": sympy.Abs,
    "floor": sympy.floor, "ceil": sympy.ceiling, "sign": sympy.sign, "expm1": expm1,
    "log1p": log1p, "exprel": exprel, "log10": lambda x: sympy.log(x) / sympy.log(10),
}
_DIMENSIONLESS_FUNCTIONS = {"exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos",
                            "arctan", "expm1", "log1p", "exprel", "log10"}
_SAME_DIMENSION_FUNCTIONS = {"abs", "floor", "ceil"}
ALL_FUNCTIONS = set(_FUNCTIONS) | {"clip", "int"}


class ExpressionError(ValueError):
    """Raised with a message that the caller prefixes with the equation line."""


class Scope:
    """What identifiers mean: symbols with dimensions (None = unknown), and numeric constants."""

    def __init__(self, symbols: dict, constants: dict, input_ok=None):
        self.symbols = symbols  # name -> (sympy.Symbol, Dimension | None)
        self.constants = constants  # name -> (float, Dimension | None)
        self.input_ok = input_ok  # callable(name) -> bool: may this undefined name be an input?
        self.new_inputs: dict = {}  # name -> Symbol, inputs discovered while parsing
        self.input_dims: dict = {}  # name -> Dimension inferred from use

    def resolve(self, name: str):
        if name in self.symbols:
            return self.symbols[name]
        if name in self.constants:
            value, dim = self.constants[name]
            return sympy.Float(value), dim
        if name in UNITS:
            value, dim = UNITS[name]
            return sympy.Float(value), dim
        if name in self.new_inputs:
            return self.new_inputs[name], self.input_dims.get(name)
        if self.input_ok is not None and self.input_ok(name):
            sym = sympy.Symbol(name, real=True)
            self.new_inputs[name] = sym
            return sym, None
        raise ExpressionError(
            f"unknown identifier '{name}': not a variable, parameter, subexpression, input, namespace "
            f"constant or unit (declare it as '{name} : <unit> (constant)', give it in namespace=, "
            f"or list it in inputs=)")


def _same(a: Dimension | None, b: Dimension | None) -> bool:
    return a is None or b is None or a == b


class _Builder:
    """Walks a Python AST, returning (sympy expression, Dimension | None)."""

    def __init__(self, scope: Scope):
        self.scope = scope

    def build(self, node):
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"unsupported syntax '{ast.unparse(node)}'")
        return method(node)

    def _Expression(self, node):
        return self.build(node.body)

    def _Constant(self, node):
        if isinstance(node.value, bool):
            return sympy.true if node.value else sympy.false, DIMENSIONLESS
        if isinstance(node.value, int):
            return sympy.Integer(node.value), DIMENSIONLESS
        if isinstance(node.value, float):
            return sympy.Float(node.value), DIMENSIONLESS
        raise ExpressionError(f"unsupported constant {node.value!r}")

    def _Name(self, node):
        if node.id in ("True", "False"):
            return (sympy.true if node.id == "True" else sympy.false), DIMENSIONLESS
        return self.scope.resolve(node.id)

    def _UnaryOp(self, node):
        value, dim = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -_arith(value), dim
        if isinstance(node.op, ast.UAdd):
            return value, dim
        if isinstance(node.op, ast.Not):
            return sympy.Not(_boolean(value)), DIMENSIONLESS
        raise ExpressionError(f"unsupported operator in '{ast.unparse(node)}'")

    def _BinOp(self, node):
        left, ldim = self.build(node.left)
        right, rdim = self.build(node.right)
        left, right = _arith(left), _arith(right)
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub)):
            self._infer_input(node.left, ldim, rdim)
            self._infer_input(node.right, rdim, ldim)
            if not _same(ldim, rdim):
                raise ExpressionError(f"dimension mismatch in '{ast.unparse(node)}': cannot add {ldim} and {rdim}")
            return (left + right if isinstance(op, ast.Add) else left - right), (ldim if ldim is not None else rdim)
        if isinstance(op, ast.Mult):
            return left * right, (None if ldim is None or rdim is None else ldim * rdim)
        if isinstance(op, ast.Div):
            return left / right, (None if ldim is None or rdim is None else ldim / rdim)
        if isinstance(op, ast.Pow):
            if rdim is not None and not rdim.is_dimensionless:
                raise ExpressionError(f"exponent in '{ast.unparse(node)}' must be dimensionless, not {rdim}")
            if ldim is None or ldim.is_dimensionless:
                return left ** right, ldim
            if not right.is_Number:
                raise ExpressionError(f"'{ast.unparse(node)}': a quantity with units ({ldim}) can only be raised "
                                      f"to a constant number")
            return left ** right, ldim ** float(right)
        if isinstance(op, ast.Mod):
            if not _same(ldim, rdim):
                raise ExpressionError(f"dimension mismatch in '{ast.unparse(node)}'")
            return sympy.Mod(left, right), ldim
        raise ExpressionError(f"unsupported operator in '{ast.unparse(node)}'")

    def _infer_input(self, node, dim, other):
        """A bare input in a sum takes the dimension of the other term."""
        if dim is None and other is not None and isinstance(node, ast.Name) and node.id in self.scope.new_inputs:
            self.scope.input_dims.setdefault(node.id, other)

    def _Compare(self, node):
        if len(node.ops) != 1:
            raise ExpressionError(f"chained comparison '{ast.unparse(node)}': write '(a < b) and (b < c)'")
        left, ldim = self.build(node.left)
        right, rdim = self.build(node.comparators[0])
        self._infer_input(node.left, ldim, rdim)
        self._infer_input(node.comparators[0], rdim, ldim)
        if not _same(ldim, rdim):
            raise ExpressionError(f"dimension mismatch in '{ast.unparse(node)}': cannot compare {ldim} and {rdim}")
        ops = {ast.Gt: sympy.Gt, ast.Lt: sympy.Lt, ast.GtE: sympy.Ge, ast.LtE: sympy.Le, ast.Eq: sympy.Eq,
               ast.NotEq: sympy.Ne}
        cls = ops.get(type(node.ops[0]))
        if cls is None:
            raise ExpressionError(f"unsupported comparison in '{ast.unparse(node)}'")
        return cls(_arith(left), _arith(right), evaluate=False), DIMENSIONLESS

    def _BoolOp(self, node):
        values = [_boolean(self.build(v)[0]) for v in node.values]
        return (sympy.And if isinstance(node.op, ast.And) else sympy.Or)(*values), DIMENSIONLESS

    def _Call(self, node):
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"unsupported call '{ast.unparse(node)}'")
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"'{ast.unparse(node)}': keyword arguments are not supported")
        args = [self.build(a) for a in node.args]
        if name == "int":
            (value, _), = args
            return sympy.Piecewise((sympy.Integer(1), _boolean(value)), (sympy.Integer(0), True)), DIMENSIONLESS
        if name == "clip":
            if len(args) != 3:
                raise ExpressionError(f"'{ast.unparse(node)}': clip takes (x, low, high)")
            (x, d), (lo, dl), (hi, dh) = args
            if not (_same(d, dl) and _same(d, dh)):
                raise ExpressionError(f"dimension mismatch in '{ast.unparse(node)}'")
            return sympy.Min(sympy.Max(_arith(x), _arith(lo)), _arith(hi)), d
        if name not in _FUNCTIONS:
            raise ExpressionError(f"unknown function '{name}' (valid: {', '.join(sorted(ALL_FUNCTIONS))})")
        if len(args) != 1:
            raise ExpressionError(f"'{ast.unparse(node)}': {name} takes one argument")
        (value, dim), = args
        if name in _DIMENSIONLESS_FUNCTIONS:
            if dim is not None and not dim.is_dimensionless:
                raise ExpressionError(f"argument of {name} in '{ast.unparse(node)}' must be dimensionless, "
                                      f"not {dim}")
            return _FUNCTIONS[name](_arith(value)), DIMENSIONLESS
        if name == "sqrt":
            return sympy.sqrt(_arith(value)), (dim ** 0.5 if dim is not None else None)
        if name == "sign":
            return sympy.sign(_arith(value)), DIMENSIONLESS
        return _FUNCTIONS[name](_arith(value)), dim


_LOGICAL = (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction,
            sympy.logic.boolalg.BooleanAtom)


def is_logical(value) -> bool:
    """True for conditions (comparisons, and/or/not, True/False), not for plain symbols."""
    return isinstance(value, _LOGICAL)


def _arith(value):
    """Booleans used in arithmetic count as 0/1 (as in Brian2)."""
    if is_logical(value):
        return sympy.Piecewise((sympy.Integer(1), value), (sympy.Integer(0), True))
    return value


def _boolean(value):
    if is_logical(value):
        return value
    return sympy.Ne(value, 0)


def parse_expression(text: str, scope: Scope):
    """Expression text → (sympy expression, Dimension | None). Raises ExpressionError."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        col = f" near column {err.offset}" if err.offset else ""
        raise ExpressionError(f"syntax error{col} in '{text.strip()}'") from None
    expr, dim = _Builder(scope).build(tree)
    return expr, dim


# --- safe evaluation of x/(exp(x/k) - 1) -------------------------------------------------------

def _exp_minus_one(d):
    """If d == a*exp(y) + b with a/b < 0 (numbers), return (c, z) with d == c*(exp(z) - 1)."""
    if not d.is_Add or len(d.args) != 2:
        return None
    number = [a for a in d.args if a.is_Number]
    other = [a for a in d.args if not a.is_Number]
    if len(number) != 1 or len(other) != 1:
        return None
    term, a = other[0], sympy.Integer(1)
    if term.is_Mul:
        a, term = term.as_coeff_Mul()
    if not isinstance(term, sympy.exp):
        return None
    b = float(number[0])
    if b == 0 or float(a) / b >= 0:
        return None
    shift = math.log(-float(a) / b)  # a*exp(y) + b = -b*(exp(y + log(-a/b)) - 1)
    z = term.args[0] + sympy.Float(shift) if abs(shift) > 1e-15 else term.args[0]
    return sympy.Float(-b), z


def _constant_ratio(f, y):
    """f / y if it is a constant (checked at random points), else None."""
    symbols = sorted((f.free_symbols | y.free_symbols), key=str)
    if not symbols or not y.free_symbols:
        return None
    ratio = sympy.lambdify(symbols, f / y, modules="math")
    rng = np.random.default_rng(0)
    values = []
    for _ in range(4):
        point = rng.uniform(-2.0, 2.0, size=len(symbols))
        try:
            values.append(float(ratio(*point)))
        except (ZeroDivisionError, ValueError, OverflowError, TypeError):
            return None
    if not all(math.isfinite(v) for v in values):
        return None
    if all(math.isclose(v, values[0], rel_tol=1e-9, abs_tol=0.0) for v in values):
        return values[0]
    return None


def make_rate_functions_safe(expr):
    """Rewrite N/(exp(y)-1) with N ∝ y into (N/y)/exprel(y), and exp(y)-1 into expm1(y).

    Textbook rate functions such as ``0.32*(13mV - v)/(exp((13mV - v)/4mV) - 1)`` are 0/0 at one
    voltage; ``exprel`` is continuous there.
    """
    if expr.is_Atom:
        return expr
    args = [make_rate_functions_safe(a) for a in expr.args]
    if expr.is_Mul:
        product = sympy.Mul(*args)  # flatten: a rewritten 1/(1 - exp(y)) comes back as -1/expm1(y)
        if not product.is_Mul:
            return product
        factors = list(product.args)
        for i, factor in enumerate(factors):
            if not (factor.is_Pow and factor.exp == -1):
                continue
            match = _exp_minus_one(factor.base)
            if match is None and isinstance(factor.base, expm1):  # exp(y) - 1 already rewritten below
                match = (sympy.Integer(1), factor.base.args[0])
            if match is None:
                continue
            c, y = match
            for j, numerator in enumerate(factors):
                if j == i or numerator.is_Number:
                    continue
                ratio = _constant_ratio(numerator, y)
                if ratio is not None:
                    factors[i] = sympy.Integer(1) / (c * exprel(y))
                    factors[j] = sympy.Float(ratio)
                    break
            else:
                factors[i] = sympy.Integer(1) / (c * expm1(y))
        return sympy.Mul(*factors)
    rebuilt = expr.func(*args) if args != list(expr.args) else expr
    if rebuilt.is_Add:
        match = _exp_minus_one(rebuilt)
        if match is not None:
            c, y = match
            return c * expm1(y)
    return rebuilt
