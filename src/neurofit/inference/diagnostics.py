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


# --- misspecification: are the data's features among the simulations'? ------------------------------

#: Significance level of the misspecification check = its false-alarm rate when the data's features are
#: distributed like the training simulations'.
MISSPECIFICATION_ALPHA = 0.01
#: Nearest training simulations whose mean distance is the check's statistic.
MISSPECIFICATION_NEIGHBOURS = 10
_SPLIT_STREAM = 0x6D6973  # keeps the check's split of the training data apart from other uses of the seed
_WINSOR = 10.0  # robust z-scores beyond this are clipped when the covariance is estimated


@dataclass
class MisspecificationResult:
    """Outcome of ``misspecification_test``: ``statistic``, the data's mean whitened distance to its nearest
    training simulations; ``p_value``, its p-value among the held-out training simulations' own statistics;
    ``alpha``, the significance level; ``n_reference`` and ``n_calibration``, the sizes of the two halves of
    the training data (reference, held out); and per feature (``names``) the
    robust z-score of the data among all training features (``z``: median and 1.4826 * MAD) and given the
    data's other features (``z_conditional``: the feature's deviation from the value its correlations with
    the others predict, in SDs of that prediction, under a Gaussian approximation of the reference
    features - large for a feature in its own range but in a combination with the others the model does
    not produce)."""

    statistic: float
    p_value: float
    alpha: float
    n_reference: int
    n_calibration: int
    names: list
    z: np.ndarray
    z_conditional: np.ndarray

    @property
    def verdict(self) -> str:
        """"fail" (p_value < alpha: the data are unlike the simulations), "pass", or "untested" (too few
        held-out simulations for any p-value below alpha)."""
        if (self.n_calibration + 1) * self.alpha < 1:
            return "untested"
        return "fail" if self.p_value < self.alpha else "pass"

    @property
    def failed(self) -> bool:
        """True when the verdict is "fail"."""
        return self.verdict == "fail"

    def furthest(self, n: int = 5) -> list[dict]:
        """The ``n`` features furthest out (largest of |z| and |z_conditional|) → list of {feature, z,
        z_conditional}."""
        size = np.maximum(np.abs(self.z), np.abs(self.z_conditional))
        order = np.argsort(-np.nan_to_num(size, nan=np.inf), kind="stable")[:n]
        return [{"feature": self.names[k], "z": _number(self.z[k]),
                 "z_conditional": _number(self.z_conditional[k])} for k in order]

    def to_dict(self) -> dict:
        """Returns a JSON-ready summary: test, statistic, p_value, alpha, verdict, sizes, the five furthest
        features and every feature's z-scores."""
        return {"test": "k-nearest-neighbour distance (whitened features), split-conformal p-value",
                "statistic": _number(self.statistic), "p_value": float(self.p_value), "alpha": self.alpha,
                "verdict": self.verdict, "n_reference": self.n_reference, "n_calibration": self.n_calibration,
                "furthest": self.furthest(),
                "z": {n: _number(v) for n, v in zip(self.names, self.z)},
                "z_conditional": {n: _number(v) for n, v in zip(self.names, self.z_conditional)}}

    def message(self) -> str:
        """Returns one line for a warning: the p-value and the three features furthest out."""
        worst = ", ".join(f"{f['feature']} (z {f['z']:+.3g}; {f['z_conditional']:+.3g} given the other features)"
                          for f in self.furthest(3))
        return (f"the data's features lie outside the training simulations' (p = {self.p_value:.3g} < "
                f"{self.alpha:g}): the model, prior or noise cannot produce data like these and the posterior may "
                f"be confidently wrong; furthest out: {worst}")


def _number(value) -> float | None:
    """A float for JSON (None for NaN, ±1e308 for ±inf)."""
    value = float(value)
    return None if np.isnan(value) else float(np.clip(value, -1e308, 1e308))


