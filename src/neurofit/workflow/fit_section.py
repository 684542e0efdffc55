"""A study's ``fit`` section → fitter, metric and optimizers; one fit, one refine, their files and summary.

The workflow runs ``neurofit fit`` once per (optimizer, seed) of a study, ``neurofit refine`` once per
fit, then ``neurofit summarize`` / ``neurofit plot-fit`` over all of them. The commands are thin; the
work is here::

    study = Study.load("hh_tutorial", path="config/config.yaml")
    plan = FitSection(study)                   # checks the section (one-line ConfigError naming the key)
    run = run_fit(plan, study.dataset(), "DE", seed=1, checkpoint="fit/DE_1/checkpoint.json")
    write_fit(run, "fit/DE_1/fit.json", "fit/DE_1/history.parquet")
    refined = run_refine(plan, study.dataset(), read_fit("fit/DE_1/fit.json"), read_history(...))

Checkpoints: ``run_fit`` hands ``checkpoint=`` to ``Fitter.fit``, which saves the optimizer state and
history after every round, so a killed job started again resumes and ends with the same numbers as
an uninterrupted one. A small ``<checkpoint>.json`` beside it holds a fingerprint of everything that
determines the fit (fit settings, model, data, optimizer, seed); a checkpoint written for other
settings is discarded instead of resumed. ``discard_checkpoint`` removes both once the results are
written (a forced re-run then recomputes the fit instead of reloading its end state).

The figures of the fits (convergence, parameters, traces) are made beside this module, in ``fit_figures``.
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.files import atomic_write_bytes, atomic_write_json, check_memory
from ..fitting.metrics import first_step, valid_samples
from ..units import TIME, VOLTAGE, to_si
from .section import Section
from .study import SCHEMA, ConfigError, Study

FIT_FORMAT = "neurofit.fit"
REFINED_FORMAT = "neurofit.refined"
FORMAT_VERSION = 1
#: Metric keys that belong to one metric only; giving them a non-default value for another is an error.
METRIC_KEYS = {"mse": ("t_start", "normalization"), "gamma": ("t_start", "delta", "time", "rate_correction"),
               "feature": ("stim_times", "features", "weights", "efel_settings", "adjust_threshold", "zscore"),
               "spikes": ("delta", "v_clip", "v_scale", "count_weight", "subthreshold_weight")}
METRIC_DEFAULTS = {key: prop.get("default") for key, prop in
                   SCHEMA["$defs"]["study"]["properties"]["fit"]["properties"]["metric"]["properties"].items()
                   if key != "name"}
METRICS_OF = {"trace": ("mse", "feature", "spikes"), "online": ("mse",), "spike": ("gamma",)}
SKOPT_ONLY = ("n_initial_points", "acq_func")
#: nevergrad methods known without importing nevergrad (1.5 s, on every Snakefile parse); others are looked
#: up in its registry.
COMMON_NEVERGRAD = ("DE", "TwoPointsDE", "CMA", "PSO", "NGOpt", "OnePlusOne")
#: The label of a multi-objective fit's runs (fit.multiobjective): seeded NSGA-II from pymoo.
PARETO_LABEL = "NSGA2"
#: Candidates a trial optimizer asks to check a fit's settings (two: one-at-a-time methods still fail).
TRIAL_POPULATION = 2


def run_names(fit_section: dict) -> list[tuple[str, int]]:
    """(optimizer label, seed) of every fit job of a (validated) fit section, optimizers first (a multi-objective
    fit: one NSGA-II job per seed)."""
    if fit_section.get("multiobjective") is not None:
        return [(PARETO_LABEL, int(seed)) for seed in fit_section["seeds"]]
    return [(optimizer_label(o), int(seed)) for o in fit_section["optimizers"] for seed in fit_section["seeds"]]


def optimizer_label(spec: dict) -> str:
    return spec.get("label") or spec["name"]


def refine_enabled(fit_section: dict) -> bool:
    """Whether the fits of this (validated) section are refined (null: trace and online fits are)."""
    enabled = fit_section["refine"]["enabled"]
    if enabled is None:  # (least squares would collapse a Pareto front to one weighted error)
        return fit_section["kind"] != "spike" and fit_section["metric"]["name"] in (None, "mse") and \
            fit_section.get("multiobjective") is None
    return bool(enabled)


@dataclass
class OptimizerSpec:
    """One entry of ``fit.optimizers``."""

    index: int
    label: str
    library: str
    name: str
    n_initial_points: int | None = None
    acq_func: str | None = None
    options: dict = field(default_factory=dict)

    def build(self, seed: int):
        """A fresh optimizer of this spec seeded with ``seed``."""
        from ..fitting.optimizers import NevergradOptimizer, SkoptOptimizer

        if self.library == "nevergrad":
            return NevergradOptimizer(self.name, seed=seed, **self.options)
        extra = {k: v for k, v in (("n_initial_points", self.n_initial_points), ("acq_func", self.acq_func))
                 if v is not None}
        return SkoptOptimizer(self.name, random_state=seed, **extra, **self.options)

    def as_dict(self) -> dict:
        return {"label": self.label, "library": self.library, "name": self.name,
                "n_initial_points": self.n_initial_points, "acq_func": self.acq_func, "options": self.options}


class FitSection(Section):
    """The checked ``fit`` section of a study: model with fixed parameters, bounds, metric, optimizers.

    Construction checks what needs no data and no optimizer library (parameter names, units, bounds,
    metric choice, optimizer labels); ``check(dataset)`` adds the data and builds every optimizer once.
    Every mistake is a ``ConfigError`` whose message starts with the key path.
    """

    NAME = "fit"

    def __init__(self, study: Study, model=None):
        super().__init__(study)
        section = self.settings
        self.kind = section["kind"]
        base = model if model is not None else study.model()
        self.fixed = self._fixed(base)
        self.model = base.fix(self.fixed) if self.fixed else base
        self.parameters = [p for p in self.model.parameters if p != "iteration"]
        self.bounds, self.log_scale = self._bounds()
        self.units = {p: str(self.model.dimensions[p]) for p in self.parameters if p in self.model.dimensions}
        self.metric_settings = self._metric_settings()
        self.optimizers = self._optimizers()
        self.multiobjective = section.get("multiobjective")
        if self.multiobjective is not None:
            self._check_multiobjective()
        n = section["n_samples"]
        check_memory(self.where("n_samples"), 8.0 * n * (len(self.parameters) + 1),
                     f"{n} candidates of {len(self.parameters)} parameters")
        self.at_rest, self.baseline, given = self._init_kind(section["init"])
        self.init = study.initial_values(self.model, given, ("fit", "init"))
        self.simulation_dt = None if section.get("simulation_dt") is None else self.quantity("simulation_dt", TIME)
        spec = study.builtin
        self.method = section["method"] or (spec.method if spec is not None else None)
        self.refine = dict(section["refine"], enabled=refine_enabled(section))
        if section["refine"]["enabled"] and self.kind == "spike":
            raise ConfigError(f"{self.where('refine', 'enabled')}: spike fits cannot be refined (least squares "
                              f"needs traces); set it to false or null")
        if self.kind == "spike" and self.model.threshold is None:
            raise ConfigError(f"{study.where('model', 'threshold')}: a spike fit needs the model's spike condition "
                              f"(e.g. threshold: v > -20*mV, with refractory: v > -20*mV for a Hodgkin-Huxley model)")
        bad = [o for o in (section["outputs"] or []) if o not in self.model.recordable()]
        if bad:
            raise ConfigError(f"{self.where('outputs')}: {bad[0]} is not a variable of the model "
                              f"(variables: {', '.join(self.model.recordable())})")
        self.ground_truth = self.read_ground_truth(base)

    # --- checks of the section ----------------------------------------------------------------------
    def _init_kind(self, init) -> tuple[bool, list, dict]:
        """fit.init → (start at rest, states started at each sweep's pre-stimulus baseline, the other given
        initial values): "steady_state" (the built-in's init is the guess of Newton's method), or a mapping
        whose values may be "baseline"."""
        if init == "steady_state":
            return True, [], {}
        baseline = [state for state, value in init.items() if value == "baseline"]
        for state in baseline:
            if state not in self.model.states:
                raise ConfigError(f"{self.where('init', state)}: not a state variable "
                                  f"(states: {', '.join(self.model.states)})")
        return False, baseline, {state: value for state, value in init.items() if value != "baseline"}

    def _fixed(self, model) -> dict:
        fixed = {}
        for name in self.settings["fixed"]:
            self.parameter(name, "fixed", model.parameters)
            if name in self.settings["bounds"]:
                raise ConfigError(f"{self.where('fixed', name)}: also has bounds; a parameter is either "
                                  f"fitted (bounds) or held fixed (fixed)")
            fixed[name] = self.quantity(("fixed", name), model.dimensions.get(name))
        return fixed

    def _bounds(self) -> tuple[dict, set]:
        space = self.read_bounds(self.settings["bounds"], "bounds", self.parameters, self.model.dimensions,
                                 require_all=False)
        missing = [p for p in self.parameters if p not in space.free]
        if missing:
            raise ConfigError(f"{self.where('bounds')}: no bounds for {', '.join(missing)}; give "
                              f"{missing[0]}: [low, high] or hold it fixed under fit.fixed")
        return {p: space.free[p] for p in self.parameters}, space.log_scale

    def _metric_settings(self) -> dict:
        m = dict(self.settings["metric"])
        name = m["name"] or ("gamma" if self.kind == "spike" else "mse")
        if name not in METRICS_OF[self.kind]:
            raise ConfigError(f"{self.where('metric', 'name')}: metric '{name}' does not work with kind "
                              f"'{self.kind}' (valid: {', '.join(METRICS_OF[self.kind])})")
        for key, default in METRIC_DEFAULTS.items():
            if key not in METRIC_KEYS[name] and m.get(key, default) != default:
                owners = [k for k, keys in METRIC_KEYS.items() if key in keys]
                raise ConfigError(f"{self.where('metric', key)}: only for metric {' or '.join(owners)} "
                                  f"(this fit uses {name})")
        if name in ("gamma", "spikes") and m["delta"] is None:
            raise ConfigError(f"{self.where('metric', 'delta')}: missing; the gamma factor needs its coincidence "
                              f"window (e.g. delta: 2 ms)")
        if name == "spikes":
            if self.model.threshold is None:
                raise ConfigError(f"{self.where('metric', 'name')}: metric spikes needs the model's spike condition "
                                  f"(model.threshold)")
            for key in ("v_clip", "v_scale"):
                self.quantity(("metric", key), VOLTAGE)
        if name == "feature":
            for key in ("stim_times", "features"):
                if m[key] is None:
                    raise ConfigError(f"{self.where('metric', key)}: missing (required for metric feature)")
            self._check_efel_features(m["features"], m["weights"])
        for key in ("t_start", "delta", "time"):
            if m.get(key) is not None:
                self.quantity(("metric", key), TIME)
        m["name"] = name
        return {k: m[k] for k in ("name", *METRIC_KEYS[name])}

    def _check_efel_features(self, features: list, weights: dict) -> None:
        """ConfigError naming fit.metric.features (or .weights) for a name that is not an eFEL feature, and
        fit.metric.efel_settings.<name> for a name that is not an eFEL setting or a value it cannot take."""
        import difflib

        import efel

        from ..fitting.feature_targets import efel_setting_problem

        for name, value in (self.settings["metric"].get("efel_settings") or {}).items():
            problem = efel_setting_problem(name, value)
            if problem:
                raise ConfigError(f"{self.where('metric', 'efel_settings', name)}: {problem}")

        known = set(efel.get_feature_names())
        for k, feature in enumerate(features):
            if feature not in known:
                close = difflib.get_close_matches(feature, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else "see efel.get_feature_names()"
                raise ConfigError(f"{self.where('metric', 'features', str(k))}: unknown eFEL feature '{feature}' "
                                  f"({hint})")
        for feature in weights:
            if feature not in features:
                raise ConfigError(f"{self.where('metric', 'weights', feature)}: not one of metric.features "
                                  f"({', '.join(features)})")

    def _check_multiobjective(self) -> None:
        m = self.multiobjective
        if m["per_feature"] and self.metric_settings["name"] != "feature":
            raise ConfigError(f"{self.where('multiobjective', 'per_feature')}: needs metric feature (this fit uses "
                              f"{self.metric_settings['name']})")
        if not m["per_feature"] and len(m["objectives"] or {}) < 2:
            raise ConfigError(f"{self.where('multiobjective', 'objectives')}: give at least two objectives, e.g. "
                              f"{{hyperpolarising: [0, 1], depolarising: [2, 3]}} (positions of the fitted sweeps), "
                              f"or per_feature: true with a feature metric")
        if self.kind == "online":
            raise ConfigError(f"{self.where('multiobjective')}: not for online fits (use kind: trace)")

    def pareto_objectives(self, dataset) -> dict:
        """Objective name -> (metric, trace positions) of a multi-objective fit on ``dataset``; ConfigError for a
        sweep position the dataset does not have."""
        from ..fitting.multiobjective import per_feature

        metric = self.metric(dataset)
        if self.multiobjective["per_feature"]:
            return per_feature(metric)
        objectives = {}
        for name, traces in self.multiobjective["objectives"].items():
            bad = [i for i in traces if i >= dataset.n_traces]
            if bad:
                raise ConfigError(f"{self.where('multiobjective', 'objectives', name)}: sweep position {bad[0]} - the "
                                  f"fit has {dataset.n_traces} sweeps (positions 0-{dataset.n_traces - 1})")
            objectives[name] = (metric, list(traces))
        return objectives

    def _optimizers(self) -> list[OptimizerSpec]:
        specs, seen = [], {}
        for i, o in enumerate(self.settings["optimizers"]):
            label = optimizer_label(o)
            if label in seen:
                raise ConfigError(f"{self.where('optimizers', str(i), 'label')}: '{label}' is also the label of "
                                  f"optimizers.{seen[label]}; give each a different label")
            seen[label] = i
            if o["library"] != "skopt":
                given = [k for k in SKOPT_ONLY if o.get(k) is not None]
                if given:
                    raise ConfigError(f"{self.where('optimizers', str(i), given[0])}: only for library skopt")
            self._check_method(i, o["library"], o["name"])
            specs.append(OptimizerSpec(i, label, o["library"], o["name"], o.get("n_initial_points"),
                                       o.get("acq_func"), dict(o.get("options") or {})))
        return specs

    def _check_method(self, index: int, library: str, name: str) -> None:
        """ConfigError naming fit.optimizers.<index>.name unless ``library`` has the method ``name``."""
        from ..fitting.optimizers import _SKOPT_METHODS

        if library == "skopt":
            if name.upper() not in _SKOPT_METHODS:
                raise ConfigError(f"{self.where('optimizers', str(index), 'name')}: unknown skopt method '{name}' "
                                  f"(valid: {', '.join(_SKOPT_METHODS)})")
            return
        if name in COMMON_NEVERGRAD:
            return
        from nevergrad.optimization import registry

        if name in registry:
            return
        import difflib

        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        if name.upper() in _SKOPT_METHODS:
            hint = f"for scikit-optimize's {name.upper()} add library: skopt; "
        raise ConfigError(f"{self.where('optimizers', str(index), 'name')}: unknown nevergrad method '{name}' "
                          f"({hint}valid names include {', '.join(COMMON_NEVERGRAD)}; all: "
                          f"sorted(nevergrad.optimizers.registry))")

    # --- what the commands use ----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.optimizers]

    @property
    def runs(self) -> list[tuple[str, int]]:
        return run_names(self.settings)

    @property
    def noise_floor(self) -> float | None:
        return self.settings["noise_floor"]

    def optimizer(self, label: str) -> OptimizerSpec:
        """The optimizer labelled ``label`` (NSGA2 for a multi-objective fit); ConfigError listing the labels."""
        if self.multiobjective is not None:
            if label == PARETO_LABEL:
                return OptimizerSpec(-1, PARETO_LABEL, "pymoo", PARETO_LABEL)
            raise ConfigError(f"{self.where('multiobjective')}: a multi-objective fit runs '{PARETO_LABEL}' only, "
                              f"not '{label}'")
        for spec in self.optimizers:
            if spec.label == label:
                return spec
        raise ConfigError(f"{self.where('optimizers')}: no optimizer labelled '{label}' "
                          f"(labels: {', '.join(self.labels)})")

    def output_units(self, outputs) -> dict:
        """SI unit names of the fitted outputs (spike fits: none)."""
        return {o: str(self.model.dimensions[o]) for o in outputs if o in self.model.dimensions}

    def fit_bounds(self) -> dict:
        """Bounds as ``fit()`` keyword arguments: name → [low, high, 'log' | 'linear'] (SI)."""
        return {p: [lo, hi, "log" if p in self.log_scale else "linear"] for p, (lo, hi) in self.bounds.items()}

    def outputs(self, dataset) -> list[str]:
        """Recorded outputs the fit compares with (trace fits)."""
        chosen = self.settings["outputs"]
        if chosen is not None:
            missing = [o for o in chosen if o not in dataset.outputs]
            if missing:
                raise ConfigError(f"{self.where('outputs')}: {missing[0]} is not a recorded output "
                                  f"(recorded: {', '.join(dataset.outputs) or 'none'})")
            return list(chosen)
        found = [o for o in dataset.outputs if o in self.model.recordable()]
        if not found:
            raise ConfigError(f"{self.study.where('data', 'outputs')}: a fit needs a recorded output the model "
                              f"has (model variables: {', '.join(self.model.recordable())}; recorded: "
                              f"{', '.join(dataset.outputs) or 'none'})")
        return found

    def spike_trains(self, dataset) -> list:
        """Recorded spike trains (one array of times per trace) of a spike fit."""
        if dataset.spikes:
            return list(next(iter(dataset.spikes.values())))
        threshold = self.settings["spike_threshold"]
        if threshold is None:
            raise ConfigError(f"{self.where('spike_threshold')}: missing; a spike fit needs spike times - give the "
                              f"value whose upward crossing by the recorded {next(iter(dataset.outputs), 'output')} "
                              f"is a spike (e.g. 0 mV)")
        if not dataset.outputs:
            raise ConfigError(f"{self.study.where('data', 'outputs')}: a spike fit needs a recorded output")
        var = (self.settings["outputs"] or list(dataset.outputs))[0]
        value = self.quantity("spike_threshold", self.model.dimensions.get(var))
        return [spike_times(trace, dataset.dt, value) for trace in dataset.outputs[var]]

    def metric(self, dataset):
        """The metric object of the section."""
        from ..data.recordings.selection import SPIKE_THRESHOLD
        from ..fitting.metrics import FeatureMetric, GammaFactor, MSEMetric, SpikeTraceMetric

        m = self.metric_settings
        try:
            if m["name"] == "mse":
                return MSEMetric(t_start=m["t_start"], normalization=m["normalization"])
            if m["name"] == "gamma":
                duration = m["time"] if m["time"] is not None else dataset.duration
                return GammaFactor(delta=m["delta"], time=duration, rate_correction=m["rate_correction"],
                                   t_start=m["t_start"])
            if m["name"] == "spikes":
                threshold = self.settings["spike_threshold"]
                return SpikeTraceMetric(delta=m["delta"], v_clip=m["v_clip"], v_scale=m["v_scale"],
                                        count_weight=m["count_weight"], subthreshold_weight=m["subthreshold_weight"],
                                        spike_threshold=threshold if threshold is not None else SPIKE_THRESHOLD)
            from ..fitting.feature_targets import SpikeVisibilityError, feature_targets, repeat_groups

            stims = m["stim_times"]
            pairs = stims if stims and isinstance(stims[0], (list, tuple)) else [stims]
            metric = FeatureMetric(stim_times=pairs, feat_list=m["features"], weights=m["weights"],
                                   efel_settings=m["efel_settings"], adjust_threshold=m["adjust_threshold"])
            outputs = self.outputs(dataset)
            try:  # eFEL must see the model's spikes: a reset below its Threshold is an error or a lower Threshold
                for var in outputs:
                    metric.check_model(self.model, self.bounds, output=var)
            except SpikeVisibilityError as err:
                raise ConfigError(f"{self.where('metric', 'efel_settings')}: {err}") from None
            if m["zscore"]:  # targets: mean ± SD of the recorded sweeps' features, repeats = sweeps of equal inputs
                if len(outputs) > 1:
                    raise ConfigError(f"{self.where('metric', 'zscore')}: z-score targets come from one recorded "
                                      f"output, this fit has {', '.join(outputs)}; choose one under fit.outputs")
                inputs = {i: dataset.inputs[i] for i in self.model.inputs if i in dataset.inputs} or dataset.inputs
                metric.targets = feature_targets(dataset.outputs[outputs[0]], dataset.dt, pairs, m["features"],
                                                 metric.efel_settings, groups=repeat_groups(inputs, dataset.lengths),
                                                 lengths=None if dataset.full_length else dataset.lengths)
            return metric
        except ConfigError:
            raise
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{self.where('metric')}: {' '.join(str(err).split())}") from None

    def fitter(self, dataset, seed: int | None = None):
        """A TraceFitter / OnlineTraceFitter / SpikeFitter on ``dataset`` (noise seed ``seed``)."""
        from ..fitting.fitters import OnlineTraceFitter, SpikeFitter, TraceFitter

        if self.kind == "spike":
            output = self.spike_trains(dataset)
        else:
            output = {o: dataset.outputs[o] for o in self.outputs(dataset)}
        targets = {f"{o}_target" for o in dataset.outputs}
        missing = [i for i in self.model.inputs if i not in dataset.inputs and i not in targets]
        if missing:
            raise ConfigError(f"{self.study.where('data', 'inputs')}: the model needs input(s) {', '.join(missing)} "
                              f"(given: {', '.join(dataset.inputs) or 'none'})")
        inputs = {i: dataset.inputs[i] for i in self.model.inputs if i in dataset.inputs} or dict(dataset.inputs)
        substeps = self.substeps(dataset)
        if self.kind == "online" and not dataset.full_length:
            raise ConfigError(f"{self.where('kind')}: the sweeps have different lengths ({int(min(dataset.lengths))} "
                              f"to {dataset.n_steps} samples) and an online fit cannot leave padded samples out; "
                              f"use kind: trace")
        if self.kind == "online" and substeps > 1:
            raise ConfigError(f"{self.where('simulation_dt')}: an online fit compares the model with the data at "
                              f"every simulation step; leave simulation_dt out or use kind: trace")
        if self.kind == "trace":  # online and spike fits keep no traces of the population
            self.check_memory(dataset, len(output))
        init = dict(self.init)
        if self.baseline:
            init.update(self.baseline_init(dataset, inputs))
        extra = {"lengths": None if dataset.full_length else dataset.lengths,
                 "simulation_dt": self.simulation_dt if substeps > 1 else None, "at_rest": self.at_rest}
        cls = {"trace": TraceFitter, "online": OnlineTraceFitter, "spike": SpikeFitter}[self.kind]
        return cls(model=self.model, input=inputs, output=output, dt=dataset.dt, n_samples=self.settings["n_samples"],
                   method=self.method, param_init=init, backend=self.settings["backend"],
                   dtype=self.settings["dtype"], seed=seed, **extra)

    def substeps(self, dataset) -> int:
        """Simulation steps per recorded sample: dataset.dt / fit.simulation_dt (1 without simulation_dt);
        ConfigError naming fit.simulation_dt unless it divides the recording's dt by a whole number."""
        from ..fitting.fitters import FitError, simulation_substeps

        try:
            return simulation_substeps(dataset.dt, self.simulation_dt)
        except FitError as err:
            raise ConfigError(f"{self.where('simulation_dt')}: {err}") from None

    def baseline_init(self, dataset, inputs: dict) -> dict:
        """state → (1, n_traces) initial values of the states given as "baseline" in fit.init: each sweep's
        pre-stimulus baseline of the recorded state (``neurofit.data.dataset.pre_stimulus_baseline`` of
        ``inputs``, name → (n_traces, n_steps), over at most the last 100 ms before the input first changes)."""
        from ..data.dataset import pre_stimulus_baseline

        missing = [state for state in self.baseline if state not in dataset.outputs]
        if missing:
            raise ConfigError(f"{self.where('init', missing[0])}: 'baseline' is the recorded {missing[0]} before "
                              f"the stimulus, but {missing[0]} is not recorded (recorded: "
                              f"{', '.join(dataset.outputs) or 'none'})")
        values = pre_stimulus_baseline(inputs, {s: dataset.outputs[s] for s in self.baseline}, dataset.dt,
                                       lengths=dataset.lengths)
        return {state: value.reshape(1, -1) for state, value in values.items()}

    def check_memory(self, dataset, n_outputs: int) -> None:
        """ConfigError naming fit.n_samples unless a round's population arrays of a trace fit - n_samples
        candidates x n_traces x n_steps samples of each of ``n_outputs`` recorded variables, plus one such
        array for the metric's difference from the data - fit in the memory available."""
        n, k = self.settings["n_samples"], self.substeps(dataset)
        steps = dataset.n_steps * k  # simulated steps: k per recorded sample with simulation_dt
        check_memory(self.where("n_samples"), 8.0 * n * dataset.n_traces * steps * (n_outputs + 1),
                     f"{n} candidates x {dataset.n_traces} traces x {steps} steps x {n_outputs} output(s)")

    def build_optimizer(self, label: str, seed: int, trial: bool = True):
        """A fresh optimizer ``label`` seeded with ``seed``. With ``trial``, a twin first asks a small round
        (at most TRIAL_POPULATION candidates: checking a config never builds a full population), so that a
        bad method name, option or a one-at-a-time method is a ConfigError naming the optimizer's key, not an
        error in the middle of the fit."""
        spec = self.optimizer(label)
        keys = ("optimizers", str(spec.index))
        try:
            if trial:
                popsize = min(self.settings["n_samples"], TRIAL_POPULATION)
                twin = spec.build(seed)
                twin.initialize(self.parameters, self.bounds, log_scale=self.log_scale, popsize=popsize)
                twin.ask(popsize)
            return spec.build(seed)
        except (ValueError, TypeError, RuntimeError) as err:
            key = "name" if "unknown" in str(err) and spec.name in str(err) else None
            where = self.where(*keys, key) if key else self.where(*keys)
            raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None

    def check(self, dataset) -> None:
        """Everything a fit job would trip over, before any fit job runs: data, metric, every optimizer (and a
        multi-objective fit's objectives)."""
        self.fitter(dataset)
        self.metric(dataset)
        if self.multiobjective is not None:
            self.pareto_objectives(dataset)
            return  # NSGA-II needs no optimizer of the list
        for spec in self.optimizers:
            self.build_optimizer(spec.label, 0)

    def fingerprint(self, dataset, label: str, seed: int) -> str:
        """Hash of everything that determines the fit of (label, seed): a checkpoint is resumed only if equal."""
        from .. import __version__

        section = {k: v for k, v in self.settings.items() if k not in ("refine", "noise_floor")
                   and not (k == "simulation_dt" and v is None)}  # a config without it: the same fingerprint
        digest = hashlib.sha256()
        digest.update(json.dumps({"fit": section, "model": self.model.content_hash, "label": label, "seed": seed,
                                  "optimizer": self.optimizer(label).as_dict(), "neurofit": __version__},
                                 sort_keys=True, default=str).encode())
        digest.update(repr(float(dataset.dt)).encode())
        for role, arrays in (("inputs", dataset.inputs), ("outputs", dataset.outputs)):
            for name in sorted(arrays):
                digest.update(f"{role}/{name}".encode())
                digest.update(np.ascontiguousarray(arrays[name], dtype=np.float64).tobytes())
        if not dataset.full_length:
            digest.update(np.ascontiguousarray(dataset.lengths, dtype=np.int64).tobytes())
        return digest.hexdigest()


