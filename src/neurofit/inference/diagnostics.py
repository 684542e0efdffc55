"""Checks of a trained posterior: simulation-based calibration, expected coverage, posterior and predictive plots.

SBC (``sbi.diagnostics.run_sbc``): for test parameters drawn from the prior and simulated, the rank
of each true parameter among posterior samples is uniform if the posterior is calibrated. The
same ranks give the empirical coverage of central credible intervals: the truth lies in the
central ``level`` interval of a marginal when its rank / n_samples is within (1 ± level) / 2.
``kind="hpd"`` ranks the joint posterior density instead (sbi's expected coverage).
Figures are ``matplotlib.figure.Figure`` objects (no pyplot), saved with ``neurofit.plots.save_figure``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from ..plots import DATA_COLOR, display_unit, unit_for
from .inferencer import InferenceError, _seeded

LEVELS = np.linspace(0.05, 0.95, 19)


@dataclass
class SBCResult:
    """Ranks (n_tests, n_parameters) of the true parameters among ``num_posterior_samples`` posterior
    samples (one column for kind "hpd"), the test parameters and features used, and the count of
    test simulations left out as invalid."""

    ranks: np.ndarray
    theta: np.ndarray
    x: np.ndarray
    dap_samples: np.ndarray
    num_posterior_samples: int
    kind: str
    n_invalid: int = 0

    def coverage(self, levels=LEVELS) -> np.ndarray:
        """Empirical coverage (n_levels, n_columns) of credible regions at ``levels``."""
        return coverage_from_ranks(self.ranks, self.num_posterior_samples, levels, self.kind)

    def checks(self) -> dict:
        """``sbi.diagnostics.check_sbc``: KS p-values of rank uniformity and the data-averaged posterior C2ST."""
        from sbi.diagnostics import check_sbc
        ranks, theta, dap = (torch.as_tensor(a, dtype=torch.float32)
                             for a in (self.ranks, self.theta, self.dap_samples))
        out = check_sbc(ranks, theta, dap, self.num_posterior_samples)
        return {k: v.detach().cpu().numpy() for k, v in out.items()}


def run_sbc(posterior, theta, x, num_posterior_samples: int = 1000, kind: str = "marginal", seed: int = 0) -> SBCResult:
    """Ranks of ``theta`` (n_tests, n_parameters) under ``posterior`` given their features ``x``; rows with
    NaN/inf features are left out (counted in ``n_invalid``)."""
    from sbi.diagnostics import run_sbc as sbi_run_sbc
    if kind not in ("marginal", "hpd"):
        raise InferenceError(f"kind = {kind!r} is not valid (valid: 'marginal', 'hpd')")
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    ok = np.all(np.isfinite(x), axis=1)
    if not ok.any():
        raise InferenceError("run_sbc: every test simulation is invalid (NaN/inf features)")
    reduce = "marginals" if kind == "marginal" else _log_prob(posterior)
    with _seeded(seed):
        ranks, dap = sbi_run_sbc(torch.as_tensor(theta[ok], dtype=torch.float32),
                                 torch.as_tensor(x[ok], dtype=torch.float32), posterior,
                                 num_posterior_samples=num_posterior_samples, reduce_fns=reduce,
                                 show_progress_bar=False)
    return SBCResult(ranks.detach().cpu().numpy().astype(int), theta[ok], x[ok], dap.detach().cpu().numpy(),
                     int(num_posterior_samples), kind, int((~ok).sum()))


def _log_prob(posterior):
    normalise = "norm_posterior" in inspect.signature(posterior.log_prob).parameters

    def log_prob(theta, x):  # the normalising constant is the same for every sample of one x
        return posterior.log_prob(theta, x=x, **({"norm_posterior": False} if normalise else {}))
    return log_prob


def simulation_based_calibration(inferencer, n_tests: int = 200, num_posterior_samples: int = 1000,
                                 kind: str = "marginal", seed: int = 1) -> SBCResult:
    """SBC of an Inferencer's posterior on ``n_tests`` new simulations from its prior (seeded by ``seed``)."""
    theta = inferencer.generate_training_data(n_tests, seed=seed)
    x = inferencer.extract_summary_statistics(theta, seed=seed)
    return run_sbc(inferencer.posterior, theta, x, num_posterior_samples, kind, seed)


