"""Stimulus generators: steps, ramps, Ornstein-Uhlenbeck noise, traces from files.

Every generator returns SI floats sampled at t = k*dt, k = 0 .. n_steps - 1: shape (n_steps,)
for one trace, (n_traces, n_steps) for several. Times, amplitudes and dt may be quantity
strings ("10 nA", "5 ms", "0.01 ms") or SI floats. A time maps to the sample index
round(time / dt), so edges fall on exact samples whatever the floating-point error of time / dt.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import NeurofitError
from ..units import TIME, parse_unit, to_si
from .dataset import load_array

OU_METHODS = ("exact", "euler")


class StimulusError(NeurofitError):
    """Invalid arguments to a stimulus generator."""


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise StimulusError(f"{name} = {value!r} must be a positive integer")
    return int(value)


def _positive_time(value, name: str) -> float:
    seconds = to_si(value, TIME, name=name)
    if not (math.isfinite(seconds) and seconds > 0):
        raise StimulusError(f"{name} = {value!r} must be a positive, finite time")
    return seconds


def _window(n_steps, dt, start, stop) -> tuple[int, int, float]:
    """Validated n_steps and the sample indices round(start/dt), round(stop/dt) (not clipped)."""
    n_steps = _count(n_steps, "n_steps")
    dt = _positive_time(dt, "dt")
    i0 = round(to_si(start, TIME, name="start") / dt)
    i1 = round(to_si(stop, TIME, name="stop") / dt)
    if i1 < i0:
        raise StimulusError(f"stop = {stop!r} is before start = {start!r}; the stimulus is on for "
                            f"start <= t < stop")
    return n_steps, i0, i1


def step(n_steps: int, dt, amplitude, start, stop, baseline=0.0) -> np.ndarray:
    """One step: ``amplitude`` for samples with start <= k*dt < stop, ``baseline`` elsewhere; shape (n_steps,)."""
    n_steps, i0, i1 = _window(n_steps, dt, start, stop)
    trace = np.full(n_steps, to_si(baseline, name="baseline"))
    trace[max(i0, 0):max(min(i1, n_steps), 0)] = to_si(amplitude, name="amplitude")
    return trace


def steps(n_steps: int, dt, amplitudes, start, stop, baseline=0.0) -> np.ndarray:
    """One ``step`` per amplitude, stacked: shape (len(amplitudes), n_steps)."""
    if isinstance(amplitudes, (str, bytes)) or len(amplitudes) == 0:
        raise StimulusError(f"amplitudes = {amplitudes!r} must be a non-empty list, e.g. ['2 nA', '10 nA']")
    return np.stack([step(n_steps, dt, a, start, stop, baseline) for a in amplitudes])


def ramp(n_steps: int, dt, start, stop, amp_start, amp_stop, baseline=0.0) -> np.ndarray:
    """Linear ramp from ``amp_start`` at t = start towards ``amp_stop`` at t = stop (on while
    start <= k*dt < stop), ``baseline`` elsewhere; shape (n_steps,)."""
    n_steps, i0, i1 = _window(n_steps, dt, start, stop)
    a0, a1 = to_si(amp_start, name="amp_start"), to_si(amp_stop, name="amp_stop")
    trace = np.full(n_steps, to_si(baseline, name="baseline"))
    k = np.arange(max(i0, 0), max(min(i1, n_steps), 0))
    if k.size:
        trace[k] = a0 + (a1 - a0) * (k - i0) / (i1 - i0)
    return trace


def ornstein_uhlenbeck(n_steps: int, dt, tau, sigma, mu=0.0, x0=None, *, seed, n_traces: int = 1,
                       method: str = "exact") -> np.ndarray:
    """Ornstein-Uhlenbeck noise with mean ``mu``, stationary SD ``sigma`` and correlation time ``tau``.

    method "exact": x[k+1] = mu + (x[k]-mu)*exp(-dt/tau) + sigma*sqrt(1-exp(-2dt/tau))*N(0,1),
    exact for any dt. method "euler": x[k+1] = x[k] + dt/tau*(mu-x[k]) + sigma*sqrt(2dt/tau)*N(0,1),
    the update of the Neuromatch rate-model tutorial (``my_OU``). Both draw
    ``rng.standard_normal((n_traces, n_steps))`` once, rng = np.random.default_rng(seed); draw k
    drives step k-1 → k. x0: start value (default mu), or "stationary" for mu + sigma*draw 0
    (``my_OU`` starts so). ``seed`` is required; the same seed gives the same numbers.
    Returns shape (n_steps,) when n_traces == 1, else (n_traces, n_steps).
    """
    n_steps = _count(n_steps, "n_steps")
    n_traces = _count(n_traces, "n_traces")
    dt = _positive_time(dt, "dt")
    tau = _positive_time(tau, "tau")
    sigma, mu = to_si(sigma, name="sigma"), to_si(mu, name="mu")
    if sigma < 0:
        raise StimulusError(f"sigma = {sigma!r} must be >= 0 (it is the stationary standard deviation)")
    if method not in OU_METHODS:
        raise StimulusError(f"method = {method!r} is unknown (valid: {', '.join(OU_METHODS)})")
    if seed is None:
        raise StimulusError("seed is required (e.g. seed=0) so that the same seed gives the same stimulus")
    noise = np.random.default_rng(seed).standard_normal((n_traces, n_steps))
    if method == "exact":
        decay = math.exp(-dt / tau)
        gain = sigma * math.sqrt(-math.expm1(-2 * dt / tau))
    else:
        decay = 1.0 - dt / tau
        gain = sigma * math.sqrt(2 * dt / tau)
    if isinstance(x0, str) and x0 == "stationary":
        start = sigma * noise[:, 0]
    else:
        start = (mu if x0 is None else to_si(x0, name="x0")) - mu
    # y = x - mu obeys y[k] = decay*y[k-1] + gain*noise[k]: a first-order recursive filter
    drive = gain * noise
    drive[:, 0] = start
    from scipy.signal import lfilter  # imported here: scipy.signal takes ~0.6 s to import

    x = lfilter([1.0], [1.0, -decay], drive, axis=1) + mu
    return x[0] if n_traces == 1 else x


def from_file(path, unit: str = "1", name: str | None = None) -> np.ndarray:
    """Traces from a .csv / .npy / .npz file (see ``neurofit.data.dataset.load_array``) in ``unit``, as SI floats
    of shape (n_traces, n_steps)."""
    return load_array(path, scale=parse_unit(unit)[0], name=name)