def _robust_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, scale) per column: 1.4826 * MAD, else the SD, else a tiny fraction of the median's size (a
    constant feature: any other value is far out)."""
    center = np.median(x, axis=0)
    scale = 1.4826 * np.median(np.abs(x - center), axis=0)
    scale = np.where(scale > 0, scale, x.std(axis=0))
    return center, np.where(scale > 0, scale, 1e-9 * np.maximum(np.abs(center), 1e-300))


def _whitening(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W, mean): matrix W (n_features, n_features) whitening robust z-scores ``z`` (n, n_features) by the
    covariance of their winsorized values (eigenvalues floored at 1e-12 of the largest; W @ W.T is its
    inverse), and their winsorized mean (n_features,). The identity and zero when there are fewer than 10
    rows per feature (the covariance would be noise)."""
    d = z.shape[1]
    if d == 1 or z.shape[0] < 10 * d:
        return np.eye(d), np.zeros(d)
    clipped = np.clip(z, -_WINSOR, _WINSOR)
    evals, evecs = np.linalg.eigh(np.atleast_2d(np.cov(clipped, rowvar=False)))
    evals = np.maximum(evals, 1e-12 * max(evals.max(), 1e-300))
    return evecs / np.sqrt(evals), clipped.mean(axis=0)


def _nearest(query: np.ndarray, reference: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    """Mean distance of each row of ``query`` to its k nearest rows of ``reference`` → (n_query,)."""
    mean = np.empty(len(query))
    rr = np.einsum("ij,ij->i", reference, reference)
    for s in range(0, len(query), block):
        q = query[s:s + block]
        d2 = np.maximum(np.einsum("ij,ij->i", q, q)[:, None] + rr[None] - 2 * q @ reference.T, 0)
        mean[s:s + block] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k]).mean(axis=1)
    return mean


def misspecification_test(x_o, x, names=None, alpha: float = MISSPECIFICATION_ALPHA,
                          k: int = MISSPECIFICATION_NEIGHBOURS, seed: int = 0, max_reference: int = 4000,
                          max_calibration: int = 2000) -> MisspecificationResult:
    """Whether the data's features ``x_o`` (n_features,) lie within the distribution of the training
    simulations' features ``x`` (n_simulations, n_features; rows with NaN/inf left out); names: one per
    feature. Returns a ``MisspecificationResult``.

    Test (split-conformal outlier detection): the valid simulations are split at random (``seed``) into a
    reference half (at most ``max_reference`` rows) and a held-out half (at most ``max_calibration``).
    Features are made robust z-scores (median, 1.4826 * MAD of the reference) and whitened by the reference's
    (winsorized) covariance; the statistic of a point is its mean distance to its ``k`` nearest reference
    simulations - large off the set of features the model produces, whether beyond its range or in a gap
    or beside a thin (noise-free) manifold of it. p = (1 + number of held-out simulations whose statistic is
    at least the data's) / (n_held_out + 1); the verdict is "fail" at p < ``alpha``. Under the null
    hypothesis - the data's features are distributed like the simulations' (data from the model with
    parameters from the prior and the same noise) - the data and the held-out simulations are exchangeable,
    so the false-alarm rate is at most ``alpha`` (1 %) whatever the features' distribution. With fewer than
    1/alpha - 1 held-out simulations no p-value can be below alpha (verdict "untested"). The features
    furthest out are ranked by their z-scores (see ``MisspecificationResult``); they name the suspects, the
    p-value alone decides.
    """
    x_o = np.asarray(x_o, dtype=np.float64).reshape(-1)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] != x_o.size:
        raise InferenceError(f"misspecification_test: x has {x.shape[1]} features, x_o {x_o.size}")
    names = list(names) if names is not None else [f"x{j}" for j in range(x_o.size)]
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 4:
        raise InferenceError(f"misspecification_test: {x.shape[0]} valid training simulations; need at least 4")
    order = np.random.default_rng([int(seed), _SPLIT_STREAM]).permutation(x.shape[0])
    half = x.shape[0] // 2
    reference, held_out = x[order[:min(half, max_reference)]], x[order[half:half + max_calibration]]
    k = max(1, min(int(k), reference.shape[0] - 1))
    center, scale = _robust_scale(reference)
    w, mean = _whitening((reference - center) / scale)

    def embed(values):
        return ((values - center) / scale) @ w

    ref = embed(reference)
    held = _nearest(embed(held_out), ref, k)
    (stat,) = _nearest(embed(x_o[None]), ref, k)
    p_value = (1 + int(np.sum(held >= stat))) / (held.size + 1)
    all_center, all_scale = _robust_scale(x)
    precision = w @ w.T
    conditional = precision @ ((x_o - center) / scale - mean) / np.sqrt(np.diag(precision))
    return MisspecificationResult(float(stat), float(p_value), float(alpha), int(reference.shape[0]),
                                  int(held.size), names, (x_o - all_center) / all_scale, conditional)


