"""Axon Binary Format files (ABF 1 and 2) through pyabf.

The membrane potential is a recorded (ADC) channel: ``channel=`` (index or name) or, by default, the
first channel whose units are a voltage. The current is the command waveform pyabf rebuilds from the
protocol's epoch table (``sweepC``, holding level included) of the first output (DAC) in current
units, starting with the output of the same number as the voltage channel. A recorded channel in
current units is used instead when no command is available (no epoch table: ``sweepC`` is NaN) or when
the command never changes in any sweep (the stimulus then came from elsewhere).
"""
from __future__ import annotations

import warnings

import numpy as np

from .errors import RecordingError, library_failure
from .qc import QCSettings
from .sweep import Sweep
from .unit_labels import is_current, is_voltage, si_scale


def _channel_list(abf) -> str:
    return ", ".join(f"{i} '{name}' ({units or 'no units'})"
                     for i, (name, units) in enumerate(zip(abf.adcNames, abf.adcUnits)))


def _voltage_channel(abf, path, channel) -> int:
    """Index of the recorded channel holding the membrane potential."""
    if channel is None:
        for index, units in enumerate(abf.adcUnits):
            if is_voltage(units):
                return index
        raise RecordingError(f"{path}: no recorded channel is in volts (channels: {_channel_list(abf)}); "
                             f"give channel= to choose the membrane potential")
    if isinstance(channel, str):
        names = list(abf.adcNames)
        matches = [i for i, name in enumerate(names) if name == channel] or \
                  [i for i, name in enumerate(names) if name.strip().lower() == channel.strip().lower()]
        if not matches:
            raise RecordingError(f"{path}: no channel named {channel!r} (channels: {_channel_list(abf)})")
        index = matches[0]
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and 0 <= channel < abf.channelCount:
        index = int(channel)
    else:
        raise RecordingError(f"{path}: channel = {channel!r} is not a channel index 0-{abf.channelCount - 1} or a "
                             f"name (channels: {_channel_list(abf)})")
    if not is_voltage(abf.adcUnits[index]):
        raise RecordingError(f"{path}: channel {index} '{abf.adcNames[index]}' is in "
                             f"{abf.adcUnits[index] or 'no units'}, not a voltage; choose the membrane potential "
                             f"among the channels: {_channel_list(abf)}")
    return index


def _command_output(abf, voltage_channel: int) -> int | None:
    """Output (DAC) whose command waveform is the injected current, None when there is none."""
    outputs = [voltage_channel] + [c for c in abf.channelList if c != voltage_channel]
    for output in outputs:
        if output < len(abf.dacUnits) and is_current(abf.dacUnits[output]):
            abf.setSweep(0, channel=output)
            if np.isfinite(abf.sweepC).all():
                return output
    return None


def _recorded_current_channel(abf, voltage_channel: int) -> int | None:
    return next((i for i, units in enumerate(abf.adcUnits) if i != voltage_channel and is_current(units)), None)


def _command_changes(abf, output: int) -> bool:
    """True when the command of ``output`` is not constant in at least one sweep."""
    for number in abf.sweepList:
        abf.setSweep(number, channel=output)
        if np.ptp(abf.sweepC) > 0:
            return True
    return False


def _current_source(abf, path, voltage_channel: int) -> tuple[str, int]:
    """("command", output) or ("recorded", channel): where the injected current comes from."""
    output = _command_output(abf, voltage_channel)
    recorded = _recorded_current_channel(abf, voltage_channel)
    if output is not None and (recorded is None or _command_changes(abf, output)):
        return "command", output
    if recorded is not None:
        return "recorded", recorded
    outputs = ", ".join(f"{i} ({units or 'no units'})" for i, units in enumerate(abf.dacUnits)) or "none"
    raise RecordingError(f"{path}: no current: no command waveform in current units (outputs: {outputs}) and no "
                         f"recorded channel in current units (channels: {_channel_list(abf)})")


def _current(abf, number: int, kind: str, index: int) -> np.ndarray:
    """The current (A) of sweep ``number``: the command of output ``index`` or the recorded channel ``index``."""
    abf.setSweep(number, channel=index)
    if kind == "command":
        return np.asarray(abf.sweepC, dtype=np.float64) * si_scale(abf.dacUnits[index])[0]
    return abf.sweepY.astype(np.float64) * si_scale(abf.adcUnits[index])[0]


def read_abf(path, *, channel=None, dt=None, qc: QCSettings | None = None) -> list:
    """Every sweep of one ABF file as ``Sweep`` objects (index = the file's sweep number).

    path: the .abf file; channel: recorded channel of the membrane potential (index from 0 or name;
    default the first channel in volts); dt: sampling step (s) replacing the file's 1 / dataRate
    (a warning says when they differ); qc: quality-control thresholds.
    Raises RecordingError (one line) for a file pyabf cannot read, a voltage channel not in volts, or
    no current (neither a command waveform nor a recorded channel in current units).
    """
    import pyabf

    try:
        abf = pyabf.ABF(str(path))
        voltage_channel = _voltage_channel(abf, path, channel)
        current_source = _current_source(abf, path, voltage_channel)
        voltage_scale = si_scale(abf.adcUnits[voltage_channel])[0]
        file_dt = 1.0 / abf.dataRate
        if dt is not None and abs(dt - file_dt) > 1e-9 * file_dt:
            warnings.warn(f"{path}: dt = {dt:g} s replaces the file's sampling step {file_dt:g} s", stacklevel=3)
        protocol = str(abf.protocol).strip() or None
        traces = []
        for number in abf.sweepList:
            abf.setSweep(number, channel=voltage_channel)
            voltage = abf.sweepY.astype(np.float64) * voltage_scale
            traces.append((number, voltage, _current(abf, number, *current_source)))
    except RecordingError:
        raise
    except Exception as err:  # pyabf raises struct.error, ValueError, NotImplementedError ... on bad files
        raise library_failure(path, "an ABF file", err) from None
    return [Sweep(number, file_dt if dt is None else dt, voltage, current, protocol=protocol, source=str(path),
                  qc_settings=qc) for number, voltage, current in traces]