def spike_times(trace, dt: float, threshold: float, min_interval: float = 1e-3) -> np.ndarray:
    """Spike times (s) of one trace: ``neurofit.data.spikes.detect_spikes`` (upward crossings of ``threshold``
    V, at least ``min_interval`` s apart), the one detector of fit, inference and reduction."""
    from ..data.spikes import detect_spikes

    return detect_spikes(np.asarray(trace, dtype=float), dt, threshold, dead_time=min_interval)[0]


# --- one fit --------------------------------------------------------------------------------------------

@dataclass
class FitRun:
    """The outcome of ``run_fit``: the fit.json document and the history of every evaluation."""

    doc: dict
    history: "object"  # pandas.DataFrame


def _finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _checkpoint_key(checkpoint) -> Path:
    """The fingerprint file beside a checkpoint: checkpoint.json -> checkpoint.fingerprint.json."""
    return Path(checkpoint).with_suffix(".fingerprint.json")


def prepare_checkpoint(checkpoint, fingerprint: str, log=None) -> bool:
    """Keep ``checkpoint`` only if it was written for ``fingerprint``; record the fingerprint beside it.
    Returns True if an existing checkpoint will be resumed."""
    checkpoint = Path(checkpoint)
    key = _checkpoint_key(checkpoint)
    resumable = False
    if checkpoint.exists():
        try:
            resumable = json.loads(key.read_text())["fingerprint"] == fingerprint
        except (OSError, ValueError, KeyError, TypeError):
            resumable = False
        if not resumable:
            checkpoint.unlink()
            if log:
                log(f"checkpoint {checkpoint} was written for other settings: starting over")
    atomic_write_json(key, {"fingerprint": fingerprint})
    return resumable


