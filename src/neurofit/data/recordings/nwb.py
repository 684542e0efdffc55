"""Neurodata Without Borders 2 files (intracellular electrophysiology) through pynwb.

Responses are the ``CurrentClampSeries`` of ``nwb.acquisition`` (an ``IZeroClampSeries`` injects no
current); stimuli are the ``CurrentClampStimulusSeries`` of ``nwb.stimulus``. Each response is paired
with its stimulus by the first rule that finds one:

1. the icephys tables (``nwb.intracellular_recordings``, filled by ``add_intracellular_recording``);
   a row may point at a slice of each series, and that slice is what is read;
2. the same ``sweep_number`` (on the same electrode when several stimuli share it);
3. names: ``ic__X`` ↔ ``ics__X``, ``ic_X`` ↔ ``ics_X``, ``…Series`` ↔ ``…StimulusSeries``,
   ``…_AD0`` ↔ ``…_DA0`` (MIES), or the same name.

Values in SI are data × conversion + offset (files older than NWB 2.4 have no offset: 0).
Sweeps come in the order of the responses' ``sweep_number`` when every response has one, else in
the order of their names (numbers inside names compared as numbers: ``ic_9`` before ``ic_10``).
The sweep number is the series' ``sweep_number`` when every sweep has a distinct one, else the
position in that order.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from .errors import RecordingError, library_failure
from .qc import QCSettings
from .sweep import Sweep, paired_traces

_NAME_RULES = ((r"^ic__", "ics__"), (r"^ic_", "ics_"), (r"Series$", "StimulusSeries"), (r"_AD(\d+)$", r"_DA\1"))


def _si_values(series, start: int = 0, count: int | None = None) -> np.ndarray:
    """Samples [start, start + count) of a TimeSeries in SI: data × conversion + offset."""
    stop = None if count is None or count < 0 else start + count
    data = np.asarray(series.data[start:stop], dtype=np.float64)
    offset = getattr(series, "offset", None) or 0.0
    return data * float(series.conversion) + float(offset)


def _sampling_step(series, path) -> float:
    """1 / rate, or the step of regular timestamps; RecordingError when neither gives one."""
    if series.rate is not None:
        return 1.0 / float(series.rate)
    stamps = np.asarray(series.timestamps[:], dtype=float) if series.timestamps is not None else np.empty(0)
    steps = np.diff(stamps)
    if steps.size and np.allclose(steps, steps[0], rtol=1e-6, atol=0) and steps[0] > 0:
        return float(steps[0])
    raise RecordingError(f"{path}: series '{series.name}' has neither a rate nor regular timestamps; "
                         f"give dt= with its sampling step")


def _table_pairs(nwb) -> dict:
    """Response name → list of (response start, count, stimulus series, stimulus start, count) from the tables."""
    table = nwb.intracellular_recordings
    pairs: dict = {}
    if table is None or len(table) == 0:
        return pairs
    responses = table.category_tables["responses"]["response"]
    stimuli = table.category_tables["stimuli"]["stimulus"]
    for row in range(len(table)):
        response, stimulus = responses[row], stimuli[row]
        if not response.isvalid() or not stimulus.isvalid():
            continue
        pairs.setdefault(response.timeseries.name, []).append(
            (int(response.idx_start), int(response.count), stimulus.timeseries,
             int(stimulus.idx_start), int(stimulus.count)))
    return pairs


def _stimulus_by_number(response, stimuli: list):
    if response.sweep_number is None:
        return None
    same = [s for s in stimuli if s.sweep_number is not None and int(s.sweep_number) == int(response.sweep_number)]
    on_electrode = [s for s in same if s.electrode is response.electrode or
                    (s.electrode is not None and response.electrode is not None
                     and s.electrode.name == response.electrode.name)]
    chosen = on_electrode or same
    return chosen[0] if len(chosen) == 1 else None


def _stimulus_by_name(response, stimuli: list):
    by_name = {s.name: s for s in stimuli}
    for pattern, replacement in _NAME_RULES:
        candidate = re.sub(pattern, replacement, response.name)
        if candidate != response.name and candidate in by_name:
            return by_name[candidate]
    return by_name.get(response.name)


def _natural_key(name: str) -> list:
    """Sort key of a name with its digit runs compared as numbers ("ic_9" < "ic_10"), ignoring case."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name.lower())]