# --- posterior predictive check of the features ------------------------------------------------------

@dataclass
class PredictiveCheck:
    """Features of simulations at posterior draws (the posterior predictive) against the data's.

    names: the features; observed: the data's (n_features,); predicted: the valid simulations'
    (n_simulations, n_features), observation noise included; n_invalid: simulations left out (NaN/inf
    features); level: the central predictive interval reported (0.9)."""

    names: list
    observed: np.ndarray
    predicted: np.ndarray
    n_invalid: int = 0
    level: float = 0.9

    @property
    def p_values(self) -> np.ndarray:
        """Two-sided predictive p-value per feature (n_features,): 2 * min(F, 1 - F), F = the fraction of
        simulated values below the observed one (ties count half), at most 1; 0 when the data lie beyond
        every simulation."""
        below = (self.predicted < self.observed).sum(axis=0) + 0.5 * (self.predicted == self.observed).sum(axis=0)
        f = below / max(self.predicted.shape[0], 1)
        return np.minimum(1.0, 2 * np.minimum(f, 1 - f))

    @property
    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the central ``level`` predictive interval per feature, each (n_features,)."""
        return tuple(np.quantile(self.predicted, [(1 - self.level) / 2, (1 + self.level) / 2], axis=0))

    @property
    def inside(self) -> np.ndarray:
        """Per feature, whether the observed value lies in the central ``level`` interval (n_features,) bool."""
        low, high = self.interval
        return (low <= self.observed) & (self.observed <= high)

    def to_dict(self) -> dict:
        """Returns a JSON-ready dict: simulations, invalid ones, level, the smallest p-value, the number of
        features outside their interval, and per feature the observed value, the predictive median and
        interval, whether the data lie inside, the p-value."""
        low, high = self.interval
        median, p, inside = np.median(self.predicted, axis=0), self.p_values, self.inside
        return {"n_simulations": int(self.predicted.shape[0] + self.n_invalid), "n_invalid": int(self.n_invalid),
                "level": self.level, "min_p_value": float(p.min()), "n_outside": int((~inside).sum()),
                "features": {n: {"observed": float(self.observed[j]), "median": float(median[j]),
                                 "low": float(low[j]), "high": float(high[j]), "inside": bool(inside[j]),
                                 "p_value": float(p[j])} for j, n in enumerate(self.names)}}


#: Seconds the predictive check's rejection sampling (draws outside the prior are rejected) may take.
PREDICTIVE_SAMPLING_TIME = 120.0


def predictive_check(inferencer, n: int = 100, seed: int | None = None, level: float = 0.9,
                     samples=None) -> PredictiveCheck:
    """Posterior predictive check of an Inferencer's features: ``n`` posterior draws given the data, each
    simulated with the inferencer's observation noise (draws and noise seeded by ``seed``; default: the
    inferencer's seed + 2), features compared with the data's. samples: posterior samples already drawn
    (n_samples, n_parameters) SI, whose first ``n`` rows are used instead of new draws. Returns a
    ``PredictiveCheck``; its level: the central predictive interval reported (0.9). InferenceError when the
    posterior's draws fall outside the prior for PREDICTIVE_SAMPLING_TIME seconds (a posterior that has left
    the prior: the data are likely misspecified)."""
    from sbi.inference.posteriors.direct_posterior import DirectPosterior

    from .inferencer import PREDICTIVE_SEED_OFFSET, _draw
    if int(n) < 1:
        raise InferenceError(f"n = {n}: must be a positive number of posterior draws")
    if not 0 < level < 1:
        raise InferenceError(f"level = {level}: must be between 0 and 1 (e.g. 0.9)")
    seed = inferencer.seed + PREDICTIVE_SEED_OFFSET if seed is None else int(seed)
    if samples is not None:
        theta = np.atleast_2d(np.asarray(samples, dtype=np.float64))[:int(n)]
    else:
        posterior = inferencer._posterior()
        limit = {"max_sampling_time": PREDICTIVE_SAMPLING_TIME} if isinstance(posterior, DirectPosterior) else {}
        try:
            theta = _draw(posterior, (int(n),), seed, x=inferencer.x_o, **limit)
        except RuntimeError as err:
            if "max_sampling_time" not in str(err):
                raise
            raise InferenceError(f"predictive check: the posterior given the data lies (almost) entirely outside "
                                 f"the prior (no draw accepted in {PREDICTIVE_SAMPLING_TIME:g} s); the model "
                                 f"likely cannot produce data like these (check_misspecification)") from None
    x = inferencer.extract_summary_statistics(theta, seed=seed)
    ok = np.all(np.isfinite(x), axis=1)
    if not ok.any():
        raise InferenceError(f"predictive check: all {n} simulations at posterior draws are invalid (NaN/inf "
                             f"features)")
    return PredictiveCheck(list(inferencer.feature_names), np.asarray(inferencer.x_o, dtype=np.float64), x[ok],
                           int((~ok).sum()), float(level))


def plot_predictive_check(result: PredictiveCheck, units: dict | None = None, max_panels: int = 24) -> Figure:
    """One panel per feature of ``result`` (a ``PredictiveCheck``): histogram of the posterior predictive, its
    central interval (shaded) and the data's value (line), titled with the p-value. units: feature name → SI
    unit name ("volt", "second"), shown with a prefix; at most ``max_panels`` panels (the features with the
    smallest p-values, in feature order). Returns the Figure."""
    units = units or {}
    p = result.p_values
    shown = np.sort(np.argsort(p, kind="stable")[:max_panels])
    cols = min(4, shown.size)
    rows = -(-shown.size // cols)
    fig = Figure(figsize=(2.9 * cols, 2.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    low, high = result.interval
    for ax, j in zip(axes, shown):
        values = np.concatenate([result.predicted[:, j], [result.observed[j]]])
        unit, factor = unit_for(values, units.get(result.names[j]))
        ax.axvspan(low[j] * factor, high[j] * factor, color="0.9", label=f"{result.level:.0%} interval")
        ax.hist(result.predicted[:, j] * factor, bins=20, color="C0", alpha=0.8, label="predictive")
        ax.axvline(result.observed[j] * factor, color="C3" if p[j] < 1 - result.level else DATA_COLOR, lw=2,
                   label="data")
        ax.set_title(f"{result.names[j]}: p = {p[j]:.2g}", fontsize=8)
        ax.set_xlabel(unit, fontsize=8)
        ax.set_yticks([])
        ax.locator_params(axis="x", nbins=4)
        ax.tick_params(labelsize=7)
    for ax in axes[shown.size:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, frameon=False)
    fig.suptitle(f"posterior predictive check of the features ({result.predicted.shape[0]} simulations; "
                 f"red: data outside the central {result.level:.0%})", fontsize=10)
    return fig
