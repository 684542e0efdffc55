"""A study's ``reduction`` section → a model reduction (``neurofit.reduction.optneuron.OptNeuron``) and its held-out check.

The workflow runs ``neurofit reduce`` (fit + held-out evaluation, four files) and then ``neurofit
plot-reduction`` (three figures). The commands are thin; the work is here::

    study = Study.load("hh_to_adex", path="config/config.yaml")
    plan = ReductionSection(study)             # checks the section (one-line ConfigError naming the key)
    summary = write_reduction(plan, "results/hh_to_adex/reduction")
    write_figures(study, "results/hh_to_adex/reduction", {"loss": "loss.png", "train": "train.png"})

The target is a built-in model at given parameters (``target.builtin``) or recorded membrane
potentials (``target.data``; spikes are threshold crossings). Both are run through the same step
protocol: one trace per amplitude, all in one batch. The reduced model is fitted on the train
amplitudes with ``SpikeTrainLoss``; the held-out amplitudes are only used afterwards, to report spike
counts and the gamma factor (1 - GammaFactor error, without rate correction) per amplitude.

Files (all atomic): ``reduction.json`` (best parameters, loss and its parts, settings, the train
evaluation), ``reduction.npz`` (loss per evaluation, fitted and target recordings and spike times on
the train amplitudes: ``fitted/0/v``, ``target/0/spikes/<trace>``, ``dt``), ``heldout.json``
(per-amplitude spike counts and gamma factors on the train and on the held-out amplitudes) and
``heldout.npz`` (recordings on the held-out amplitudes, same keys).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import models
from ..reduction.optneuron import TARGET_SEED_OFFSET
from ..units import TIME, VOLTAGE, UnitError, parse_unit
from .section import Output, Section
from .study import ConfigError, Study

FILES = ("reduction.json", "reduction.npz", "heldout.json", "heldout.npz")
FIGURES = ("loss", "train", "heldout")
#: The files of ``write_reduction`` each figure reads.
FIGURE_INPUTS = {"loss": ("reduction.json", "reduction.npz"), "train": ("reduction.json", "reduction.npz"),
                 "heldout": ("reduction.json", "heldout.json", "heldout.npz")}


class ReductionSection(Section):
    """The checked ``reduction`` section of a study: protocol, target, reduced model, bounds, loss.

    Construction checks everything that needs no simulation and no optimizer library; every mistake is a
    ``ConfigError`` whose message starts with the key path."""

    NAME = "reduction"

    def __init__(self, study: Study):
        super().__init__(study)
        section = self.settings
        self._protocol(section["protocol"])
        self._target(section["target"])
        m = section["model"]
        self.model_name = m["builtin"]
        self.model = self._build(m, ("model",))
        self.parameters = list(self.model.parameters)
        self.model_init = self._init(m, self.model, ("model",))
        self.model_method = m["method"] or models.SPECS[m["builtin"]].method
        if self.variable not in self.model.states:
            raise ConfigError(f"{self.where('protocol', 'variable')}: '{self.variable}' is not a state variable of "
                              f"the reduced model '{self.model_name}' (states: {', '.join(self.model.states)})")
        self._check_input(self.model, ("model", "builtin"))
        self.bounds, self.space = self._bounds(section["variables_bounds"])
        self.loss_settings = {k: self.quantity(("loss", k), TIME if k == "delta" else VOLTAGE) if k in
                              ("delta", "v_clip", "v_scale") else float(v) for k, v in section["loss"].items()}
        if not self.loss_settings["delta"] > 0 or not self.loss_settings["v_scale"] > 0:
            key = "delta" if not self.loss_settings["delta"] > 0 else "v_scale"
            raise ConfigError(f"{self.where('loss', key)}: must be positive")
        if self.loss_settings["delta"] >= self.duration:
            raise ConfigError(f"{self.where('loss', 'delta')}: must be shorter than protocol.duration")

    # --- checks of the section -------------------------------------------------------------------
    def _protocol(self, p: dict) -> None:
        self.input = p["input"]
        self.variable = p["variable"]
        self.dt = self.quantity("protocol.dt", TIME)
        self.duration = self.quantity("protocol.duration", TIME)
        self.start = self.quantity("protocol.start", TIME)
        self.stop = self.duration if p["stop"] is None else self.quantity("protocol.stop", TIME)
        if not self.dt > 0:
            raise ConfigError(f"{self.where('protocol', 'dt')}: must be positive")
        if not self.duration >= 2 * self.dt:
            raise ConfigError(f"{self.where('protocol', 'duration')}: must be at least two steps of protocol.dt")
        if not 0 <= self.start < self.stop <= self.duration * (1 + 1e-12):
            raise ConfigError(f"{self.where('protocol', 'stop')}: need 0 <= start < stop <= duration "
                              f"(start {self.start:g} s, stop {self.stop:g} s, duration {self.duration:g} s)")
        self.n_steps = int(round(self.duration / self.dt))
        self.amplitudes = {"train": self.quantity("protocol.train_amplitudes", None),
                           "heldout": self.quantity("protocol.heldout_amplitudes", None)}

    def _target(self, t: dict) -> None:
        given = [k for k in ("builtin", "data") if t.get(k) is not None]
        if len(given) != 1:
            raise ConfigError(f"{self.where('target')}: give exactly one of builtin (a target model) and data "
                              f"(recordings) (got {', '.join(given) or 'none'})")
        self.target_data = t.get("data")
        self.target_name = t["builtin"]
        if self.target_data is not None:
            extra = [k for k in ("params", "namespace", "init") if t[k]] + \
                    [k for k in ("threshold", "reset", "refractory", "method") if t[k] is not None]
            if extra:
                raise ConfigError(f"{self.where('target', extra[0])}: only for a target model (builtin); this target "
                                  f"is data")
            self.spike_threshold = self.quantity("target.data.spike_threshold", VOLTAGE)
            if self.amplitudes["heldout"] and self.target_data.get("heldout") is None:
                raise ConfigError(f"{self.where('target', 'data', 'heldout')}: missing (required for "
                                  f"protocol.heldout_amplitudes)")
            self.target_model = None
            return
        self.target_model = self._build(t, ("target",))
        if self.target_model.threshold is None:
            raise ConfigError(f"{self.where('target', 'threshold')}: the target model '{self.target_name}' has no "
                              f"spike condition; give one (e.g. 'v > -20*mV', with refractory 'v > -20*mV')")
        if self.variable not in self.target_model.states:
            raise ConfigError(f"{self.where('protocol', 'variable')}: '{self.variable}' is not a state variable of "
                              f"the target '{self.target_name}' (states: {', '.join(self.target_model.states)})")
        self._check_input(self.target_model, ("target", "builtin"))
        spec = models.SPECS[self.target_name]
        params = dict(spec.defaults)
        self.check_parameters(t["params"], "target.params", self.target_model.parameters)
        for name in t["params"]:
            params[name] = self.quantity(("target", "params", name), self.target_model.dimensions.get(name))
        missing = [p for p in self.target_model.parameters if p not in params]
        if missing:
            raise ConfigError(f"{self.where('target', 'params')}: missing value for {', '.join(missing)}")
        self.target_params = params
        self.target_init = self._init(t, self.target_model, ("target",))
        self.target_method = t["method"] or spec.method

    def _build(self, m: dict, keys: tuple):
        events = {k: m[k] for k in ("threshold", "reset", "refractory") if m[k] is not None}
        try:
            return models.get(m["builtin"], namespace=dict(m["namespace"]), **events)
        except ValueError as err:  # bad namespace value, threshold, ...: name the section
            raise ConfigError(f"{self.where(*keys)}: {' '.join(str(err).split())}") from None

    def _check_input(self, model, keys: tuple) -> None:
        if self.input not in model.inputs:
            raise ConfigError(f"{self.where('protocol', 'input')}: '{self.input}' is not an input of "
                              f"'{self.settings[keys[0]]['builtin']}' (inputs: {', '.join(model.inputs) or 'none'})")

    def _init(self, m: dict, model, keys: tuple) -> dict:
        init = dict(models.SPECS[m["builtin"]].init)
        for name, value in m["init"].items():
            if name not in model.states:
                raise ConfigError(f"{self.where(*keys, 'init', name)}: not a state variable "
                                  f"(states: {', '.join(model.states)})")
            if isinstance(value, str):  # a quantity in SI, or an expression that simulate evaluates
                value = self.quantity((*keys, "init", name), model.dimensions.get(name), expressions=True)
            init[name] = value
        return init

    def _bounds(self, given: dict):
        """(bounds for OptNeuron: the section's, plus the built-in's typical value for every parameter not
        named, in SI; the parsed ParameterSpace). Expressions may use the parameters not named."""
        self.check_parameters(given, "variables_bounds")
        defaults = models.SPECS[self.model_name].defaults
        complete = {p: given[p] if p in given else float(defaults[p]) for p in self.model.parameters}
        space = self.read_bounds(complete, "variables_bounds", self.model.parameters, self.model.dimensions,
                                 allow_fixed=True, allow_expressions=True)
        bounds = {}
        for name in self.model.parameters:
            if name in space.free:
                lo, hi = space.free[name]
                bounds[name] = [lo, hi, "log"] if name in space.log_scale else [lo, hi]
            elif name in space.fixed:
                bounds[name] = space.fixed[name]
            else:
                bounds[name] = str(complete[name])
        return bounds, space

    # --- what the commands need --------------------------------------------------------------------
    @property
    def data_files(self) -> list[str]:
        """Recorded files of a data target (inputs of the workflow rule)."""
        if self.target_data is None:
            return []
        return [self.target_data[k]["path"] for k in ("train", "heldout") if self.target_data.get(k)]

    def check_method(self) -> None:
        """ConfigError unless ``method`` is a nevergrad optimizer (imports nevergrad)."""
        from nevergrad.optimization import registry
        method = self.settings["method"]
        if method not in registry:
            raise ConfigError(f"{self.where('method')}: '{method}' is not a nevergrad optimizer "
                              f"(e.g. CMA, DE, TwoPointsDE, PSO, NGOpt)")

    def experiment(self, which: str, role: str):
        """The step protocol on the ``which`` ("train" or "heldout") amplitudes, for the ``role``
        ("target" or "model") model (its start state and integration method)."""
        from ..reduction.optneuron import Experiment
        init, method = (self.target_init, self.target_method) if role == "target" else \
            (self.model_init, self.model_method)
        return Experiment.steps(self.input, self.amplitudes[which], self.dt, self.duration, self.start, self.stop,
                                record=(self.variable,), spikes=True, init=init, method=method)

    def loss(self):
        from ..reduction.optneuron import SpikeTrainLoss
        s = self.loss_settings
        return SpikeTrainLoss(delta=s["delta"], v_clip=s["v_clip"], v_scale=s["v_scale"],
                              count_weight=s["count_weight"], subthreshold_weight=s["subthreshold_weight"],
                              variable=self.variable)

    def target_results(self, which: str):
        """The target's ``Results`` on the ``which`` amplitudes: the target model run through the protocol,
        or the recordings with their threshold crossings as spikes."""
        from ..reduction.optneuron import Results
        if self.target_model is not None:
            params = {k: np.array([v]) for k, v in self.target_params.items()}
            seed = self.settings["seed"] + TARGET_SEED_OFFSET
            return self.experiment(which, "target").run(self.target_model, params, seed=seed,
                                                         backend=self.settings["backend"])[0]
        from ..data.dataset import load_array
        from .fit_section import spike_times
        spec = self.target_data[which]
        keys = ("target", "data", which)
        try:
            scale, dim = parse_unit(str(spec["unit"]))
        except UnitError as err:
            raise ConfigError(f"{self.where(*keys, 'unit')}: {' '.join(str(err).split())}") from None
        if dim != VOLTAGE:
            raise ConfigError(f"{self.where(*keys, 'unit')}: '{spec['unit']}' is not a unit of voltage "
                              f"(recordings are membrane potentials, e.g. mV)")
        if not Path(spec["path"]).is_file():
            raise ConfigError(f"{self.where(*keys, 'path')}: {spec['path']}: file not found")
        v = load_array(spec["path"], scale=scale, name=spec.get("key"))
        expected = (len(self.amplitudes[which]), self.n_steps)
        if v.shape != expected:
            raise ConfigError(f"{self.where(*keys, 'path')}: {spec['path']} holds {v.shape[0]} x {v.shape[1]} "
                              f"samples; expected one row per {which} amplitude x duration/dt = "
                              f"{expected[0]} x {expected[1]}")
        spikes = [spike_times(row, self.dt, self.spike_threshold) for row in v]
        return Results([{self.variable: v}], [spikes], {"dt": self.dt, "invalid": False})



# --- the reduction and its evaluation ---------------------------------------------------------------

def run_reduction(plan: ReductionSection, target=None):
    """OptNeuron on the train amplitudes → ``ReductionResult`` (``target``: the train target's Results,
    computed here when not given)."""
    from ..reduction.optneuron import OptNeuron, ReductionError

    s = plan.settings
    target = plan.target_results("train") if target is None else target
    try:
        opt = OptNeuron(plan.experiment("train", "model"), plan.loss(), plan.bounds, plan.model, results_soll=target,
                        num_rep_loss=s["num_rep_loss"], method=s["method"], seed=s["seed"], backend=s["backend"])
    except ReductionError as err:
        raise ConfigError(f"{plan.where()}: {err}") from None
    return opt.run(max_evals=s["max_evals"], n_samples=s["n_samples"])


def spike_statistics(fitted, target, amplitudes, delta: float, duration: float, dt: float) -> dict:
    """Per-amplitude spike counts of ``fitted`` and ``target`` (Results of one chunk, one trace per
    amplitude) and gamma factors (1 - GammaFactor error, no rate correction; 1 = every spike matched)."""
    from ..fitting.metrics import GammaFactor

    gamma = GammaFactor(delta=delta, time=duration, rate_correction=False)
    fitted_trains, target_trains = fitted.spikes[0], target.spikes[0]
    counts_f = [int(len(s)) for s in fitted_trains]
    counts_t = [int(len(s)) for s in target_trains]
    gammas = [float(1.0 - gamma.calc([[f]], [t], dt)[0]) for f, t in zip(fitted_trains, target_trains)]
    errors = [f - t for f, t in zip(counts_f, counts_t)]
    return {"amplitudes": [float(a) for a in amplitudes], "target_counts": counts_t, "fitted_counts": counts_f,
            "count_errors": errors, "max_abs_count_error": max((abs(e) for e in errors), default=0),
            "gamma": gammas, "mean_gamma": float(np.mean(gammas)) if gammas else None}


def write_reduction(plan: ReductionSection, out_dir, log=None) -> dict:
    """Run the reduction and its held-out check; write ``FILES`` into ``out_dir``. Returns the summary
    (reduction.json's content, with heldout.json's under "evaluation")."""
    import time

    from ..data.files import atomic_save_npz, atomic_write_json
    from ..reduction.optneuron import recording_arrays

    out = Path(out_dir)
    s = plan.settings
    plan.check_method()
    start = time.perf_counter()
    target = plan.target_results("train")
    if log:
        log(f"target on {len(plan.amplitudes['train'])} train amplitudes: spike counts "
            f"{[len(x) for x in target.spikes[0]]}")
    result = run_reduction(plan, target)
    delta = plan.loss_settings["delta"]
    evaluation = {"delta": delta, "duration": plan.duration, "dt": plan.dt, "units": {"amplitudes": "SI",
                  "delta": "second"},
                  "train": spike_statistics(result.results, target, plan.amplitudes["train"], delta, plan.duration,
                                            plan.dt),
                  "heldout": None}
    heldout_arrays = {"dt": np.array(plan.dt)}
    if plan.amplitudes["heldout"]:
        params = {k: np.array([v]) for k, v in result.best_params.items()}
        fitted = plan.experiment("heldout", "model").run(plan.model, params, seed=s["seed"], backend=s["backend"])[0]
        held_target = plan.target_results("heldout")
        evaluation["heldout"] = spike_statistics(fitted, held_target, plan.amplitudes["heldout"], delta,
                                                 plan.duration, plan.dt)
        heldout_arrays = recording_arrays(fitted, held_target)
    atomic_save_npz(out / "heldout.npz", heldout_arrays)
    atomic_write_json(out / "heldout.json", evaluation)
    atomic_save_npz(out / "reduction.npz", result.arrays())
    summary = {
        **result.summary(),
        "study": plan.study.name,
        "target": plan.target_name or "data", "model": plan.model_name,
        "free": list(plan.space.free), "log_scale": sorted(plan.space.log_scale),
        "bounds": dict(plan.bounds),
        "units": {p: str(plan.model.dimensions[p]) for p in plan.model.parameters if p in plan.model.dimensions},
        "method": s["method"], "max_evals": s["max_evals"], "n_samples": s["n_samples"],
        "num_rep_loss": s["num_rep_loss"], "seed": s["seed"],
        "train": evaluation["train"], "heldout": evaluation["heldout"],
        "total_wall_time": time.perf_counter() - start}
    atomic_write_json(out / "reduction.json", summary)
    return summary


# --- figures ----------------------------------------------------------------------------------------

def plot_loss(arrays: dict, summary: dict, study: str):
    """Loss of every evaluation and the best so far (``reduction_plots.plot_loss_history``), titled."""
    from ..reduction.plots import plot_loss_history
    fig = plot_loss_history(arrays["loss"], arrays.get("loss_sd"))
    fig.axes[0].set_title(f"{study}: {summary['target']} -> {summary['model']} ({summary['method']}, "
                          f"{summary['n_evaluations']} evaluations); best loss {summary['loss']:.4g}",
                          fontsize="medium")
    return fig


def plot_traces(arrays: dict, stats: dict | None, study: str, which: str, variable: str = "v"):
    """Target (grey) vs fitted (red) ``variable`` per amplitude, with spike counts and gamma per panel."""
    from matplotlib.figure import Figure

    from ..plots import format_quantity
    from ..reduction.plots import plot_chunks
    if stats is None or f"fitted/0/{variable}" not in arrays:
        fig = Figure(figsize=(6, 1.5), layout="constrained")
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, f"{study}: no {which} amplitudes (protocol.{which}_amplitudes is empty)",
                ha="center", va="center")
        return fig
    fig = plot_chunks(arrays, variable=variable)
    fig.set_size_inches(9, fig.get_size_inches()[1] + 0.4)
    for ax, amp, nt, nf, g in zip(fig.axes, stats["amplitudes"], stats["target_counts"], stats["fitted_counts"],
                                  stats["gamma"]):
        ax.set_title(f"{format_quantity(amp, 'amp')}: {nt} target / {nf} fitted spikes, gamma {g:.2f}",
                     fontsize="small")
    label = "held-out" if which == "heldout" else "train"
    fig.suptitle(f"{study}: target (grey) vs fitted (red) on the {label} amplitudes\nmax spike-count error "
                 f"{stats['max_abs_count_error']}, mean gamma factor {stats['mean_gamma']:.2f}", fontsize="medium")
    return fig


def write_figures(study: Study, results_dir, outputs: dict, dpi: int | None = None) -> list[Output]:
    """Each figure of ``outputs`` (kind of ``FIGURES`` → file) of the study's reduction, from the files
    ``write_reduction`` wrote into ``results_dir``; ``dpi``: default the study's figures.dpi. An ``Output``
    per figure (the files it read besides the config)."""
    import time

    from ..plots import save_figure

    unknown = [kind for kind in outputs if kind not in FIGURES]
    if unknown:
        raise ConfigError(f"reduction figure '{unknown[0]}': unknown (kinds: {', '.join(FIGURES)})")
    variable = ReductionSection.settings_of(study)["protocol"]["variable"]
    dpi = dpi or study.section["figures"]["dpi"]
    results = Path(results_dir)
    written = []
    for kind, path in outputs.items():
        start = time.perf_counter()
        save_figure(figure(kind, results, study.name, variable), path, dpi=dpi)
        written.append(Output(str(path), [str(results / name) for name in FIGURE_INPUTS[kind]],
                              time.perf_counter() - start))
    return written


def figure(kind: str, results_dir, study: str, variable: str = "v"):
    """The ``kind`` ("loss", "train" or "heldout") figure from the files of ``write_reduction``."""
    import json
    folder = Path(results_dir)
    summary = json.loads((folder / "reduction.json").read_text())
    if kind == "loss":
        with np.load(folder / "reduction.npz") as f:
            return plot_loss({k: f[k] for k in ("loss", "loss_sd")}, summary, study)
    name = "reduction.npz" if kind == "train" else "heldout.npz"
    with np.load(folder / name) as f:
        arrays = {k: f[k] for k in f.files}
    stats = summary["train"] if kind == "train" else json.loads((folder / "heldout.json").read_text())["heldout"]
    return plot_traces(arrays, stats, study, kind, variable)