def coverage_from_ranks(ranks, num_posterior_samples: int, levels=LEVELS, kind: str = "marginal") -> np.ndarray:
    """Fraction of tests whose truth lies in the credible region at each level → (n_levels, n_columns).

    marginal: central interval, rank/N in [(1-level)/2, (1+level)/2]; hpd: highest-density region,
    rank/N >= 1 - level (rank = number of samples of lower density than the truth)."""
    u = np.asarray(ranks, dtype=np.float64) / num_posterior_samples
    levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if kind == "marginal":
        inside = [(u >= (1 - a) / 2) & (u <= (1 + a) / 2) for a in levels]
    else:
        inside = [u >= 1 - a for a in levels]
    return np.array([m.mean(axis=0) for m in inside])


def empirical_coverage(samples, theta, levels=LEVELS) -> np.ndarray:
    """Coverage of central marginal intervals from posterior samples (n_tests, n_samples, n_parameters) and
    true theta (n_tests, n_parameters) → (n_levels, n_parameters)."""
    samples, theta = np.asarray(samples), np.asarray(theta)
    out = []
    for a in np.atleast_1d(levels):
        lo, hi = np.quantile(samples, [(1 - a) / 2, (1 + a) / 2], axis=1)
        out.append(((theta >= lo) & (theta <= hi)).mean(axis=0))
    return np.array(out)


# --- figures ----------------------------------------------------------------------------------------

