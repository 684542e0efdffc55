"""Igor Pro binary waves (.ibw) through igor2: one channel, one sweep per file.

The membrane potential and the current come from two lists of files paired in order
(``read_recording(voltage_files, current=current_files)``). Units come from the wave's data units
(b"mV", b"pA"); a wave without units is assumed to be in mV (voltage) or pA (current), with a warning.
The sampling step is, in order: ``dt=``; the wave's x scaling (``sfA[0]`` in version 5 waves,
``hsA`` in versions 1-3) when its x units are a time, or when they are empty and the step is neither
Igor's unscaled default of 1 nor implausibly long (``MAX_UNITLESS_DT``, a step in ms written without
units); the ``SI:<µs>`` entry of the wave note that acquisition software writes; else an error
asking for ``dt=``.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from ...units import TIME
from .errors import RecordingError, library_failure
from .qc import QCSettings
from .sweep import Sweep
from .unit_labels import is_current, is_voltage, label_text, si_scale

MAX_UNITLESS_DT = 0.01  # s: an x step this long or longer with no units is taken to be in other units
_NOTE_INTERVAL = re.compile(rb"(?:^|[;\r\n])\s*SI\s*[:=]\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")


def _joined(characters) -> bytes:
    """Igor's fixed-size char arrays (numpy arrays of single bytes) or bytes → bytes."""
    if isinstance(characters, bytes):
        return characters.split(b"\0")[0]
    return b"".join(bytes(c) for c in np.asarray(characters).ravel()).split(b"\0")[0]


def _load(path) -> tuple[np.ndarray, bytes, float | None, bytes]:
    """(data, data units, x step in s or None, note) of one wave file."""
    from igor2 import binarywave

    try:
        loaded = binarywave.load(str(path))
        wave, version = loaded["wave"], loaded["version"]
        header = wave["wave_header"]
        data = np.asarray(wave["wData"])
        units = bytes(wave.get("data_units") or b"") or _joined(header["dataUnits"])
        if version >= 5:
            step, x_units = float(header["sfA"][0]), _joined(header["dimUnits"][0])
        else:
            step, x_units = float(header["hsA"]), _joined(header["xUnits"])
        note = bytes(wave.get("note") or b"")
    except Exception as err:  # igor2 raises struct.error, ValueError, KeyError ... on bad files
        raise library_failure(path, "an Igor binary wave (.ibw)", err) from None
    if data.ndim != 1:
        raise RecordingError(f"{path}: holds a {data.ndim}-D wave {data.shape}; neurofit reads one sweep "
                             f"(a 1-D wave) per .ibw file")
    return data, units, _x_step(step, x_units, note), note


def _x_step(step: float, x_units: bytes, note: bytes) -> float | None:
    """Sampling step (s) from the x scaling or the note, None when neither gives one."""
    scale = si_scale(x_units)
    if scale is not None and scale[1] == TIME and step > 0:
        return step * scale[0]
    if not label_text(x_units) and step != 1.0 and 0 < step < MAX_UNITLESS_DT:
        return step
    found = _NOTE_INTERVAL.search(note)
    if found and float(found.group(1)) > 0:
        return float(found.group(1)) * 1e-6
    return None


def _trace(path, expected: str) -> tuple[np.ndarray, float | None]:
    """(SI samples, x step) of a wave that must hold ``expected`` ("voltage" or "current")."""
    data, units, step, _ = _load(path)
    is_expected, assumed = (is_voltage, "mV") if expected == "voltage" else (is_current, "pA")
    if not label_text(units):
        warnings.warn(f"{path}: the wave has no units; assumed {assumed} for the {expected}", stacklevel=4)
        units = assumed.encode()
    if not is_expected(units):
        if expected == "current" and is_voltage(units):
            hint = "a voltage given as current=; give the voltage waves as the first argument"
        elif expected == "voltage" and is_current(units):
            hint = "a current given as a voltage; give the current waves with current="
        else:
            hint = f"not a {expected}"
        raise RecordingError(f"{path}: wave in {label_text(units)}, {hint}")
    return data.astype(np.float64) * si_scale(units)[0], step


def read_igor(voltage_paths: list, current_paths: list | None, *, dt=None, qc: QCSettings | None = None) -> list:
    """One ``Sweep`` per pair of .ibw files (voltage file k with current file k; index k).

    voltage_paths / current_paths: lists of .ibw files of equal length, in pairing order;
    dt: sampling step (s) replacing the waves' (a warning says when they differ); qc: quality-control
    thresholds. Raises RecordingError (one line) for a missing current list, lists of different
    lengths, a file that is not a wave, units of the wrong kind, a pair sampled differently, or no
    sampling step anywhere without dt=.
    """
    if not current_paths:
        raise RecordingError(f"{voltage_paths[0]}: Igor waves hold one channel each; give the current waves with "
                             f"current= (e.g. read_recording('cell_Ch3_*.ibw', current='cell_Ch0_*.ibw'))")
    if len(current_paths) != len(voltage_paths):
        raise RecordingError(f"{voltage_paths[0]}: {len(voltage_paths)} voltage files but {len(current_paths)} "
                             f"current files; give one current wave per voltage wave")
    sweeps = []
    for position, (voltage_path, current_path) in enumerate(zip(voltage_paths, current_paths)):
        voltage, voltage_step = _trace(voltage_path, "voltage")
        current, current_step = _trace(current_path, "current")
        if voltage_step is not None and current_step is not None \
                and abs(voltage_step - current_step) > 1e-9 * voltage_step:
            raise RecordingError(f"{voltage_path}: sampled every {voltage_step:g} s but its current {current_path} "
                                 f"every {current_step:g} s; pair waves recorded together")
        file_step = voltage_step if voltage_step is not None else current_step
        if dt is None and file_step is None:
            raise RecordingError(f"{voltage_path}: the wave has no x scaling and its note no SI: sample interval; "
                                 f"give dt= (e.g. dt='0.25 ms')")
        if dt is not None and file_step is not None and abs(dt - file_step) > 1e-9 * file_step:
            warnings.warn(f"{voltage_path}: dt = {dt:g} s replaces the wave's sampling step {file_step:g} s",
                          stacklevel=3)
        sweeps.append(Sweep(position, file_step if dt is None else dt, voltage, current, protocol=None,
                            source=f"{voltage_path} + {current_path}", qc_settings=qc))
    return sweeps