def discard_checkpoint(checkpoint) -> None:
    """Remove a checkpoint and its fingerprint (after the fit's results are written)."""
    for path in (Path(checkpoint), _checkpoint_key(checkpoint)):
        if path.exists():
            path.unlink()


def run_pareto_fit(plan: FitSection, dataset, seed: int, log=None) -> FitRun:
    """The multi-objective fit of a study (fit.multiobjective) with NSGA-II seeded by ``seed``: fit.json holds the
    compromise as its best parameters (best_error: the fit's single metric there), and "pareto" (front, hall of
    fame, compromise, objectives; ``ParetoResult.to_dict`` without the history, which is history.parquet with
    one column per objective)."""
    from ..fitting.multiobjective import fit_pareto

    spec = plan.optimizer(PARETO_LABEL)
    fitter = plan.fitter(dataset, seed=seed)
    objectives = plan.pareto_objectives(dataset)
    m = plan.multiobjective

    start = time.perf_counter()
    result = fit_pareto(fitter, objectives, n_generations=m["n_generations"], seed=seed,
                        hall_of_fame=m["hall_of_fame"], **plan.fit_bounds())
    wall = time.perf_counter() - start
    compromise = result.compromise
    if compromise is None:
        raise ConfigError(f"{plan.where('multiobjective')}: no candidate had finite objectives; check the bounds")
    best = compromise["params"]
    fitter.restore(plan.bounds, plan.metric(dataset), [], log_scale=plan.log_scale)
    history = result.history
    history.insert(0, "evaluation", np.arange(len(history), dtype=np.int64))
    history = history.rename(columns={"generation": "round"})
    history["error"] = history["score"]
    history["round"] = history["round"].astype(np.int64)
    history = history[["evaluation", "round", *fitter.parameter_names, "error", *result.objectives, "on_front"]]
    per_round = history.groupby("round")["error"].min().sort_index().to_numpy()
    pareto = result.to_dict()
    pareto.pop("history", None)
    doc = {
        "format": FIT_FORMAT, "version": FORMAT_VERSION,
        "study": plan.study.name, "optimizer": spec.as_dict(), "seed": int(seed), "kind": plan.kind,
        "metric": plan.metric_settings, "parameters": list(fitter.parameter_names),
        "outputs": list(fitter.output), "units": {**plan.units, **plan.output_units(fitter.output)},
        "bounds": {p: list(b) for p, b in plan.bounds.items()}, "log_scale": sorted(plan.log_scale),
        "fixed": plan.fixed, "n_samples": plan.settings["n_samples"], "n_rounds": m["n_generations"],
        "rounds_done": int(per_round.size), "n_evaluations": int(len(history)),
        "best_params": {p: float(v) for p, v in best.items()},
        "best_error": _finite_or_none(fitter.error(best)),
        "best_error_per_round": [_finite_or_none(e) for e in np.minimum.accumulate(per_round)],
        "history": None, "pareto": pareto,
        "wall_time_s": round(wall, 6), "resumed_from_round": 0,
    }
    if log:
        log(f"NSGA-II seed {seed}: {len(pareto['front'])} candidates on the front; compromise "
            + ", ".join(f"{k}={v:.4g}" for k, v in best.items()))
    return FitRun(doc, history)


