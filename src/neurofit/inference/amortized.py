"""Amortized population inference: one posterior for every cell recorded with the same protocol.

Cells recorded with one protocol (the same input traces - a sample sheet's group) share one set of training
simulations and one amortized posterior: an ``Inferencer`` trained once, in one round (``infer(n_rounds=1)``,
the posterior valid for any data of the protocol). Each cell then costs its features, the misspecification
check and the posterior draws - well under a second - instead of a training::

    noise = pooled_noise(cells, dt, inputs)        # the group's observation noise (pooled baseline estimate)
    inferencer = Inferencer(dt, model, inputs, next(iter(cells.values())), features=..., noise=noise, seed=0)
    inferencer.infer(n_samples=5000, gl=["5 nS", "50 nS"], C=["50 pF", "300 pF"], El=["-80 mV", "-60 mV"])
    population = infer_population(inferencer, cells, n_samples=1000)
    population.to_csv("population.csv")           # one row per cell; same inputs -> same bytes
    population.samples["cell_07"]                  # (1000, n_parameters) SI

Each cell's features come from the inferencer's own feature pipeline (``Inferencer.features_of``, what
``x_o`` is for the inferencer's data). Observation noise across cells: the training simulations carry one
noise SD per output, and a posterior is calibrated for cells whose noise is that SD. ``pooled_noise`` gives
the group's estimate - every cell's pre-stimulus baseline pooled into one robust estimate
(``estimate_noise_sd``: the median absolute deviation of all residuals, so a few noisier cells move it
little) - to pass as the Inferencer's ``noise``. (``noise="auto"`` would estimate it from the one recording
the Inferencer is built with.) Each cell's own estimate is reported next to its posterior
(``noise_sd.<output>``): a cell much noisier than the training noise gets a posterior that is too narrow,
and usually fails the misspecification check.

The draws of a cell are seeded by (seed, the cell's id) - the same for a cell whatever the other cells are
- and equal ``inferencer.sample(n_samples, x=features, seed=population.seeds[cell])``.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .features import SPIKES
from .inferencer import InferenceError, MisspecificationWarning, _draw, estimate_noise_sd

#: Seconds a cell's posterior draws may take; beyond, its row gets no quantiles (n_samples 0): a posterior
#: whose mass lies almost entirely outside the prior, as for data the model cannot produce.
MAX_SAMPLING_TIME = 60.0
#: Quantiles of the population table, with their column suffixes.
QUANTILES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}
_CELL_STREAM = 0x63656C6C  # keeps the cells' draws apart from other uses of the seed


@dataclass
class PopulationPosteriors:
    """What ``infer_population`` returns: per cell its posterior samples and misspecification check, and the
    population table.

    table: pandas DataFrame, one row per cell in the order given - ``cell``; per parameter ``<p>.mean``,
    ``<p>.q05``, ``<p>.q50``, ``<p>.q95`` (SI); ``misspecification.statistic``, ``.p_value``, ``.verdict``
    ("pass", "fail", or "untested": too few held-out simulations, or no training data as after
    ``load_posterior``); ``noise_sd.<output>`` (the cell's own baseline noise estimate, SI; NaN without a
    baseline or when given features); ``n_samples`` (draws made; 0 when they timed out). No timings, so
    the table of the same inputs is the same. samples: cell → (n_samples, n_parameters) SI; features: cell →
    (n_features,); misspecification: cell → ``MisspecificationResult`` (None without training data); seeds:
    cell → seed of its draws; seconds: cell → wall time of its features, check and draws (s);
    param_names / feature_names: column orders.
    """

    table: object
    samples: dict
    features: dict
    misspecification: dict
    seeds: dict
    seconds: dict = field(default_factory=dict)
    param_names: list = field(default_factory=list)
    feature_names: list = field(default_factory=list)

    @property
    def seconds_per_cell(self) -> float:
        """Mean wall time per cell (s): features, misspecification check and posterior draws."""
        return float(np.mean(list(self.seconds.values()))) if self.seconds else float("nan")

    @property
    def failed(self) -> list:
        """Ids of the cells whose misspecification check failed (in table order)."""
        return [c for c, v in zip(self.table["cell"], self.table["misspecification.verdict"]) if v == "fail"]

    def to_csv(self, path=None) -> str:
        """The population table as CSV text (10 significant digits, '\\n' line ends: the same results give the
        same bytes); path: also written there (atomically) when given. Returns the text."""
        text = self.table.to_csv(index=False, float_format="%.10g", lineterminator="\n")
        if path is not None:
            from ..data.files import atomic_write_text
            atomic_write_text(path, text)
        return text

    def samples_frame(self):
        """Every cell's samples in one long pandas DataFrame: ``cell``, ``draw`` (0 .. n-1) and one column
        per parameter (SI) - e.g. for parquet. Returns the DataFrame."""
        import pandas as pd
        frames = [pd.DataFrame({"cell": cell, "draw": np.arange(len(s)),
                                **{p: s[:, k] for k, p in enumerate(self.param_names)}})
                  for cell, s in self.samples.items()]
        return pd.concat(frames, ignore_index=True) if frames else \
            pd.DataFrame(columns=["cell", "draw", *self.param_names])

    def coverage(self, truth: dict, levels=(0.5, 0.9)) -> np.ndarray:
        """Empirical coverage of central credible intervals, for synthetic cells of known parameters.

        truth: cell → true parameters, (n_parameters,) SI in ``param_names`` order or {parameter: value};
        levels: credibility levels. Returns an array (n_levels, n_parameters): the share of these cells
        whose true value lies in the central interval of their samples."""
        from .diagnostics import empirical_coverage
        cells = list(truth)
        theta = np.array([[truth[c][p] for p in self.param_names] if isinstance(truth[c], dict) else truth[c]
                          for c in cells], dtype=np.float64)
        return empirical_coverage(np.stack([self.samples[c] for c in cells]), theta, levels)


def cell_seed(seed: int, cell) -> int:
    """The seed of cell ``cell``'s draws: from (``seed``, sha256 of the cell id as text), so it depends on the
    cell alone, not on the other cells or their order. Returns a non-negative int below 2**32."""
    digest = int.from_bytes(hashlib.sha256(str(cell).encode("utf-8")).digest()[:8], "little")
    return int(np.random.SeedSequence([int(seed), _CELL_STREAM, digest]).generate_state(1)[0])


def _traces(recording) -> dict:
    """The outputs of one cell's recording: a mapping {output: array}, or an object with ``outputs`` (a
    ``neurofit`` Dataset; its ``spikes`` used when it holds one train list)."""
    if hasattr(recording, "outputs"):
        out = dict(recording.outputs)
        spikes = getattr(recording, "spikes", None) or {}
        if len(spikes) == 1:
            out[SPIKES] = next(iter(spikes.values()))
        return out
    return dict(recording)


def _check_inputs(inferencer, cell, recording) -> None:
    inputs = getattr(recording, "inputs", None)
    if inputs is None:
        return
    dt = getattr(recording, "dt", inferencer.dt)
    same = np.isclose(dt, inferencer.dt, rtol=1e-9, atol=0) and all(
        k in inputs and np.shape(inputs[k]) == v.shape and np.allclose(inputs[k], v, rtol=1e-9, atol=0)
        for k, v in inferencer.input.items())
    if not same:
        raise InferenceError(f"cell {cell!r}: recorded with other input traces (or dt) than the inferencer's; cells "
                             f"sharing an amortized posterior need the same protocol")


def pooled_noise(recordings: dict, dt: float, inputs: dict, outputs=None) -> dict:
    """The observation noise of a group of cells recorded with one protocol, for the Inferencer's ``noise``.

    recordings: cell → {output: (n_traces, n_steps)} SI (or a Dataset, its ``outputs``); dt: sampling interval
    (s); inputs: {input: (n_traces, n_steps)}, the protocol shared by the cells (the baselines are the samples
    before each trace's stimulus); outputs: the trace outputs to estimate (default: every output of the first
    cell but spikes). Every cell's traces are stacked and ``estimate_noise_sd`` pools their baseline
    residuals into one robust estimate per output. Returns {output: SD} (SI).
    """
    cells = {c: _traces(r) for c, r in recordings.items()}
    if not cells:
        raise InferenceError("pooled_noise: no recordings")
    names = list(outputs) if outputs is not None else [v for v in next(iter(cells.values())) if v != SPIKES]
    inputs = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}
    found = {}
    for var in names:
        missing = [c for c, out in cells.items() if var not in out]
        if missing:
            raise InferenceError(f"pooled_noise: cell {missing[0]!r} has no output {var!r}")
        stack = np.concatenate([np.atleast_2d(np.asarray(out[var], dtype=np.float64)) for out in cells.values()])
        found[var] = estimate_noise_sd(stack, dt, {k: np.tile(v, (len(cells), 1)) for k, v in inputs.items()},
                                       name=f"noise['{var}']")
    return found


def infer_population(inferencer, recordings: dict, n_samples: int = 1000, seed: int | None = None,
                     max_sampling_time: float = MAX_SAMPLING_TIME, warn: bool = True) -> PopulationPosteriors:
    """Per-cell posteriors from one amortized posterior: features, misspecification check and ``n_samples``
    draws for every cell of a group recorded with the inferencer's protocol, and the population table.

    inferencer: an ``Inferencer`` with a one-round posterior (``infer(n_rounds=1)``, or ``load_posterior`` -
    then ``load_summary_statistics`` restores the training features the misspecification check needs; a
    multi-round posterior is only valid at the data it was focused on and is refused); recordings: cell id →
    the cell's recording under the inferencer's input traces - {output: (n_traces, n_steps)} SI (with
    ``"spikes"`` → spike times per trace when spike features are used), a Dataset (its inputs and dt
    must equal the inferencer's), or the cell's features, an array (n_features,); n_samples: draws per
    cell; seed: base seed of the draws (default: the inferencer's ``seed``; each cell's is ``cell_seed(seed,
    cell)``); max_sampling_time: seconds a cell's draws may take (direct NPE sampling; then its row has no
    quantiles); warn: issue one ``MisspecificationWarning`` naming the cells whose check failed. Returns a
    ``PopulationPosteriors`` (the table, samples, checks, seeds and the per-cell wall times).
    """
    import pandas as pd
    from sbi.inference.posteriors.direct_posterior import DirectPosterior
    posterior = inferencer._posterior()
    if inferencer._round > 1:
        raise InferenceError(f"infer_population: the posterior was trained in {inferencer._round} rounds, focused on "
                             f"one recording; amortized population inference needs a one-round posterior "
                             f"(infer(n_rounds=1))")
    if int(n_samples) < 1:
        raise InferenceError(f"n_samples = {n_samples}: must be a positive number of draws")
    seed = inferencer.seed if seed is None else int(seed)
    limit = {"max_sampling_time": float(max_sampling_time)} if isinstance(posterior, DirectPosterior) else {}
    names, n_features = list(inferencer.param_names), len(inferencer.feature_names)
    noise_vars = list(inferencer.noise)
    rows, samples, features, checks, seeds, seconds = [], {}, {}, {}, {}, {}
    for cell, recording in recordings.items():
        start = time.perf_counter()
        noise_sd = dict.fromkeys(noise_vars, float("nan"))
        if isinstance(recording, np.ndarray) and recording.ndim == 1:
            if recording.size != n_features:
                raise InferenceError(f"cell {cell!r}: {recording.size} features given; the inferencer has "
                                     f"{n_features}")
            x = np.asarray(recording, dtype=np.float64)
        else:
            _check_inputs(inferencer, cell, recording)
            output = _traces(recording)
            try:
                x = inferencer.features_of(output)
            except InferenceError as err:
                raise InferenceError(f"cell {cell!r}: {err}") from None
            for var in noise_vars:
                try:
                    noise_sd[var] = estimate_noise_sd(output[var], inferencer.dt, inferencer.input)
                except InferenceError:  # no baseline to estimate from
                    pass
        check = inferencer.check_misspecification(x, warn=False)
        seeds[cell] = cell_seed(seed, cell)
        try:
            drawn = _draw(posterior, (int(n_samples),), seeds[cell], x=x, **limit)
        except RuntimeError as err:
            if "max_sampling_time" not in str(err):
                raise
            drawn = np.full((0, len(names)), np.nan)
        seconds[cell] = time.perf_counter() - start
        samples[cell], features[cell], checks[cell] = drawn, x, check
        row = {"cell": cell}
        for k, p in enumerate(names):
            column = drawn[:, k]
            row[f"{p}.mean"] = float(column.mean()) if column.size else float("nan")
            for suffix, q in QUANTILES.items():
                row[f"{p}.{suffix}"] = float(np.quantile(column, q)) if column.size else float("nan")
        row["misspecification.statistic"] = float("nan") if check is None else check.statistic
        row["misspecification.p_value"] = float("nan") if check is None else check.p_value
        row["misspecification.verdict"] = "untested" if check is None else check.verdict
        row.update({f"noise_sd.{var}": sd for var, sd in noise_sd.items()})
        row["n_samples"] = int(drawn.shape[0])
        rows.append(row)
    columns = ["cell", *[f"{p}.{s}" for p in names for s in ("mean", *QUANTILES)], "misspecification.statistic",
               "misspecification.p_value", "misspecification.verdict", *[f"noise_sd.{v}" for v in noise_vars],
               "n_samples"]
    result = PopulationPosteriors(pd.DataFrame(rows, columns=columns), samples, features, checks, seeds, seconds,
                                  names, list(inferencer.feature_names))
    failed = result.failed
    timed_out = [c for c, s in samples.items() if s.shape[0] == 0]
    if warn and failed:
        warnings.warn(f"{len(failed)} of {len(rows)} cells lie outside the training simulations' features "
                      f"(misspecification check failed): {', '.join(map(str, failed[:10]))}"
                      f"{' ...' if len(failed) > 10 else ''}; their posteriors may be confidently wrong",
                      MisspecificationWarning, stacklevel=2)
    if warn and timed_out:
        warnings.warn(f"no posterior draws within {max_sampling_time:g} s for {', '.join(map(str, timed_out[:10]))}: "
                      f"their posterior lies (almost) entirely outside the prior", MisspecificationWarning,
                      stacklevel=2)
    return result
