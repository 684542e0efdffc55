"""The one spike detector: spike times from recorded or simulated voltage traces.

Every stage that turns a trace into spike times (the recorded spike trains of a spike fit, the
spike features of inference, the recorded targets of a model reduction) uses ``detect_spikes``, so
one trace gives the same spikes everywhere. The rule, for a trace sampled at t = k*dt:

- a spike is an upward crossing of ``threshold``: sample k-1 below it and sample k at or above it
  (``v[k-1] < threshold <= v[k]``); a trace that starts at or above the threshold has no spike at
  t = 0, and a NaN sample is neither below nor above (no crossing next to it);
- the spike time is the crossing sample's time, k*dt (no interpolation between k-1 and k: a spike
  time is always on the sampling grid, as the times of simulated spikes are);
- a crossing less than ``dead_time`` after the previous *counted* spike is ignored (a crossing
  exactly ``dead_time`` later counts). Why: on a noisy recording the membrane potential crosses the
  threshold several times on one spike's upstroke (and again near the peak or on the downstroke);
  without a dead time one spike would be counted two or three times. The default, 1 ms, is shorter
  than the interval between spikes of a neuron firing at up to several hundred Hz and longer than the
  upstroke of an action potential; with ``dead_time=0`` every crossing counts.

Values are SI floats (threshold in V for a membrane potential, dt and dead_time in s); quantity
strings such as ``"-20 mV"`` or ``"1 ms"`` are accepted as well. The simulator's own spikes (a
model's threshold condition, e.g. ``v > -50*mV``, with its reset and refractory period) are a
different thing: they are events of the simulation, not detected from recorded traces.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import NeurofitError
from ..units import TIME, to_si

__all__ = ["detect_spikes", "spike_counts", "SpikeDetectionError", "DEFAULT_DEAD_TIME"]

#: Default dead time (s) after a counted spike during which further crossings are ignored.
DEFAULT_DEAD_TIME = 1e-3


class SpikeDetectionError(NeurofitError, ValueError):
    """Invalid arguments to the spike detector (the message names the argument)."""


def _dead_steps(dead_time: float, dt: float) -> int:
    """The dead time in samples: a crossing ``m`` samples after a counted spike counts iff m >= this
    (m*dt >= dead_time, tolerating the rounding of dead_time / dt)."""
    x = dead_time / dt
    nearest = round(x)
    return int(nearest) if math.isclose(x, nearest, rel_tol=1e-9, abs_tol=1e-9) else math.ceil(x)


def _kept(keys: np.ndarray, dead: int) -> np.ndarray:
    """Mask of the crossings counted as spikes, given their sorted sample keys (traces kept more than
    ``dead`` samples apart). A crossing at least ``dead`` samples after the previous crossing is
    always counted; the others (bursts of crossings, e.g. on a noisy upstroke) are resolved chain by
    chain, all chains at once: each round drops what lies within ``dead`` of the chain's last spike
    and counts the first crossing beyond it."""
    kept = np.ones(keys.size, dtype=bool)
    if keys.size < 2 or dead <= 0:
        return kept
    sure = np.ones(keys.size, dtype=bool)
    sure[1:] = np.diff(keys) >= dead
    if sure.all():
        return kept
    chain = np.cumsum(sure) - 1  # each crossing's chain: from a sure spike to the next one
    index = np.flatnonzero(~sure)  # the undecided crossings, in order
    anchor = keys[sure][chain[index]]  # the last counted spike of each one's chain
    kept &= sure
    while index.size:
        beyond = keys[index] - anchor >= dead  # within the dead time of the chain's last spike: ignored
        index, anchor = index[beyond], anchor[beyond]
        if index.size == 0:
            break
        group = chain[index]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])  # first crossing left in each chain
        kept[index[starts]] = True
        anchor = np.repeat(keys[index[starts]], np.diff(np.r_[starts, index.size]))
        rest = np.ones(index.size, dtype=bool)
        rest[starts] = False
        index, anchor = index[rest], anchor[rest]
    return kept


def detect_spikes(v, dt, threshold=0.0, dead_time=DEFAULT_DEAD_TIME) -> list:
    """Spike times (s) of the upward crossings of ``threshold`` in ``v`` (see the module docstring).

    ``v``: one trace (n_steps,) or traces (..., n_steps), e.g. (n_traces, n_steps) or (n_sets,
    n_traces, n_steps); sample k is at t = k*dt. Returns one sorted float array of spike times per
    trace: a list of n_traces arrays for a 2-D ``v``, nested lists for more dimensions, and a list of
    one array for a 1-D trace. ``threshold``: V (default 0 V); ``dead_time``: s (default 1 ms, >= 0).
    """
    dt = to_si(dt, TIME, name="dt")
    if not (math.isfinite(dt) and dt > 0):
        raise SpikeDetectionError(f"dt = {dt!r} must be a positive, finite time step (e.g. 1e-4 or '0.1 ms')")
    threshold = to_si(threshold, name="threshold")
    if math.isnan(threshold):
        raise SpikeDetectionError("threshold is NaN: give the value whose upward crossing is a spike (e.g. 0 mV)")
    dead_time = to_si(dead_time, TIME, name="dead_time")
    if not (math.isfinite(dead_time) and dead_time >= 0):
        raise SpikeDetectionError(f"dead_time = {dead_time!r} must be a finite time >= 0 (e.g. 1e-3 or '1 ms')")
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0:
        raise SpikeDetectionError("v must be a trace (n_steps,) or traces (n_traces, n_steps), not a number")
    lead = v.shape[:-1]
    rows = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v[None, :]
    n_rows, n_steps = rows.shape
    below = rows < threshold
    crossing = np.zeros(rows.shape, dtype=bool)
    crossing[:, 1:] = below[:, :-1] & (rows[:, 1:] >= threshold)
    row, step = np.nonzero(crossing)  # row-major: sorted by trace, then by time
    dead = min(_dead_steps(dead_time, dt), n_steps + 1)  # longer than the trace: only its first spike counts
    keys = row.astype(np.int64) * (n_steps + dead + 1) + step  # traces more than dead samples apart
    kept = _kept(keys, dead)
    row, step = row[kept], step[kept]
    times = np.split(step.astype(np.float64) * dt, np.searchsorted(row, np.arange(1, n_rows))) if n_rows else []
    if v.ndim <= 2:
        return times
    nested = np.empty(n_rows, dtype=object)
    for i, train in enumerate(times):
        nested[i] = train
    return nested.reshape(lead).tolist()  # nested lists over the leading axes, arrays inside


def spike_counts(v, dt, threshold=0.0, dead_time=DEFAULT_DEAD_TIME) -> np.ndarray:
    """Number of spikes ``detect_spikes`` finds per trace: an int array of shape ``v.shape[:-1]``."""
    v = np.asarray(v, dtype=np.float64)
    trains = detect_spikes(v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v, dt, threshold, dead_time)
    return np.array([len(t) for t in trains], dtype=int).reshape(v.shape[:-1])
