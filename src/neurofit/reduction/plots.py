"""Figures of a model reduction: loss per evaluation, target vs fitted recordings per chunk."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_loss_history(loss: np.ndarray, loss_sd: np.ndarray | None = None) -> Figure:
    """Loss of every evaluation (dots) and the best so far (line); SD band for noisy repeats."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    n = np.arange(1, len(loss) + 1)
    finite = np.isfinite(loss)
    ax.plot(n[finite], loss[finite], ".", color="0.6", ms=2, label="evaluation")
    best = np.minimum.accumulate(np.where(finite, loss, np.inf))
    ax.plot(n, best, color="C3", label="best so far")
    if loss_sd is not None and np.any(loss_sd > 0):
        ax.fill_between(n[finite], (loss - loss_sd)[finite], (loss + loss_sd)[finite], color="0.8", lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    return fig


def plot_chunks(arrays: dict, variable: str = "v", scale: float = 1e3, unit: str = "mV") -> Figure:
    """Target (grey) and fitted (red) recordings of ``variable``: one row per trace, one column per chunk.

    ``arrays`` is the NPZ written by ``ReductionResult.save`` (keys ``fitted/<chunk>/<var>``)."""
    chunks = sorted({int(k.split("/")[1]) for k in arrays if k.startswith("fitted/") and k.endswith(f"/{variable}")})
    n_traces = arrays[f"fitted/{chunks[0]}/{variable}"].shape[0]
    dt = float(arrays["dt"])
    fig = Figure(figsize=(4 * len(chunks), 1.6 * n_traces + 0.6), layout="constrained")
    axes = fig.subplots(n_traces, len(chunks), squeeze=False, sharex="col")
    for c, chunk in enumerate(chunks):
        fitted = arrays[f"fitted/{chunk}/{variable}"]
        target = arrays.get(f"target/{chunk}/{variable}")
        t = np.arange(fitted.shape[1]) * dt * 1e3
        for j in range(n_traces):
            ax = axes[j, c]
            if target is not None:
                ax.plot(t, target[j] * scale, color="0.55", lw=1, label="target")
            ax.plot(t, fitted[j] * scale, color="C3", lw=0.8, label="fitted")
            ax.set_ylabel(f"{variable} ({unit})")
        axes[-1, c].set_xlabel("time (ms)")
        axes[0, c].set_title(f"chunk {chunk}")
    axes[0, 0].legend(frameon=False, fontsize="small")
    return fig
