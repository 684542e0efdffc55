"""Physical units: names to SI scale and dimension; quantity strings to SI floats.

Inside neurofit every quantity is an SI float. Users may write quantities as strings
("10 nS", "10*nS", "-65 mV", "1 uF/cm**2"); ``to_si`` turns them into floats and
``parse_quantity`` also returns their ``Dimension``.

Quantity and expression text is read by walking its Python AST (never evaluated). So that no text
can make the reader hang, both readers (here and ``expressions``) refuse text longer than
``MAX_TEXT_LENGTH`` characters, integer literals of more than ``MAX_LITERAL_DIGITS`` digits, and
powers whose exponent is a number of magnitude above ``MAX_EXPONENT``.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from .errors import NeurofitError

_BASE = ("m", "kg", "s", "A", "K", "mol", "cd")

MAX_TEXT_LENGTH = 10_000  # characters of one quantity or expression
MAX_LITERAL_DIGITS = 30  # digits of an integer literal
MAX_EXPONENT = 64  # largest |exponent| of a power with a constant exponent


class UnitError(NeurofitError):
    """A unit or quantity that cannot be understood, or dimensions that do not match."""


@dataclass(frozen=True)
class Dimension:
    """Exponents of the SI base units (m, kg, s, A, K, mol, cd)."""

    exponents: tuple = (0, 0, 0, 0, 0, 0, 0)

    def __mul__(self, other: "Dimension") -> "Dimension":
        return Dimension(tuple(a + b for a, b in zip(self.exponents, other.exponents)))

    def __truediv__(self, other: "Dimension") -> "Dimension":
        return Dimension(tuple(a - b for a, b in zip(self.exponents, other.exponents)))

    def __pow__(self, power: float) -> "Dimension":
        return Dimension(tuple(_clean(a * power) for a in self.exponents))

    @property
    def is_dimensionless(self) -> bool:
        return not any(self.exponents)

    def __str__(self) -> str:
        if self.is_dimensionless:
            return "1"
        for name in _DISPLAY_NAMES:  # volt, volt/second, siemens/metre**2 ...
            dim = UNITS[name][1]
            for suffix, other in (("", DIMENSIONLESS), ("/second", TIME), ("/metre**2", LENGTH ** 2)):
                if dim / other == self:
                    return name + suffix
        parts = []
        for base, exp in zip(_BASE, self.exponents):
            if exp == 1:
                parts.append(base)
            elif exp:
                parts.append(f"{base}^{_clean(exp)}")
        return " ".join(parts) or "1"


def _clean(x: float):
    return int(round(x)) if abs(x - round(x)) < 1e-12 else x


def _dim(m=0, kg=0, s=0, A=0, K=0, mol=0, cd=0) -> Dimension:
    return Dimension((m, kg, s, A, K, mol, cd))


DIMENSIONLESS = _dim()
LENGTH = _dim(m=1)
TIME = _dim(s=1)
CURRENT = _dim(A=1)
VOLTAGE = _dim(m=2, kg=1, s=-3, A=-1)
CONDUCTANCE = _dim(m=-2, kg=-1, s=3, A=2)
CAPACITANCE = _dim(m=-2, kg=-1, s=4, A=2)
RESISTANCE = _dim(m=2, kg=1, s=-3, A=-2)
FREQUENCY = _dim(s=-1)
MASS = _dim(kg=1)
CHARGE = _dim(s=1, A=1)
CONCENTRATION = _dim(m=-3, mol=1)

_BASE_UNITS = {
    # name: (scale, dimension, prefixable)
    "metre": (1.0, LENGTH), "meter": (1.0, LENGTH), "m": (1.0, LENGTH),
    "second": (1.0, TIME), "s": (1.0, TIME),
    "amp": (1.0, CURRENT), "ampere": (1.0, CURRENT), "A": (1.0, CURRENT),
    "volt": (1.0, VOLTAGE), "V": (1.0, VOLTAGE),
    "siemens": (1.0, CONDUCTANCE), "S": (1.0, CONDUCTANCE),
    "farad": (1.0, CAPACITANCE), "F": (1.0, CAPACITANCE),
    "ohm": (1.0, RESISTANCE), "Ohm": (1.0, RESISTANCE),
    "hertz": (1.0, FREQUENCY), "Hz": (1.0, FREQUENCY),
    "gram": (1e-3, MASS), "g": (1e-3, MASS),
    "coulomb": (1.0, CHARGE), "C": (1.0, CHARGE),
    "molar": (1e3, CONCENTRATION), "M": (1e3, CONCENTRATION),
    "mole": (1.0, _dim(mol=1)), "mol": (1.0, _dim(mol=1)),
    "kelvin": (1.0, _dim(K=1)), "K": (1.0, _dim(K=1)),
}
_PREFIXES = {"p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "c": 1e-2, "k": 1e3, "M": 1e6, "G": 1e9,
             "f": 1e-15}
_PREFIX_WORDS = {"pico": 1e-12, "nano": 1e-9, "micro": 1e-6, "milli": 1e-3, "centi": 1e-2,
                 "kilo": 1e3, "mega": 1e6, "giga": 1e9, "femto": 1e-15}


def _build_units() -> dict:
    units = {name: (scale, dim) for name, (scale, dim) in _BASE_UNITS.items()}
    for name, (scale, dim) in _BASE_UNITS.items():
        if len(name) <= 3:  # symbols: mV, nS, pF, uA, Mohm, kHz ...
            for p, f in _PREFIXES.items():
                units.setdefault(p + name, (f * scale, dim))
        else:  # words: millivolt, nanosiemens ... and Brian2's mvolt, nsiemens, ufarad, umetre
            for p, f in _PREFIX_WORDS.items():
                units.setdefault(p + name, (f * scale, dim))
            for p, f in _PREFIXES.items():
                units.setdefault(p + name, (f * scale, dim))
    for p, f in _PREFIXES.items():  # Mohm, kohm, Gohm, mohm
        units.setdefault(p + "ohm", (f, RESISTANCE))
    units["um"] = (1e-6, LENGTH)
    units["cm"] = (1e-2, LENGTH)
    units["mm"] = (1e-3, LENGTH)
    for base in ("metre", "meter", "m", "cm", "um", "mm", "cmetre", "umetre", "mmetre", "cmeter", "umeter",
                 "mmeter"):
        scale, dim = units[base]
        units[base + "2"] = (scale ** 2, dim ** 2)
        units[base + "3"] = (scale ** 3, dim ** 3)
    units["radian"] = (1.0, DIMENSIONLESS)
    units["1"] = (1.0, DIMENSIONLESS)
    return units


UNITS: dict = _build_units()
_DISPLAY_NAMES = ("volt", "amp", "second", "siemens", "farad", "ohm", "Hz", "metre", "coulomb")


def unit_value(name: str) -> tuple[float, Dimension]:
    """Scale (to SI) and dimension of a unit name; UnitError naming valid examples if unknown."""
    try:
        return UNITS[name]
    except KeyError:
        raise UnitError(f"unknown unit '{name}' (valid units include mV, ms, nS, uS, pF, nA, um, cm, Hz, "
                        f"volt, siemens, farad, amp, second, metre, ohm, Mohm, 1)") from None


def shorten(text: str, width: int = 80) -> str:
    """User text for a one-line message: whitespace runs (newlines too) become one space, long text is cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def too_long(text: str) -> bool:
    """True for text longer than ``MAX_TEXT_LENGTH`` (refused by the quantity and expression readers)."""
    return len(text) > MAX_TEXT_LENGTH


