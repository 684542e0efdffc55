"""Parse Brian2-style equation text into declarations (no symbolic work here).

Syntax (as in Brian2 and brian2modelfitting's manual)::

    dv/dt = (gl*(El-v) + I)/Cm : volt (unless refractory)   # differential equation
    alpha_m = 0.32*(mV**-1)*(13*mV-v+VT)/
              (exp((13*mV-v+VT)/(4*mV))-1)/ms : Hz           # subexpression, continued
    g_na : siemens (constant)                                # parameter

A declaration ends on the line that holds its ``: unit``; lines before it continue the
expression. ``#`` starts a comment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import NeurofitError

_DIFF = re.compile(r"^d\s*([A-Za-z_]\w*)\s*/\s*dt\s*=(.*)$", re.S)
_SUBEXPR = re.compile(r"^([A-Za-z_]\w*)\s*=(.*)$", re.S)
_PARAM = re.compile(r"^([A-Za-z_]\w*)$")
KNOWN_FLAGS = {"constant", "unless refractory", "shared", "constant over dt"}


class EquationError(NeurofitError):
    """A model text that cannot be parsed or checked; the message names the line."""


@dataclass
class Declaration:
    kind: str  # "diff" | "subexpr" | "param"
    name: str
    expr: str | None
    unit: str
    flags: tuple = ()
    line: int = 0  # first line number (1-based) in the text
    source: str = ""  # the declaration as written (one line, continuations joined)

    def where(self, origin: str = "equations") -> str:
        return f"{origin} line {self.line}: '{self.source}'"


@dataclass
class Statement:
    """One assignment of reset code: ``v = -70*mV`` or ``w += b``."""

    target: str
    op: str  # "=", "+=", "-=", "*=", "/="
    expr: str
    line: int = 0
    source: str = ""


@dataclass
class ParsedEquations:
    declarations: list = field(default_factory=list)


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


def _split_unit(text: str, line: int, source: str, origin: str) -> tuple[str, str, tuple]:
    """'expr : unit (flags)' → (expr, unit, flags)."""
    if text.count(":") != 1:
        raise EquationError(f"{origin} line {line}: '{source}': expected exactly one ':' before the unit "
                            f"(e.g. 'dv/dt = -v/tau : volt')")
    lhs, unit = text.split(":")
    unit, flags_text = unit.strip(), ""
    start = unit.rfind("(")
    if unit.endswith(")") and start >= 0 and ")" not in unit[start + 1:-1]:  # a trailing '(flags)'
        unit, flags_text = unit[:start].strip(), unit[start + 1:-1]
    flags = tuple(f.strip() for f in flags_text.split(",")) if flags_text else ()
    for flag in flags:
        if flag not in KNOWN_FLAGS:
            raise EquationError(f"{origin} line {line}: '{source}': unknown flag '({flag})' "
                                f"(valid: {', '.join(sorted(KNOWN_FLAGS))})")
    if not unit:
        raise EquationError(f"{origin} line {line}: '{source}': missing unit after ':' (e.g. volt, siemens, 1)")
    return lhs.strip(), unit, flags


def parse_equations(text: str, origin: str = "equations") -> ParsedEquations:
    """Split model text into declarations; syntax errors name the line."""
    parsed = ParsedEquations()
    buffer: list[str] = []
    first_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        if not buffer:
            first_line = lineno
        buffer.append(line.strip())
        if ":" not in line:
            continue  # the expression continues on the next line
        source = " ".join(buffer)
        buffer = []
        lhs, unit, flags = _split_unit(source, first_line, source, origin)
        if m := _DIFF.match(lhs):
            decl = Declaration("diff", m.group(1), m.group(2).strip(), unit, flags, first_line, source)
        elif m := _SUBEXPR.match(lhs):
            decl = Declaration("subexpr", m.group(1), m.group(2).strip(), unit, flags, first_line, source)
        elif m := _PARAM.match(lhs):
            decl = Declaration("param", m.group(1), None, unit, flags, first_line, source)
        else:
            raise EquationError(f"{origin} line {first_line}: '{source}': not an equation; expected "
                                f"'dx/dt = expr : unit', 'name = expr : unit' or 'name : unit (constant)'")
        if decl.kind != "param" and not decl.expr:
            raise EquationError(f"{decl.where(origin)}: empty right-hand side")
        parsed.declarations.append(decl)
    if buffer:
        raise EquationError(f"{origin} line {first_line}: '{' '.join(buffer)}': incomplete equation, "
                            f"missing ': unit' at its end")
    seen = {}
    for decl in parsed.declarations:
        if decl.name in seen:
            raise EquationError(f"{decl.where(origin)}: '{decl.name}' is already defined on line {seen[decl.name]}")
        seen[decl.name] = decl.line
    return parsed


_STATEMENT = re.compile(r"^([A-Za-z_]\w*)\s*(\+=|-=|\*=|/=|=)(.*)$")


def parse_statements(code: str, origin: str = "reset") -> list[Statement]:
    """Reset code: one assignment per line (or separated by ';')."""
    statements = []
    for lineno, raw in enumerate(code.splitlines(), start=1):
        for part in _strip_comment(raw).split(";"):
            part = part.strip()
            if not part:
                continue
            m = _STATEMENT.match(part)
            if not m or not m.group(3).strip():
                raise EquationError(f"{origin} line {lineno}: '{part}': expected an assignment such as "
                                    f"'v = -70*mV' or 'w += b'")
            statements.append(Statement(m.group(1), m.group(2), m.group(3).strip(), lineno, part))
    return statements