def run_fit(plan: FitSection, dataset, label: str, seed: int, checkpoint=None, log=None) -> FitRun:
    """Run the fit of optimizer ``label`` with ``seed`` (resuming ``checkpoint`` if it holds this fit; a
    multi-objective fit, ``run_pareto_fit``, is not checkpointed)."""
    if plan.multiobjective is not None:
        return run_pareto_fit(plan, dataset, seed, log)
    spec = plan.optimizer(label)
    fitter = plan.fitter(dataset, seed=seed)
    metric = plan.metric(dataset)
    optimizer = plan.build_optimizer(label, seed)
    n_rounds = plan.settings["n_rounds"]
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        if prepare_checkpoint(checkpoint, plan.fingerprint(dataset, label, seed), log) and log:
            log(f"resuming from checkpoint {checkpoint}")
    rounds_run = []

    def callback(params, errors, best_params, best_error, index, info):
        rounds_run.append(index)
        if log:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in best_params.items())
            log(f"round {index + 1}/{n_rounds}: best error {best_error:.6g} ({shown})")

    start = time.perf_counter()
    fitter.fit(optimizer=optimizer, metric=metric, n_rounds=n_rounds, callback=callback,
               checkpoint=None if checkpoint is None else str(checkpoint), **plan.fit_bounds())
    wall = time.perf_counter() - start
    history = fitter.results(format="dataframe")
    history.insert(0, "evaluation", np.arange(len(history), dtype=np.int64))
    history["round"] = history["round"].astype(np.int64)
    history = history[["evaluation", "round", *fitter.parameter_names, "error"]]
    per_round = history.groupby("round")["error"].min().sort_index().to_numpy()
    best_so_far = np.minimum.accumulate(per_round) if per_round.size else per_round
    rounds_done = int(per_round.size)
    doc = {
        "format": FIT_FORMAT, "version": FORMAT_VERSION,
        "study": plan.study.name, "optimizer": spec.as_dict(), "seed": int(seed), "kind": plan.kind,
        "metric": plan.metric_settings, "parameters": list(fitter.parameter_names),
        "outputs": list(fitter.output), "units": {**plan.units, **plan.output_units(fitter.output)},
        "bounds": {p: list(b) for p, b in plan.bounds.items()}, "log_scale": sorted(plan.log_scale),
        "fixed": plan.fixed, "n_samples": plan.settings["n_samples"], "n_rounds": n_rounds,
        "rounds_done": rounds_done, "n_evaluations": int(len(history)),
        "best_params": {p: float(v) for p, v in fitter.best_params.items()},
        "best_error": _finite_or_none(fitter.best_error),
        "best_error_per_round": [_finite_or_none(e) for e in best_so_far],
        "history": None,
        # not reproducible numbers: the time of this run (a resumed run counts its own rounds only)
        "wall_time_s": round(wall, 6),
        "resumed_from_round": int(rounds_run[0]) if rounds_run else rounds_done,
    }
    if plan.model.threshold is not None and doc["best_error"] is not None and dataset.outputs:
        doc.update(spike_report(plan, dataset, doc["best_params"], seed))
    return FitRun(doc, history)


