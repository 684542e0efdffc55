"""Counter-based normal draws: the same (seed, neuron, step, source) gives the same number in every
backend and in every chunking of a batch (numpy here; the C backend prints the same arithmetic)."""
from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def splitmix64(x):
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):  # numpy warns on wrapping uint64 scalars; wrapping is intended
        x = np.asarray(x, dtype=np.uint64) + np.uint64(GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(MIX1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(MIX2)
        return x ^ (x >> np.uint64(31))


def neuron_keys(seed: int, neuron_ids) -> np.ndarray:
    """Per-neuron key from the seed and global neuron ids (set_index * n_traces + trace)."""
    return splitmix64(splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)) ^ np.asarray(neuron_ids, dtype=np.uint64))


def standard_normal(keys: np.ndarray, counter: int) -> np.ndarray:
    """One N(0, 1) draw per key for this counter (step * n_sources + source), via Box–Muller."""
    with np.errstate(over="ignore"):
        h = splitmix64(keys ^ np.uint64(counter))
        g = splitmix64(h)
    u1 = ((h >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (g >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
