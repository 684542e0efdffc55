"""Any other electrophysiology format neo reads (Spike2, WinWCP, Axograph, Elphy, ...), one sweep per segment.

Each segment's analog signals are split into channels; the membrane potential is the channel named or
numbered by ``channel=`` (counted over the segment's channels in order) or, by default, the first in
volts; the current is the first channel in amperes. Values are rescaled to V and A with the signals'
own units (the ``quantities`` package).
Pickle files are refused: unpickling runs code from the file.
"""
from __future__ import annotations

import warnings

import numpy as np

from .errors import RecordingError, library_failure
from .qc import QCSettings
from .sweep import Sweep, paired_traces

UNSAFE_IOS = ("PickleIO",)


def neo_handles(suffix: str) -> bool:
    """True when one of neo's readers (other than the unsafe ones) claims the extension ``suffix`` (".smr")."""
    try:
        import neo.io
    except ImportError:
        return False
    extension = suffix.lstrip(".").lower()
    return any(extension in [e.lower() for e in io.extensions]
               for io in neo.io.iolist if io.__name__ not in UNSAFE_IOS)


def _channels(segment) -> list:
    """(name, "V" / "A" / None, samples in that SI unit, sampling step s, units as stored) per channel."""
    channels = []
    for signal in segment.analogsignals:
        step = float(signal.sampling_period.rescale("s").magnitude)
        names = signal.array_annotations.get("channel_names", [signal.name] * signal.shape[1])
        for column in range(signal.shape[1]):
            for symbol in ("V", "A"):
                try:
                    values = np.asarray(signal[:, column].rescale(symbol).magnitude, dtype=np.float64).ravel()
                    break
                except ValueError:
                    continue
            else:
                symbol, values = None, np.asarray(signal[:, column].magnitude, dtype=np.float64).ravel()
            channels.append((str(names[column]), symbol, values, step, str(signal.units.dimensionality)))
    return channels


def _describe(channels: list) -> str:
    return ", ".join(f"{i} '{name}' ({units})" for i, (name, _, _, _, units) in enumerate(channels)) or "none"


def _pick_voltage(path, where: str, channels: list, channel) -> int:
    if channel is None:
        found = next((i for i, entry in enumerate(channels) if entry[1] == "V"), None)
        if found is None:
            raise RecordingError(f"{path}: {where} has no signal in volts (signals: {_describe(channels)}); give "
                                 f"channel= to choose the membrane potential")
        return found
    if isinstance(channel, str):
        found = next((i for i, entry in enumerate(channels) if entry[0] == channel), None)
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and 0 <= channel < len(channels):
        found = int(channel)
    else:
        found = None
    if found is None:
        raise RecordingError(f"{path}: {where} has no channel {channel!r} (signals: {_describe(channels)})")
    if channels[found][1] != "V":
        raise RecordingError(f"{path}: channel {found} '{channels[found][0]}' is in {channels[found][4]}, not a "
                             f"voltage (signals: {_describe(channels)})")
    return found


def read_neo(path, *, channel=None, dt=None, qc: QCSettings | None = None) -> list:
    """Every segment of a file neo reads as a ``Sweep`` (index = position over blocks and segments).

    path: the file; channel: membrane-potential channel (name, or index over a segment's channels;
    default the first in volts); dt: sampling step (s) replacing the signals' (a warning says when they
    differ); qc: quality-control thresholds.
    Raises RecordingError (one line) for a file neo cannot read (or would unpickle), a segment without
    a voltage or a current signal, or a voltage and a current sampled differently.
    """
    try:
        import neo.io

        reader = neo.io.get_io(str(path))
        if type(reader).__name__ in UNSAFE_IOS:
            raise RecordingError(f"{path}: pickle files are not read (unpickling runs code from the file); "
                                 f"export the recording to NWB, ABF or .npz")
        blocks = reader.read(lazy=False)
        segments = [segment for block in blocks for segment in block.segments]
        per_segment = [_channels(segment) for segment in segments]
    except RecordingError:
        raise
    except Exception as err:  # every neo IO raises its own exceptions on bad files
        raise library_failure(path, "a file neo reads", err) from None
    if not segments:
        raise RecordingError(f"{path}: neo found no segment (no sweep) in the file")
    sweeps = []
    for position, channels in enumerate(per_segment):
        where = f"segment {position}"
        voltage_index = _pick_voltage(path, where, channels, channel)
        current_index = next((i for i, entry in enumerate(channels) if entry[1] == "A"), None)
        if current_index is None:
            raise RecordingError(f"{path}: {where} has no signal in amperes (signals: {_describe(channels)}); "
                                 f"neurofit needs the injected current")
        _, _, voltage, voltage_step, _ = channels[voltage_index]
        _, _, current, current_step, _ = channels[current_index]
        voltage, current = paired_traces(voltage, current, voltage_step, current_step, f"{path}: {where}")
        if dt is not None and abs(dt - voltage_step) > 1e-9 * voltage_step:
            warnings.warn(f"{path}: dt = {dt:g} s replaces the sampling step {voltage_step:g} s", stacklevel=3)
        sweeps.append(Sweep(position, voltage_step if dt is None else dt, voltage, current,
                            source=str(path), qc_settings=qc))
    return sweeps
