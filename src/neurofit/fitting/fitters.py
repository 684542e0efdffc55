"""TraceFitter, SpikeFitter, OnlineTraceFitter: brian2modelfitting's API on neurofit's simulator.

A fitter owns a model, recorded inputs/outputs and simulation settings. ``fit`` runs rounds of
ask (optimizer) → simulate all candidates × all traces in one batch → error (metric) → tell,
checkpointing after every round; ``refine`` polishes the best parameters with
``scipy.optimize.least_squares`` and the exact Jacobian from forward sensitivities.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
import warnings

import numpy as np

from ..data.files import atomic_write_text
from ..equations.model import Model
from ..errors import NeurofitError
from ..simulate import simulate
from ..units import to_si
from .bounds import BoundsError, parse_bounds
from .metrics import first_step, trace_lengths, valid_samples
from .optimizers import ReplayError, replay_round

#: A fit checkpoint is JSON: the fit's identity and every evaluated candidate with its error and round.
#: Version 1 was a pickle and is never loaded (unpickling a file can run code).
CHECKPOINT_FORMAT = "neurofit.fit_checkpoint"
CHECKPOINT_VERSION = 2


class FitError(NeurofitError):
    """A user mistake in a fitter's set-up or arguments (one line naming the culprit)."""


class _UnusableCheckpoint(Exception):
    """A checkpoint that is damaged or not in this neurofit's format (the message says why, one line)."""


def _as_traces(name, value, what):
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise FitError(f"{what}['{name}'] has shape {a.shape}; expected (n_traces, n_steps)")
    return a


def simulation_substeps(dt: float, simulation_dt) -> int:
    """How many simulation steps of ``simulation_dt`` make one recorded sample of ``dt`` (both s; None or
    equal: 1). FitError (one line) unless ``simulation_dt`` divides ``dt`` by a whole number k >= 1."""
    if simulation_dt is None:
        return 1
    step = to_si(simulation_dt, name="simulation_dt")
    if not (np.isfinite(step) and step > 0):
        raise FitError(f"simulation_dt = {simulation_dt} must be a positive time step (e.g. '10 us')")
    ratio = dt / step
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-9 * max(ratio, 1.0):
        raise FitError(f"simulation_dt = {step:g} s must divide the recording's dt = {dt:g} s by a whole number "
                       f"(dt / simulation_dt = {ratio:.6g}), e.g. {dt / max(1, round(ratio)):g} s")
    return k


def _parse_bounds(bounds: dict, parameters: list) -> tuple[dict, set]:
    """name → [lo, hi] or [lo, hi, "log"] (quantity strings allowed) → ({name: (lo, hi)}, log names)."""
    try:
        space = parse_bounds(bounds, parameters)
    except BoundsError as err:
        raise FitError(str(err)) from None
    return space.free, space.log_scale