def plot_rank_histograms(result: SBCResult, labels=None, bins: int | None = None) -> Figure:
    """One histogram of SBC ranks per parameter, with the 99 % band of a uniform histogram."""
    from scipy.stats import binom
    ranks = result.ranks
    labels = labels or ([f"θ{k}" for k in range(ranks.shape[1])] if result.kind == "marginal" else ["log p"])
    bins = bins or max(5, min(20, ranks.shape[0] // 10))
    fig = Figure(figsize=(3 * ranks.shape[1], 2.6), layout="constrained")
    axes = fig.subplots(1, ranks.shape[1], squeeze=False)[0]
    lo, hi = binom.ppf([0.005, 0.995], ranks.shape[0], 1 / bins)
    for k, ax in enumerate(axes):
        ax.axhspan(lo, hi, color="0.9", label="uniform (99 %)")
        ax.hist(ranks[:, k], bins=bins, range=(0, result.num_posterior_samples), color="C0")
        ax.set_xlabel(f"rank of {labels[k]}")
        ax.set_yticks([])
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"SBC ranks ({ranks.shape[0]} tests, {result.num_posterior_samples} samples each)", fontsize=10)
    return fig


def plot_coverage(levels, coverage, labels=None, n_tests: int | None = None) -> Figure:
    """Empirical against nominal coverage, one line per parameter (diagonal = calibrated)."""
    from scipy.stats import binom
    levels, coverage = np.asarray(levels), np.atleast_2d(np.asarray(coverage))
    labels = labels or [f"θ{k}" for k in range(coverage.shape[1])]
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.add_subplot()
    if n_tests:
        lo, hi = binom.ppf(0.005, n_tests, levels) / n_tests, binom.ppf(0.995, n_tests, levels) / n_tests
        ax.fill_between(levels, lo, hi, color="0.9", label="calibrated (99 %)")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for k in range(coverage.shape[1]):
        ax.plot(levels, coverage[:, k], marker=".", label=labels[k])
    ax.set_xlabel("credibility level")
    ax.set_ylabel("empirical coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    return fig


def plot_predictive(t, data, predicted, inputs=None, var: str = "v", units: dict | None = None,
                    max_traces: int = 6) -> Figure:
    """Recorded traces (n_traces, n_steps) under the posterior predictive (n_samples, n_traces, n_steps):
    median and 5–95 % band of the simulations, per trace; optional inputs {name: (n_traces, n_steps)}.
    units: variable → SI unit name ("volt", "amp", "1"); by default v is in volts and I* in amperes."""
    units = units or {}
    data, predicted = np.atleast_2d(data), np.asarray(predicted)
    if predicted.ndim == 2:
        predicted = predicted[None]
    shown = min(data.shape[0], max_traces)
    label, factor = display_unit(units.get(var, "volt" if var == "v" else None))
    t_label, t_factor = display_unit("second")
    tt = np.asarray(t) * t_factor
    heights = ([3, 1] if inputs else [1]) * shown
    fig = Figure(figsize=(8, 1.2 + 1.8 * shown), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    row = 0
    for j in range(shown):
        ax = fig.add_subplot(grid[row, 0])
        row += 1
        lo, mid, hi = np.quantile(predicted[:, j], [0.05, 0.5, 0.95], axis=0) * factor
        ax.plot(tt, data[j] * factor, color=DATA_COLOR, lw=0.8, label="data")
        ax.fill_between(tt, lo, hi, color="C3", alpha=0.25, lw=0, label="posterior predictive 5–95 %")
        ax.plot(tt, mid, color="C3", lw=1, label="median")
        ax.set_ylabel(f"{var} ({label})" if label else var)
        ax.set_title(f"trace {j}", fontsize=9, loc="left")
        if j == 0:
            ax.legend(fontsize=7, frameon=False, loc="upper right")
        if inputs:
            ax_in = fig.add_subplot(grid[row, 0], sharex=ax)
            row += 1
            for name, arr in inputs.items():
                in_label, in_factor = display_unit(units.get(name, "amp" if name.startswith("I") else None))
                ax_in.plot(tt, np.atleast_2d(arr)[j] * in_factor, color="k", lw=0.8)
                ax_in.set_ylabel(f"{name} ({in_label})" if in_label else name, fontsize=8)
    fig.axes[-1].set_xlabel(f"t ({t_label})")
    fig.suptitle(f"posterior predictive ({predicted.shape[0]} samples)", fontsize=10)
    return fig


def plot_posterior(samples, names, units: dict | None = None, truth: dict | None = None, bins: int = 40) -> Figure:
    """Corner plot of posterior samples (n_samples, n_parameters) in SI: marginal histograms with the central
    90 % interval on the diagonal, 2-D histograms below it; each axis in the SI prefix that suits it and
    zoomed on the samples (0.5-99.5 % range). truth: name → SI value, marked where given."""
    samples = np.asarray(samples, dtype=float)
    units, truth = units or {}, truth or {}
    n = len(names)
    scaled, labels, limits, marks = [], [], [], []
    for k, name in enumerate(names):
        unit, factor = unit_for(samples[:, k], units.get(name))
        column = samples[:, k] * factor
        marks.append(truth[name] * factor if name in truth else None)
        lo, hi = np.quantile(column, [0.005, 0.995])
        pad = 0.1 * (hi - lo) or abs(hi) * 0.1 or 1.0
        scaled.append(column)
        labels.append(f"{name} ({unit})" if unit else name)
        limits.append((lo - pad, hi + pad))
    fig = Figure(figsize=(2.4 * n + 0.6, 2.4 * n + 0.3), layout="constrained")
    for i in range(n):
        for j in range(i + 1):
            ax = fig.add_subplot(n, n, i * n + j + 1)
            if i == j:
                ax.hist(scaled[i], bins=bins, range=limits[i], color="C0", histtype="stepfilled", alpha=0.6)
                for q in np.quantile(scaled[i], [0.05, 0.95]):
                    ax.axvline(q, color="C0", lw=0.8, ls="--")
                if marks[i] is not None:
                    ax.axvline(marks[i], color=DATA_COLOR, lw=1.5, label="truth")
                ax.set_yticks([])
                ax.set_xlim(limits[i])
            else:
                ax.hist2d(scaled[j], scaled[i], bins=bins, range=[limits[j], limits[i]], cmap="Blues")
                if marks[i] is not None and marks[j] is not None:
                    ax.plot(marks[j], marks[i], "o", color=DATA_COLOR, ms=5)
                ax.set_ylabel(labels[i] if j == 0 else "")
            if i == n - 1:
                ax.set_xlabel(labels[j])
    fig.suptitle(f"posterior ({samples.shape[0]} samples; dashed: central 90 %)", fontsize=10)
    return fig