def literal_too_large(value) -> bool:
    """True for an integer literal of more than ``MAX_LITERAL_DIGITS`` digits."""
    return isinstance(value, int) and abs(value) >= 10 ** MAX_LITERAL_DIGITS


def exponent_too_large(exponent: float) -> bool:
    """True for a constant exponent of magnitude above ``MAX_EXPONENT`` (or not finite)."""
    return not abs(exponent) <= MAX_EXPONENT


def _eval(node, text: str) -> tuple[float, Dimension]:
    if isinstance(node, ast.Expression):
        return _eval(node.body, text)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        if literal_too_large(node.value):
            raise UnitError(f"number in quantity '{shorten(text)}' has more than {MAX_LITERAL_DIGITS} digits: "
                            f"write it as a float such as 1e40")
        return float(node.value), DIMENSIONLESS
    if isinstance(node, ast.Name):
        return unit_value(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value, dim = _eval(node.operand, text)
        return (-value if isinstance(node.op, ast.USub) else value), dim
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):  # the exponent first: 9**9**9 stops at the check, not in 9**387420489
            rv, rd = _eval(node.right, text)
            if not rd.is_dimensionless:
                raise UnitError(f"exponent in '{shorten(text)}' must be a plain number")
            if exponent_too_large(rv):
                raise UnitError(f"exponent {rv:g} in '{shorten(text)}' is too large (at most {MAX_EXPONENT} "
                                f"in magnitude)")
            lv, ld = _eval(node.left, text)
            try:
                value = lv ** rv
            except (OverflowError, ZeroDivisionError):
                value = math.nan
            if not isinstance(value, float) or not math.isfinite(value):
                raise UnitError(f"'{shorten(text)}': the power is not a finite real number")
            return value, ld ** rv
        lv, ld = _eval(node.left, text)
        rv, rd = _eval(node.right, text)
        if isinstance(node.op, ast.Mult):
            return lv * rv, ld * rd
        if isinstance(node.op, ast.Div):
            return lv / rv, ld / rd
        if isinstance(node.op, (ast.Add, ast.Sub)):
            if ld != rd:
                raise UnitError(f"cannot add {ld} and {rd} in '{shorten(text)}'")
            return (lv + rv if isinstance(node.op, ast.Add) else lv - rv), ld
    raise _unreadable(text)


