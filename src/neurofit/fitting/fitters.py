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
import time
import warnings

import numpy as np

from ..data.files import atomic_write_text
from ..equations.model import Model
from ..equations.namespace import caller_namespace, external_names
from ..errors import NeurofitError
from ..simulate import simulate
from ..units import DIMENSIONLESS, to_si
from .bounds import BoundsError, parse_bounds
from .callbacks import callback_setup, get_param_dic  # noqa: F401 - get_param_dic: brian2modelfitting.fitter's
from .metrics import first_step, trace_lengths, valid_samples
from .optimizers import ReplayError, replay_round

#: A fit checkpoint is JSON: the fit's identity and every evaluated candidate with its error and round.
#: Version 1 was a pickle and is never loaded (unpickling a file can run code).
CHECKPOINT_FORMAT = "neurofit.fit_checkpoint"
CHECKPOINT_VERSION = 2


class FitError(NeurofitError):
    """A user mistake in a fitter's set-up or arguments (one line naming the culprit)."""


class FitTypeError(FitError, TypeError):
    """An argument of the wrong kind (a spike metric for traces, an optimizer that is not an ``Optimizer``):
    a FitError that is also a TypeError, the class brian2modelfitting raises."""


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
    #: candidates per round when the constructor's n_samples is None (brian2modelfitting's defaults)
    default_n_samples = 60

    def __init__(self, model, input: dict, output, dt, n_samples: int | None = None, method: str | None = None,
                 threshold=None, reset=None, refractory=None, param_init: dict | None = None,
                 penalty: str | None = None, use_units: bool = True, namespace: dict | None = None,
                 backend: str = "auto", dtype: str = "float64", seed: int | None = None, threads: int = 1,
                 lengths=None, simulation_dt=None, at_rest: bool = False, input_var: str | None = None,
                 output_var=None, level: int = 0):
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
        n_samples: candidates (parameter sets) per round asked of the optimizer, an int >= 1 (None: 60 for
        TraceFitter, 30 for SpikeFitter and OnlineTraceFitter, as brian2modelfitting); ``fit`` lowers it to
        the population the optimizer's ``initialize`` returns when that is smaller (1 for a sequential
        nevergrad method); a round simulates n_samples × n_traces runs in one batch.
        method: integration method ("euler", "rk2", "rk4", "exponential_euler", "euler_maruyama"; None:
        ``simulate``'s choice).
        threshold: spike condition, e.g. "v > -50*mV"; reset: statements run after a spike, one per line
        ("v = El"); refractory: dead time after a spike, s, a duration string ("2 ms") or a condition
        ("v > -20*mV"). These three are as for ``Model``; when ``model`` is a ``Model``, giving any of them
        replaces all three of its events (one left None is removed).
        param_init: state → initial value: an SI number, a quantity string ("-70 mV"), an expression string
        evaluated at t = 0 ("1/(1 + beta_m/alpha_m)") or a (1, n_traces) array (one value per trace); unset
        states start at 0; a name that is not a state of the model is a FitError.
        penalty: name of a model variable (state or subexpression) whose value at the end of each trace (its
        last valid sample with ``lengths``), averaged over traces, is added to each candidate's error; it
        should not vary in time and be on the error's scale; None: no penalty.
        use_units: accepted for brian2modelfitting's API and stored; neurofit's results are always SI floats.
        namespace: constants used by equations text, name → SI number or quantity string ("10 ms"); ignored
        when ``model`` is a ``Model`` (which has its own). None (default): as Brian2, the names the equations
        text (and threshold, reset, refractory, param_init expressions) uses without defining them are looked up
        among the caller's local, then global, variables (``level``); each must be a number (SI).
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
        input_var, output_var: brian2modelfitting's deprecated spelling (a DeprecationWarning): the name of the
        input (str) when ``input`` is a bare (n_traces, n_steps) array, and the name (str) or names (list) of
        the outputs when ``output`` is a bare array or a list of arrays in that order; with a dict they must
        name its keys.
        level: where the constants of ``namespace=None`` are looked up: 0 the scope calling the constructor, 1
        the scope calling that one, and so on (brian2modelfitting's ``level``).

        Attributes as brian2modelfitting's: ``duration`` (s, n_steps × dt), ``output_var`` (list of the output
        names; ["spikes"] for SpikeFitter), ``threshold``, ``reset``, ``refractory`` (the model's, as given),
        ``n_traces``, ``n_samples``, ``n_neurons``, ``parameter_names``, ``input``, ``output``, ``method``,
        ``param_init``, ``penalty``, ``model``; after ``fit``: ``optimizer``, ``metric``, ``best_params``,
        ``best_error``, ``best_objective_errors``, ``best_objective_errors_normalized``.

        Raises FitTypeError (a FitError and a TypeError) when input or output is not a dict (and no
        input_var/output_var names it); FitError (one line) for arrays of different shapes, input_var/output_var
        that do not name the dict's keys, an output that is not a state or subexpression of the model, NaN/inf
        in the outputs (within each trace's length), dt not positive, bad ``lengths`` or ``simulation_dt``, a
        model that is neither text nor a ``Model``, and settings a subclass refuses (SpikeFitter without a
        threshold; OnlineTraceFitter with ``lengths`` or a finer ``simulation_dt``); UnitError when dt or
        simulation_dt cannot be read; EquationError when the equations text does not parse, uses a name that is
        defined nowhere, or finds a constant in the caller's scope that is not a number.
        """
        input, output = self._legacy_spelling(input, output, input_var, output_var, level)
        if not isinstance(input, dict) or not input:
            raise FitTypeError("input must be a dict {input_variable: array (n_traces, n_steps)}, e.g. {'I': traces} "
                               "(or a bare array with input_var='I')")
        self.input = {k: _as_traces(k, v, "input") for k, v in input.items()}
        shapes = {a.shape for a in self.input.values()}
        if len(shapes) != 1:
            raise FitError(f"input arrays have different shapes {sorted(shapes)}")
        self.n_traces, self.n_steps = shapes.pop()
        self.dt = to_si(dt, name="dt")
        if not self.dt > 0:
            raise FitError(f"dt = {dt} must be positive")
        self.n_samples = int(self.default_n_samples if n_samples is None else n_samples)
        if self.n_samples < 1:
            raise FitError(f"n_samples = {n_samples} must be a positive number of candidates per round")
        self._requested_samples = self.n_samples  # what fit() asks the optimizer's initialize for
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
        if namespace is None and isinstance(model, str):  # Brian2's get_local_namespace: the caller's constants
            namespace = caller_namespace(self._external_names(model, threshold, reset, refractory), level)
        self.model = self._build_model(model, namespace, threshold, reset, refractory)
        self._check_outputs()
        self.parameter_names = [p for p in self.model.parameters if p != "iteration"]
        self.duration = self.n_steps * self.dt
        self.output_var = list(self.output)
        self.threshold = self.model.threshold_text
        self.reset = self.model.reset_text
        self.refractory = self.model.refractory_spec
        unknown = sorted(set(self.param_init) - set(self.model.states))
        if unknown:
            raise FitError(f"param_init: {', '.join(unknown)} not a state variable of the model "
                           f"(states: {', '.join(self.model.states) or 'none'})")
        self.optimizer = None
        self.metric = None
        self._data_spikes = {}  # (metric id, output) -> recorded spike trains, for metrics that need spikes
        self.bounds = {}
        self.log_scale = set()
        self.history: list[dict] = []
        self.iteration = 0
        self.best_params = None
        self.best_error = None
        self._best_objectives = None  # output -> normalized error of the best candidate
        self._check_setup()

    # --- set-up ---------------------------------------------------------------------------
    def _legacy_spelling(self, input, output, input_var, output_var, level):
        """(input, output) as dicts from brian2modelfitting's deprecated input_var/output_var spelling (a
        DeprecationWarning each); unchanged without them."""
        if input_var is not None:
            warnings.warn("input_var= is deprecated (as in brian2modelfitting): pass input={'%s': traces}" % input_var,
                          DeprecationWarning, stacklevel=level + 3)
            if isinstance(input, dict):
                if input_var not in input:
                    raise FitError(f"input_var='{input_var}' is not a key of the input dict ({', '.join(input)})")
            else:
                input = {input_var: input}
        if output_var is not None:
            warnings.warn("output_var= is deprecated (as in brian2modelfitting): pass output={'name': traces}",
                          DeprecationWarning, stacklevel=level + 3)
            names = [output_var] if isinstance(output_var, str) else list(output_var)
            if isinstance(output, dict):
                if set(names) != set(output):
                    raise FitError(f"output_var={names} does not name the output dict's keys ({', '.join(output)})")
            else:
                arrays = output if isinstance(output, list) else [output]
                if len(arrays) != len(names):
                    raise FitError(f"output_var names {len(names)} outputs but {len(arrays)} arrays are given")
                output = dict(zip(names, arrays))
        return input, output

    def _external_names(self, text: str, threshold, reset, refractory) -> list:
        """Names the model text uses that neither it nor the fitter defines (inputs, targets, iteration)."""
        defined = {*self.input, *(f"{v}_target" for v in self.output), "iteration"}
        expressions = [v for v in self.param_init.values() if isinstance(v, str)]
        return [n for n in external_names(text, threshold, reset, refractory, expressions) if n not in defined]

    def _check_outputs(self):
        """FitError unless every output is a state or subexpression of the model (brian2modelfitting checks at
        construction)."""
        unknown = [v for v in self.output if v not in self.model.recordable()] if self.output_kind == "traces" else []
        if unknown:
            raise FitError(f"output: {', '.join(unknown)} not a variable of the model (states and subexpressions: "
                           f"{', '.join(self.model.recordable()) or 'none'})")

    def _set_output(self, output):
        if not isinstance(output, dict) or not output:
            raise FitTypeError("output must be a dict {variable: array (n_traces, n_steps)}, e.g. {'v': traces} "
                               "(or a bare array with output_var='v')")
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
            level: int = 0, **bounds):
        """Optimise for ``n_rounds`` rounds of ``n_samples`` candidates; returns (best_params, best_error).

        Each round asks the optimizer for candidates, simulates them on all traces in one batch, computes
        their errors with the metric (plus ``penalty``; inf for a candidate whose simulation diverged) and
        tells the optimizer. A later call continues the same optimisation (the optimizer, metric and bounds of
        the first call; ``optimizer`` and ``metric`` may then be None or the same objects, anything else is a
        FitError) unless ``restart=True``.

        optimizer: an ``Optimizer`` (e.g. ``NevergradOptimizer("DE")``, ``SkoptOptimizer()``) or a subclass of it
        with brian2modelfitting's ``initialize(parameter_names, popsize, rounds, **bounds)`` (which then gets
        the bounds as keywords and may ask lists of values in ``parameter_names`` order); None on a new fit:
        ``NevergradOptimizer()`` (DE, unseeded). It is initialised with ``popsize=n_samples`` (the
        constructor's) and ``rounds=n_rounds``; a smaller population than that it returns (1 for a sequential
        method) becomes ``n_samples``, a larger one (nevergrad's DE: at least 30) is asked n_samples at a time.
        metric: the error measure (None on a new fit: brian2modelfitting's default, ``MSEMetric()`` for
        TraceFitter, ``MSEMetric(t_start=<the constructor's t_start>)`` for OnlineTraceFitter,
        ``GammaFactor(delta=2 ms, time=<the traces' duration>)`` for SpikeFitter). TraceFitter: a trace metric
        (e.g. ``MSEMetric()``), a dict output variable → metric with one metric per output (the errors of the
        outputs are summed), or a list of one metric per output in the order of ``output`` (brian2modelfitting's
        deprecated spelling, a DeprecationWarning; kept as that dict);
        OnlineTraceFitter: an ``MSEMetric`` (its t_start and normalization are used); SpikeFitter: a
        ``SpikeMetric`` (e.g. ``GammaFactor(delta="2 ms", time="1 s")``). A metric's t_weights must have one
        weight per sample.
        n_rounds: rounds to run in this call (0 sets a new fit up - optimizer, metric, bounds - without
        evaluating anything, e.g. for ``refine``).
        callback: the report after each round (``callback_setup``): "text" (``callback_text``: the best parameters
        and error, with the output names), "progressbar" (a ``ProgressBar`` over n_rounds), None (silent) or a
        function ``f(params, errors, best_params, best_error, index, info)`` - the
        round's candidates (list of dicts) and their (n_samples,) errors, the best parameters and error so
        far, the round's index (from 0, counted over all calls of this fit) and a dict with, as
        brian2modelfitting, "objective_errors" and "objective_errors_normalized" (tuples, one error per output:
        the best candidate's metric errors without and with the metric's normalization, penalty not included)
        and "output_var" (the output names), plus "round_time" (seconds since the epoch); the fit stops early
        when it returns True.
        restart: start a new optimisation (new optimizer, metric and bounds) instead of continuing; an
        existing ``checkpoint`` is then ignored and overwritten.
        start_iteration: value of the model's ``iteration`` variable in this call's first round (default: 0
        on a new fit, else it continues from the previous call); it grows by 1 per round.
        penalty: a model variable added to the error as the constructor's ``penalty``; replaces it for this
        and later calls (None: keep it). Its units must be the error's where those are known (FitError
        otherwise, as brian2modelfitting): (output unit)² for an MSEMetric with normalization 1, none for one
        with another normalization (given in the output's units) and for a GammaFactor.
        checkpoint: path of a JSON file the evaluated candidates are saved to after every round. A new
        call with the same path and a freshly built optimizer of the same settings and seed resumes
        where a killed run stopped: the optimizer is brought to its state by replaying the recorded
        rounds (``replay_round``), and the fit ends with the numbers of an uninterrupted one. A
        damaged checkpoint is discarded with a warning and the fit starts over.
        level: accepted for brian2modelfitting's API and not used: the constants of the caller's scope are read
        once, by the constructor.
        bounds: the search range of every model parameter as keyword arguments ``name=[low, high]`` (SI
        numbers or quantity strings, e.g. ``gl=["1 nS", "100 nS"]``), ``[low, high, "log"]`` for a log-scale
        search (low > 0); required on a new fit and unchanged when continuing.

        Returns (best_params, best_error): the lowest-error candidate of all rounds so far (parameter name →
        SI float) and its error (float); (None, None) when nothing was evaluated yet (n_rounds=0). Raises
        FitTypeError (a FitError and a TypeError) for an optimizer that is not an ``Optimizer`` or a metric
        of the wrong kind (a spike metric for traces or the reverse) or a list of metrics of another length than
        the outputs; CallbackError (a NeurofitError and a TypeError) for an unknown callback; FitError (one line)
        for t_weights of another length than the traces, a metric dict without an output or with an unknown one,
        a penalty in other units than the error, a different optimizer or metric while continuing, missing,
        unknown or invalid bounds (or bounds changed while continuing), or a checkpoint of another fit or one
        that does not replay; SimulationError when the model cannot be simulated with the fitter's
        settings (e.g. noise without a seed).
        """
        from .optimizers import Optimizer
        metric = self._metric_argument(metric)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise FitTypeError(f"optimizer must be a neurofit Optimizer (e.g. NevergradOptimizer('DE')) or None, "
                               f"not {type(optimizer).__name__}")
        if metric is not None:
            self._check_metric(metric)  # kind and shape, before anything changes
        fresh = restart or self.optimizer is None
        if not fresh:
            if optimizer is not None and optimizer is not self.optimizer:
                raise FitError("fit: cannot change the optimizer while continuing a fit; pass restart=True")
            if metric is not None and not _same_metric(metric, self.metric):
                raise FitError("fit: cannot change the metric while continuing a fit; pass restart=True")
            if bounds and _parse_bounds(bounds, self.parameter_names)[0] != self.bounds:
                raise FitError("fit: bounds changed while continuing a fit; pass restart=True to start over")
        if fresh and metric is None:
            metric = self._default_metric()
            self._check_metric(metric)
        self._check_penalty(self.penalty if penalty is None else penalty, metric if fresh else self.metric)
        new_bounds = _parse_bounds(bounds, self.parameter_names) if fresh else None
        report = callback_setup(callback, n_rounds)  # before anything changes: an unknown callback is refused
        if penalty is not None:
            self.penalty = penalty
        if fresh:
            if optimizer is None:
                from .optimizers import NevergradOptimizer
                optimizer = NevergradOptimizer()
            self.bounds, self.log_scale = new_bounds
            # a smaller population (1: a sequential method) replaces n_samples; a larger one (nevergrad's DE
            # uses at least 30) is filled over several rounds of n_samples (brian2modelfitting asks it at once)
            self.n_samples = min(self._requested_samples, _initialize(
                optimizer, self.parameter_names, self.bounds, self.log_scale, self._requested_samples, n_rounds))
            self.optimizer, self.metric = optimizer, metric
            self.history, self.best_params, self.best_error, self._best_objectives = [], None, None, None
            self.iteration = start_iteration or 0
            self._rounds_done = 0
        elif start_iteration is not None:
            self.iteration = start_iteration
        target_rounds = self._rounds_done + n_rounds
        if fresh and checkpoint and os.path.exists(checkpoint) and not restart:
            self._load_checkpoint(checkpoint)  # a killed run: continue towards the same n_rounds
        while self._rounds_done < target_rounds:
            asked = self.optimizer.ask(n_samples=self.n_samples)
            # brian2modelfitting-style optimizers ask lists of values in parameter_names order
            candidates = [dict(c) if isinstance(c, dict) else dict(zip(self.parameter_names, map(float, c)))
                          for c in asked]
            errors, objectives = self._evaluate(candidates, self.iteration)
            self.optimizer.tell(asked, errors)
            self._record_round(candidates, errors, objectives)
            if checkpoint:
                self._save_checkpoint(checkpoint)
            info = {"objective_errors": tuple((self.best_objective_errors or {}).values()),
                    "objective_errors_normalized": tuple((self.best_objective_errors_normalized or {}).values()),
                    "output_var": list(self.output_var), "round_time": time.time()}
            stop = report(candidates, errors, self.best_params, self.best_error, self._rounds_done - 1, info)
            if stop is True:
                break
        if self.best_params is None:  # n_rounds=0 on a new fit: set up (e.g. for refine), nothing evaluated
            return None, None
        return dict(self.best_params), self.best_error

    def _metric_argument(self, metric):
        """``metric`` as the fitter keeps it: a list or tuple (brian2modelfitting's deprecated spelling, one metric
        per output in the order of ``output``; a DeprecationWarning) becomes the dict output → metric, or the one
        metric for one output; anything else is returned as it is. FitTypeError for a list of another length."""
        if not isinstance(metric, (list, tuple)):
            return metric
        warnings.warn("a list of metrics is deprecated (as in brian2modelfitting): pass a dict {output: metric}",
                      DeprecationWarning, stacklevel=3)
        if len(metric) != len(self.output):
            raise FitTypeError(f"metric: a list of {len(metric)} metrics for {len(self.output)} outputs "
                               f"({', '.join(self.output)}); give one per output, in that order")
        return metric[0] if len(metric) == 1 else dict(zip(self.output, metric))

    def _check_penalty(self, penalty, metric) -> None:
        """FitError unless the penalty variable has the units of the error it is added to, where those are known
        (as brian2modelfitting): an MSEMetric without normalization errs in (output unit)², with a normalization
        (in the output's units) and a GammaFactor without units."""
        from .metrics import GammaFactor, MSEMetric
        if not penalty or penalty not in self.model.dimensions:
            return
        metrics = metric.items() if isinstance(metric, dict) else [(var, metric) for var in self.output]
        for var, one in metrics:
            if isinstance(one, MSEMetric) and var in self.model.dimensions:
                expected = self.model.dimensions[var] ** 2 if one.normalization == 1.0 else DIMENSIONLESS
            elif isinstance(one, GammaFactor):
                expected = DIMENSIONLESS
            else:
                continue
            if self.model.dimensions[penalty] != expected:
                raise FitError(f"penalty '{penalty}' has units of {self.model.dimensions[penalty]} but the error it "
                               f"is added to ({type(one).__name__} of '{var}') has units of {expected}")

    def _default_metric(self):
        """The metric of ``fit(metric=None)``: brian2modelfitting's default for this fitter."""
        from .metrics import MSEMetric
        return MSEMetric()

    def _record_round(self, candidates: list, errors: np.ndarray, objectives: dict | None = None) -> None:
        """Book a told round: best so far, history rows (with each output's normalized error when
        ``objectives``, output → (n,) errors, is given), round and iteration counters."""
        rows = [{**c, "error": float(e), "round": self._rounds_done} for c, e in zip(candidates, errors)]
        if objectives is not None:
            for i, row in enumerate(rows):
                row["objective_errors_normalized"] = {var: float(objectives[var][i]) for var in self.output}
        best = int(np.argmin(errors))
        if self.best_error is None or errors[best] < self.best_error:
            self.best_error = float(errors[best])
            self.best_params = dict(candidates[best])
            self._best_objectives = rows[best].get("objective_errors_normalized")
        self.history.extend(rows)
        self._rounds_done += 1
        self.iteration += 1

    def _check_metric(self, metric):
        pass

    def _errors(self, candidates: list, iteration: int) -> np.ndarray:
        """The fit's error of each candidate: the first part of ``_evaluate``."""
        return self._evaluate(candidates, iteration)[0]

    def _evaluate(self, candidates: list, iteration: int) -> tuple:
        """(errors, objectives) of ``candidates`` (list of parameter dicts) at the model's ``iteration``: the
        fit's error of each, (n,) with the penalty and inf where the simulation diverged, and output → (n,)
        errors of each output's metric (normalized, no penalty)."""
        raise NotImplementedError

    def _raw_objective(self, var: str, error: float) -> float:
        """An output's metric error without its normalization: × normalization² for an MSEMetric (as
        brian2modelfitting's ``revert_normalization``), unchanged for other metrics."""
        from .metrics import MSEMetric
        metric = self.metric.get(var) if isinstance(self.metric, dict) else self.metric
        return error * metric.normalization ** 2 if isinstance(metric, MSEMetric) else error

    @property
    def best_objective_errors_normalized(self) -> dict | None:
        """Output name → the best candidate's error from that output's metric (normalized, without penalty), as
        brian2modelfitting; None before a fit or when the best was given by ``restore`` without them."""
        return None if self._best_objectives is None else dict(self._best_objectives)

    @property
    def best_objective_errors(self) -> dict | None:
        """Output name → the best candidate's error from that output's metric without its normalization (an
        MSEMetric's error × normalization², in the output's units squared), as brian2modelfitting; None as for
        ``best_objective_errors_normalized``."""
        if self._best_objectives is None:
            return None
        return {var: self._raw_objective(var, e) for var, e in self._best_objectives.items()}

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
        candidate holding every parameter (SI), "error" and optionally "round" (index from 0) and
        "objective_errors_normalized" (output → error), as ``results("list")`` gives them; log_scale: names of
        the parameters searched on a log scale. The finite-error row with the lowest error becomes best_params /
        best_error (None when there is none). Returns nothing. Raises FitError for bounds that are missing,
        unknown or invalid.
        """
        self.bounds, self.log_scale = _parse_bounds({k: list(v) for k, v in bounds.items()}, self.parameter_names)
        self.log_scale |= set(log_scale)
        self.metric = metric
        # the errors without normalization are computed from the normalized ones (results)
        self.history = [{k: v for k, v in row.items() if k != "objective_errors"} for row in history]
        finite = [row for row in self.history if np.isfinite(row["error"])]
        best = min(finite, key=lambda row: row["error"]) if finite else None
        self.best_params = {p: best[p] for p in self.parameter_names} if best else None
        self.best_error = best["error"] if best else None
        self._best_objectives = best.get("objective_errors_normalized") if best else None
        self._rounds_done = 1 + max((row.get("round", 0) for row in self.history), default=-1)

    # --- checkpoints ----------------------------------------------------------------------------
    def _save_checkpoint(self, path: str):
        """Write the fit's identity and every evaluated candidate (JSON, atomic; NaN/inf errors as NaN/Infinity)."""
        names = self.parameter_names
        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "parameters": names,
                 "bounds": {p: [float(lo), float(hi)] for p, (lo, hi) in self.bounds.items()},
                 "log_scale": sorted(self.log_scale), "n_samples": self.n_samples, "rounds": self._rounds_done,
                 "iteration": self.iteration, "candidates": [[float(row[p]) for p in names] for row in self.history],
                 "errors": [row["error"] for row in self.history], "round": [row["round"] for row in self.history],
                 "objectives": [[row["objective_errors_normalized"][var] for var in self.output]
                                if "objective_errors_normalized" in row else None for row in self.history]}
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
            saved = [state["objectives"][i] for i in index] if "objectives" in state else [None]
            objectives = None
            if index and all(o is not None and len(o) == len(self.output) for o in saved):
                objectives = dict(zip(self.output, np.array(saved, dtype=np.float64).T))
            try:
                candidates = replay_round(self.optimizer, self.n_samples, recorded, errors)
            except ReplayError as err:
                raise FitError(f"checkpoint {path}: round {r} does not replay: {err}; delete it or pass "
                               f"restart=True") from None
            self._record_round(candidates, errors, objectives)
        self.iteration = state["iteration"]

    # --- results --------------------------------------------------------------------------------
    def results(self, format: str = "list", use_units=None):
        """Every evaluated candidate with its error, in the order evaluated.

        format: "list" - a list of dicts (parameter name → SI float, plus "error"); "dict" - a dict of
        (n_evaluated,) arrays, one per parameter plus "error"; "dataframe" - a pandas DataFrame with a column
        per parameter, "error" and "round" (round index from 0; an extension of brian2modelfitting's columns).
        With several outputs, as brian2modelfitting, each output's metric error (penalty not included) is added:
        "objective_errors" and "objective_errors_normalized" (output → error; in "dict" output → array) in
        "list" and "dict", columns "normalized_error_<output>" and "error_<output>" in "dataframe" (NaN for
        candidates restored without them). use_units: accepted for brian2modelfitting's API and ignored: values
        are always SI floats without units. Returns the results in that format (empty before the first round).
        Raises FitError for another format.
        """
        multi = len(self.output) > 1
        nan = dict.fromkeys(self.output, float("nan"))
        normalized = [row.get("objective_errors_normalized", nan) for row in self.history]
        raw = [{var: self._raw_objective(var, e) for var, e in one.items()} for one in normalized] if multi else []
        if format == "list":
            rows = [{k: v for k, v in row.items() if k not in ("round", "objective_errors_normalized")}
                    for row in self.history]
            if multi:
                for row, one, unnormalized in zip(rows, normalized, raw):
                    row.update({"objective_errors_normalized": dict(one), "objective_errors": unnormalized})
            return rows
        if format == "dict":
            keys = self.parameter_names + ["error"]
            out = {k: np.array([row[k] for row in self.history]) for k in keys}
            if multi:
                out["objective_errors_normalized"] = {v: np.array([one[v] for one in normalized]) for v in self.output}
                out["objective_errors"] = {v: np.array([one[v] for one in raw]) for v in self.output}
            return out
        if format == "dataframe":
            import pandas as pd
            columns = [*self.parameter_names, "error", "round"]
            frame = pd.DataFrame([[row.get(k, np.nan) for k in columns] for row in self.history], columns=columns)
            if multi:
                for v in self.output:
                    frame[f"normalized_error_{v}"] = [one[v] for one in normalized]
                for v in self.output:
                    frame[f"error_{v}"] = [one[v] for one in raw]
            return frame
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

    def generate(self, output_var=None, params=None, param_init=None, iteration=1e9, level: int = 0):
        """Simulate ``params`` (default: best) on all inputs; (n_traces, n_steps) per variable.

        output_var: a model variable to record (state, subexpression, or parameter - a constant trace), ``"spikes"``
        for the spike times (the model needs a threshold), or a list of such names (then a dict is returned);
        None: the outputs (``output_var``): one output's value, or a dict for several (SpikeFitter: "spikes");
        params: parameter name → SI number or quantity string, every parameter of the model (None: the fit's
        best parameters); param_init: initial values as for the constructor, replacing its ``param_init`` for
        the states given; iteration: the value of a model's ``iteration`` variable: high by default, so that a
        coupling to the target that fades with the iteration is switched off (as brian2modelfitting); level:
        accepted for brian2modelfitting's API and not used (the constructor reads the caller's constants).

        Returns, for a variable, an (n_traces, n_steps) array in SI units (sample k at t = k·dt); for
        "spikes", a list over traces of 1-D arrays of spike times (s); for a list of names (or several
        outputs), a dict name → such value. With ``lengths``, traces are NaN after each trace's end and later
        spikes are dropped. Raises FitError when there are no parameters (no fit and no ``params``) or one is
        missing, UnitError for a value that cannot be read, SimulationError for an unknown variable or state, or
        "spikes" without a threshold.
        """
        if output_var is None:
            output_var = self.output_var[0] if len(self.output_var) == 1 else list(self.output_var)
        single = isinstance(output_var, str)
        names = [output_var] if single else list(output_var)
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

    def generate_traces(self, params=None, param_init=None, iteration=1e9, level: int = 0):
        """Traces of the output variables for ``params`` (default: best) on all inputs.

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, iteration, level: as for ``generate``.
        Returns an (n_traces, n_steps) array in SI units (e.g. V) for one output, a dict output → such array for
        several (as brian2modelfitting); NaN after each trace's end with ``lengths``. Raises as ``generate``.
        """
        return self.generate(None, params=params, param_init=param_init, iteration=iteration)


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
    objectives = state.get("objectives", [None] * len(errors))  # per-output errors: absent in older checkpoints
    need(isinstance(objectives, list) and len(objectives) == len(errors)
         and all(o is None or (isinstance(o, list) and all(isinstance(v, number) for v in o)) for o in objectives),
         "per-output errors that are not one list of numbers per candidate")
    return state


def _same_metric(metric, current) -> bool:
    """Whether ``metric`` is the fit's metric ``current`` (the same object, or a dict of the same objects)."""
    if isinstance(metric, dict) and isinstance(current, dict):
        return metric.keys() == current.keys() and all(metric[k] is current[k] for k in metric)
    return metric is current


def _initialize(optimizer, names: list, bounds: dict, log_scale: set, popsize: int, rounds: int) -> int:
    """Set up ``optimizer`` for a fit; returns the population it will use per round.

    neurofit's ``initialize(names, bounds, log_scale=, popsize=, rounds=)`` is used unless the optimizer's
    class overrides ``initialize`` with brian2modelfitting's signature ``initialize(names, popsize, rounds,
    **bounds)`` (no ``bounds`` argument): that one gets the bounds as keywords ``name=[low, high]``."""
    import inspect
    parameters = inspect.signature(optimizer.initialize).parameters
    if "bounds" not in parameters:
        if log_scale:
            raise FitError(f"log-scale bounds ({', '.join(sorted(log_scale))}) need an optimizer with neurofit's "
                           f"initialize(names, bounds, log_scale=...); {type(optimizer).__name__} has "
                           f"brian2modelfitting's initialize(names, popsize, rounds, **bounds)")
        result = optimizer.initialize(names, popsize=popsize, rounds=rounds,
                                      **{n: [lo, hi] for n, (lo, hi) in bounds.items()})
    else:  # rounds only for an initialize that takes it (user optimizers written before it existed do not)
        takes_rounds = "rounds" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        result = optimizer.initialize(names, bounds, log_scale=log_scale, popsize=popsize,
                                      **({"rounds": rounds} if takes_rounds else {}))
    return popsize if result is None else max(1, int(result))


class TraceFitter(Fitter):
    """Fit recorded traces (e.g. membrane potential) with a trace metric (e.g. MSEMetric).

    output: variable → (n_traces, n_steps) recorded traces in SI units; ``fit`` takes a ``TraceMetric`` or
    a dict of them per output variable (the errors of the outputs are summed); ``refine`` polishes the
    result by least squares. The constructor's arguments are those of ``Fitter.__init__`` below.
    """

    def _check_metric(self, metric):
        """FitError unless ``metric`` suits traces (FitTypeError for a spike metric such as GammaFactor, or an
        object that is no metric); t_weights must have one weight per sample."""
        from .metrics import SpikeMetric
        if isinstance(metric, dict):
            unknown = [k for k in metric if k not in self.output]
            if unknown:
                raise FitError(f"metric: {', '.join(unknown)} not an output (outputs: {', '.join(self.output)})")
            missing = [k for k in self.output if k not in metric]
            if missing:
                raise FitError(f"metric: no metric for the output(s) {', '.join(missing)}; the dict needs one per "
                               f"output ({', '.join(self.output)})")
        for var, one in (metric.items() if isinstance(metric, dict) else [(None, metric)]):
            where = "metric" if var is None else f"metric['{var}']"
            if isinstance(one, SpikeMetric) or not callable(getattr(one, "calc", None)):
                raise FitTypeError(f"{where} is a {type(one).__name__}; {type(self).__name__} needs a trace metric "
                                   f"such as MSEMetric() (spike metrics are for SpikeFitter)")
            weights = getattr(one, "t_weights", None)
            if weights is not None and np.shape(weights) != (self.n_steps,):
                raise FitError(f"{where}: t_weights has shape {np.shape(weights)}; the traces have "
                               f"{self.n_steps} samples, one weight each")

    def _metric_for(self, var):
        return self.metric[var] if isinstance(self.metric, dict) else self.metric

    def _evaluate(self, candidates, iteration):
        """(errors, objectives) as ``Fitter._evaluate``: each output's metric on the simulated traces, summed."""
        wants_spikes = any(getattr(self._metric_for(var), "needs_spikes", False) for var in self.output)
        res = self._simulate(self._param_arrays(candidates, iteration), spikes=wants_spikes)
        objectives = {}
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
            objectives[var] = np.asarray(errors, dtype=np.float64)
        total = sum(objectives.values()) + self._penalty(res)
        total[res.invalid_sets] = np.inf
        return total, objectives

    def refine(self, params=None, metric=None, callback=None, calc_gradient: bool = False, t_start=None,
               normalization=None, n_starts: int = 8, optimize: bool = True, level: int = 0, **kwds):
        """Least-squares polish within the fit's bounds; returns (params, scipy OptimizeResult).

        Starts from ``params``, or else from the ``n_starts`` best candidates of the fit (HH-type
        models have local minima near the global one; each start costs a handful of simulations)
        and keeps the best result. Residuals are (model − data)/normalization (times √t_weights) of every
        output variable from its t_start on (each output with its own metric's settings when the fit had a
        dict of metrics), over each trace's valid samples when the fitter has ``lengths``. A fit with
        ``n_rounds=0`` is enough to set up the bounds and metric.

        params: parameter name → SI number or quantity string to start from, every parameter (None: the
        fit's best candidates); metric: an ``MSEMetric``, a dict output variable → ``MSEMetric`` or a list of them
        in the order of ``output`` (as for ``fit``) whose
        t_start, normalization and t_weights define each output's residuals (None: the fit's metric or metric
        dict; without a fit: t_start 0, normalization 1, no weights); callback: called after every residual
        evaluation (``callback_setup``): None (default, silent), "text" (``callback_text``: the best parameters and
        error so far), "progressbar" (a ``ProgressBar`` without an end) or a
        function ``f(params, errors, best_params, best_error, index, info)`` - the evaluation's parameters
        (dict, SI), the list of every evaluation's per-output mean squared residuals (tuples), the best
        parameters and error (float, the sum over outputs) so far, the evaluation's index (int, from 0) and a
        dict with "objective_errors", "objective_errors_normalized" (per-output errors of the best evaluation,
        without and with normalization) and "output_var" (the outputs); its return value is ignored.
        calc_gradient: False (default, as brian2modelfitting) builds the Jacobian by forward differences from
        one batched simulation of p+1 parameter sets; True uses the exact Jacobian from forward sensitivities
        (fewer simulations per step on stiff models), except when the fitter starts at rest (``at_rest``): the
        forward sensitivities start at zero and would miss how the rest depends on the parameters, so forward
        differences are used then; t_start: start of the compared window for every output, s or a quantity
        string (None: each metric's); normalization: divisor of the residuals of every output, an SI number in
        the output's units (e.g. 0.01 for 10 mV; None: each metric's where it divides the traces - its
        ``normalizes_traces`` -, else 1); n_starts: how many of the best distinct
        candidates to start from when ``params`` is None; optimize: accepted for brian2modelfitting's API and
        ignored (neurofit's sensitivity equations are always pruned); level: accepted for brian2modelfitting's
        API and not used (the constructor reads the caller's constants); kwds: a parameter's name → [low, high]
        (SI numbers or quantity strings) replaces the fit's bounds of that parameter, e.g. ``g=[1e-9, 3e-8]``;
        every other keyword goes to ``scipy.optimize.least_squares`` (defaults method="trf", x_scale="jac").
        Without a fit (or ``restore``), every parameter needs bounds keywords.

        Returns (params, result): the refined parameters of the best start (name → SI float) and its scipy
        ``OptimizeResult`` (``result.fun``: the residuals; ``result.objective_errors_normalized``: output → mean
        squared residual). The fitter's best_params / best_error (and best_objective_errors) are replaced when
        the refined error - the sum over outputs of their mean squared residuals - is lower;
        ``refine_evaluations`` counts the residual and Jacobian evaluations of all starts. Raises FitTypeError (a
        FitError and a TypeError, as brian2modelfitting) when there is neither a fit nor ``params``, when a
        parameter has no bounds (no fit and no bounds keyword for it), and for a metric that is not an
        MSEMetric (e.g. a FeatureMetric); CallbackError for an unknown callback; FitError for a missing
        parameter or invalid bounds; UnitError for a value that cannot be read.
        """
        from .metrics import MSEMetric
        from .refine import least_squares_refine
        given = {k: kwds.pop(k) for k in list(kwds) if k in self.parameter_names}
        metric = self._metric_argument(metric)
        if metric is not None:
            for one in (metric.values() if isinstance(metric, dict) else [metric]):
                if not isinstance(one, MSEMetric):
                    raise FitTypeError(f"refine minimises squared residuals: metric must be an MSEMetric (or a dict "
                                       f"of them), not {type(one).__name__}")
            self._check_metric(metric)
        else:
            metric = self.metric
        per_output = {var: (metric.get(var) if isinstance(metric, dict) else metric) for var in self.output}
        t_starts = {var: first_step(to_si(t_start if t_start is not None else getattr(m, "t_start", 0.0),
                                          name="t_start"), self.dt) for var, m in per_output.items()}
        norms = {var: normalization or (m.normalization if getattr(m, "normalizes_traces", False) else 1.0)
                 for var, m in per_output.items()}
        weights = {var: getattr(m, "t_weights", None) for var, m in per_output.items()}
        if params is None and not self.history:
            raise FitTypeError("refine needs start parameters: run fit() first or pass params=")
        if params is not None:
            starts = [self._resolve_params(params)]
        else:
            starts = [self._resolve_params(row) for row in _distinct_best(self.history, self.parameter_names,
                                                                            max(1, n_starts))]
        bounds = dict(self.bounds)
        if given:
            bounds.update(_parse_bounds(given, list(given))[0])
        missing = [p for p in self.parameter_names if p not in bounds]
        if missing:
            raise FitTypeError(f"refine: no bounds for {', '.join(missing)}; give them as keywords "
                               f"(e.g. {missing[0]}=[low, high]) or run fit() first")
        report = callback_setup(callback, None)
        evaluations = []  # (params, per-output mean squared residual) of every residual evaluation

        def on_evaluation(point, residuals):
            errors = tuple(float(np.mean(r ** 2)) for r in residuals.values())
            evaluations.append((point, errors))
            totals = [sum(e) for _, e in evaluations]
            best = int(np.argmin(totals))
            info = {"objective_errors": tuple(e * norms[v] ** 2 for e, v in zip(evaluations[best][1], residuals)),
                    "objective_errors_normalized": evaluations[best][1], "output_var": list(residuals)}
            report({p: point[p] for p in self.parameter_names}, [e for _, e in evaluations],
                   {p: evaluations[best][0][p] for p in self.parameter_names}, float(totals[best]),
                   len(evaluations) - 1, info)

        best = None
        self.refine_evaluations = 0  # simulations over all starts
        for start in starts:
            refined, result = least_squares_refine(self, start, bounds, t_starts, norms, weights,
                                                   calc_gradient and not self.at_rest, lengths=self.lengths,
                                                   on_evaluation=on_evaluation, **kwds)
            self.refine_evaluations += int(result.nfev) + int(result.njev or 0)
            if best is None or result.cost < best[1].cost:
                best = (refined, result)
        refined, result = best
        error = float(sum(result.objective_errors_normalized.values()))
        if self.best_error is None or error < self.best_error:
            self.best_params, self.best_error = dict(refined), error
            self._best_objectives = dict(result.objective_errors_normalized)
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

    default_n_samples = 30

    def __init__(self, *args, t_start=None, level: int = 0, **kwargs):
        """Set up an online fit: the arguments of ``Fitter.__init__`` plus brian2modelfitting's ``t_start``.

        t_start: start of the compared window of ``fit(metric=None)``'s default ``MSEMetric(t_start=...)``, s or
        a quantity string (None: 0 s); a metric given to ``fit`` brings its own t_start. level: as for
        ``Fitter.__init__`` (0: the scope calling this constructor). The outputs may be states or
        subexpressions. Raises as ``Fitter.__init__``, and UnitError for a t_start that cannot be read.
        """
        super().__init__(*args, level=level + 1, **kwargs)
        self.t_start = 0.0 if t_start is None else to_si(t_start, name="t_start")

    def _default_metric(self):
        """``MSEMetric(t_start=self.t_start)`` (brian2modelfitting's OnlineTraceFitter default)."""
        from .metrics import MSEMetric
        return MSEMetric(t_start=self.t_start)

    def _check_metric(self, metric):
        """FitTypeError unless ``metric`` is an MSEMetric (the error the online kernel accumulates)."""
        from .metrics import MSEMetric
        if not isinstance(metric, MSEMetric):
            raise FitTypeError("OnlineTraceFitter computes the mean squared error online: use metric=MSEMetric(...) "
                               "or metric=None")

    def _check_setup(self):
        """The online kernel compares every simulation step with the target: no padding, no finer step."""
        if self.lengths is not None:
            raise FitError(f"OnlineTraceFitter: traces have different lengths ({int(self.lengths.min())} to "
                           f"{self.n_steps} samples) and its online kernel cannot leave padded samples out; use "
                           f"TraceFitter (fit.kind: trace)")
        if self.substeps > 1:
            raise FitError("OnlineTraceFitter compares the model with the data at every simulation step: "
                           "simulation_dt must equal dt; use TraceFitter (fit.kind: trace)")

    def _evaluate(self, candidates, iteration):
        """(errors, objectives) as ``Fitter._evaluate``, from the squared errors the kernel accumulates."""
        t_start = first_step(self.metric.t_start, self.dt)  # an MSEMetric (_check_metric): SI already
        norm = self.metric.normalization
        res = self._simulate(self._param_arrays(candidates, iteration),
                             record=(self.penalty,) if self.penalty else (),
                             targets=self.output, target_start=t_start)
        n = self.n_traces * (self.n_steps - t_start)
        objectives = {var: res.sq_error[var].sum(axis=1) / n / norm ** 2 for var in self.output}
        total = sum(objectives.values()) + self._penalty(res)
        total[res.invalid_sets] = np.inf
        return total, objectives


class SpikeFitter(Fitter):
    """Fit recorded spike trains (list over traces of spike-time arrays, s) with a spike metric.

    output: the recorded spike trains, one 1-D array of spike times (s) per input trace (or
    ``{"spikes": that list}``); spikes after a trace's end (``lengths``) are ignored. The model needs a
    ``threshold`` (given here or in the ``Model``), else FitError. ``fit`` takes a ``SpikeMetric`` (e.g.
    ``GammaFactor``); ``generate_spikes`` gives the spike trains of a parameter set. The constructor takes
    brian2modelfitting's argument order (``__init__`` below).
    """

    output_kind = "spikes"
    default_n_samples = 30

    def __init__(self, model, input, output, dt, reset=None, threshold=None, input_var: str = "I", refractory=None,
                 n_samples: int | None = None, method: str | None = None, param_init: dict | None = None,
                 penalty: str | None = None, use_units: bool = True, level: int = 0, **kwargs):
        """Set up a spike fit, in brian2modelfitting's argument order (model, input, output, dt, reset, threshold,
        input_var, refractory, n_samples, method, param_init, penalty, use_units).

        input: input variable → (n_traces, n_steps) array (SI), or a bare array, the input called ``input_var``
        (default "I", as brian2modelfitting; a DeprecationWarning, as for ``Fitter.__init__``); input_var is not
        used with a dict. output: the recorded spike trains (class docstring). reset, threshold, refractory,
        n_samples, method, param_init, penalty, use_units, and the keywords ``kwargs`` (namespace, backend,
        dtype, seed, threads, lengths, simulation_dt, at_rest): as for ``Fitter.__init__``; level: as there (0:
        the scope calling this constructor). Raises as ``Fitter.__init__``, and FitError without a threshold.
        """
        super().__init__(model, input, output, dt, n_samples=n_samples, method=method, threshold=threshold,
                         reset=reset, refractory=refractory, param_init=param_init, penalty=penalty,
                         use_units=use_units, input_var=None if isinstance(input, dict) else input_var,
                         level=level + 1, **kwargs)

    def _check_metric(self, metric):
        """FitTypeError unless ``metric`` is a spike metric (e.g. GammaFactor)."""
        from .metrics import SpikeMetric
        if not isinstance(metric, SpikeMetric):
            raise FitTypeError(f"metric is a {type(metric).__name__}; SpikeFitter needs a spike metric such as "
                               f"GammaFactor(delta='2 ms', time=...)")

    def _default_metric(self):
        """brian2modelfitting's default: GammaFactor(delta=2 ms, time=the traces' duration)."""
        from .metrics import GammaFactor
        return GammaFactor(delta=2e-3, time=self.n_steps * self.dt)

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

    def _evaluate(self, candidates, iteration):
        """(errors, objectives) as ``Fitter._evaluate``: the spike metric of the simulated spike trains."""
        res = self._simulate(self._param_arrays(candidates, iteration), spikes=True)
        spikes = self._within_lengths(res.spikes)  # spikes after a trace's end (padding) are ignored
        metric = np.asarray(self.metric.calc(spikes, self.output_spikes, self.dt), dtype=np.float64)
        errors = metric + self._penalty(res)
        errors[res.invalid_sets] = np.inf
        return errors, {"spikes": metric}

    def generate_spikes(self, params=None, param_init=None, iteration=1e9, level: int = 0):
        """Spike trains (list over traces) of ``params`` (default: best).

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, iteration, level: as for ``generate``.
        Returns a list over traces of 1-D arrays of spike times (s), without the spikes after each trace's end
        when the fitter has ``lengths``. Raises as ``generate``.
        """
        return self.generate("spikes", params=params, param_init=param_init, iteration=iteration)

    def generate_traces(self, params=None, param_init=None, output_var="v"):
        """Traces of one model variable (default: the membrane potential ``v``) for ``params`` (default: best).

        params: parameter name → SI number or quantity string (None: the fit's best parameters); param_init:
        initial values replacing the constructor's for the states given, as for ``generate``; output_var: the
        variable to record (state or subexpression). Returns an (n_traces, n_steps) array in SI units, NaN
        after each trace's end with ``lengths``. Raises as ``generate``.
        """
        return self.generate(output_var, params=params, param_init=param_init)
