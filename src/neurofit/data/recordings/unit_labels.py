"""Unit labels written by acquisition software ("mV", "pA", "µV", b"nA") → SI scale and dimension."""
from __future__ import annotations

from ...units import CURRENT, VOLTAGE, Dimension, UnitError, unit_value

_MICRO_SIGNS = ("\u00b5", "\u03bc")  # micro sign and Greek mu, both written for "micro"


def label_text(label) -> str:
    """A unit label as text: bytes are decoded (Latin-1, as Igor and ABF write them), whitespace stripped."""
    if isinstance(label, bytes):
        label = label.decode("latin-1")
    return str(label).strip()


def si_scale(label) -> tuple[float, Dimension] | None:
    """(factor to SI, dimension) of a unit label like "mV" or b"pA"; None when the label is unknown or empty.

    label: str or bytes as stored in the file. The factor multiplies the stored numbers to give SI
    (volt, ampere): "mV" → (1e-3, VOLTAGE).
    """
    text = label_text(label)
    for sign in _MICRO_SIGNS:
        text = text.replace(sign, "u")
    if not text:
        return None
    try:
        return unit_value(text)
    except UnitError:
        return None


def is_voltage(label) -> bool:
    """True when the unit label is a voltage (mV, V, uV ...)."""
    scale = si_scale(label)
    return scale is not None and scale[1] == VOLTAGE


def is_current(label) -> bool:
    """True when the unit label is a current (pA, nA, A ...)."""
    scale = si_scale(label)
    return scale is not None and scale[1] == CURRENT