def _unreadable(text: str) -> UnitError:
    return UnitError(f"cannot read quantity '{shorten(text)}': write a number and a unit, e.g. '10 nS' or '-65*mV'")


def parse_quantity(text: str) -> tuple[float, Dimension]:
    """``"10 nS"``, ``"10*nS"``, ``"1 uF/cm**2"``, ``"-65 mV"`` → (SI float, Dimension).

    text: a number and a unit expression (``^`` is read as ``**``); the text is read, never evaluated.
    Returns (value in SI units, its ``Dimension``). Raises UnitError for empty or unreadable text, an
    unknown unit, adding quantities of different dimensions, a too long text, literal or exponent
    (``MAX_TEXT_LENGTH``, ``MAX_LITERAL_DIGITS``, ``MAX_EXPONENT``), division by zero or a value
    that is not finite.
    """
    src = text.strip()
    if not src:
        raise UnitError("empty quantity: write a number and a unit, e.g. '10 nS'")
    if too_long(src):
        raise UnitError(f"quantity '{shorten(src)}' is longer than {MAX_TEXT_LENGTH} characters")
    src = src.replace("^", "**")
    # "10 nS" → "10 * nS": a number followed by a unit name
    tokens = src.split()
    if len(tokens) == 2 and not any(op in src for op in "*/"):
        src = f"{tokens[0]} * ({tokens[1]})"
    elif len(tokens) > 1:
        head, rest = tokens[0], " ".join(tokens[1:])
        try:
            float(head)
            if not rest.lstrip().startswith(("*", "/")):
                src = f"{head} * ({rest})"
        except ValueError:
            pass
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # ValueError: a null byte; the others: nesting
        raise _unreadable(text) from None
    try:
        value, dim = _eval(tree, text)
    except RecursionError:
        raise UnitError(f"quantity '{shorten(text)}' is nested too deeply") from None
    except ZeroDivisionError:
        raise UnitError(f"quantity '{shorten(text)}' divides by zero") from None
    if not math.isfinite(value):
        raise UnitError(f"quantity '{shorten(text)}' is not finite")
    return value, dim


def parse_unit(text: str) -> tuple[float, Dimension]:
    """A unit expression as written after ':' in equations ("volt", "siemens/meter**2", "1")."""
    return parse_quantity(f"1 * ({text.strip()})")


def to_si(value, expected: Dimension | None = None, name: str = "value") -> float:
    """A float (already SI) or a quantity string → SI float; checks the dimension when given.

    value: a number (taken as SI, not checked) or a quantity string such as "10 nS"; expected: the
    ``Dimension`` a quantity string must have (None: any); name: what the value is, for error
    messages (e.g. "dt"). Returns the value in SI units as a float. Raises UnitError when the
    string cannot be read (see ``parse_quantity``), has another dimension than ``expected``, or the
    value is neither a number nor a string.
    """
    if isinstance(value, str):
        number, dim = parse_quantity(value)
        if expected is not None and dim != expected and not (dim.is_dimensionless and expected.is_dimensionless):
            raise UnitError(f"{name} = '{shorten(value)}' has units of {dim}, expected {expected}")
        return number
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UnitError(f"{name} = {shorten(repr(value))} is not a number or a quantity string like '10 nS'") from None


# --- Brian2's unit names as SI floats ------------------------------------------------------------------
# A Brian2 script's ``from brian2 import mV, nS, ms`` becomes ``from neurofit.units import mV, nS, ms``:
# ``10*nS`` is then 1e-08, ``-65*mV`` is -0.065 and ``1*ms`` is 0.001 - the SI floats neurofit takes
# everywhere (dt, bounds, param_init, namespace, metric settings). Each constant is the scale of the
# unit of the same name in ``UNITS``, so ``10*nS == to_si("10 nS")``. They are plain floats: unlike
# Brian2's Quantity they carry no dimension, so ``10*nS + 1*mV`` is not refused (quantity strings are
# checked, see ``to_si``). Single-letter symbols (m, s, V, A, S, F, M ...) are left out, as in Brian2,
# so that ``from neurofit.units import *`` does not shadow a model's variable names such as ``m``.

def _scale(name: str) -> float:
    return UNITS[name][0]


