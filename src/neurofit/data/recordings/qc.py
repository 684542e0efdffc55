"""Quality control of current-clamp sweeps: is this membrane potential worth fitting?

Inspired by the Allen Institute's sweep QC (ipfx: pre-stimulus noise, slow noise, Vm at the start
vs the end of the sweep), with thresholds widened for recordings from other rigs (the Allen limits,
0.07 mV short-term noise and 1 mV start-to-end difference, fail clean sweeps of the shared files).
Every check looks at the membrane potential around the stimulus found in the current:

- ``finite``: every sample is a number (when not, no other check runs);
- ``plausible_voltage``: every sample within [``voltage_min``, ``voltage_max``] (a channel that is not
  a membrane potential in volts, or a mis-scaled one, swings beyond);
- ``clipping``: no run of identical samples at the sweep's maximum or minimum lasting
  ``clip_duration`` (an amplifier or digitiser at its rail); not judged (passed) for a noise-free
  sweep, one whose pre-stimulus baseline is exactly flat (a simulation, where flat runs are natural);
- ``baseline_potential``: mean of the pre-stimulus baseline (the last ``baseline_window`` before the
  current first leaves holding; the first ``baseline_window`` when it never does) within
  [``baseline_min``, ``baseline_max``], the range of a healthy neuron at rest or held;
- ``baseline_drift``: the first ``baseline_window`` of the sweep and the pre-stimulus baseline differ by
  at most ``max_baseline_drift`` (without a stimulus: the first and the last ``baseline_window``;
  the two windows overlap when the stimulus starts within two windows of the sweep's start);
- ``baseline_noise``: RMS of the pre-stimulus baseline about a straight line at most ``max_noise_rms``;
- ``spontaneous_spike``: no action potential before the stimulus (a rise of at least
  ``spike_dvdt`` followed within ``spike_peak_window`` by a peak above ``spike_peak``; without a
  stimulus the whole sweep is checked);
- ``post_stimulus_return``: the last ``baseline_window`` of the sweep is within
  ``max_return_difference`` of the pre-stimulus baseline; checked only when that window starts at
  least ``recovery_time`` after the stimulus ends (so sag, rebound and slow recovery are not
  penalised), counted as passed otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ...units import Dimension, UnitError, parse_quantity
from .errors import RecordingError, one_line

_VOLT = parse_quantity("1 V")[1]
_SECOND = parse_quantity("1 s")[1]
_VOLT_PER_SECOND = _VOLT / _SECOND


@dataclass
class QCSettings:
    """Thresholds of the sweep quality control, in SI units (floats) or quantity strings ("-90 mV").

    voltage_min, voltage_max: plausible membrane potential (V; default -150 mV, +100 mV);
    clip_duration: run of identical extreme samples that counts as clipping (s; default 2 ms,
    at least 10 samples); baseline_window: length of the baseline windows (s; default 100 ms);
    baseline_min, baseline_max: plausible resting / held potential (V; default -100 mV, -30 mV);
    max_baseline_drift: pre-stimulus drift allowed (V; default 2 mV); max_noise_rms: baseline
    RMS about a straight line allowed (V; default 1 mV; the shared files measure 0.03-0.5 mV);
    spike_dvdt: rise rate that starts an action potential (V/s; default 20 V/s); spike_peak: peak
    an action potential reaches (V; default -10 mV); spike_peak_window: time from the rise to the
    peak (s; default 2 ms); max_return_difference: end-of-sweep potential vs the pre-stimulus
    baseline (V; default 10 mV: Allen uses 1 mV with longer recoveries, and the slow
    afterhyperpolarisation of the shared Igor cell still measures 4.4 mV 200 ms after its step);
    recovery_time: time after the stimulus before the return is judged (s; default 150 ms).
    Raises RecordingError (one line) for a value that is neither a number nor a quantity of the right
    dimension, or a baseline_window that is not positive.
    """

    voltage_min: float = -0.150
    voltage_max: float = 0.100
    clip_duration: float = 2e-3
    baseline_window: float = 0.100
    baseline_min: float = -0.100
    baseline_max: float = -0.030
    max_baseline_drift: float = 2e-3
    max_noise_rms: float = 1e-3
    spike_dvdt: float = 20.0
    spike_peak: float = -0.010
    spike_peak_window: float = 2e-3
    max_return_difference: float = 10e-3
    recovery_time: float = 0.150

    def __post_init__(self):
        dimensions = {"spike_dvdt": _VOLT_PER_SECOND}
        for time_name in ("clip_duration", "baseline_window", "spike_peak_window", "recovery_time"):
            dimensions[time_name] = _SECOND
        for spec in fields(self):
            setattr(self, spec.name, _si(spec.name, getattr(self, spec.name), dimensions.get(spec.name, _VOLT)))
        if self.baseline_window <= 0:
            raise RecordingError(f"QCSettings: baseline_window = {self.baseline_window:g} s must be positive")


def _si(name: str, value, dimension: Dimension) -> float:
    """A QC threshold as an SI float; RecordingError (one line) for text of the wrong kind."""
    if isinstance(value, str):
        try:
            number, found = parse_quantity(value)
        except UnitError as err:
            raise RecordingError(f"QCSettings: {name} = {value!r}: {one_line(err)}") from None
        if found != dimension:
            raise RecordingError(f"QCSettings: {name} = {value!r} has units of {found}, expected {dimension}")
        return number
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise RecordingError(f"QCSettings: {name} = {value!r} must be a number in SI units or a quantity "
                             f"string like '5 mV'")
    return float(value)


def _longest_run_at(voltage: np.ndarray, value: float) -> int:
    """Length of the longest run of consecutive samples equal to ``value``."""
    equal = np.concatenate([[0], (voltage == value).astype(np.int8), [0]])
    edges = np.diff(equal)
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max(initial=0))


def _detrended_rms(values: np.ndarray) -> float:
    """RMS of ``values`` about their least-squares straight line."""
    positions = np.arange(values.size) - (values.size - 1) / 2.0
    centred = values - values.mean()
    slope = np.dot(positions, centred) / np.dot(positions, positions)
    return float(np.sqrt(np.mean((centred - slope * positions) ** 2)))


def _first_spike(voltage: np.ndarray, dt: float, settings: QCSettings) -> int | None:
    """Sample where the first action potential of ``voltage`` starts, None when there is none."""
    rising = np.flatnonzero(np.diff(voltage) / dt >= settings.spike_dvdt)
    reach = max(1, int(round(settings.spike_peak_window / dt)))
    for start in rising:
        if voltage[start:start + reach + 1].max() > settings.spike_peak:
            return int(start)
    return None


def _mv(volts: float) -> str:
    return f"{volts * 1e3:.1f} mV"


def run_qc(sweep, settings: QCSettings | None = None) -> tuple[dict, dict]:
    """Quality control of one sweep (see the module docstring for the checks).

    sweep: a ``Sweep`` (uses voltage (V, n samples), dt (s) and its stimulus_start / stimulus_stop (s));
    settings: thresholds (default ``QCSettings()``).
    Returns (qc, reasons): qc maps each check name to True (passed) or False; reasons maps each failed
    check to a one-line explanation with the measured value and the limit.
    """
    settings = settings or QCSettings()
    voltage, dt = np.asarray(sweep.voltage, dtype=float), float(sweep.dt)
    qc, reasons = {}, {}

    def judge(name: str, passed: bool, reason: str) -> None:
        qc[name] = bool(passed)
        if not passed:
            reasons[name] = reason

    bad = ~np.isfinite(voltage)
    if voltage.size == 0 or bad.any():
        judge("finite", False, f"{int(bad.sum())} of {voltage.size} samples are not finite" if voltage.size
              else "the sweep holds no samples")
        return qc, reasons
    judge("finite", True, "")

    window = max(1, int(round(settings.baseline_window / dt)))
    stimulus_start = getattr(sweep, "stimulus_start", None)
    stimulus_stop = getattr(sweep, "stimulus_stop", None)
    onset = voltage.size if stimulus_start is None else int(round(stimulus_start / dt))
    baseline_samples = voltage[max(0, onset - window):onset] if stimulus_start is not None else voltage[:window]

    low, high = float(voltage.min()), float(voltage.max())
    judge("plausible_voltage", settings.voltage_min <= low and high <= settings.voltage_max,
          f"membrane potential spans {_mv(low)} to {_mv(high)}, outside the plausible "
          f"[{_mv(settings.voltage_min)}, {_mv(settings.voltage_max)}] (wrong channel or units?)")

    clip_samples = max(10, int(round(settings.clip_duration / dt)))
    noise_free = baseline_samples.size > 1 and np.ptp(baseline_samples) == 0
    longest, extreme = max((_longest_run_at(voltage, high), high), (_longest_run_at(voltage, low), low))
    judge("clipping", noise_free or longest < clip_samples,
          f"{longest} identical samples ({longest * dt * 1e3:.1f} ms) at the extreme {_mv(extreme)}: "
          f"the signal is clipped (limit {clip_samples} samples)")

    if onset < 1:
        for name in ("baseline_potential", "baseline_drift", "baseline_noise"):
            judge(name, False, "the stimulus starts at the first sample: no pre-stimulus baseline")
        baseline = None
    else:
        baseline = float(baseline_samples.mean())
        judge("baseline_potential", settings.baseline_min <= baseline <= settings.baseline_max,
              f"pre-stimulus baseline {_mv(baseline)} outside [{_mv(settings.baseline_min)}, "
              f"{_mv(settings.baseline_max)}]")
        first = float(voltage[:min(window, onset)].mean())
        later = baseline if stimulus_start is not None else float(voltage[-window:].mean())
        drift = abs(later - first)
        judge("baseline_drift", drift <= settings.max_baseline_drift,
              f"baseline drifts by {_mv(drift)} before the stimulus (limit {_mv(settings.max_baseline_drift)})")
        noise = _detrended_rms(baseline_samples)
        judge("baseline_noise", noise <= settings.max_noise_rms,
              f"pre-stimulus noise {noise * 1e3:.2f} mV RMS (limit {settings.max_noise_rms * 1e3:.2f} mV)")

    spike = _first_spike(voltage[:onset], dt, settings)
    judge("spontaneous_spike", spike is None,
          f"action potential at {0 if spike is None else spike * dt:.4f} s, before the stimulus")

    end_window_start = voltage.size - window
    judged = (baseline is not None and stimulus_stop is not None
              and end_window_start * dt >= stimulus_stop + settings.recovery_time)
    difference = abs(float(voltage[end_window_start:].mean()) - baseline) if judged else 0.0
    judge("post_stimulus_return", difference <= settings.max_return_difference,
          f"the potential ends {_mv(difference)} away from the pre-stimulus baseline "
          f"(limit {_mv(settings.max_return_difference)})")
    return qc, reasons