def spike_report(plan: FitSection, dataset, params: dict, seed: int) -> dict:
    """What a fit of a spiking model reports about its best parameters ``params`` (SI) on ``dataset``: per sweep
    the recorded and model spike counts, gamma, latency and ISI errors and the subthreshold RMSE
    (``validation.score_sweeps``, "sweep_scores"), and over the sweeps "count_error" and "gamma"."""
    from .validation import score_sweeps, summarize_scores

    sweeps = list((dataset.source.get("preprocessing") or {}).get("sweeps") or range(dataset.n_traces))
    scores = score_sweeps(plan, dataset, params, seed, sweeps, "fitted")
    summary = summarize_scores(scores, "fitted", "fit")
    return {"count_error": summary["fit_count_error"], "gamma": summary["fit_gamma"], "sweep_scores": scores}


def history_bytes(history) -> bytes:
    """The history as Parquet bytes (the same numbers give the same bytes)."""
    buffer = _io.BytesIO()
    history.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


def write_fit(run: FitRun, fit_path, history_path) -> None:
    """Write fit.json and history.parquet atomically (the history first: fit.json names it)."""
    fit_path, history_path = Path(fit_path), Path(history_path)
    atomic_write_bytes(history_path, history_bytes(run.history))
    doc = dict(run.doc)
    doc["history"] = os.path.relpath(history_path, fit_path.parent)
    atomic_write_json(fit_path, doc)