# base and derived units
metre = meter = _scale("metre")
second = _scale("second")
amp = ampere = _scale("amp")
volt = _scale("volt")
siemens = _scale("siemens")
farad = _scale("farad")
ohm = _scale("ohm")
hertz = Hz = _scale("hertz")
coulomb = _scale("coulomb")
molar = _scale("molar")
mole = mol = _scale("mole")
gram = _scale("gram")
kilogram = kgram = _scale("kgram")
kelvin = _scale("kelvin")
radian = _scale("radian")
# voltage
kvolt, mvolt, uvolt, nvolt = _scale("kvolt"), _scale("mvolt"), _scale("uvolt"), _scale("nvolt")
kV, mV, uV, nV = kvolt, mvolt, uvolt, nvolt
# current
mamp, uamp, namp, pamp, famp = _scale("mamp"), _scale("uamp"), _scale("namp"), _scale("pamp"), _scale("famp")
mA, uA, nA, pA, fA = mamp, uamp, namp, pamp, famp
# conductance
msiemens, usiemens, nsiemens, psiemens = _scale("msiemens"), _scale("usiemens"), _scale("nsiemens"), _scale("psiemens")
mS, uS, nS, pS = msiemens, usiemens, nsiemens, psiemens
# capacitance
mfarad, ufarad, nfarad, pfarad, ffarad = (_scale("mfarad"), _scale("ufarad"), _scale("nfarad"), _scale("pfarad"),
                                          _scale("ffarad"))
mF, uF, nF, pF, fF = mfarad, ufarad, nfarad, pfarad, ffarad
# resistance
kohm, Mohm, Gohm = _scale("kohm"), _scale("Mohm"), _scale("Gohm")
# time and frequency
msecond, usecond, nsecond = _scale("msecond"), _scale("usecond"), _scale("nsecond")
ms, us, ns = msecond, usecond, nsecond
khertz, Mhertz = _scale("khertz"), _scale("Mhertz")
kHz, MHz = khertz, Mhertz
# length, area, volume
cmetre, mmetre, umetre, nmetre = _scale("cmetre"), _scale("mmetre"), _scale("umetre"), _scale("nmetre")
cmeter, mmeter, umeter, nmeter = cmetre, mmetre, umetre, nmetre
cm, mm, um = cmetre, mmetre, umetre
metre2 = meter2 = _scale("metre2")
metre3 = meter3 = _scale("metre3")
cmetre2 = cmeter2 = cm2 = _scale("cmetre2")
cmetre3 = cmeter3 = cm3 = _scale("cmetre3")
mmetre2 = mmeter2 = mm2 = _scale("mmetre2")
mmetre3 = mmeter3 = mm3 = _scale("mmetre3")
umetre2 = umeter2 = um2 = _scale("umetre2")
umetre3 = umeter3 = um3 = _scale("umetre3")
# concentration and amount
mmolar, umolar, nmolar = _scale("mmolar"), _scale("umolar"), _scale("nmolar")
mM, uM, nM = mmolar, umolar, nmolar
mmole, umole, nmole = _scale("mmole"), _scale("umole"), _scale("nmole")
# charge
mcoulomb, ucoulomb, ncoulomb, pcoulomb = _scale("mcoulomb"), _scale("ucoulomb"), _scale("ncoulomb"), _scale("pcoulomb")

#: The Brian2 unit names defined above (each a float: its SI scale, equal to ``UNITS[name][0]``).
BRIAN_UNIT_NAMES = (
    "metre", "meter", "second", "amp", "ampere", "volt", "siemens", "farad", "ohm", "hertz", "Hz", "coulomb",
    "molar", "mole", "mol", "gram", "kilogram", "kgram", "kelvin", "radian",
    "kvolt", "mvolt", "uvolt", "nvolt", "kV", "mV", "uV", "nV",
    "mamp", "uamp", "namp", "pamp", "famp", "mA", "uA", "nA", "pA", "fA",
    "msiemens", "usiemens", "nsiemens", "psiemens", "mS", "uS", "nS", "pS",
    "mfarad", "ufarad", "nfarad", "pfarad", "ffarad", "mF", "uF", "nF", "pF", "fF",
    "kohm", "Mohm", "Gohm",
    "msecond", "usecond", "nsecond", "ms", "us", "ns", "khertz", "Mhertz", "kHz", "MHz",
    "cmetre", "mmetre", "umetre", "nmetre", "cmeter", "mmeter", "umeter", "nmeter", "cm", "mm", "um",
    "metre2", "meter2", "metre3", "meter3", "cmetre2", "cmeter2", "cm2", "cmetre3", "cmeter3", "cm3",
    "mmetre2", "mmeter2", "mm2", "mmetre3", "mmeter3", "mm3", "umetre2", "umeter2", "um2", "umetre3", "umeter3", "um3",
    "mmolar", "umolar", "nmolar", "mM", "uM", "nM", "mmole", "umole", "nmole",
    "mcoulomb", "ucoulomb", "ncoulomb", "pcoulomb",
)
