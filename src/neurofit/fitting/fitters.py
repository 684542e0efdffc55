"""TraceFitter, SpikeFitter, OnlineTraceFitter: brian2modelfitting's API on neurofit's simulator.

A fitter owns a model, recorded inputs/outputs and simulation settings. ``fit`` runs rounds of
ask (optimizer) → simulate all candidates × all traces in one batch → error (metric) → tell,
checkpointing after every round; ``refine`` polishes the best parameters with
``scipy.optimize.least_squares`` and the exact Jacobian from forward sensitivities.
"""
from __future__ import annotations

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
from .metrics import first_step
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
                 backend: str = "auto", dtype: str = "float64", seed: int | None = None, threads: int = 1):
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
        self._set_output(output)
        self.model = self._build_model(model, namespace, threshold, reset, refractory)
        self.parameter_names = [p for p in self.model.parameters if p != "iteration"]
        self.optimizer = None
        self.metric = None
        self.bounds = {}
        self.log_scale = set()
        self.history: list[dict] = []
        self.iteration = 0
        self.best_params = None
        self.best_error = None

    # --- set-up ---------------------------------------------------------------------------
    def _set_output(self, output):
        if not isinstance(output, dict) or not output:
            raise FitError("output must be a dict {variable: array (n_traces, n_steps)}, e.g. {'v': traces}")
        self.output = {k: _as_traces(k, v, "output") for k, v in output.items()}
        for name, a in self.output.items():
            if a.shape != (self.n_traces, self.n_steps):
                raise FitError(f"output['{name}'] has shape {a.shape} but the input has {(self.n_traces, self.n_steps)}; "
                               f"every output needs one row per input trace and the same number of samples")
            if not np.all(np.isfinite(a)):
                raise FitError(f"output['{name}'] contains NaN or inf; recordings must be finite")

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

        Bounds are keyword arguments ``name=[low, high]`` (``[low, high, "log"]`` for a log-scale
        search). A later call continues the same optimisation unless ``restart=True``. With
        ``checkpoint=path`` the evaluated candidates are saved (JSON) after every round and a new
        call with the same path and a freshly built optimizer of the same settings and seed resumes
        where a killed run stopped: the optimizer is brought to its state by replaying the recorded
        rounds (``replay_round``), and the fit ends with the numbers of an uninterrupted one. A
        damaged checkpoint is discarded with a warning and the fit starts over.
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
        return result.traces[self.penalty][:, :, -1].mean(axis=1)

    def _record(self) -> tuple:
        return tuple(dict.fromkeys([*self.output, *([self.penalty] if self.penalty else [])]))

    def _simulate(self, params: dict, record=None, spikes=False, init=None, **kw):
        return simulate(self.model, params, self._inputs(), self.dt, init=self.param_init if init is None else init,
                        record=self._record() if record is None else record, spikes=spikes, method=self.method,
                        backend=self.backend, dtype=self.dtype, seed=self.seed, threads=self.threads, **kw)

    def restore(self, bounds: dict, metric, history: list, log_scale=()) -> None:
        """Give a fresh fitter a finished fit's state (bounds, metric, evaluated candidates), e.g. to
        ``refine`` it in another process; ``history`` rows hold the parameters, "error" and "round"."""
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
        """Every evaluated candidate with its error: "list" of dicts, "dict" of arrays, or "dataframe"."""
        if format == "list":
            return [{k: v for k, v in row.items() if k != "round"} for row in self.history]
        if format == "dict":
            keys = self.parameter_names + ["error"]
            return {k: np.array([row[k] for row in self.history]) for k in keys}
        if format == "dataframe":
            import pandas as pd
            return pd.DataFrame(self.history)
        raise FitError(f"results(format='{format}'): valid formats are 'list', 'dict', 'dataframe'")

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

        ``iteration`` is the value of a model's ``iteration`` variable: high by default, so that a
        coupling to the target that fades with the iteration is switched off (as brian2modelfitting).
        ``output_var`` may be ``"spikes"`` or a list of names (then a dict is returned).
        """
        single = isinstance(output_var, str) or output_var is None
        names = [output_var or next(iter(self.output))] if single else list(output_var)
        res = self._simulate(self._resolve_params(params, iteration), record=tuple(n for n in names if n != "spikes"),
                             spikes="spikes" in names, init={**self.param_init, **(param_init or {})})
        out = {n: (res.spikes[0] if n == "spikes" else res.traces[n][0]) for n in names}
        return out[names[0]] if single else out

    def generate_traces(self, params=None, param_init=None):
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
    """Fit recorded traces (e.g. membrane potential) with a trace metric (MSEMetric by default)."""

    def _check_metric(self, metric):
        if isinstance(metric, dict):
            unknown = [k for k in metric if k not in self.output]
            if unknown:
                raise FitError(f"metric: {', '.join(unknown)} not an output (outputs: {', '.join(self.output)})")

    def _metric_for(self, var):
        return self.metric[var] if isinstance(self.metric, dict) else self.metric

    def _errors(self, candidates, iteration):
        res = self._simulate(self._param_arrays(candidates, iteration))
        total = np.zeros(len(candidates))
        for var, data in self.output.items():
            total += np.asarray(self._metric_for(var).calc(res.traces[var], data, self.dt), dtype=np.float64)
        total = total + self._penalty(res)
        total[res.invalid_sets] = np.inf
        return total

    def refine(self, params=None, metric=None, calc_gradient: bool = True, t_start=None, normalization=None,
               n_starts: int = 8, **least_squares_kwargs):
        """Least-squares polish within the fit's bounds; returns (params, scipy OptimizeResult).

        Starts from ``params``, or else from the ``n_starts`` best candidates of the fit (HH-type
        models have local minima near the global one; each start costs a handful of simulations)
        and keeps the best result. Residuals are (model − data)/normalization from ``t_start`` on
        (settings of the fit's MSEMetric unless given). ``calc_gradient=True`` uses the exact
        Jacobian (forward sensitivities); False one batched simulation of p+1 parameter sets.
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
                                                   getattr(metric, "t_weights", None), calc_gradient,
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
    """TraceFitter whose squared error is accumulated while simulating: traces are never stored."""

    def _check_metric(self, metric):
        from .metrics import MSEMetric
        if not isinstance(metric, MSEMetric):
            raise FitError("OnlineTraceFitter computes the mean squared error online: use metric=MSEMetric(...)")

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
    """Fit recorded spike trains (list over traces of spike-time arrays, s) with a spike metric."""

    output_kind = "spikes"

    def _set_output(self, output):
        if isinstance(output, dict):
            output = output.get("spikes", next(iter(output.values())))
        if len(output) != self.n_traces:
            raise FitError(f"output has {len(output)} spike trains but the input has {self.n_traces} traces")
        self.output_spikes = [np.sort(np.asarray(s, dtype=np.float64)) for s in output]
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
        errors = np.asarray(self.metric.calc(res.spikes, self.output_spikes, self.dt), dtype=np.float64)
        errors = errors + self._penalty(res)
        errors[res.invalid_sets] = np.inf
        return errors

    def generate_spikes(self, params=None, param_init=None):
        """Spike trains (list over traces) of ``params`` (default: best)."""
        return self.generate("spikes", params=params, param_init=param_init)

    def generate_traces(self, params=None, param_init=None, output_var="v"):
        return self.generate(output_var, params=params, param_init=param_init)
