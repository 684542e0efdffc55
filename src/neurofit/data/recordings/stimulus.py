"""The main current step of a sweep: where the injected current departs from holding, and for how long.

A current waveform is cut into epochs by binary segmentation: an epoch is split where the means on
either side differ by more than ``NOISE_MULTIPLE`` times the sample noise (estimated from the
sample-to-sample differences; zero for a command waveform, which then splits at every edge exactly).
The first epoch's level is the holding current. An epoch is a *step epoch* when it is constant
(its level changes by less than the tolerance from start to end: ramps and sines are not),
differs from holding and lasts at least ``MIN_STEP_DURATION``.

The main step is the longest step epoch; between epochs of the same duration (within
``DURATION_TIE``) the later one. So a prepulse followed by a longer test step gives the test step,
and a protocol of two equal steps around a prepulse (−100 pA, then the test step) gives the second.
No step (None) is reported when the current never leaves holding, or changes only in ramps,
noise or brief pulses: the main step must cover at least ``MIN_STEP_SHARE`` of the time the current
spends away from holding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_MULTIPLE = 5.0  # an epoch boundary needs a level change of this many noise standard deviations
MIN_STEP_DURATION = 1e-3  # s: shorter epochs are pulses, not the main step (and are never split further)
MIN_STEP_SHARE = 0.2  # the main step covers at least this fraction of the time away from holding
DURATION_TIE = 0.01  # epochs whose durations differ by less than this fraction are equally long
_RELATIVE_FLOOR = 1e-9  # tolerance floor relative to the largest |current|: float rounding is no step


@dataclass(frozen=True)
class Step:
    """The main current step of a sweep.

    start: time of the first sample of the step (s, from the start of the sweep);
    stop: time of the first sample after the step (s); amplitude: step current minus the holding
    current (A; negative for a hyperpolarising step).
    """

    start: float
    stop: float
    amplitude: float

    @property
    def duration(self) -> float:
        """stop - start (s)."""
        return self.stop - self.start


@dataclass(frozen=True)
class CurrentDescription:
    """What a current waveform does.

    holding: level of the first epoch (A); step: the main step or None; stimulus_start /
    stimulus_stop: times (s) of the first departure from holding and of the last return to it
    (None when the current never leaves holding; stimulus_stop is the sweep's end when it never returns).
    """

    holding: float
    step: Step | None
    stimulus_start: float | None
    stimulus_stop: float | None


@dataclass(frozen=True)
class _Epoch:
    start: int  # first sample
    stop: int  # one past the last sample
    level: float
    constant: bool


def _noise_sigma(current: np.ndarray) -> float:
    """Standard deviation of white noise estimated from the median absolute sample-to-sample change."""
    if current.size < 3:
        return 0.0
    differences = np.diff(current)
    deviation = np.median(np.abs(differences - np.median(differences)))
    return float(1.4826 * deviation / np.sqrt(2.0))


def _split_point(values: np.ndarray, min_samples: int) -> tuple[int, float]:
    """Best single change point of ``values`` (CUSUM statistic) and the mean difference across it."""
    n = values.size
    sums = np.cumsum(values)
    k = np.arange(min_samples, n - min_samples + 1)
    left = sums[k - 1] / k
    right = (sums[-1] - sums[k - 1]) / (n - k)
    statistic = np.sqrt(k * (n - k) / n) * np.abs(left - right)
    best = int(np.argmax(statistic))
    return int(k[best]), float(abs(left[best] - right[best]))


def _is_constant(values: np.ndarray, tolerance: float) -> bool:
    """True when a least-squares line through ``values`` changes by at most ``tolerance`` over the epoch."""
    if values.size < 2:
        return True
    positions = np.arange(values.size) - (values.size - 1) / 2.0
    slope = float(np.dot(positions, values - values.mean()) / np.dot(positions, positions))
    return abs(slope) * (values.size - 1) <= tolerance


def _epochs(current: np.ndarray, dt: float) -> tuple[list[_Epoch], float]:
    """Cut ``current`` into epochs of nearly constant level; also return the level tolerance used."""
    tolerance = max(NOISE_MULTIPLE * _noise_sigma(current), _RELATIVE_FLOOR * float(np.max(np.abs(current))))
    min_samples = max(2, int(round(MIN_STEP_DURATION / dt)))
    pending, bounds = [(0, current.size)], []
    while pending:
        start, stop = pending.pop()
        if stop - start >= 2 * min_samples:
            split, change = _split_point(current[start:stop], min_samples)
            if change > tolerance:
                pending += [(start, start + split), (start + split, stop)]
                continue
        bounds.append((start, stop))
    epochs: list[_Epoch] = []
    for start, stop in sorted(bounds):
        values = current[start:stop]
        epoch = _Epoch(start, stop, float(np.median(values)), _is_constant(values, tolerance))
        previous = epochs[-1] if epochs else None
        if (previous is not None and previous.constant and epoch.constant
                and abs(previous.level - epoch.level) <= tolerance):
            merged = current[previous.start:stop]
            epoch = _Epoch(previous.start, stop, float(np.median(merged)), _is_constant(merged, tolerance))
            epochs.pop()
        epochs.append(epoch)
    return epochs, tolerance


def describe_current(current, dt: float) -> CurrentDescription:
    """Holding level, main step and stimulus span of one current waveform.

    current: 1-D array (A; any unit works, levels come back in the same unit), n samples;
    dt: sampling step (s). A waveform that is empty or holds non-finite samples has holding NaN
    and no step.
    """
    current = np.asarray(current, dtype=float).ravel()
    if current.size == 0 or not np.isfinite(current).all():
        return CurrentDescription(float("nan"), None, None, None)
    epochs, tolerance = _epochs(current, dt)
    holding = epochs[0].level
    away = [e for e in epochs if abs(e.level - holding) > tolerance or not e.constant]
    if not away:
        return CurrentDescription(holding, None, None, None)
    stimulus_start, stimulus_stop = away[0].start * dt, away[-1].stop * dt
    min_samples = MIN_STEP_DURATION / dt
    candidates = [e for e in away if e.constant and abs(e.level - holding) > tolerance
                  and e.stop - e.start >= min_samples]
    if not candidates:
        return CurrentDescription(holding, None, stimulus_start, stimulus_stop)
    longest = max(e.stop - e.start for e in candidates)
    main = [e for e in candidates if e.stop - e.start >= longest * (1 - DURATION_TIE)][-1]
    time_away = sum(e.stop - e.start for e in away)
    if main.stop - main.start < MIN_STEP_SHARE * time_away:
        return CurrentDescription(holding, None, stimulus_start, stimulus_stop)
    step = Step(start=main.start * dt, stop=main.stop * dt, amplitude=main.level - holding)
    return CurrentDescription(holding, step, stimulus_start, stimulus_stop)


def find_step(current, dt: float) -> Step | None:
    """The main step of a current waveform, or None when it is not a step protocol.

    current: 1-D array of the injected current (A), n samples; dt: sampling step (s).
    Returns ``Step(start, stop, amplitude)`` (s, s, A relative to the holding level of the first epoch)
    for the longest constant epoch away from holding (the later one between equally long epochs),
    None for a current that stays at holding, ramps, noise or brief pulses (see the module docstring).
    """
    return describe_current(current, dt).step