def read_fit(path) -> dict:
    """A fit.json written by ``write_fit``."""
    return _read_result(path, FIT_FORMAT, "a fit result")


def read_refined(path) -> dict:
    """A refined.json written by the refine command."""
    return _read_result(path, REFINED_FORMAT, "a refine result")


def _read_result(path, expected_format: str, what: str) -> dict:
    doc = _read_json(path)
    if doc.get("format") != expected_format:
        raise ConfigError(f"{path}: not {what} (format {doc.get('format')!r}; expected {expected_format!r})")
    doc["_path"] = str(path)
    return doc


def _read_json(path) -> dict:
    if not Path(path).is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def history_path_of(fit_doc: dict) -> Path:
    """The history.parquet a fit.json names (relative to the fit.json)."""
    return Path(fit_doc["_path"]).parent / (fit_doc.get("history") or "history.parquet")


def read_history(path):
    import pandas as pd

    if not Path(path).is_file():
        raise ConfigError(f"{path}: file not found")
    return pd.read_parquet(path)


# --- refine -----------------------------------------------------------------------------------------------

def _restore(plan: FitSection, fitter, fit_doc: dict, history, dataset) -> None:
    """Give a fresh fitter the state ``refine`` reads from a finished fit: bounds, metric, history, best."""
    if list(fit_doc["parameters"]) != list(fitter.parameter_names) or \
            {p: tuple(b) for p, b in fit_doc["bounds"].items()} != plan.bounds:
        raise ConfigError(f"{fit_doc['_path']}: written for other fit settings (parameters or bounds differ "
                          f"from {plan.where('bounds')}); run neurofit fit again")
    columns = [*fitter.parameter_names, "error", "round"]
    fitter.restore(plan.bounds, plan.metric(dataset),
                   [{k: (int(v) if k == "round" else float(v)) for k, v in row.items()}
                    for row in history[columns].to_dict("records")], log_scale=plan.log_scale)