class Fitter:
    """Base class: shared set-up, the optimisation loop, results and checkpoints."""

    output_kind = "traces"

    def __init__(self, model, input: dict, output, dt, n_samples: int = 10, method: str | None = None,
                 threshold=None, reset=None, refractory=None, param_init: dict | None = None,
                 penalty: str | None = None, use_units: bool = True, namespace: dict | None = None,
                 backend: str = "auto", dtype: str = "float64", seed: int | None = None, threads: int = 1,
                 lengths=None, simulation_dt=None, at_rest: bool = False):
        """Set up a fit (brian2modelfitting's arguments; numbers in SI units, quantity strings where noted).

        model: the equations text (Brian2 syntax) or a ``neurofit.Model``; in equations text, a variable
        ``iteration`` that is used but not declared becomes a constant parameter set to the round counter
        (see ``fit``'s start_iteration).
        input: input variable → (n_traces, n_steps) array in SI units, e.g. ``{"I": currents}`` in A (a 1-D
        array is one trace); all inputs have the same shape, one row per recorded trace, and inputs the model
        does not use are left out.
        output: recorded variable → (n_traces, n_steps) array in SI units with the input's shape, e.g.
        ``{"v": traces}`` in V (TraceFitter, OnlineTraceFitter; the equations may use ``<var>_target``, the
        recorded trace, as an input), or the recorded spike trains, a list over traces of spike-time arrays in
        s (SpikeFitter; ``{"spikes": that list}`` also works).
        dt: sampling step of the recordings, s or a quantity string ("0.1 ms").
        n_samples: candidates (parameter sets) per round, the optimizer's population; a round simulates
        n_samples × n_traces runs in one batch.
        method: integration method ("euler", "rk2", "rk4", "exponential_euler", "euler_maruyama"; None:
        ``simulate``'s choice).
        threshold: spike condition, e.g. "v > -50*mV"; reset: statements run after a spike, one per line
        ("v = El"); refractory: dead time after a spike, s, a duration string ("2 ms") or a condition
        ("v > -20*mV"). These three are as for ``Model``; when ``model`` is a ``Model``, giving any of them
        replaces all three of its events (one left None is removed).
        param_init: state → initial value: an SI number, a quantity string ("-70 mV"), an expression string
        evaluated at t = 0 ("1/(1 + beta_m/alpha_m)") or a (1, n_traces) array (one value per trace); unset
        states start at 0.
        penalty: name of a model variable (state or subexpression) whose value at the end of each trace (its
        last valid sample with ``lengths``), averaged over traces, is added to each candidate's error; it
        should not vary in time and be on the error's scale; None: no penalty.
        use_units: accepted for brian2modelfitting's API and stored; neurofit's results are always SI floats.
        namespace: constants used by equations text, name → SI number or quantity string ("10 ms"); ignored
        when ``model`` is a ``Model`` (which has its own).
        backend: "auto" (C when a compiler works, else numpy), "c" or "numpy".
        dtype: simulation precision, "float64" or "float32".
        seed: noise seed (int), needed when the model has noise (``xi``).
        threads: threads of the C backend (ignored by numpy).
        lengths: (n_traces,) int, the recorded samples of each trace (1 .. n_steps) when traces of different
        lengths are padded to one array (outputs NaN after a trace's end, inputs held at their last value), or
        None (all full length); only each trace's own samples are compared.
        simulation_dt: simulation step, s or a quantity string ("10 us"), dividing ``dt`` by a whole number k:
        each input sample is held for k steps and the model is compared at every k-th step (the recorded
        samples); None simulates at ``dt``.
        at_rest: start every (candidate, trace) at the model's steady state under the trace's first input
        sample (``simulate(..., at_rest=True)``, ``param_init`` as the guess of Newton's method); False starts
        from ``param_init``.

        Raises FitError (one line) for inputs or outputs that are not dicts of arrays of one shape, NaN/inf in
        the outputs (within each trace's length), dt not positive, bad ``lengths`` or ``simulation_dt``, a
        model that is neither text nor a ``Model``, and settings a subclass refuses (SpikeFitter without a
        threshold; OnlineTraceFitter with ``lengths`` or a finer ``simulation_dt``); UnitError when dt or
        simulation_dt cannot be read; EquationError when the equations text does not parse.
        """
        if not isinstance(input, dict) or not input:
            raise FitError("input must be a dict {input_variable: array (n_traces, n_steps)}, e.g. {'I': traces}")
        self.input = {k: _as_traces(k, v, "input") for k, v in input.items()}
        shapes = {a.shape for a in self.input.values()}
        if len(shapes) != 1:
            raise FitError(f"input arrays have different shapes {sorted(shapes)}")
        self.n_traces, self.n_steps = shapes.pop()
        self.dt = to_si(dt, name="dt")
        if not self.dt > 0:
            raise FitError(f"dt = {dt} must be positive")
        self.n_samples = int(n_samples)
        self.method = method
        self.param_init = dict(param_init or {})
        self.penalty = penalty
        self.use_units = use_units
        self.backend, self.dtype, self.seed, self.threads = backend, dtype, seed, threads
        try:
            self.lengths = trace_lengths(lengths, (self.n_traces, self.n_steps))  # None: every trace is full
        except ValueError as err:
            raise FitError(str(err)) from None
        self.substeps = simulation_substeps(self.dt, simulation_dt)
        self.simulation_dt = self.dt / self.substeps if self.substeps > 1 else self.dt
        self.at_rest = bool(at_rest)
        self._set_output(output)
        self.model = self._build_model(model, namespace, threshold, reset, refractory)
        self.parameter_names = [p for p in self.model.parameters if p != "iteration"]
        self.optimizer = None
        self.metric = None
        self._data_spikes = {}  # (metric id, output) -> recorded spike trains, for metrics that need spikes
        self.bounds = {}
        self.log_scale = set()
        self.history: list[dict] = []
        self.iteration = 0
        self.best_params = None
        self.best_error = None
        self._check_setup()

    # --- set-up ---------------------------------------------------------------------------
    def _set_output(self, output):
        if not isinstance(output, dict) or not output:
            raise FitError("output must be a dict {variable: array (n_traces, n_steps)}, e.g. {'v': traces}")
        self.output = {k: _as_traces(k, v, "output") for k, v in output.items()}
        for name, a in self.output.items():
            if a.shape != (self.n_traces, self.n_steps):
                raise FitError(f"output['{name}'] has shape {a.shape} but the input has {(self.n_traces, self.n_steps)}; "
                               f"every output needs one row per input trace and the same number of samples")
            if self.lengths is None and not np.all(np.isfinite(a)):
                raise FitError(f"output['{name}'] contains NaN or inf; recordings must be finite (traces of "
                               f"different lengths: pad them with NaN and give lengths=)")
            if self.lengths is not None and not np.all(np.isfinite(a) | ~valid_samples(self.lengths, self.n_steps)):
                raise FitError(f"output['{name}'] contains NaN or inf within a trace's length; recordings must be "
                               f"finite up to each trace's end")

    def _check_setup(self):
        """Refuse settings this fitter cannot use (FitError, one line); called at the end of __init__."""

    def _build_model(self, model, namespace, threshold, reset, refractory) -> Model:
        targets = [f"{v}_target" for v in self.output] if self.output_kind == "traces" else []
        events = {"threshold": threshold, "reset": reset, "refractory": refractory}
        if isinstance(model, Model):
            if any(e is not None for e in events.values()):
                model = model.with_events(**events)
            return model
        if not isinstance(model, str):
            raise FitError(f"model must be equations text or a neurofit.Model, not {type(model).__name__}")
        text = model
        if re.search(r"\biteration\b", text) and not re.search(r"^\s*iteration\s*:", text, re.M):
            text += "\niteration : 1 (constant)\n"  # brian2modelfitting's round counter, set per round
        return Model(text, namespace=namespace, inputs=list(self.input) + targets, **events)

    @property
    def n_neurons(self) -> int:
        return self.n_samples * self.n_traces

    def _inputs(self) -> dict:
        inputs = {k: v for k, v in self.input.items() if k in self.model.inputs}
        for var, data in self.output.items():
            if f"{var}_target" in self.model.inputs:
                inputs[f"{var}_target"] = data
        return inputs

    def _param_arrays(self, candidates: list, iteration: int) -> dict:
        params = {p: np.array([c[p] for c in candidates], dtype=np.float64) for p in self.parameter_names}
        if "iteration" in self.model.parameters:
            params["iteration"] = np.full(len(candidates), float(iteration))
        return params

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, optimizer=None, metric=None, n_rounds: int = 1, callback="text", restart: bool = False,
            start_iteration: int | None = None, penalty: str | None = None, checkpoint: str | None = None,
            **bounds):
        """Optimise for ``n_rounds`` rounds of ``n_samples`` candidates; returns (best_params, best_error).

        Each round asks the optimizer for candidates, simulates them on all traces in one batch, computes
        their errors with the metric (plus ``penalty``; inf for a candidate whose simulation diverged) and
        tells the optimizer. A later call continues the same optimisation (the optimizer, metric and bounds of
        the first call; ``optimizer`` and ``metric`` are then ignored) unless ``restart=True``.

        optimizer: an ``Optimizer`` (e.g. ``NevergradOptimizer("DE")``, ``SkoptOptimizer()``), needed on the
        first call and with ``restart``.
        metric: the error measure, needed likewise. TraceFitter: a ``TraceMetric`` (e.g. ``MSEMetric()``) or a
        dict output variable → metric (the errors of several outputs are summed); OnlineTraceFitter: an
        ``MSEMetric`` (its t_start and normalization are used); SpikeFitter: a ``SpikeMetric`` (e.g.
        ``GammaFactor(delta="2 ms", time="1 s")``).
        n_rounds: rounds to run in this call.
        callback: the report after each round: "text" (print the best parameters and error), "progressbar"
        (tqdm), None (silent) or a function ``f(params, errors, best_params, best_error, index, info)`` - the
        round's candidates (list of dicts) and their (n_samples,) errors, the best parameters and error so
        far, the round's index (from 0, counted over all calls of this fit) and a dict with "round_time"
        (seconds since the epoch); the fit stops early when it returns True.
        restart: start a new optimisation (new optimizer, metric and bounds) instead of continuing; an
        existing ``checkpoint`` is then ignored and overwritten.
        start_iteration: value of the model's ``iteration`` variable in this call's first round (default: 0
        on a new fit, else it continues from the previous call); it grows by 1 per round.
        penalty: a model variable added to the error as the constructor's ``penalty``; replaces it for this
        and later calls (None: keep it).
        checkpoint: path of a JSON file the evaluated candidates are saved to after every round. A new
        call with the same path and a freshly built optimizer of the same settings and seed resumes
        where a killed run stopped: the optimizer is brought to its state by replaying the recorded
        rounds (``replay_round``), and the fit ends with the numbers of an uninterrupted one. A
        damaged checkpoint is discarded with a warning and the fit starts over.
        bounds: the search range of every model parameter as keyword arguments ``name=[low, high]`` (SI
        numbers or quantity strings, e.g. ``gl=["1 nS", "100 nS"]``), ``[low, high, "log"]`` for a log-scale
        search (low > 0); required on a new fit and unchanged when continuing.

        Returns (best_params, best_error): the lowest-error candidate of all rounds so far (parameter name →
        SI float) and its error (float). Raises FitError (one line) for a missing optimizer or metric on a new
        fit, a metric this fitter cannot use, missing, unknown or invalid bounds (or bounds changed while
        continuing), an unknown callback, or a checkpoint of another fit or one that does not replay;
        SimulationError when the model cannot be simulated with the fitter's settings (e.g. an unknown
        param_init state, noise without a seed).
        """
        if penalty is not None:
            self.penalty = penalty
        fresh = restart or self.optimizer is None
        if fresh:
            if optimizer is None or metric is None:
                raise FitError("fit needs an optimizer and a metric (e.g. NevergradOptimizer('DE'), MSEMetric())")
            self._check_metric(metric)
            self.bounds, self.log_scale = _parse_bounds(bounds, self.parameter_names)
            self.optimizer, self.metric = optimizer, metric
            self.optimizer.initialize(self.parameter_names, self.bounds, log_scale=self.log_scale,
                                      popsize=self.n_samples)
            self.history, self.best_params, self.best_error = [], None, None
            self.iteration = start_iteration or 0
            self._rounds_done = 0
        elif bounds and _parse_bounds(bounds, self.parameter_names)[0] != self.bounds:
            raise FitError("fit: bounds changed while continuing a fit; pass restart=True to start over")
        elif start_iteration is not None:
            self.iteration = start_iteration
        target_rounds = self._rounds_done + n_rounds
        if fresh and checkpoint and os.path.exists(checkpoint) and not restart:
            self._load_checkpoint(checkpoint)  # a killed run: continue towards the same n_rounds
        report = _make_callback(callback, n_rounds)
        while self._rounds_done < target_rounds:
            candidates = self.optimizer.ask(n_samples=self.n_samples)
            errors = self._errors(candidates, self.iteration)
            self.optimizer.tell(candidates, errors)
            self._record_round(candidates, errors)
            if checkpoint:
                self._save_checkpoint(checkpoint)
            stop = report(candidates, errors, self.best_params, self.best_error, self._rounds_done - 1,
                          {"round_time": time.time()})
            if stop is True:
                break
        return dict(self.best_params), self.best_error

    def _record_round(self, candidates: list, errors: np.ndarray) -> None:
        """Book a told round: best so far, history rows, round and iteration counters."""
        best = int(np.argmin(errors))
        if self.best_error is None or errors[best] < self.best_error:
            self.best_error = float(errors[best])
            self.best_params = dict(candidates[best])
        for c, e in zip(candidates, errors):
            self.history.append({**c, "error": float(e), "round": self._rounds_done})
        self._rounds_done += 1
        self.iteration += 1

    def _check_metric(self, metric):
        pass

    def _errors(self, candidates: list, iteration: int) -> np.ndarray:
        raise NotImplementedError

    def _penalty(self, result) -> np.ndarray:
        if not self.penalty:
            return 0.0
        if self.lengths is None:
            return result.traces[self.penalty][:, :, -1].mean(axis=1)
        return result.traces[self.penalty][:, np.arange(self.n_traces), self.lengths - 1].mean(axis=1)

    def _record(self) -> tuple:
        return tuple(dict.fromkeys([*self.output, *([self.penalty] if self.penalty else [])]))

    def _simulate(self, params: dict, record=None, spikes=False, init=None, **kw):
        inputs, dt = self._inputs(), self.dt
        if self.substeps > 1:  # each recorded sample held for substeps simulation steps
            inputs, dt = {k: np.repeat(a, self.substeps, axis=1) for k, a in inputs.items()}, self.simulation_dt
        res = simulate(self.model, params, inputs, dt, init=self.param_init if init is None else init,
                       record=self._record() if record is None else record, spikes=spikes, method=self.method,
                       backend=self.backend, dtype=self.dtype, seed=self.seed, threads=self.threads,
                       at_rest=self.at_rest, **kw)
        if self.substeps == 1:
            return res
        k = self.substeps  # the model at the recorded sample times: every k-th simulation step
        return dataclasses.replace(res, traces={v: a[:, :, ::k] for v, a in res.traces.items()},
                                   sensitivities={v: a[:, :, ::k, :] for v, a in res.sensitivities.items()},
                                   dt=self.dt, n_steps=self.n_steps)

    def restore(self, bounds: dict, metric, history: list, log_scale=()) -> None:
        """Give a fresh fitter a finished fit's state (bounds, metric, evaluated candidates), e.g. to
        ``refine`` it in another process or to read its ``results``.

        bounds: parameter name → (low, high) of every model parameter, SI numbers or quantity strings;
        metric: the fit's metric (kept for ``refine``); history: the evaluated candidates, one dict per
        candidate holding every parameter (SI), "error" and optionally "round" (index from 0), as
        ``results("list")`` gives them; log_scale: names of the parameters searched on a log scale.
        The finite-error row with the lowest error becomes best_params / best_error (None when there is
        none). Returns nothing. Raises FitError for bounds that are missing, unknown or invalid.
        """
        self.bounds, self.log_scale = _parse_bounds({k: list(v) for k, v in bounds.items()}, self.parameter_names)
        self.log_scale |= set(log_scale)
        self.metric = metric
        self.history = [dict(row) for row in history]
        finite = [row for row in self.history if np.isfinite(row["error"])]
        best = min(finite, key=lambda row: row["error"]) if finite else None
        self.best_params = {p: best[p] for p in self.parameter_names} if best else None
        self.best_error = best["error"] if best else None
        self._rounds_done = 1 + max((row.get("round", 0) for row in self.history), default=-1)

    # --- checkpoints ----------------------------------------------------------------------------
    def _save_checkpoint(self, path: str):
        """Write the fit's identity and every evaluated candidate (JSON, atomic; NaN/inf errors as NaN/Infinity)."""
        names = self.parameter_names
        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "parameters": names,
                 "bounds": {p: [float(lo), float(hi)] for p, (lo, hi) in self.bounds.items()},
                 "log_scale": sorted(self.log_scale), "n_samples": self.n_samples, "rounds": self._rounds_done,
                 "iteration": self.iteration, "candidates": [[float(row[p]) for p in names] for row in self.history],
                 "errors": [row["error"] for row in self.history], "round": [row["round"] for row in self.history]}
        atomic_write_text(path, json.dumps(state))

    def _load_checkpoint(self, path: str):
        """Resume from ``path``: replay its rounds on the freshly initialised optimizer. A damaged or old
        (pickled) checkpoint is discarded with a one-line warning; one of another fit is a FitError."""
        try:
            state = _read_checkpoint(path)
        except _UnusableCheckpoint as err:
            warnings.warn(f"checkpoint {path} {err}; starting the fit over", stacklevel=3)
            return
        bounds = {p: [float(lo), float(hi)] for p, (lo, hi) in self.bounds.items()}
        if (state["parameters"], state["bounds"], state["log_scale"], state["n_samples"]) != \
                (self.parameter_names, bounds, sorted(self.log_scale), self.n_samples):
            raise FitError(f"checkpoint {path}: written for another fit (parameters, bounds or n_samples differ); "
                           f"delete it or pass restart=True")
        rows_of = {}
        for i, r in enumerate(state["round"]):
            rows_of.setdefault(r, []).append(i)
        for r in range(state["rounds"]):
            index = rows_of.get(r, [])
            recorded = [dict(zip(self.parameter_names, state["candidates"][i])) for i in index]
            errors = np.array([state["errors"][i] for i in index], dtype=np.float64)
            try:
                candidates = replay_round(self.optimizer, self.n_samples, recorded, errors)
            except ReplayError as err:
                raise FitError(f"checkpoint {path}: round {r} does not replay: {err}; delete it or pass "
                               f"restart=True") from None
            self._record_round(candidates, errors)
        self.iteration = state["iteration"]

    # --- results --------------------------------------------------------------------------------
    def results(self, format: str = "list", use_units=None):
        """Every evaluated candidate with its error, in the order evaluated.

        format: "list" - a list of dicts (parameter name → SI float, plus "error"); "dict" - a dict of
        (n_evaluated,) arrays, one per parameter plus "error"; "dataframe" - a pandas DataFrame with a column
        per parameter, "error" and "round" (round index from 0). use_units: accepted for brian2modelfitting's
        API and ignored: values are always SI floats without units. Returns the results in that format (empty
        before the first round). Raises FitError for another format.
        """
        if format == "list":
            return [{k: v for k, v in row.items() if k != "round"} for row in self.history]
        if format == "dict":
            keys = self.parameter_names + ["error"]
            return {k: np.array([row[k] for row in self.history]) for k in keys}
        if format == "dataframe":
            import pandas as pd
            return pd.DataFrame(self.history)
        raise FitError(f"results(format='{format}'): valid formats are 'list', 'dict', 'dataframe'")

    def error(self, params) -> float:
        """The fit's error of one parameter set, as the fit computes it (its metric, plus its penalty; inf when
        the simulation diverges).

        params: parameter name -> SI number or quantity string, every free parameter. Needs the metric of a
        ``fit`` or ``restore``; raises FitError without one or for a missing parameter.
        """
        if self.metric is None:
            raise FitError("error() needs the fit's metric: call fit() or restore() first")
        resolved = self._resolve_params(params)
        return float(self._errors([{p: resolved[p] for p in self.parameter_names}], self.iteration)[0])

    def _resolve_params(self, params, iteration=None) -> dict:
        params = dict(params if params is not None else (self.best_params or {}))
        if not params:
            raise FitError("no parameters: run fit() first or pass params=")
        missing = [p for p in self.parameter_names if p not in params]
        if missing:
            raise FitError(f"params: missing {', '.join(missing)}")
        out = {p: to_si(params[p], name=p) for p in self.parameter_names}
        if "iteration" in self.model.parameters:
            out["iteration"] = float(self.iteration if iteration is None else iteration)
        return out

    def generate(self, output_var=None, params=None, param_init=None, iteration=1e9):
        """Simulate ``params`` (default: best) on all inputs; (n_traces, n_steps) per variable.

        output_var: a model variable to record (state or subexpression; None: the first output variable, which
        is "spikes" for SpikeFitter), ``"spikes"`` for the spike times (the model needs a threshold), or a
        list of such names (then a dict is returned); params: parameter name → SI number or quantity string,
        every parameter of the model (None: the fit's best parameters); param_init: initial values as for the
        constructor, replacing its ``param_init`` for the states given; iteration: the value of a model's
        ``iteration`` variable: high by default, so that a coupling to the target that fades with the
        iteration is switched off (as brian2modelfitting).

        Returns, for a variable, an (n_traces, n_steps) array in SI units (sample k at t = k·dt); for
        "spikes", a list over traces of 1-D arrays of spike times (s); for a list of names, a dict name →
        such value. With ``lengths``, traces are NaN after each trace's end and later spikes are dropped.
        Raises FitError when there are no parameters (no fit and no ``params``) or one is missing, UnitError
        for a value that cannot be read, SimulationError for an unknown variable or state, or "spikes"
        without a threshold.
        """
        single = isinstance(output_var, str) or output_var is None
        names = [output_var or next(iter(self.output))] if single else list(output_var)
        res = self._simulate(self._resolve_params(params, iteration), record=tuple(n for n in names if n != "spikes"),
                             spikes="spikes" in names, init={**self.param_init, **(param_init or {})})
        out = {n: (self._within_lengths(res.spikes)[0] if n == "spikes" else res.traces[n][0]) for n in names}
        if self.lengths is not None:
            valid = valid_samples(self.lengths, self.n_steps)
            out = {n: (v if n == "spikes" else np.where(valid, v, np.nan)) for n, v in out.items()}
        return out[names[0]] if single else out

    def _within_lengths(self, spikes: list) -> list:
        """Spike trains (list over sets of lists over traces, s) without the spikes after each trace's end
        (at or after sample ``lengths[i]``); unchanged when every trace is full."""
        if self.lengths is None:
            return spikes
        ends = (self.lengths - 0.5) * self.dt
        return [[train[train < end] for train, end in zip(one_set, ends)] for one_set in spikes]

    def generate_traces(self, params=None, param_init=None):
        """Traces of the first output variable for ``params`` (default: best) on all inputs.

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, as for ``generate``. Returns an
        (n_traces, n_steps) array in SI units (e.g. V), NaN after each trace's end with ``lengths``. Raises
        as ``generate``.
        """
        return self.generate(None, params=params, param_init=param_init)


