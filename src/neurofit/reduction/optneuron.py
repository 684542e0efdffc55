"""Fit a model to target data or to a target *model* under an experiment protocol (model reduction).

The counterpart of CompNeuroPy's ``opt_neuron``: an ``Experiment`` is a sequence of stimulus
chunks run back to back (the state carries over); a user loss compares the fitted model's
``Results`` with the target's (given data, or the target model run through the same experiment).
Candidates of a round — and their ``num_rep_loss`` noisy repetitions — are simulated as one batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..equations.model import Model, as_model
from ..errors import NeurofitError
from ..fitting.bounds import BoundsError, parse_bounds
from ..simulate import numpy_function, simulate
from ..units import to_si

#: Added to the seed for the target model's run (its noise), so that the target and the fitted model never
#: share a random stream (same value as before it had a name: outputs unchanged).
TARGET_SEED_OFFSET = 10_000


class ReductionError(NeurofitError):
    """A user mistake in an experiment, bounds or loss (one line naming the culprit)."""


@dataclass
class Chunk:
    """One stimulus segment: inputs (name → (n_steps,) or (n_traces, n_steps), SI) and what to record;
    ``n_steps`` for a chunk without inputs.

    inputs: input name → array, SI units, sampled at the experiment's dt (every chunk of an experiment
    has the same n_traces); record: the variables to record (states or subexpressions); spikes: record
    spike times (the model needs a threshold); name: a label for the chunk (e.g. "steps"); n_steps:
    number of samples when ``inputs`` is empty (None otherwise: the inputs' length).
    """

    inputs: dict
    record: tuple = ("v",)
    spikes: bool = False
    name: str = ""
    n_steps: int | None = None

    def arrays(self) -> dict:
        """Returns the inputs as float64 arrays of shape (n_traces, n_steps) (a 1-D input becomes one trace)."""
        out = {}
        for k, v in self.inputs.items():
            a = np.asarray(v, dtype=np.float64)
            out[k] = a[None, :] if a.ndim == 1 else a
        return out


@dataclass
class Results:
    """What an experiment produced for one parameter set: per chunk ``recordings[i][var]``
    ((n_traces, n_steps)) and ``spikes[i]`` (list over traces), plus free-form ``data``."""

    recordings: list
    spikes: list
    data: dict = field(default_factory=dict)


class Experiment:
    """A protocol: chunks simulated in sequence from ``init``; the state carries over between chunks
    unless ``reset_between_chunks``.

    chunks: the ``Chunk`` list, in order (at least one; all with the same number of traces); dt: time
    step, s or a quantity string ("0.01 ms"); init: state → initial value as for ``simulate``'s init
    (unset states start at 0); reset_between_chunks: start every chunk from ``init`` instead of the
    previous chunk's final state; method: integration method as for ``simulate`` (None: its default);
    data: free-form entries copied into every ``Results.data`` (next to "dt" and "invalid").
    Raises ReductionError for no chunks or chunks with different numbers of traces, UnitError for a
    dt that cannot be read.
    """

    def __init__(self, chunks: list, dt, init: dict | None = None, reset_between_chunks: bool = False,
                 method: str | None = None, data: dict | None = None):
        if not chunks:
            raise ReductionError("Experiment needs at least one Chunk")
        self.chunks = list(chunks)
        self.dt = to_si(dt, name="dt")
        self.init = dict(init or {})
        self.reset_between_chunks = reset_between_chunks
        self.method = method
        self.data = dict(data or {})
        traces = {a.shape[0] for c in self.chunks for a in c.arrays().values()}
        if len(traces) > 1:
            raise ReductionError(f"Experiment: chunks have different numbers of traces {sorted(traces)}")

    @classmethod
    def steps(cls, input_name: str, amplitudes, dt, duration, start, stop, record=("v",), spikes=True, **kw):
        """One chunk of step currents (one trace per amplitude), e.g. for f-I protocols.

        input_name: the model input the steps drive (e.g. "I"); amplitudes: the step levels, SI floats
        or quantity strings (["0.1 nA", "0.2 nA"]), one trace each; dt: time step (s or quantity
        string); duration: length of the chunk (s or quantity string); start, stop: the step is on for
        start <= t < stop (s or quantity strings; 0 elsewhere); record, spikes: as for ``Chunk``
        (spikes recorded by default); ``kw`` go to ``Experiment`` (init, method, ...).
        Returns an ``Experiment`` of that single chunk. Raises StimulusError for empty amplitudes or
        stop before start, UnitError for a value that cannot be read.
        """
        from ..data.stimuli import steps as step_traces
        dt_si = to_si(dt, name="dt")
        n = int(round(to_si(duration, name="duration") / dt_si))
        return cls([Chunk({input_name: step_traces(n, dt_si, amplitudes, start, stop)}, tuple(record), spikes,
                          "steps")], dt, **kw)

    def run(self, model: Model, params: dict, seed: int | None = None, backend: str = "auto",
            set_offset: int = 0) -> list:
        """Simulate every parameter set (arrays of length n_sets) → one Results per set.

        model: the ``Model`` to run; params: parameter name → SI scalar or (n_sets,) array (every
        parameter of the model); seed: noise seed (needed when the model has noise); backend: "auto",
        "c" or "numpy" as for ``simulate``; set_offset: index of the first set in a larger batch (keeps
        the noise draws of chunked batches equal). Returns a list of n_sets ``Results``: per chunk the
        recordings (var → (n_traces, n_steps)) and spike times, ``data`` holding the experiment's data,
        "dt" (s) and "invalid" (True when any chunk diverged). Raises SimulationError for arguments
        ``simulate`` refuses.
        """
        init = dict(self.init)
        per_chunk = []
        for chunk in self.chunks:
            res = simulate(model, params, chunk.arrays(), self.dt, init=init, record=chunk.record,
                           spikes=chunk.spikes, method=self.method, backend=backend, seed=seed,
                           set_offset=set_offset, n_steps=chunk.n_steps)
            per_chunk.append(res)
            if not self.reset_between_chunks:
                init = res.final_state
        n_sets = per_chunk[0].invalid.shape[0]
        invalid = np.any([r.invalid_sets for r in per_chunk], axis=0)
        results = []
        for i in range(n_sets):
            recordings = [{v: r.traces[v][i] for v in r.traces} for r in per_chunk]
            spikes = [r.spikes[i] if r.spikes is not None else None for r in per_chunk]
            results.append(Results(recordings, spikes, {**self.data, "dt": self.dt, "invalid": bool(invalid[i])}))
        return results


@dataclass
class ReductionResult:
    """Best parameters, their loss (mean over ``num_rep_loss`` runs), its SD and parts, every evaluation,
    and the re-simulated recordings next to the target's."""

    best_params: dict
    loss: float
    loss_sd: float
    parts: list
    history: list
    results: Results
    target: object
    wall_time: float
    posterior_samples: np.ndarray | None = None  # method "sbi": (n, n_free) samples given the target's features

    def summary(self) -> dict:
        """The JSON summary: best parameters, loss, its SD and parts, number of evaluations, wall time."""
        return {"best_params": self.best_params, "loss": self.loss, "loss_sd": self.loss_sd, "parts": self.parts,
                "n_evaluations": len(self.history), "wall_time": self.wall_time}

    def arrays(self) -> dict:
        """The NPZ content: loss and its SD per evaluation, then ``recording_arrays`` of fitted and target."""
        return {"loss": np.array([h["loss"] for h in self.history]),
                "loss_sd": np.array([h["loss_sd"] for h in self.history]),
                **recording_arrays(self.results, self.target)}

    def save(self, json_path, npz_path) -> None:
        """JSON summary + NPZ (loss per evaluation, fitted and target recordings per chunk), atomically."""
        from ..data.files import atomic_save_npz, atomic_write_json
        atomic_write_json(json_path, self.summary())
        atomic_save_npz(npz_path, self.arrays())


def recording_arrays(fitted: Results, target=None) -> dict:
    """``dt``, then per chunk i the recordings and spike times of ``fitted`` and of ``target`` (if a Results):
    keys ``fitted/<i>/<var>``, ``fitted/<i>/spikes/<trace>``, ``target/...``."""
    arrays = {"dt": np.array(fitted.data["dt"])}
    for which, res in (("fitted", fitted), ("target", target)):
        if not isinstance(res, Results):
            continue
        for i, (rec, spikes) in enumerate(zip(res.recordings, res.spikes)):
            for var, trace in rec.items():
                arrays[f"{which}/{i}/{var}"] = np.asarray(trace)
            for j, train in enumerate(spikes or []):
                arrays[f"{which}/{i}/spikes/{j}"] = np.asarray(train)
    return arrays


def _read_bounds(bounds: dict, model: Model):
    """→ free {name: (lo, hi)}, log names, constants {name: value}, expressions {name: sympy} (parsed by
    ``parse_bounds`` with the restricted expression parser: user text is never evaluated)."""
    try:
        space = parse_bounds(bounds, model.parameters, allow_fixed=True, allow_expressions=True,
                             dimensions=model.dimensions, where=lambda n: f"variables_bounds['{n}']")
    except BoundsError as err:
        raise ReductionError(str(err)) from None
    return space.free, space.log_scale, space.fixed, space.expressions


class OptNeuron:
    """Optimise ``neuron_model``'s free parameters so that ``experiment`` reproduces a target.

    Exactly one of ``results_soll`` (target data, handed to the loss as is) and
    ``target_neuron_model`` (+ ``target_params``: its results become the target) must be given.
    ``get_loss_function(results_ist, results_soll)`` returns a number or a list (summed).
    ``num_rep_loss`` runs each candidate that many times with different noise; the mean loss is
    optimised and its SD reported. ``method``: an Optimizer instance, a nevergrad name ("CMA"), or
    "sbi": neural posterior estimation conditioned on ``features(results)`` of the target (a summary
    vector per Results, required for this method), then the best of posterior samples by the loss.

    experiment: the ``Experiment`` protocol; get_loss_function: callable (results_ist, results_soll)
    → loss, see above; variables_bounds: every parameter of ``neuron_model`` → [low, high] (SI or
    quantity strings; [low, high, "log"] to search in log10), a fixed value, or an expression of other
    parameters ("2*gl"), at least one of them free; neuron_model: the ``Model`` (or equations string) to fit; results_soll: the
    target ``Results``; target_neuron_model: the target ``Model`` (or equations string); target_params:
    its parameter values (SI or quantity strings); num_rep_loss: runs per candidate (≥ 1); method: see
    above (default "CMA"); seed: int seed of the optimizer and of the noise (the target model runs
    with ``seed + TARGET_SEED_OFFSET``); backend: "auto", "c" or "numpy" as for ``simulate``;
    features: callable Results → 1-D summary vector (method "sbi" only).
    Raises ReductionError for both or neither target, num_rep_loss < 1, bounds that cannot be used,
    "sbi" without features, or a loss that is not finite at the middle of the bounds (checked once on
    construction); SimulationError for an experiment ``simulate`` refuses.
    """

    def __init__(self, experiment: Experiment, get_loss_function, variables_bounds: dict, neuron_model,
                 results_soll=None, target_neuron_model=None, target_params: dict | None = None,
                 num_rep_loss: int = 1, method="CMA", seed: int = 0, backend: str = "auto", features=None):
        if (results_soll is None) == (target_neuron_model is None):
            raise ReductionError("give exactly one of results_soll (target data) and target_neuron_model")
        if int(num_rep_loss) < 1:
            raise ReductionError(f"num_rep_loss = {num_rep_loss}: must be a positive integer")
        self.experiment, self.loss_function = experiment, get_loss_function
        self.model = as_model(neuron_model)
        self.free, self.log_scale, self.constants, self.expressions = _read_bounds(variables_bounds, self.model)
        self._tied = {name: numpy_function(expr, "<neurofit variables_bounds expression>")
                      for name, expr in self.expressions.items()}
        self.num_rep_loss, self.method, self.seed, self.backend = int(num_rep_loss), method, seed, backend
        if method == "sbi" and features is None:
            raise ReductionError("method='sbi' needs features=: a function Results -> summary vector "
                                 "(the posterior is conditioned on the target's features)")
        self.features = features
        if target_neuron_model is not None:
            target_model = as_model(target_neuron_model)
            params = {k: np.array([to_si(v, name=k)]) for k, v in (target_params or {}).items()}
            self.target = experiment.run(target_model, params, seed=seed + TARGET_SEED_OFFSET, backend=backend)[0]
        else:
            self.target = results_soll
        self.history: list = []
        self._check()

    def _check(self):
        """Run the experiment and the loss once at the middle of the bounds."""
        middle = {n: np.sqrt(lo * hi) if n in self.log_scale else 0.5 * (lo + hi) for n, (lo, hi) in self.free.items()}
        losses, parts, _ = self._evaluate([middle])
        if not np.isfinite(losses[0]):
            raise ReductionError(f"the loss at the middle of the bounds ({_show(middle)}) is not finite "
                                 f"(parts: {parts[0]}); check get_loss_function and the experiment")

    def _params(self, candidates: list) -> dict:
        n = len(candidates) * self.num_rep_loss
        values = {p: np.repeat([c[p] for c in candidates], self.num_rep_loss) for p in self.free}
        values.update({p: np.full(n, v) for p, v in self.constants.items()})
        for name, function in self._tied.items():
            values[name] = np.broadcast_to(np.asarray(function(values), dtype=float), (n,)).copy()
        return values

    def _evaluate(self, candidates: list):
        """→ mean loss per candidate, loss parts per candidate, SD per candidate."""
        results = self.experiment.run(self.model, self._params(candidates), seed=self.seed, backend=self.backend)
        losses = np.empty(len(results))
        parts = []
        for i, res in enumerate(results):
            if res.data["invalid"]:
                losses[i] = np.inf
                parts.append([np.inf])
                continue
            value = self.loss_function(res, self.target)
            part = [float(v) for v in np.atleast_1d(value)]
            parts.append(part)
            losses[i] = float(np.sum(part)) if all(np.isfinite(part)) else np.inf
        losses = losses.reshape(len(candidates), self.num_rep_loss)
        mean = losses.mean(axis=1)
        sd = losses.std(axis=1, ddof=1) if self.num_rep_loss > 1 else np.zeros(len(candidates))
        per_candidate = [parts[i * self.num_rep_loss] for i in range(len(candidates))]
        return mean, per_candidate, sd

    def run(self, max_evals: int, n_samples: int | None = None):
        """Optimise with ``max_evals`` loss evaluations in rounds of ``n_samples`` candidates
        (method "sbi": ``max_evals`` simulations train the posterior; ``n_samples`` posterior draws
        (default 100) are then scored by the loss).

        max_evals: number of loss evaluations (each candidate counts once, whatever ``num_rep_loss``);
        n_samples: candidates per round (default 4 + 3·ln(n_free), at least 4).
        Returns a ``ReductionResult`` (best parameters with the fixed and tied ones, loss, its SD and
        parts, every evaluation, the best set's re-simulated ``Results`` and the target). Raises
        ReductionError (method "sbi") when fewer than 10 simulations give finite features, ValueError
        from the optimizer.
        """
        if self.method == "sbi":
            return self._run_sbi(max_evals, n_samples or 100)
        from ..fitting.optimizers import NevergradOptimizer
        optimizer = NevergradOptimizer(self.method, seed=self.seed) if isinstance(self.method, str) else self.method
        popsize = n_samples or max(4, 4 + int(3 * np.log(len(self.free))))
        optimizer.initialize(list(self.free), self.free, log_scale=self.log_scale, popsize=popsize)
        start = time.perf_counter()
        best = None
        while len(self.history) < max_evals:
            candidates = optimizer.ask(min(popsize, max_evals - len(self.history)))
            losses, parts, sds = self._evaluate(candidates)
            optimizer.tell(candidates, losses)
            for c, loss, part, sd in zip(candidates, losses, parts, sds):
                self.history.append({**c, "loss": float(loss), "loss_sd": float(sd), "parts": part})
                if best is None or loss < best["loss"]:
                    best = self.history[-1]
        return self._result(best, start)

    def _result(self, best: dict, start: float, posterior_samples=None) -> ReductionResult:
        best_free = {p: best[p] for p in self.free}
        full = {k: float(v[0]) for k, v in self._params([best_free]).items()}
        results = self.experiment.run(self.model, {k: np.array([v]) for k, v in full.items()}, seed=self.seed,
                                      backend=self.backend)[0]
        return ReductionResult(full, best["loss"], best["loss_sd"], best["parts"], self.history, results,
                               self.target, time.perf_counter() - start, posterior_samples)

    def _run_sbi(self, n_simulations: int, n_candidates: int) -> ReductionResult:
        import torch
        from sbi.inference import NPE

        from ..inference.inferencer import BoxPrior, NoTracker, set_threads
        set_threads()
        start = time.perf_counter()
        names = list(self.free)
        prior = BoxPrior([self.free[n][0] for n in names], [self.free[n][1] for n in names],
                         [n in self.log_scale for n in names])
        torch.manual_seed(self.seed)
        theta = prior.sample((n_simulations,)).double().numpy()
        candidates = [dict(zip(names, row)) for row in theta]
        runs = self.experiment.run(self.model, self._params(candidates), seed=self.seed, backend=self.backend)
        x = np.array([np.atleast_1d(self.features(r)) if not r.data["invalid"] else np.full(1, np.nan)
                      for r in runs[::self.num_rep_loss]], dtype=object)
        width = max(len(v) for v in x)
        x = np.array([v if len(v) == width else np.full(width, np.nan) for v in x], dtype=np.float64)
        valid = np.all(np.isfinite(x), axis=1)
        if valid.sum() < 10:
            raise ReductionError(f"method='sbi': only {valid.sum()} of {n_simulations} simulations gave finite "
                                 f"features; widen the bounds or check features=")
        inference = NPE(prior=prior, show_progress_bars=False, tracker=NoTracker())
        inference.append_simulations(torch.as_tensor(theta[valid], dtype=torch.float32),
                                     torch.as_tensor(x[valid], dtype=torch.float32)).train(show_train_summary=False)
        posterior = inference.build_posterior()
        x_o = torch.as_tensor(np.atleast_1d(self.features(self.target)), dtype=torch.float32)
        samples = posterior.sample((n_candidates,), x=x_o, show_progress_bars=False).double().numpy()
        draws = [dict(zip(names, row)) for row in samples]
        losses, parts, sds = self._evaluate(draws)
        for c, loss, part, sd in zip(draws, losses, parts, sds):
            self.history.append({**c, "loss": float(loss), "loss_sd": float(sd), "parts": part})
        best = self.history[int(np.argmin([h["loss"] for h in self.history]))]
        return self._result(best, start, posterior_samples=samples)


class SpikeTrainLoss:
    """A ready-made loss for spiking targets: per chunk, the GammaFactor error of the spike times
    (coincidence window ``delta``), ``count_weight`` × the mean squared spike-count difference per
    trace, and ``subthreshold_weight`` × the mean squared difference of the voltages clipped at
    ``v_clip`` (in units of ``v_scale``²). Returns the list of parts (summed by OptNeuron). The spike
    times are those of the Results: a model's threshold events, or for recordings the spikes of
    ``neurofit.data.spikes.detect_spikes`` (the package's one detector)."""

    def __init__(self, delta="2 ms", v_clip="-55 mV", v_scale="5 mV", count_weight=0.1,
                 subthreshold_weight=0.05, variable="v"):
        self.delta = to_si(delta, name="delta")
        self.v_clip = to_si(v_clip, name="v_clip")
        self.v_scale = to_si(v_scale, name="v_scale")
        self.count_weight, self.subthreshold_weight, self.variable = count_weight, subthreshold_weight, variable

    def __call__(self, ist: Results, soll: Results) -> list:
        from ..fitting.metrics import spike_trace_parts
        parts = []
        dt = ist.data["dt"]
        for rec_i, rec_s, spikes_i, spikes_s in zip(ist.recordings, soll.recordings, ist.spikes, soll.spikes):
            parts += spike_trace_parts(rec_i[self.variable], spikes_i, rec_s[self.variable], spikes_s, dt,
                                       self.delta, self.v_clip, self.v_scale, self.count_weight,
                                       self.subthreshold_weight)
        return parts


def _show(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())
