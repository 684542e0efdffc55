"""Changing the sampling step of a trace by a rational factor, with an anti-aliasing FIR filter.

Recorded signals go through ``scipy.signal.resample_poly`` (an FIR filter applied at the up-sampled
rate, zero phase: a decimation by an integer factor when the new step is a whole multiple of the old
one), with a Kaiser window of beta ``KAISER_BETA`` instead of scipy's 5: a sine well below the new
Nyquist frequency then comes back within 0.003 % of its amplitude instead of 0.07 %.
The trace's mean is taken out before filtering and added back, and the ends are extended by point
reflection ("antireflect"), so the edges keep their level instead of being pulled to zero.
Piecewise-constant waveforms (commands: at least ``HOLD_FRACTION`` of successive samples equal) are
resampled by zero-order hold instead: each new sample takes the value of the command at its time,
so a step stays a step rather than ringing (the filter's Gibbs overshoot would be current the cell
never received).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .errors import RecordingError

MAX_DENOMINATOR = 1000  # new / old step must be p/q with q (the up-sampling factor) at most this
RATIO_TOLERANCE = 1e-9  # relative error allowed between p/q and the requested ratio
HOLD_FRACTION = 0.99
KAISER_BETA = 8.0


def rational_ratio(old_dt: float, new_dt: float) -> tuple[int, int]:
    """(up, down) with new_dt / old_dt = down / up in lowest terms and up at most ``MAX_DENOMINATOR``.

    old_dt, new_dt: sampling steps (s). Raises RecordingError when the ratio is not such a fraction.
    """
    ratio = new_dt / old_dt
    if not math.isfinite(ratio) or ratio <= 0:
        raise RecordingError(f"dt = {new_dt!r} s: cannot resample from {old_dt:g} s; give a positive step")
    fraction = Fraction(ratio).limit_denominator(MAX_DENOMINATOR)
    if fraction.numerator == 0 or abs(float(fraction) - ratio) > RATIO_TOLERANCE * ratio:
        raise RecordingError(f"dt = {new_dt:g} s is not a simple fraction of the recorded {old_dt:g} s "
                             f"(ratio {ratio:.12g}); choose a dt that is p/q times it with q <= {MAX_DENOMINATOR}, "
                             f"e.g. {old_dt * max(1, round(ratio)):g} s")
    return fraction.denominator, fraction.numerator


def is_piecewise_constant(trace: np.ndarray) -> bool:
    """True when at least ``HOLD_FRACTION`` of successive samples of ``trace`` are identical (a command)."""
    if trace.size < 2:
        return True
    return float(np.mean(np.diff(trace) == 0)) >= HOLD_FRACTION


def resample(trace, old_dt: float, new_dt: float) -> np.ndarray:
    """``trace`` sampled every ``new_dt`` instead of ``old_dt`` (see the module docstring for how).

    trace: 1-D array (any unit), n samples; old_dt, new_dt: sampling steps (s).
    Returns a 1-D float array of ceil(n * old_dt / new_dt) samples; sample k is at time k * new_dt.
    Raises RecordingError when new_dt / old_dt is not a simple fraction.
    """
    trace = np.asarray(trace, dtype=float)
    up, down = rational_ratio(old_dt, new_dt)
    if up == down:
        return trace.copy()
    if is_piecewise_constant(trace):
        count = -(-trace.size * up // down)
        return trace[np.arange(count) * down // up]
    mean = float(trace.mean())
    from scipy.signal import resample_poly  # imported here: scipy.signal takes ~0.6 s, most jobs never resample

    return resample_poly(trace - mean, up, down, window=("kaiser", KAISER_BETA), padtype="antireflect") + mean