def mse(fitter, params: dict, t_start: float = 0.0) -> float:
    """Mean squared error (SI units squared, summed over the fitted outputs) of ``params`` from ``t_start``
    (over the valid samples of each trace when the fitter has per-trace lengths)."""
    traces = fitter.generate(output_var=list(fitter.output), params=params)
    start = first_step(t_start, fitter.dt)
    total = 0.0
    for var, data in fitter.output.items():
        diff = np.asarray(traces[var])[:, start:] - data[:, start:]
        if fitter.lengths is None:
            value = float(np.mean(diff ** 2))
        else:
            value = float(np.mean(diff[valid_samples(fitter.lengths, fitter.n_steps, start)] ** 2))
        total += value if math.isfinite(value) else math.inf
    return total


def run_refine(plan: FitSection, dataset, fit_doc: dict, history, noise_floor: float | None = None, log=None) -> dict:
    """Refine a finished fit (``fit_doc`` + its history) by least squares; the refined.json document.

    Besides the refined parameters and errors, the document holds at the kept parameters (SI, null =
    infinite): "intervals" - per free parameter the 95 % Wald interval {value, se, low, high, verdict} from the
    Jacobian with the noise variance estimated from the residuals (``fitting.identifiability``);
    "identifiable" - per parameter "identifiable", "not identifiable" or "practically unbounded on one side"
    (from the profile likelihood when ``refine.profile`` is set, else from the Wald interval: infinite or
    wider than the bounds is not identifiable); "identifiability" - level, noise variance and its source,
    degrees of freedom, rank; and "profile" (per parameter grid, RSS, interval, verdict) with ``refine.profile``.
    """
    if plan.kind == "spike":
        raise ConfigError(f"{plan.where('kind')}: spike fits cannot be refined (least squares needs traces)")
    fitter = plan.fitter(dataset, seed=fit_doc["seed"])
    _restore(plan, fitter, fit_doc, history, dataset)
    settings = plan.refine
    extra = {"max_nfev": settings["max_nfev"]} if settings["max_nfev"] else {}
    t_start = to_si(plan.metric_settings.get("t_start", 0) or 0, name="t_start")
    start = time.perf_counter()
    params, result = fitter.refine(calc_gradient=settings["calc_gradient"], n_starts=settings["n_starts"], **extra)
    wall = time.perf_counter() - start
    # the fit's own metric decides: a refined result it finds worse than the fit is not kept
    metric_fit, metric_refined = fit_doc["best_error"], fitter.error(params)
    kept = "refined" if metric_fit is None or not metric_refined > metric_fit else "fit"
    if kept == "fit":
        params = dict(fit_doc["best_params"])
    mse_fit = mse(fitter, fit_doc["best_params"], t_start)
    mse_refined = mse(fitter, params, t_start)
    if noise_floor is None:
        noise_floor = plan.noise_floor
    doc = {
        "format": REFINED_FORMAT, "version": FORMAT_VERSION,
        "study": plan.study.name, "optimizer": fit_doc["optimizer"]["label"], "seed": fit_doc["seed"],
        "parameters": list(fitter.parameter_names), "units": plan.units,
        "params": {p: float(v) for p, v in params.items()},
        "fit_params": dict(fit_doc["best_params"]),
        "kept": kept, "metric_fit": _finite_or_none(metric_fit) if metric_fit is not None else None,
        "metric_refined": _finite_or_none(metric_refined),
        "mse": _finite_or_none(mse_refined), "mse_fit": _finite_or_none(mse_fit), "t_start": t_start,
        "cost": _finite_or_none(float(np.mean(result.fun ** 2))),
        "noise_floor": noise_floor,
        "ratio_to_floor": _finite_or_none(mse_refined / noise_floor) if noise_floor else None,
        "ratio_to_floor_fit": _finite_or_none(mse_fit / noise_floor) if noise_floor else None,
        "calc_gradient": settings["calc_gradient"], "n_starts": settings["n_starts"],
        # of the best start; "simulations" counts every start (residuals and Jacobians)
        "nfev": int(result.nfev), "njev": None if result.njev is None else int(result.njev),
        "simulations": fitter.refine_evaluations,
        "status": int(result.status), "message": str(result.message),
        "wall_time_s": round(wall, 6),
    }
    # identifiability at the kept parameters: Wald intervals always (one simulation with sensitivities), profile
    # likelihoods when refine.profile is set; se/low/high null = infinite (a direction the data do not see)
    from ..fitting.fitters import FitError
    from ..fitting.identifiability import identifiability

    profile = bool(settings.get("profile"))
    try:
        ident = identifiability(fitter, params, plan.bounds, plan.log_scale, level=0.95, profile=profile,
                                calc_gradient=settings["calc_gradient"], max_nfev=settings["max_nfev"])
    except (FitError, ValueError) as err:
        ident = None
        doc.update(intervals=None, identifiable=None, identifiability={"error": str(err)})
        if log:
            log(f"refine: no confidence intervals ({err})")
    if ident is not None:
        rows = ident["parameters"]
        doc["intervals"] = {p: {"value": r["value"], "se": _finite_or_none(r["se"]),
                                "low": _finite_or_none(r["interval"][0]), "high": _finite_or_none(r["interval"][1]),
                                "verdict": r["wald_verdict"]} for p, r in rows.items()}
        doc["identifiable"] = {p: r["verdict"] for p, r in rows.items()}
        doc["identifiability"] = {"level": ident["level"], "verdicts_from": "profile" if profile else "wald",
                                  "noise_variance": ident["noise_variance"], "noise_source": ident["noise_source"],
                                  "n_residuals": ident["n_residuals"], "dof": ident["dof"], "rank": ident["rank"]}
        if profile:
            doc["profile"] = {p: r["profile"] for p, r in rows.items()}
        if log:
            shown = ", ".join(f"{p} {v}" for p, v in doc["identifiable"].items() if v != "identifiable")
            log(f"refine: 95 % intervals of {len(rows)} parameters; " + (shown or "all identifiable"))
    if log and kept == "fit":
        log(f"refine: {plan.metric_settings['name']} error {metric_refined:.6g} > the fit's {metric_fit:.6g}; "
            f"the fit's parameters are kept")
    if log:
        ratio = f" = {doc['ratio_to_floor']:.4f} x noise floor" if doc["ratio_to_floor"] is not None else ""
        log(f"refined: MSE {mse_fit:.6g} -> {mse_refined:.6g}{ratio} ({result.nfev} evaluations, {wall:.2f} s)")
    return doc


