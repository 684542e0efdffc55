"""How well a model's spikes match recorded ones, sweep by sweep: the numbers a spiking fit is judged by.

Per sweep: the spike counts of the recording and the model, the coincidence factor gamma (Kistler et al.
1997 as in Jolivet et al. 2008: 1 for identical trains, about 0 for trains that coincide by chance; the
``GammaFactor`` metric without its rate term), the first-spike latency error and the mean inter-spike
interval error (model minus recording, s; None when either train has too few spikes for it).
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import GammaFactor


def sweep_scores(model_trains, data_trains, durations, dt: float, delta: float) -> list[dict]:
    """One dict per sweep: n_data, n_model, count_error (n_model - n_data), gamma, latency_error, isi_error.

    model_trains, data_trains: lists over the n sweeps of spike-time arrays (s, from each sweep's start);
    durations: (n,) length of each sweep (s); dt: the sampling step (s) spike times are rounded to for the
    coincidences; delta: the coincidence window (s). gamma is 1 when neither train has a spike, 0 when only the
    model has spikes (at or below 0 by the formula when only the recording has), and None when the recording
    fires too fast for the window (2 delta rate >= 1).
    """
    scores = []
    for model, data, duration in zip(model_trains, data_trains, durations):
        model, data = np.sort(np.asarray(model, dtype=float)), np.sort(np.asarray(data, dtype=float))
        scores.append({"n_data": int(data.size), "n_model": int(model.size),
                       "count_error": int(model.size - data.size),
                       "gamma": _gamma(model, data, float(duration), dt, delta),
                       "latency_error": float(model[0] - data[0]) if model.size and data.size else None,
                       "isi_error": float(np.mean(np.diff(model)) - np.mean(np.diff(data)))
                       if model.size > 1 and data.size > 1 else None})
    return scores


def _gamma(model: np.ndarray, data: np.ndarray, duration: float, dt: float, delta: float) -> float | None:
    if data.size == 0:
        return 1.0 if model.size == 0 else 0.0
    try:
        error = GammaFactor(delta=delta, time=duration, rate_correction=False).get_features([[model]], [data], dt)
    except ValueError:  # the recorded rate is too high for the window
        return None
    return float(1.0 - error[0, 0])


def summarize(scores: list[dict]) -> dict:
    """Over sweeps: count_error (mean |model - recorded| spikes per sweep), gamma (mean over sweeps where it
    is defined), latency_error and isi_error (mean absolute, s, over the sweeps where defined); None when no
    sweep defines a number."""
    def mean(values):
        values = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.mean(values)) if values else None

    return {"count_error": mean([abs(s["count_error"]) for s in scores]),
            "gamma": mean([s["gamma"] for s in scores]),
            "latency_error": mean([abs(s["latency_error"]) if s["latency_error"] is not None else None
                                   for s in scores]),
            "isi_error": mean([abs(s["isi_error"]) if s["isi_error"] is not None else None for s in scores])}
