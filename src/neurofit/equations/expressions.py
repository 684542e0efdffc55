"""Expression strings → sympy, with dimension checking and safe rate functions.

Identifiers resolve, in order, to: model symbols (states, parameters, subexpressions,
inputs, ``t``, ``dt``, noise ``xi``), namespace constants (substituted as numbers),
units (``mV`` → 1e-3), functions (``exp``, ``sqrt``, ``exprel``, ``clip``, ``int`` …).

The text is never evaluated: its Python AST is walked and only numbers, names, arithmetic,
comparisons, ``and``/``or``/``not`` and calls of the functions above become sympy; anything else
(attributes, subscripts, lambdas, comprehensions, strings …) and identifiers starting with ``_`` are
refused. Limits (see ``units``): at most ``MAX_TEXT_LENGTH`` characters, integer literals of at most
``MAX_LITERAL_DIGITS`` digits, constant exponents of magnitude at most ``MAX_EXPONENT``, and constants
computed from numbers (powers, products, quotients) within 1e±``MAX_NUMBER_DIGITS``, so that no text
makes sympy compute huge numbers.
"""
from __future__ import annotations

import ast
import math

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p

from ..errors import NeurofitError
from ..units import (
    DIMENSIONLESS,
    MAX_EXPONENT,
    MAX_LITERAL_DIGITS,
    MAX_TEXT_LENGTH,
    UNITS,
    Dimension,
    literal_too_large,
    shorten,
    too_long,
)

MAX_NUMBER_DIGITS = 308  # numbers computed from constants lie within 1e-308 .. 1e308 in magnitude (float range)


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


class ExpressionError(NeurofitError):
    """Raised with a message that the caller prefixes with the equation line."""


_UNKNOWN_HINT = ("not a variable, parameter, subexpression, input, namespace constant or unit (declare it as "
                 "'{name} : <unit> (constant)', give it in namespace=, or list it in inputs=)")


class Scope:
    """What identifiers mean: symbols with dimensions (None = unknown), and numeric constants.

    ``unknown_hint`` is the message for an unknown identifier (``{name}`` is replaced by it).
    """

    def __init__(self, symbols: dict, constants: dict, input_ok=None, unknown_hint: str = _UNKNOWN_HINT):
        self.symbols = symbols  # name -> (sympy.Symbol, Dimension | None)
        self.constants = constants  # name -> (float, Dimension | None)
        self.input_ok = input_ok  # callable(name) -> bool: may this undefined name be an input?
        self.unknown_hint = unknown_hint
        self.new_inputs: dict = {}  # name -> Symbol, inputs discovered while parsing
        self.input_dims: dict = {}  # name -> Dimension inferred from use

    def resolve(self, name: str):
        """(sympy value, Dimension | None) of an identifier; ExpressionError if it means nothing here."""
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
        raise ExpressionError(f"unknown identifier '{name}': {self.unknown_hint.format(name=name)}")


def _same(a: Dimension | None, b: Dimension | None) -> bool:
    return a is None or b is None or a == b


_SYNTAX_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.Starred: "a starred argument", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.NamedExpr: "an assignment", ast.IfExp: "a conditional expression",
    ast.Tuple: "a tuple", ast.List: "a list", ast.Dict: "a dict", ast.Set: "a set", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}
_ALLOWED = "numbers, names of the model, units, + - * / ** %, comparisons, and/or/not, calls of known functions"


def _refuse(node, what: str | None = None) -> ExpressionError:
    """One-line error for syntax the expression language does not have."""
    what = what or _SYNTAX_NAMES.get(type(node), type(node).__name__)
    return ExpressionError(f"unsupported syntax '{shorten(ast.unparse(node))}' ({what}); allowed: {_ALLOWED}")


def _check_identifier(name: str) -> None:
    if name.startswith("_"):
        raise ExpressionError(f"identifier '{shorten(name)}': names starting with '_' are not allowed")


def _log10_magnitude(number) -> float:
    """log10 |number| of a sympy number (0 for 0 and for what is not finite), without computing anything large."""
    if not number.is_finite or number == 0:
        return 0.0
    if number.is_Rational:
        return math.log10(abs(number.p)) - math.log10(number.q)
    return float(sympy.log(abs(number)).evalf()) / math.log(10)