# --- summary ----------------------------------------------------------------------------------------------

def pair_runs(fit_docs: list, refined_docs: list) -> list[tuple[dict, dict | None]]:
    """(fit, refined or None) per run, matched by (optimizer label, seed), in the order of ``fit_docs``."""
    refined = {(d["optimizer"], d["seed"]): d for d in refined_docs}
    return [(f, refined.get((f["optimizer"]["label"], f["seed"]))) for f in fit_docs]


def summarize(fit_docs: list, refined_docs: list = (), ground_truth: dict | None = None):
    """One row per (optimizer, seed): errors after fit and refine, evaluations, wall times, parameters
    (fit, refined, ground truth and relative error of the final value), then per parameter ``<p>_spread``:
    (max - min)/|median| of the final values over all runs (None with one run). A pandas DataFrame."""
    import pandas as pd

    truth = ground_truth or {}
    rows = []
    for fit, ref in pair_runs(fit_docs, list(refined_docs)):
        row = {"study": fit["study"], "optimizer": fit["optimizer"]["label"], "library": fit["optimizer"]["library"],
               "method": fit["optimizer"]["name"], "seed": fit["seed"], "n_samples": fit["n_samples"],
               "n_rounds": fit["rounds_done"], "n_evaluations": fit["n_evaluations"],
               "fit_error": fit["best_error"], "fit_wall_time_s": fit["wall_time_s"],
               "fit_mse": ref["mse_fit"] if ref else None,
               "refined_mse": ref["mse"] if ref else None,
               "noise_floor": ref["noise_floor"] if ref else None,
               "refined_ratio_to_floor": ref["ratio_to_floor"] if ref else None,
               "refine_nfev": ref["nfev"] if ref else None,
               "refine_wall_time_s": ref["wall_time_s"] if ref else None}
        if "count_error" in fit:  # a spiking model: the spike numbers of the fit's best parameters
            row.update(count_error=fit["count_error"], gamma=fit["gamma"])
        for p in fit["parameters"]:
            final = ref["params"][p] if ref else fit["best_params"][p]
            row[f"{p}_fit"] = fit["best_params"][p]
            row[f"{p}_refined"] = ref["params"][p] if ref else None
            row[f"{p}_truth"] = truth.get(p)
            row[f"{p}_rel_error"] = (final - truth[p]) / truth[p] if truth.get(p) else None
        rows.append(row)
    # <p>_spread: (max - min) / |median| of the final values over all runs (the same on every row; None with one
    # run or a zero median) - optimizers or seeds that disagree show here
    finals = {}
    for fit, ref in pair_runs(fit_docs, list(refined_docs)):
        for p in fit["parameters"]:
            finals.setdefault(p, []).append(ref["params"][p] if ref else fit["best_params"][p])
    spread = {}
    for p, values in finals.items():
        median = float(np.median(values))
        spread[p] = (max(values) - min(values)) / abs(median) if len(values) > 1 and median != 0 else None
    for row in rows:
        row.update({f"{p}_spread": value for p, value in spread.items()})
    return pd.DataFrame(rows)


def best_run(fit_docs: list, refined_docs: list = ()) -> tuple[dict, dict | None]:
    """The run with the lowest final error (refined MSE if refined, else the fit's error)."""
    def final(pair):
        fit, ref = pair
        value = ref["mse"] if ref and ref["mse"] is not None else fit["best_error"]
        return math.inf if value is None else value
    pairs = pair_runs(fit_docs, list(refined_docs))
    if not pairs:
        raise ConfigError("no fit results given")
    return min(pairs, key=final)


def final_params(fit: dict, refined: dict | None) -> dict:
    return dict(refined["params"]) if refined else dict(fit["best_params"])
