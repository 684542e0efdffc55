"""Choosing sweeps of a recording by index, by kind or by step amplitude.

A selector is what a config's ``data.recording.sweeps`` (or a sample sheet's ``sweeps``) holds:

- ``None``: every sweep that passes quality control;
- a list of sweep indices (``[0, 3, 5]``) or a text of indices and ranges (``"2-9"``, ``"0,3,5-7"``):
  exactly those sweeps (``Sweep.index`` values), whether or not they pass quality control;
- ``"subthreshold"`` / ``"suprathreshold"``: the sweeps passing quality control with no spike / at least
  one spike (``neurofit.data.spikes.detect_spikes`` at ``spike_threshold``);
- a mapping with any of ``kind`` (``subthreshold`` / ``suprathreshold``), ``amplitude: [low, high]``
  (the main step's amplitude, A or quantity strings, both ends included) and ``qc`` (true: only sweeps
  passing quality control, the default; false: all), all of which a sweep must meet.
"""
from __future__ import annotations

import re

import numpy as np

from ...units import CURRENT, UnitError, to_si
from ..spikes import detect_spikes
from .errors import RecordingError

KINDS = ("subthreshold", "suprathreshold")
#: Upward crossings of this potential are spikes for the subthreshold / suprathreshold selectors (V).
SPIKE_THRESHOLD = 0.0
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_indices(text: str, where: str = "sweeps") -> list[int]:
    """``"2-9"`` or ``"0,3,5-7"`` -> [2, ..., 9] / [0, 3, 5, 6, 7] (ranges include both ends).

    Raises RecordingError naming ``where`` for anything else.
    """
    indices: list[int] = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise RecordingError(f"{where} = {text!r}: expected sweep indices and ranges such as '2-9' or '0,3,5-7', "
                                 f"or one of {', '.join(KINDS)}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise RecordingError(f"{where} = {text!r}: range {first}-{last} runs backwards")
        indices.extend(range(first, last + 1))
    return indices


def spike_count(sweep, threshold: float = SPIKE_THRESHOLD) -> int:
    """Number of spikes in a sweep's voltage (upward crossings of ``threshold`` volts, one detector for all)."""
    return int(detect_spikes(np.asarray(sweep.voltage), sweep.dt, threshold=threshold)[0].size)


def select_sweeps(recording, selector, where: str = "sweeps") -> list[int]:
    """The ``Sweep.index`` values of ``recording`` that ``selector`` (see the module docstring) names.

    recording: a ``Recording``; where: the config key named in messages.
    Returns the indices in file order. Raises RecordingError (one line) for an unknown selector, an
    index the recording does not have, or a selection that leaves no sweep.
    """
    available = [sweep.index for sweep in recording.sweeps]
    if selector is None:
        chosen = [s.index for s in recording.sweeps if s.passed_qc]
    elif isinstance(selector, str) and selector.strip() in KINDS:
        chosen = _by_rule(recording, {"kind": selector.strip()}, where)
    elif isinstance(selector, str):
        chosen = parse_indices(selector, where)
    elif isinstance(selector, (list, tuple)) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                                     for i in selector):
        chosen = [int(i) for i in selector]
    elif isinstance(selector, dict):
        chosen = _by_rule(recording, selector, where)
    else:
        raise RecordingError(f"{where} = {selector!r}: expected a list of sweep indices, a text such as '2-9', "
                             f"{' or '.join(KINDS)}, or a mapping with kind / amplitude / qc")
    unknown = [i for i in chosen if i not in available]
    if unknown:
        raise RecordingError(f"{where}: {recording.path} has no sweep {unknown[0]} (sweeps: {_span(available)})")
    if not chosen:
        failed = sum(1 for s in recording.sweeps if not s.passed_qc)
        raise RecordingError(f"{where} = {selector!r}: no sweep of {recording.path} is selected "
                             f"({len(available)} sweeps, {failed} failing quality control)")
    return chosen


def _by_rule(recording, rule: dict, where: str) -> list[int]:
    unknown = sorted(set(rule) - {"kind", "amplitude", "qc"})
    if unknown:
        raise RecordingError(f"{where}.{unknown[0]}: not a selector key (valid: kind, amplitude, qc)")
    kind = rule.get("kind")
    if kind is not None and kind not in KINDS:
        raise RecordingError(f"{where}.kind = {kind!r}: expected {' or '.join(KINDS)}")
    low, high = _amplitude_range(rule.get("amplitude"), f"{where}.amplitude")
    only_passing = rule.get("qc", True)
    if not isinstance(only_passing, bool):
        raise RecordingError(f"{where}.qc = {only_passing!r}: expected true or false")
    chosen = []
    for sweep in recording.sweeps:
        if only_passing and not sweep.passed_qc:
            continue
        if low is not None:
            if sweep.stimulus is None or not low <= sweep.stimulus.amplitude <= high:
                continue
        if kind is not None and (spike_count(sweep) > 0) != (kind == "suprathreshold"):
            continue
        chosen.append(sweep.index)
    return chosen


def _amplitude_range(spec, where: str):
    if spec is None:
        return None, None
    if not isinstance(spec, (list, tuple)) or len(spec) != 2:
        raise RecordingError(f"{where} = {spec!r}: expected [low, high], e.g. ['-100 pA', '0 pA']")
    try:
        low, high = (to_si(v, CURRENT, name=where) for v in spec)
    except UnitError as err:
        raise RecordingError(" ".join(str(err).split())) from None
    if low > high:
        raise RecordingError(f"{where} = {list(spec)}: low is above high")
    return low, high


def _span(indices: list) -> str:
    return f"{indices[0]}-{indices[-1]}" if indices == list(range(indices[0], indices[-1] + 1)) else \
        ", ".join(map(str, indices))