def _read_checkpoint(path: str) -> dict:
    """A checkpoint's JSON, checked field by field; _UnusableCheckpoint (why, one line) if it is damaged, a
    pickle of an older neurofit (never unpickled) or not a fit checkpoint."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:1] == b"\x80":  # the protocol opcode every pickle since protocol 2 starts with
        raise _UnusableCheckpoint("was written by an older neurofit (a pickle), not loaded for safety")
    try:
        state = json.loads(raw.decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _UnusableCheckpoint(f"is damaged (not JSON: {err})") from None

    def need(ok, what):
        if not ok:
            raise _UnusableCheckpoint(f"is damaged ({what})")
    number = (int, float)
    need(isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT, "not a neurofit fit checkpoint")
    need(state.get("version") == CHECKPOINT_VERSION, f"format version {state.get('version')!r}, expected "
                                                     f"{CHECKPOINT_VERSION}")
    names = state.get("parameters")
    need(isinstance(names, list) and all(isinstance(n, str) for n in names), "no parameter names")
    need(isinstance(state.get("bounds"), dict) and isinstance(state.get("log_scale"), list), "no bounds")
    need(all(isinstance(state.get(k), int) and state[k] >= 0 for k in ("n_samples", "rounds"))
         and isinstance(state.get("iteration"), int), "no round counts")
    candidates, errors, rounds = state.get("candidates"), state.get("errors"), state.get("round")
    need(isinstance(candidates, list) and isinstance(errors, list) and isinstance(rounds, list)
         and len(candidates) == len(errors) == len(rounds), "candidates, errors and rounds do not match")
    need(all(isinstance(c, list) and len(c) == len(names) and all(isinstance(v, number) for v in c)
             for c in candidates), "a candidate is not one number per parameter")
    need(all(isinstance(e, number) for e in errors), "an error is not a number")
    need(all(isinstance(r, int) and 0 <= r < state["rounds"] for r in rounds), "a round index out of range")
    return state


def _make_callback(callback, n_rounds: int):
    if callback is None:
        return lambda *args: None
    if callable(callback):
        return callback
    if callback == "text":
        def text(params, errors, best_params, best_error, index, info):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in best_params.items())
            print(f"Round {index}: best parameters {shown}; error {best_error:.6g}", file=sys.stdout)
        return text
    if callback == "progressbar":
        from tqdm import tqdm
        bar = tqdm(total=n_rounds)

        def progress(params, errors, best_params, best_error, index, info):
            bar.update(1)
            bar.set_postfix(best_error=f"{best_error:.4g}")
            if bar.n >= n_rounds:
                bar.close()
        return progress
    raise FitError(f"callback={callback!r}: valid values are 'text', 'progressbar', None or a function")


class TraceFitter(Fitter):
    """Fit recorded traces (e.g. membrane potential) with a trace metric (e.g. MSEMetric).

    output: variable → (n_traces, n_steps) recorded traces in SI units; ``fit`` takes a ``TraceMetric`` or
    a dict of them per output variable (the errors of the outputs are summed); ``refine`` polishes the
    result by least squares. The constructor's arguments are those of ``Fitter.__init__`` below.
    """

    def _check_metric(self, metric):
        if isinstance(metric, dict):
            unknown = [k for k in metric if k not in self.output]
            if unknown:
                raise FitError(f"metric: {', '.join(unknown)} not an output (outputs: {', '.join(self.output)})")

    def _metric_for(self, var):
        return self.metric[var] if isinstance(self.metric, dict) else self.metric

    def _errors(self, candidates, iteration):
        wants_spikes = any(getattr(self._metric_for(var), "needs_spikes", False) for var in self.output)
        res = self._simulate(self._param_arrays(candidates, iteration), spikes=wants_spikes)
        total = np.zeros(len(candidates))
        for var, data in self.output.items():
            metric = self._metric_for(var)
            if getattr(metric, "needs_spikes", False):  # SpikeTraceMetric: the model's spikes and the data's
                key = (id(metric), var)
                if key not in self._data_spikes:
                    self._data_spikes[key] = metric.data_spikes(data, self.dt, self.lengths)
                errors = metric.calc(res.traces[var], self._within_lengths(res.spikes), data, self._data_spikes[key],
                                     self.dt, lengths=self.lengths)
            elif self.lengths is None:
                errors = metric.calc(res.traces[var], data, self.dt)
            else:
                errors = metric.calc(res.traces[var], data, self.dt, lengths=self.lengths)
            total += np.asarray(errors, dtype=np.float64)
        total = total + self._penalty(res)
        total[res.invalid_sets] = np.inf
        return total

    def refine(self, params=None, metric=None, calc_gradient: bool = True, t_start=None, normalization=None,
               n_starts: int = 8, **least_squares_kwargs):
        """Least-squares polish within the fit's bounds; returns (params, scipy OptimizeResult).

        Starts from ``params``, or else from the ``n_starts`` best candidates of the fit (HH-type
        models have local minima near the global one; each start costs a handful of simulations)
        and keeps the best result. Residuals are (model − data)/normalization (times √t_weights) of every
        output variable from ``t_start`` on (settings of the fit's MSEMetric unless given), over each
        trace's valid samples when the fitter has ``lengths``. Without a fit (and no ``restore``) the
        parameters are unbounded.

        params: parameter name → SI number or quantity string to start from, every parameter (None: the
        fit's best candidates); metric: the object whose t_start, normalization and t_weights define the
        residuals, e.g. an ``MSEMetric`` (None: the fit's metric unless that is a dict per output; without
        one: t_start 0, normalization 1, no weights); calc_gradient: True uses the exact Jacobian (forward
        sensitivities); False forward differences from one batched simulation of p+1 parameter sets - also
        used when the fitter starts at rest (``at_rest``): the forward sensitivities start at zero and would
        miss how the rest depends on the parameters; t_start: start of the compared window, s or a quantity
        string (None: the metric's); normalization: divisor of the residuals, an SI number in the output's
        units (e.g. 0.01 for 10 mV; None: the metric's); n_starts: how many of the best distinct candidates
        to start from when ``params`` is None; least_squares_kwargs: passed on to
        ``scipy.optimize.least_squares`` (defaults method="trf", x_scale="jac").

        Returns (params, result): the refined parameters of the best start (name → SI float) and its scipy
        ``OptimizeResult`` (``result.fun``: the residuals). The fitter's best_params / best_error are replaced
        when the refined mean squared residual is lower; ``refine_evaluations`` counts the residual and Jacobian
        evaluations of all starts. Raises FitError when there is neither a fit nor ``params``, or a parameter is missing;
        UnitError for a value that cannot be read.
        """
        from .refine import least_squares_refine
        metric = metric or (self.metric if not isinstance(self.metric, dict) else None)
        t_start = to_si(t_start if t_start is not None else getattr(metric, "t_start", 0.0), name="t_start")
        if params is not None or not self.history:
            starts = [self._resolve_params(params)]
        else:
            starts = [self._resolve_params(row) for row in _distinct_best(self.history, self.parameter_names,
                                                                            max(1, n_starts))]
        bounds = self.bounds or {p: (-np.inf, np.inf) for p in self.parameter_names}
        best = None
        self.refine_evaluations = 0  # simulations over all starts
        for start in starts:
            refined, result = least_squares_refine(self, start, bounds, first_step(t_start, self.dt),
                                                   normalization or getattr(metric, "normalization", 1.0),
                                                   getattr(metric, "t_weights", None),
                                                   calc_gradient and not self.at_rest, lengths=self.lengths,
                                                   **least_squares_kwargs)
            self.refine_evaluations += int(result.nfev) + int(result.njev or 0)
            if best is None or result.cost < best[1].cost:
                best = (refined, result)
        refined, result = best
        error = float(np.mean(result.fun ** 2))
        if self.best_error is None or error < self.best_error:
            self.best_params, self.best_error = dict(refined), error
        return refined, result


def _distinct_best(history: list, names: list, n: int, min_log_distance: float = 0.01) -> list:
    """The ``n`` lowest-error candidates, skipping near-duplicates (all parameters within ~1 %)."""
    chosen = []
    for row in sorted(history, key=lambda r: r["error"]):
        if not np.isfinite(row["error"]):
            break
        point = np.array([row[p] for p in names])
        if all(np.max(np.abs(np.log(np.abs(point) + 1e-300) - np.log(np.abs(c) + 1e-300))) > min_log_distance
               or np.any(np.sign(point) != np.sign(c)) for c in chosen):
            chosen.append(point)
            if len(chosen) == n:
                break
    return [dict(zip(names, c)) for c in chosen] or [{p: history[0][p] for p in names}]


class OnlineTraceFitter(TraceFitter):
    """TraceFitter whose squared error is accumulated while simulating: traces are never stored.

    ``fit`` needs an ``MSEMetric``: a candidate's error is the mean over traces and samples from the
    metric's t_start of ((model − data)/normalization)², summed over the output variables (the metric's
    t_weights are not used). The constructor's arguments are those of ``Fitter.__init__`` below; it raises
    FitError for traces of different lengths (``lengths``) and for a ``simulation_dt`` other than ``dt``.
    """

    def _check_metric(self, metric):
        from .metrics import MSEMetric
        if not isinstance(metric, MSEMetric):
            raise FitError("OnlineTraceFitter computes the mean squared error online: use metric=MSEMetric(...)")

    def _check_setup(self):
        """The online kernel compares every simulation step with the target: no padding, no finer step."""
        if self.lengths is not None:
            raise FitError(f"OnlineTraceFitter: traces have different lengths ({int(self.lengths.min())} to "
                           f"{self.n_steps} samples) and its online kernel cannot leave padded samples out; use "
                           f"TraceFitter (fit.kind: trace)")
        if self.substeps > 1:
            raise FitError("OnlineTraceFitter compares the model with the data at every simulation step: "
                           "simulation_dt must equal dt; use TraceFitter (fit.kind: trace)")

    def _errors(self, candidates, iteration):
        t_start = first_step(self.metric.t_start, self.dt)  # an MSEMetric (_check_metric): SI already
        norm = self.metric.normalization
        res = self._simulate(self._param_arrays(candidates, iteration),
                             record=(self.penalty,) if self.penalty else (),
                             targets=self.output, target_start=t_start)
        n = self.n_traces * (self.n_steps - t_start)
        total = sum(e.sum(axis=1) for e in res.sq_error.values()) / n / norm ** 2
        total = total + self._penalty(res)
        total[res.invalid_sets] = np.inf
        return total


class SpikeFitter(Fitter):
    """Fit recorded spike trains (list over traces of spike-time arrays, s) with a spike metric.

    output: the recorded spike trains, one 1-D array of spike times (s) per input trace (or
    ``{"spikes": that list}``); spikes after a trace's end (``lengths``) are ignored. The model needs a
    ``threshold`` (given here or in the ``Model``), else FitError. ``fit`` takes a ``SpikeMetric`` (e.g.
    ``GammaFactor``); ``generate_spikes`` gives the spike trains of a parameter set. The constructor's
    arguments are those of ``Fitter.__init__`` below.
    """

    output_kind = "spikes"

    def _set_output(self, output):
        if isinstance(output, dict):
            output = output.get("spikes", next(iter(output.values())))
        if len(output) != self.n_traces:
            raise FitError(f"output has {len(output)} spike trains but the input has {self.n_traces} traces")
        self.output_spikes = [np.sort(np.asarray(s, dtype=np.float64)) for s in output]
        self.output_spikes = self._within_lengths([self.output_spikes])[0]
        self.output = {"spikes": self.output_spikes}

    def _record(self):
        return (self.penalty,) if self.penalty else ()

    def _build_model(self, model, namespace, threshold, reset, refractory):
        built = super()._build_model(model, namespace, threshold, reset, refractory)
        if built.threshold is None:
            raise FitError("SpikeFitter needs a threshold (e.g. threshold='v > -50*mV')")
        return built

    def _errors(self, candidates, iteration):
        res = self._simulate(self._param_arrays(candidates, iteration), spikes=True)
        spikes = self._within_lengths(res.spikes)  # spikes after a trace's end (padding) are ignored
        errors = np.asarray(self.metric.calc(spikes, self.output_spikes, self.dt), dtype=np.float64)
        errors = errors + self._penalty(res)
        errors[res.invalid_sets] = np.inf
        return errors

    def generate_spikes(self, params=None, param_init=None):
        """Spike trains (list over traces) of ``params`` (default: best).

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, as for ``generate``. Returns a list
        over traces of 1-D arrays of spike times (s), without the spikes after each trace's end when the
        fitter has ``lengths``. Raises as ``generate``.
        """
        return self.generate("spikes", params=params, param_init=param_init)

    def generate_traces(self, params=None, param_init=None, output_var="v"):
        """Traces of one model variable (default: the membrane potential ``v``) for ``params`` (default: best).

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, as for ``generate``; output_var: the
        variable to record (state or subexpression). Returns an (n_traces, n_steps) array in SI units, NaN
        after each trace's end with ``lengths``. Raises as ``generate``.
        """
        return self.generate(output_var, params=params, param_init=param_init)
