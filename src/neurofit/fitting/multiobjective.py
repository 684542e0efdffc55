"""Multi-objective fitting: a Pareto front of parameter sets, one objective per feature or per protocol.

``fit_pareto(fitter, objectives, ...)`` runs NSGA-II (pymoo's, seeded) with the fitter's ``n_samples`` as the
population: each generation's candidates are simulated on all traces in ONE batch (the fitter's own
simulation) and every objective is computed from that batch. ``pareto_search`` is the same loop on any
vectorised function of the parameters (used for tests without a model).

Objectives are named: name → metric (on every output and trace of the fitter), or name → (metric, selection)
with the selection an output variable ("v"), a trace index or list of indices (one protocol), or a dict
``{"output": ..., "traces": [...], "feature": ...}``; ``Objective`` says the same explicitly and
``per_feature`` splits a ``FeatureMetric`` into one objective per eFEL feature.

The result (``ParetoResult``) holds every evaluated candidate (``history``), the non-dominated ``front`` among
them, a ``hall_of_fame`` and the ``compromise``, chosen by the rule of ``compromise_scores``: the lowest maximum
over the objectives of the objective normalised by its range over the front ((f - min) / (max - min), both over
the front), or by given ``scales`` (f / scale: the lowest maximum z-score when the objectives are feature
differences and the scales their standard deviations). ``to_dict`` is its JSON-ready form; the same seed gives
the same bytes.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .bounds import BoundsError, parse_bounds
from .fitters import FitError, Fitter, SpikeFitter
from .metrics import FeatureMetric, SpikeMetric, trace_lengths

__all__ = ["Objective", "ParetoResult", "fit_pareto", "pareto_search", "objective_values", "per_feature",
           "non_dominated", "compromise_scores", "compromise_index", "RESULT_FORMAT", "RESULT_VERSION", "PENALTY"]

#: ``ParetoResult.to_dict()``'s format name and version.
RESULT_FORMAT = "neurofit.pareto_fit"
RESULT_VERSION = 1
#: Objective value told to NSGA-II for NaN/inf (a diverged simulation); the history keeps the inf.
PENALTY = 1e20
#: Column names of the history that objectives and parameters may not take.
RESERVED = ("generation", "score", "on_front")


# --- objectives ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """One objective of a Pareto fit: a metric on a selection of the fitter's recordings.

    metric: a trace metric (``MSEMetric``, ``FeatureMetric``, ``SpikeTraceMetric``, ...) for a TraceFitter, a
    ``SpikeMetric`` (e.g. ``GammaFactor``) for a SpikeFitter; output: the recorded variable compared (None:
    every output, their errors summed, as ``fit`` does); traces: indices of the traces compared, e.g. the
    sweeps of one protocol (None: all); feature: one eFEL feature of a ``FeatureMetric`` (None: the metric's
    whole feature list).
    """

    metric: object
    output: str | None = None
    traces: tuple | None = None
    feature: str | None = None


def per_feature(metric: FeatureMetric, traces=None, prefix: str = "") -> dict:
    """One objective per feature of a ``FeatureMetric``: name (``prefix + feature``) → ``Objective``.

    metric: the FeatureMetric whose ``feat_list`` is split (each objective keeps the feature's weight);
    traces: trace indices every objective compares (None: all traces); prefix: put before each feature's
    name, e.g. "step1:" when one protocol's features are split. Returns a dict name → Objective, in the
    order of ``feat_list``. Raises FitError when ``metric`` is not a FeatureMetric.
    """
    if not isinstance(metric, FeatureMetric):
        raise FitError(f"per_feature needs a FeatureMetric, not {type(metric).__name__}")
    return {f"{prefix}{name}": Objective(metric, traces=None if traces is None else tuple(traces), feature=name)
            for name in metric.feat_list}


def _one_feature(metric: FeatureMetric, name: str) -> FeatureMetric:
    """A copy of ``metric`` that compares the feature ``name`` only, with its weight."""
    single = copy.copy(metric)
    single.feat_list = [name]
    single.weights = {name: metric.weights[name]}
    return single


def _as_objective(name, spec) -> Objective:
    """An objective's spec (metric, (metric, selection), {"metric": ...} or Objective) → Objective."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "metric" not in spec:
            raise FitError(f"objective '{name}': a dict needs 'metric' (and optionally output, traces, feature)")
        metric = spec.pop("metric")
        return _as_objective(name, (metric, spec))
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise FitError(f"objective '{name}': expected a metric or (metric, selection), got {len(spec)} items")
        metric, selection = spec
        if selection is None:
            return Objective(metric)
        if isinstance(selection, str):
            return Objective(metric, output=selection)
        if isinstance(selection, (int, np.integer)):
            return Objective(metric, traces=(int(selection),))
        if isinstance(selection, Mapping):
            unknown = sorted(set(selection) - {"output", "traces", "feature"})
            if unknown:
                raise FitError(f"objective '{name}': unknown selection key(s) {', '.join(unknown)} "
                               f"(valid: output, traces, feature)")
            traces = selection.get("traces")
            if isinstance(traces, (int, np.integer)):
                traces = (int(traces),)
            return Objective(metric, output=selection.get("output"),
                             traces=None if traces is None else tuple(traces), feature=selection.get("feature"))
        return Objective(metric, traces=tuple(selection))
    return Objective(spec)


def _objectives(fitter: Fitter, objectives: Mapping) -> dict:
    """Checked objectives of a fit: name → Objective with the feature split off and the traces as an int array."""
    if not isinstance(objectives, Mapping) or len(objectives) < 2:
        raise FitError("objectives must be a dict of at least two named objectives, e.g. {'hyperpolarising': "
                       "(MSEMetric(), [0]), 'depolarising': (MSEMetric(), [1])}; one objective: use fit()")
    checked = {}
    for name, spec in objectives.items():
        if not isinstance(name, str) or not name or name in RESERVED or name in fitter.parameter_names:
            raise FitError(f"objective name {name!r}: must be a non-empty string other than "
                           f"{', '.join(RESERVED)} and the parameter names")
        objective = _as_objective(name, spec)
        metric = objective.metric
        if not callable(getattr(metric, "calc", None)):
            raise FitError(f"objective '{name}': {type(metric).__name__} is not a metric (no calc method)")
        if isinstance(fitter, SpikeFitter):
            if not isinstance(metric, SpikeMetric):
                raise FitError(f"objective '{name}': a SpikeFitter needs a SpikeMetric (e.g. GammaFactor), "
                               f"not {type(metric).__name__}")
            if objective.output not in (None, "spikes"):
                raise FitError(f"objective '{name}': a SpikeFitter's only output is 'spikes'")
        else:
            if isinstance(metric, SpikeMetric):
                raise FitError(f"objective '{name}': {type(metric).__name__} compares spike trains, which a "
                               f"TraceFitter does not have; use SpikeTraceMetric or a SpikeFitter")
            if objective.output is not None and objective.output not in fitter.output:
                raise FitError(f"objective '{name}': output '{objective.output}' is not recorded "
                               f"(outputs: {', '.join(fitter.output)})")
        if objective.feature is not None:
            if not isinstance(metric, FeatureMetric) or objective.feature not in metric.feat_list:
                raise FitError(f"objective '{name}': feature '{objective.feature}' needs a FeatureMetric "
                               f"whose feat_list has it")
            metric = _one_feature(metric, objective.feature)
        traces = None
        if objective.traces is not None:
            traces = np.asarray(objective.traces)
            if (traces.ndim != 1 or traces.size == 0 or traces.dtype.kind not in "iu" or traces.min() < 0
                    or traces.max() >= fitter.n_traces or np.unique(traces).size != traces.size):
                raise FitError(f"objective '{name}': traces must be distinct indices 0 .. {fitter.n_traces - 1}, "
                               f"got {list(objective.traces)}")
            traces = traces.astype(np.int64)
        checked[name] = Objective(metric, objective.output, traces, None)
    return checked


class _FitterObjectives:
    """The objectives of a fitter's candidates: one batched simulation, then every objective from it."""

    def __init__(self, fitter: Fitter, objectives: Mapping):
        self.fitter = fitter
        self.objectives = _objectives(fitter, objectives)
        self.names = list(self.objectives)
        self.spiking = isinstance(fitter, SpikeFitter)
        self.wants_spikes = self.spiking or any(getattr(o.metric, "needs_spikes", False)
                                                for o in self.objectives.values())
        self._data_spikes = {}  # (objective name, output) -> recorded spike trains of its traces

    def __call__(self, candidates: list, iteration: int) -> np.ndarray:
        """(n_candidates, n_objectives) values of ``candidates`` (dicts name → SI float); inf where diverged."""
        fitter = self.fitter
        # the fitter's private batch simulation, as its own _errors uses it (no public hook on Fitter yet)
        res = fitter._simulate(fitter._param_arrays(candidates, iteration), spikes=self.wants_spikes)
        spikes = fitter._within_lengths(res.spikes) if self.wants_spikes else None
        penalty = fitter._penalty(res)
        values = np.empty((len(candidates), len(self.names)))
        for j, (name, objective) in enumerate(self.objectives.items()):
            if self.spiking:
                column = self._spike_objective(objective, spikes)
            else:
                column = self._trace_objective(name, objective, res, spikes)
            values[:, j] = np.asarray(column, dtype=np.float64) + penalty
        values[res.invalid_sets] = np.inf
        return np.where(np.isnan(values), np.inf, values)

    def _spike_objective(self, objective: Objective, spikes: list) -> np.ndarray:
        fitter, rows = self.fitter, objective.traces
        data = fitter.output_spikes
        if rows is not None:
            spikes = [[one_set[i] for i in rows] for one_set in spikes]
            data = [data[i] for i in rows]
        return objective.metric.calc(spikes, data, fitter.dt)

    def _trace_objective(self, name: str, objective: Objective, res, spikes) -> np.ndarray:
        fitter, rows, metric = self.fitter, objective.traces, objective.metric
        outputs = [objective.output] if objective.output is not None else list(fitter.output)
        lengths = fitter.lengths
        if rows is not None and lengths is not None:
            lengths = trace_lengths(lengths[rows], (rows.size, fitter.n_steps))
        total = 0.0
        for var in outputs:
            data, model = fitter.output[var], res.traces[var]
            if rows is not None:
                data, model = data[rows], model[:, rows]
            if getattr(metric, "needs_spikes", False):
                key = (name, var)
                if key not in self._data_spikes:
                    self._data_spikes[key] = metric.data_spikes(data, fitter.dt, lengths)
                chosen = spikes if rows is None else [[one_set[i] for i in rows] for one_set in spikes]
                errors = metric.calc(model, chosen, data, self._data_spikes[key], fitter.dt, lengths=lengths)
            elif lengths is None:
                errors = metric.calc(model, data, fitter.dt)
            else:
                errors = metric.calc(model, data, fitter.dt, lengths=lengths)
            total = total + np.asarray(errors, dtype=np.float64)
        return total


def objective_values(fitter: Fitter, objectives: Mapping, params, iteration: int = 0) -> np.ndarray:
    """The objectives of parameter sets, computed as ``fit_pareto`` does (one batched simulation).

    fitter: a TraceFitter or SpikeFitter (its data, simulation settings and ``penalty``, which is added to
    every objective); objectives: name → objective, as for ``fit_pareto``; params: a list of dicts (parameter
    name → SI float, every parameter) or a dict name → (n,) array of SI values; iteration: the value of a
    model's ``iteration`` variable. Returns an (n_sets, n_objectives) float array, columns in the order of
    ``objectives``, inf for a diverged simulation. Raises FitError for bad objectives or a missing parameter.
    """
    evaluator = _FitterObjectives(fitter, objectives)
    return evaluator(_candidates(params, fitter.parameter_names), iteration)


def _candidates(params, names: list) -> list:
    """Parameter sets as a list of dicts name → float (from such a list or a dict of arrays)."""
    if isinstance(params, Mapping):
        missing = [p for p in names if p not in params]
        if missing:
            raise FitError(f"params: missing {', '.join(missing)}")
        columns = [np.atleast_1d(np.asarray(params[p], dtype=np.float64)) for p in names]
        return [dict(zip(names, map(float, row))) for row in zip(*columns)]
    out = []
    for row in params:
        missing = [p for p in names if p not in row]
        if missing:
            raise FitError(f"params: missing {', '.join(missing)}")
        out.append({p: float(row[p]) for p in names})
    return out


# --- fronts and the compromise rule -----------------------------------------------------------
def non_dominated(values) -> np.ndarray:
    """Which rows of ``values`` no other row dominates (minimisation).

    values: (n, m) objective values; a row with NaN/inf is never non-dominated. Row a dominates row b when it
    is <= in every objective and < in one; equal rows do not dominate each other (both are kept). Returns an
    (n,) bool array.
    """
    F = np.asarray(values, dtype=np.float64)
    F = F.reshape(len(F), -1)
    keep = np.zeros(len(F), dtype=bool)
    idx = np.flatnonzero(np.isfinite(F).all(axis=1))
    # in lexicographic order no row is dominated by a later one: compare each row with the front so far only
    order = idx[np.lexsort(tuple(F[idx, j] for j in reversed(range(F.shape[1]))))]
    front = np.empty((len(order), F.shape[1]))
    size = 0
    for i in order:
        f, so_far = F[i], front[:size]
        if not ((so_far <= f).all(axis=1) & (so_far < f).any(axis=1)).any():
            front[size] = f
            size += 1
            keep[i] = True
    return keep


def compromise_scores(values, front=None, scales=None) -> tuple:
    """The compromise rule's scores of every row of ``values``: the maximum over objectives of the
    normalised objective (lower is better; the compromise is the front's row with the lowest score).

    Normalisation: without ``scales``, (f - min) / (max - min) with min and max over the front, so 0 is the
    front's best and 1 its worst value of each objective (an objective constant over the front is divided by
    its absolute value, or 1 when that is 0); with ``scales``, f / scale (e.g. the standard deviation of each
    feature: the score is then the largest z-score).

    values: (n, m) objective values; front: (n,) bool, the rows of the front (None: ``non_dominated(values)``);
    scales: (m,) positive numbers, or None. Returns (score, total, ideal, nadir): the (n,) maximum and (n,)
    sum of the normalised objectives (inf for rows with NaN/inf), and the (m,) min and max over the front.
    Raises ValueError for scales that are not m positive finite numbers or an empty front.
    """
    F = np.asarray(values, dtype=np.float64)
    F = F.reshape(len(F), -1)
    front = non_dominated(F) if front is None else np.asarray(front, dtype=bool)
    if not front.any():
        raise ValueError("the front is empty: no candidate has finite objectives")
    ideal, nadir = F[front].min(axis=0), F[front].max(axis=0)
    if scales is None:
        span = nadir - ideal
        span = np.where(span > 0, span, np.where(np.abs(ideal) > 0, np.abs(ideal), 1.0))
        normalised = (F - ideal) / span
    else:
        scales = np.asarray(scales, dtype=np.float64)
        if scales.shape != (F.shape[1],) or not (np.isfinite(scales) & (scales > 0)).all():
            raise ValueError(f"scales must be {F.shape[1]} positive finite numbers, one per objective, got {scales}")
        normalised = F / scales
    finite = np.isfinite(F).all(axis=1)
    with np.errstate(invalid="ignore"):
        score = np.where(finite, normalised.max(axis=1), np.inf)
        total = np.where(finite, normalised.sum(axis=1), np.inf)
    return score, total, ideal, nadir


def compromise_index(values, front=None, scales=None) -> int:
    """The row of ``values`` the compromise rule chooses: among the front, the lowest score of
    ``compromise_scores`` (the maximum normalised objective); ties go to the lowest sum of the normalised
    objectives, then to the first row.

    values: (n, m) objective values; front: (n,) bool, the candidate rows (None: ``non_dominated(values)``);
    scales: as for ``compromise_scores``. Returns the row index (int). Raises ValueError for an empty front or
    bad scales.
    """
    F = np.asarray(values, dtype=np.float64)
    F = F.reshape(len(F), -1)
    front = non_dominated(F) if front is None else np.asarray(front, dtype=bool)
    score, total, _, _ = compromise_scores(F, front, scales)
    rows = np.flatnonzero(front)
    return int(rows[np.lexsort((rows, total[rows], score[rows]))[0]])


# --- the result ----------------------------------------------------------------------------------
def _number(x):
    """A float for JSON: None for NaN/inf."""
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class ParetoResult:
    """Every candidate a Pareto fit evaluated, its front, hall of fame and compromise.

    Attributes: ``parameters`` and ``objectives`` (names, in order); ``X`` (n, n_parameters) SI values and
    ``F`` (n, n_objectives) objective values (inf: diverged) of every evaluated candidate, in evaluation
    order; ``generation`` (n,) int; ``on_front`` (n,) bool; ``score`` (n,) the compromise rule's score
    (``compromise_scores``); ``front_index``, ``hall_of_fame_index`` (row indices) and ``compromise_index``
    (a row, None when no candidate had finite objectives); ``bounds`` name → (low, high) SI, ``log_scale``;
    ``scales`` (None: normalised by the front's range); ``ideal`` / ``nadir`` (the front's min / max per
    objective); ``settings`` (algorithm, seed, n_samples, n_generations).
    """

    parameters: list
    objectives: list
    X: np.ndarray
    F: np.ndarray
    generation: np.ndarray
    on_front: np.ndarray
    score: np.ndarray
    front_index: np.ndarray
    hall_of_fame_index: np.ndarray
    compromise_index: int | None
    bounds: dict
    log_scale: list
    scales: list | None
    ideal: np.ndarray
    nadir: np.ndarray
    settings: dict = field(default_factory=dict)

    def _row(self, i: int) -> dict:
        i = int(i)
        return {"index": i, "generation": int(self.generation[i]),
                "params": {p: float(v) for p, v in zip(self.parameters, self.X[i])},
                "objectives": {o: _number(v) for o, v in zip(self.objectives, self.F[i])},
                "score": _number(self.score[i])}

    @property
    def compromise(self) -> dict | None:
        """The chosen compromise: {"index", "generation", "params" (name → SI), "objectives", "score"}, or None."""
        return None if self.compromise_index is None else self._row(self.compromise_index)

    @property
    def history(self):
        """Every evaluated candidate as a DataFrame: the parameters (SI), the objectives, "generation", "score"
        and "on_front", in evaluation order (the index is the row number used by the other attributes)."""
        import pandas as pd

        table = pd.DataFrame(self.X, columns=self.parameters)
        for j, name in enumerate(self.objectives):
            table[name] = self.F[:, j]
        table["generation"] = self.generation
        table["score"] = self.score
        table["on_front"] = self.on_front
        return table

    @property
    def front(self):
        """The non-dominated candidates (DataFrame as ``history``, sorted by the objectives in order)."""
        return self.history.iloc[self.front_index]

    @property
    def hall_of_fame(self):
        """The best distinct candidates by the compromise rule (DataFrame as ``history``, best first)."""
        return self.history.iloc[self.hall_of_fame_index]

    def to_dict(self) -> dict:
        """JSON-ready output (NaN/inf as None): format and version, settings, parameters, bounds, objectives,
        the rule (with the front's ideal and nadir or the scales), the compromise, the front and the hall of
        fame (rows {"index", "generation", "params", "objectives", "score"}) and the history (one list per
        column). The same fit with the same seed gives the same dict, and ``json.dumps`` the same bytes.
        Returns that dict."""
        rule = {"name": "lowest maximum normalised objective",
                "normalisation": "front range (f - min) / (max - min)" if self.scales is None else "scales f / scale",
                "ideal": {o: _number(v) for o, v in zip(self.objectives, self.ideal)},
                "nadir": {o: _number(v) for o, v in zip(self.objectives, self.nadir)},
                "scales": None if self.scales is None else dict(zip(self.objectives, map(float, self.scales)))}
        history = {p: [float(v) for v in self.X[:, k]] for k, p in enumerate(self.parameters)}
        history.update({o: [_number(v) for v in self.F[:, j]] for j, o in enumerate(self.objectives)})
        history.update({"generation": [int(g) for g in self.generation], "score": [_number(s) for s in self.score],
                        "on_front": [bool(b) for b in self.on_front]})
        return {"format": RESULT_FORMAT, "version": RESULT_VERSION, "settings": dict(self.settings),
                "parameters": list(self.parameters),
                "bounds": {p: [float(lo), float(hi)] for p, (lo, hi) in self.bounds.items()},
                "log_scale": list(self.log_scale), "objectives": list(self.objectives), "rule": rule,
                "compromise": self.compromise, "front": [self._row(i) for i in self.front_index],
                "hall_of_fame": [self._row(i) for i in self.hall_of_fame_index], "history": history}


def _result(names, objectives, X, U, F, generation, space, scales, hall_of_fame, min_distance, settings):
    """Front, scores, hall of fame and compromise of every evaluated candidate → ParetoResult."""
    n = len(F)
    front = non_dominated(F)
    for i in np.flatnonzero(front):  # the same parameter set evaluated again: keep its first evaluation
        same = np.flatnonzero(front[:i] & (X[:i] == X[i]).all(axis=1))
        if same.size:
            front[i] = False
    m = F.shape[1]
    if front.any():
        score, total, ideal, nadir = compromise_scores(F, front, scales)
    else:
        score, total = np.full(n, np.inf), np.full(n, np.inf)
        ideal, nadir = np.full(m, np.nan), np.full(m, np.nan)
    order = np.lexsort((np.arange(n), total, score))  # lowest score, then lowest sum, then first evaluated
    compromise = compromise_index(F, front, scales) if front.any() else None
    front_index = np.flatnonzero(front)
    front_index = front_index[np.lexsort(tuple(F[front_index, j] for j in reversed(range(m))))]
    chosen = []
    for i in order:
        if len(chosen) >= hall_of_fame or not np.isfinite(score[i]):
            break
        if all(np.max(np.abs(U[i] - U[c])) > min_distance for c in chosen):
            chosen.append(int(i))
    return ParetoResult(list(names), list(objectives), X, F, generation, front, score, front_index,
                        np.array(chosen, dtype=np.int64), compromise, dict(space.free), sorted(space.log_scale),
                        None if scales is None else [float(s) for s in scales], ideal, nadir, settings)


# --- the search ------------------------------------------------------------------------------------
def _space(bounds: Mapping, parameters):
    try:
        return parse_bounds(bounds, list(parameters))
    except BoundsError as err:
        raise FitError(str(err)) from None


def _search(evaluate: Callable, space, objectives: list, n_samples: int, n_generations: int, seed: int,
            scales, hall_of_fame: int, min_distance: float, callback) -> ParetoResult:
    """NSGA-II in the unit cube over the internal space (log10 for log-scale parameters)."""
    from pymoo import __version__ as pymoo_version
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.config import Config
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.sampling.rnd import FloatRandomSampling

    Config.warnings["not_compiled"] = False  # pymoo's hint would go to stdout
    names = list(space.free)
    if int(n_samples) < 2 or int(n_generations) < 1:
        raise FitError(f"NSGA-II needs n_samples >= 2 and n_generations >= 1, got {n_samples} and {n_generations}")
    if not isinstance(seed, (int, np.integer)):
        raise FitError(f"seed must be an int (a Pareto fit is always seeded), got {seed!r}")
    m = len(objectives)
    if scales is not None:
        if isinstance(scales, Mapping):
            missing = [o for o in objectives if o not in scales]
            if missing or set(scales) - set(objectives):
                raise FitError(f"scales: one positive number per objective ({', '.join(objectives)}), got "
                               f"{', '.join(map(str, scales))}")
            scales = [scales[o] for o in objectives]
        scales = np.asarray(scales, dtype=np.float64)
        if scales.shape != (m,) or not (np.isfinite(scales) & (scales > 0)).all():
            raise FitError(f"scales: one positive finite number per objective ({', '.join(objectives)})")
    log = np.array([p in space.log_scale for p in names])
    lo = np.array([space.free[p][0] for p in names], dtype=np.float64)
    hi = np.array([space.free[p][1] for p in names], dtype=np.float64)
    ilo = np.where(log, np.log10(np.where(log, lo, 1.0)), lo)
    ihi = np.where(log, np.log10(np.where(log, hi, 1.0)), hi)

    def to_si(u):
        x = ilo + np.clip(u, 0.0, 1.0) * (ihi - ilo)
        return np.clip(np.where(log, 10.0 ** np.where(log, x, 0.0), x), lo, hi)

    problem = Problem(n_var=len(names), n_obj=m, xl=np.zeros(len(names)), xu=np.ones(len(names)))
    algorithm = NSGA2(pop_size=int(n_samples), n_offsprings=int(n_samples), sampling=FloatRandomSampling(),
                      crossover=SBX(prob=0.9, eta=15), mutation=PM(eta=20), eliminate_duplicates=True)
    algorithm.setup(problem, termination=("n_gen", int(n_generations)), seed=int(seed), verbose=False)
    Xs, Us, Fs, gens = [], [], [], []
    for gen in range(int(n_generations)):
        population = algorithm.ask()
        U = np.asarray(population.get("X"), dtype=np.float64).reshape(-1, len(names))
        X = to_si(U)
        values = evaluate({p: X[:, k].copy() for k, p in enumerate(names)}, gen)
        if isinstance(values, Mapping):
            missing = [o for o in objectives if o not in values]
            if missing:
                raise FitError(f"the objective function returned no {', '.join(missing)}")
            values = np.stack([np.asarray(values[o], dtype=np.float64).reshape(-1) for o in objectives], axis=1)
        F = np.asarray(values, dtype=np.float64)
        if F.shape != (len(X), m):
            raise FitError(f"the objective function returned shape {F.shape}, expected {(len(X), m)}")
        F = np.where(np.isnan(F), np.inf, F)
        population.set("F", np.where(np.isfinite(F), F, PENALTY))
        algorithm.tell(infills=population)
        Xs.append(X), Us.append(U), Fs.append(F), gens.append(np.full(len(X), gen, dtype=np.int64))
        if callback is not None and callback(gen, {p: X[:, k].copy() for k, p in enumerate(names)}, F.copy()) is True:
            break
    settings = {"algorithm": "NSGA-II", "library": f"pymoo {pymoo_version}", "seed": int(seed),
                "n_samples": int(n_samples), "n_generations": int(n_generations), "generations_run": len(gens),
                "crossover": "SBX(prob=0.9, eta=15)", "mutation": "PM(eta=20)"}
    return _result(names, objectives, np.concatenate(Xs), np.concatenate(Us), np.concatenate(Fs),
                   np.concatenate(gens), space, scales, int(hall_of_fame), float(min_distance), settings)


def pareto_search(evaluate: Callable, objectives, n_samples: int = 20, n_generations: int = 20, seed: int = 0,
                  scales=None, hall_of_fame: int = 10, min_distance: float = 0.01, callback=None,
                  **bounds) -> ParetoResult:
    """NSGA-II on a vectorised function: the core of ``fit_pareto``, usable without a model.

    evaluate: ``evaluate(params)`` with params a dict parameter name → (n,) array of SI values (one
    generation's candidates) returning an (n, n_objectives) array or a dict objective name → (n,) array (NaN
    and inf allowed: such a candidate is never on the front); objectives: the objective names, in order;
    n_samples: the population (candidates per generation); n_generations: generations (the first is the
    random initial population), n_samples × n_generations evaluations in all; seed: int seed of NSGA-II
    (same seed, same candidates); scales: None (the compromise rule normalises each objective by its range over
    the front) or one positive number per objective (list, or dict name → number: the rule then uses f / scale);
    hall_of_fame: how many candidates the hall of fame keeps; min_distance: two hall-of-fame members differ by
    more than this in some parameter, as a fraction of its search range (log10 range for log-scale ones);
    callback: None or ``f(generation, params, values)`` called after each generation (stop early by returning
    True); bounds: the search range of every parameter, ``name=[low, high]`` or ``[low, high, "log"]`` (SI
    numbers or quantity strings).

    NSGA-II (pymoo: SBX crossover, polynomial mutation, rank and crowding survival) works in the unit cube
    of the parameters' search ranges. Returns a ``ParetoResult``. Raises FitError for bad bounds, settings,
    scales or an evaluate result of the wrong shape.
    """
    objectives = list(objectives)
    if len(objectives) < 1 or len(set(objectives)) != len(objectives):
        raise FitError(f"objectives must be distinct names, got {objectives}")
    space = _space(bounds, list(bounds))
    return _search(lambda params, gen: evaluate(params), space, objectives, n_samples, n_generations, seed,
                   scales, hall_of_fame, min_distance, callback)


def fit_pareto(fitter: Fitter, objectives: Mapping, n_generations: int = 20, seed: int = 0, scales=None,
               hall_of_fame: int = 10, min_distance: float = 0.01, callback=None, **bounds) -> ParetoResult:
    """Multi-objective fit: the Pareto front of the fitter's model over named objectives (seeded NSGA-II).

    fitter: a TraceFitter (or OnlineTraceFitter, whose traces are then recorded) or SpikeFitter; its
    ``n_samples`` is the population, each generation's candidates are simulated on all traces in one batch
    and its ``penalty`` is added to every objective; the fitter's own state (history, best) is not changed.
    objectives: name → metric (all outputs and traces; outputs summed), name → (metric, selection) with the
    selection an output variable name, a trace index or list of indices (e.g. the sweeps of one protocol), or
    a dict {"output", "traces", "feature"} ("feature": one feature of a FeatureMetric), or name → ``Objective``;
    at least two. ``per_feature(FeatureMetric(...))`` gives one objective per feature.
    n_generations: generations of n_samples candidates (the model's ``iteration`` variable is the generation
    index); seed: NSGA-II's int seed; scales, hall_of_fame, min_distance, callback: as for ``pareto_search``;
    bounds: every model parameter's range, ``name=[low, high]`` or ``[low, high, "log"]`` as for ``fit``.

    Returns a ``ParetoResult``: ``front`` (non-dominated candidates), ``hall_of_fame``, ``compromise`` (the
    front's candidate with the lowest maximum normalised objective), ``history`` and ``to_dict()``. Raises
    FitError for bad objectives, bounds or settings; SimulationError as ``fit``.
    """
    if not isinstance(fitter, Fitter):
        raise FitError(f"fit_pareto needs a TraceFitter or SpikeFitter, not {type(fitter).__name__}")
    evaluator = _FitterObjectives(fitter, objectives)
    space = _space(bounds, fitter.parameter_names)
    names = list(space.free)

    def evaluate(params, gen):
        candidates = [dict(zip(names, map(float, row))) for row in zip(*(params[p] for p in names))]
        return evaluator(candidates, gen)

    return _search(evaluate, space, evaluator.names, fitter.n_samples, n_generations, seed, scales, hall_of_fame,
                   min_distance, callback)