def _out_of_range(node) -> ExpressionError:
    return ExpressionError(f"'{shorten(ast.unparse(node))}' is out of range (numbers computed from constants must "
                           f"lie within 1e-{MAX_NUMBER_DIGITS} .. 1e{MAX_NUMBER_DIGITS} in magnitude)")


def _in_range(value, node):
    """``value``, unless its constant factor is outside 1e±MAX_NUMBER_DIGITS (then ExpressionError)."""
    coefficient, _ = value.as_coeff_Mul()
    if abs(_log10_magnitude(coefficient)) > MAX_NUMBER_DIGITS:
        raise _out_of_range(node)
    return value


class _Builder:
    """Walks a Python AST, returning (sympy expression, Dimension | None)."""

    def __init__(self, scope: Scope):
        self.scope = scope

    def build(self, node):
        """(sympy expression, Dimension | None) of an AST node; ExpressionError for anything not allowed."""
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise _refuse(node)
        return method(node)

    def _Expression(self, node):
        return self.build(node.body)

    def _Constant(self, node):
        if isinstance(node.value, bool):
            return sympy.true if node.value else sympy.false, DIMENSIONLESS
        if isinstance(node.value, int):
            if literal_too_large(node.value):
                raise ExpressionError(f"an integer has more than {MAX_LITERAL_DIGITS} digits: write it as a float "
                                      f"such as 1e40")
            return sympy.Integer(node.value), DIMENSIONLESS
        if isinstance(node.value, float):
            if not math.isfinite(node.value):
                raise ExpressionError("a number is too large for a float (at most about 1.8e308)")
            return sympy.Float(node.value), DIMENSIONLESS
        raise _refuse(node, "a constant that is not a number")

    def _Name(self, node):
        if node.id in ("True", "False"):
            return (sympy.true if node.id == "True" else sympy.false), DIMENSIONLESS
        _check_identifier(node.id)
        return self.scope.resolve(node.id)

    def _UnaryOp(self, node):
        value, dim = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -_arith(value), dim
        if isinstance(node.op, ast.UAdd):
            return value, dim
        if isinstance(node.op, ast.Not):
            return sympy.Not(_boolean(value)), DIMENSIONLESS
        raise ExpressionError(f"unsupported operator in '{shorten(ast.unparse(node))}'")

    def _BinOp(self, node):
        if isinstance(node.op, ast.Pow):
            return self._power(node)
        left, ldim = self.build(node.left)
        right, rdim = self.build(node.right)
        left, right = _arith(left), _arith(right)
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub)):
            self._infer_input(node.left, ldim, rdim)
            self._infer_input(node.right, rdim, ldim)
            if not _same(ldim, rdim):
                raise ExpressionError(f"dimension mismatch in '{shorten(ast.unparse(node))}': "
                                      f"cannot add {ldim} and {rdim}")
            return (left + right if isinstance(op, ast.Add) else left - right), (ldim if ldim is not None else rdim)
        if isinstance(op, ast.Mult):
            return _in_range(left * right, node), (None if ldim is None or rdim is None else ldim * rdim)
        if isinstance(op, ast.Div):
            return _in_range(left / right, node), (None if ldim is None or rdim is None else ldim / rdim)
        if isinstance(op, ast.Mod):
            if not _same(ldim, rdim):
                raise ExpressionError(f"dimension mismatch in '{shorten(ast.unparse(node))}'")
            return sympy.Mod(left, right), ldim
        raise ExpressionError(f"unsupported operator in '{shorten(ast.unparse(node))}'")

    def _power(self, node):
        """``a ** b``: the exponent is read and checked first, so ``9**9**9`` fails before any large number."""
        shown = shorten(ast.unparse(node))
        right, rdim = self.build(node.right)
        right = _arith(right)
        if rdim is not None and not rdim.is_dimensionless:
            raise ExpressionError(f"exponent in '{shown}' must be dimensionless, not {rdim}")
        if right.is_Number and (not right.is_finite or abs(right) > MAX_EXPONENT):  # sympy: no float overflow
            raise ExpressionError(f"exponent in '{shown}' is too large (a constant exponent must be at most "
                                  f"{MAX_EXPONENT} in magnitude)")
        left, ldim = self.build(node.left)
        left = _arith(left)
        if left.is_Number and right.is_Number and abs(float(right) * _log10_magnitude(left)) > MAX_NUMBER_DIGITS:
            raise _out_of_range(node)  # checked before sympy computes the power
        if ldim is None or ldim.is_dimensionless:
            return left ** right, ldim
        if not right.is_Number:
            raise ExpressionError(f"'{shown}': a quantity with units ({ldim}) can only be raised to a constant number")
        return left ** right, ldim ** float(right)

    def _infer_input(self, node, dim, other):
        """A bare input in a sum takes the dimension of the other term."""
        if dim is None and other is not None and isinstance(node, ast.Name) and node.id in self.scope.new_inputs:
            self.scope.input_dims.setdefault(node.id, other)

    def _Compare(self, node):
        if len(node.ops) != 1:
            raise ExpressionError(f"chained comparison '{shorten(ast.unparse(node))}': write '(a < b) and (b < c)'")
        left, ldim = self.build(node.left)
        right, rdim = self.build(node.comparators[0])
        self._infer_input(node.left, ldim, rdim)
        self._infer_input(node.comparators[0], rdim, ldim)
        if not _same(ldim, rdim):
            raise ExpressionError(f"dimension mismatch in '{shorten(ast.unparse(node))}': "
                                  f"cannot compare {ldim} and {rdim}")
        ops = {ast.Gt: sympy.Gt, ast.Lt: sympy.Lt, ast.GtE: sympy.Ge, ast.LtE: sympy.Le, ast.Eq: sympy.Eq,
               ast.NotEq: sympy.Ne}
        cls = ops.get(type(node.ops[0]))
        if cls is None:
            raise ExpressionError(f"unsupported comparison in '{shorten(ast.unparse(node))}'")
        return cls(_arith(left), _arith(right), evaluate=False), DIMENSIONLESS

    def _BoolOp(self, node):
        values = [_boolean(self.build(v)[0]) for v in node.values]
        return (sympy.And if isinstance(node.op, ast.And) else sympy.Or)(*values), DIMENSIONLESS

    def _Call(self, node):
        if not isinstance(node.func, ast.Name):
            raise _refuse(node, "a call of something other than a function name")
        name = node.func.id
        _check_identifier(name)
        if name not in ALL_FUNCTIONS:
            raise ExpressionError(f"unknown function '{shorten(name)}' (valid: {', '.join(sorted(ALL_FUNCTIONS))})")
        if node.keywords:
            raise ExpressionError(f"'{shorten(ast.unparse(node))}': keyword arguments are not supported")
        args = [self.build(a) for a in node.args]
        if name == "int":
            if len(args) != 1:
                raise ExpressionError(f"'{shorten(ast.unparse(node))}': int takes one condition")
            (value, _), = args
            return sympy.Piecewise((sympy.Integer(1), _boolean(value)), (sympy.Integer(0), True)), DIMENSIONLESS
        if name == "clip":
            if len(args) != 3:
                raise ExpressionError(f"'{shorten(ast.unparse(node))}': clip takes (x, low, high)")
            (x, d), (lo, dl), (hi, dh) = args
            if not (_same(d, dl) and _same(d, dh)):
                raise ExpressionError(f"dimension mismatch in '{shorten(ast.unparse(node))}'")
            return sympy.Min(sympy.Max(_arith(x), _arith(lo)), _arith(hi)), d
        if len(args) != 1:
            raise ExpressionError(f"'{shorten(ast.unparse(node))}': {name} takes one argument")
        (value, dim), = args
        if name in _DIMENSIONLESS_FUNCTIONS:
            if dim is not None and not dim.is_dimensionless:
                raise ExpressionError(f"argument of {name} in '{shorten(ast.unparse(node))}' must be dimensionless, "
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
    """Expression text → (sympy expression, Dimension | None). Raises ExpressionError (one line).

    The text is parsed, never evaluated; see the module docstring for what it may contain.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, not {type(text).__name__}")
    if too_long(text):
        raise ExpressionError(f"expression '{shorten(text)}' is longer than {MAX_TEXT_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        col = f" near column {err.offset}" if err.offset else ""
        raise ExpressionError(f"syntax error{col} in '{shorten(text)}'") from None
    except (ValueError, MemoryError, RecursionError):  # a null byte; nesting too deep for Python's parser
        raise ExpressionError(f"cannot read expression '{shorten(text)}' (nested too deeply?)") from None
    try:
        return _Builder(scope).build(tree)
    except RecursionError:
        raise ExpressionError(f"expression '{shorten(text)}' is nested too deeply") from None


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