def _in_order(responses: list) -> list:
    """Responses by sweep_number when all have one, else by name."""
    by_name = sorted(responses, key=lambda series: _natural_key(series.name))
    if all(series.sweep_number is not None for series in by_name):
        return sorted(by_name, key=lambda series: int(series.sweep_number))
    return by_name


def _pair(path, nwb, responses: list, stimuli: list) -> list:
    """(response, start, count, stimulus or None, start, count) for every response, in file order."""
    from pynwb.icephys import IZeroClampSeries

    tables = _table_pairs(nwb)
    paired = []
    for response in responses:
        if response.name in tables:
            paired += [(response, *entry) for entry in tables[response.name]]
            continue
        if isinstance(response, IZeroClampSeries):
            paired.append((response, 0, -1, None, 0, -1))
            continue
        stimulus = _stimulus_by_number(response, stimuli) or _stimulus_by_name(response, stimuli)
        if stimulus is None:
            raise RecordingError(f"NWB file {path}: response '{response.name}' has no stimulus series (looked in "
                                 f"the icephys tables, sweep_number and names; stimuli: "
                                 f"{', '.join(repr(s.name) for s in stimuli) or 'none'})")
        paired.append((response, 0, -1, stimulus, 0, -1))
    return paired


def _sweeps(path, nwb, channel, dt, qc) -> list:
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    responses = [s for s in nwb.acquisition.values() if isinstance(s, CurrentClampSeries)]
    if channel is not None:
        responses = [s for s in responses if s.electrode is not None and s.electrode.name == channel]
        if not responses:
            electrodes = sorted({s.electrode.name for s in nwb.acquisition.values()
                                 if isinstance(s, CurrentClampSeries) and s.electrode is not None})
            raise RecordingError(f"{path}: no current-clamp response on electrode {channel!r} "
                                 f"(electrodes: {', '.join(electrodes) or 'none'})")
    if not responses:
        found = ", ".join(f"{type(s).__name__} '{name}'" for name, s in nwb.acquisition.items()) or "nothing"
        raise RecordingError(f"{path}: no CurrentClampSeries in acquisition (found {found}); neurofit reads "
                             f"current-clamp recordings")
    stimuli = [s for s in nwb.stimulus.values() if isinstance(s, CurrentClampStimulusSeries)]
    paired = _pair(path, nwb, _in_order(responses), stimuli)
    numbers = [r.sweep_number for r, *_ in paired]
    use_numbers = all(n is not None for n in numbers) and len(set(int(n) for n in numbers)) == len(numbers)
    sweeps = []
    for position, (response, r_start, r_count, stimulus, s_start, s_count) in enumerate(paired):
        voltage = _si_values(response, r_start, r_count)
        response_dt = _sampling_step(response, path)
        if stimulus is None:
            current = np.zeros_like(voltage)
        else:
            current = _si_values(stimulus, s_start, s_count)
            voltage, current = paired_traces(voltage, current, response_dt, _sampling_step(stimulus, path), path,
                                             (f"response '{response.name}'", f"stimulus '{stimulus.name}'"), 5)
        if dt is not None and abs(dt - response_dt) > 1e-9 * response_dt:
            warnings.warn(f"{path}: dt = {dt:g} s replaces the sampling step {response_dt:g} s of "
                          f"'{response.name}'", stacklevel=4)
        description = response.stimulus_description if stimulus is None else stimulus.stimulus_description
        if description in (None, "", "N/A"):
            description = response.stimulus_description
        protocol = None if description in (None, "", "N/A") else str(description)
        index = int(response.sweep_number) if use_numbers else position
        sweeps.append(Sweep(index, response_dt if dt is None else dt, voltage, current, protocol=protocol,
                            source=f"{path}:{response.name}", qc_settings=qc))
    return sweeps


def read_nwb(path, *, channel=None, dt=None, qc: QCSettings | None = None) -> list:
    """Every current-clamp sweep of one NWB 2 file as ``Sweep`` objects (pairing rules: module docstring).

    path: the .nwb file; channel: name of the electrode to read (default every electrode);
    dt: sampling step (s) replacing the series' rate (a warning says when they differ);
    qc: quality-control thresholds.
    Raises RecordingError (one line) for a file pynwb cannot read, no current-clamp response, or a
    response without a stimulus.
    """
    from pynwb import NWBHDF5IO

    try:
        with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
            return _sweeps(path, io.read(), channel, dt, qc)
    except RecordingError:
        raise
    except Exception as err:  # h5py / hdmf / pynwb raise OSError, KeyError, ValueError ... on bad files
        raise library_failure(path, "an NWB 2 file", err) from None
