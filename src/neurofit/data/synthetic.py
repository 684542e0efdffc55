"""Generated recordings: a model simulated at known parameters on generated stimuli, plus observation noise.

A study's ``data.synthetic`` section (see the config schema) replaces recorded files: its inputs are
``neurofit.data.stimuli`` traces, its outputs the model's traces at the ground truth plus Gaussian noise.
OU inputs and observation noise are drawn from ``np.random.default_rng([seed, tag, k])`` - the k-th input
(tag OU_INPUT_STREAM = 1) or the k-th noisy output (NOISE_STREAM = 2), names in sorted order - and ``xi`` of
stochastic models by ``simulate(seed=seed)``: the same seed gives the same dataset, and no two draws share a
stream (a tag is needed: default_rng(s) and default_rng([s, 0]) give the same numbers). ``check_size`` refuses, before
anything is generated, a duration and dt whose traces would not fit in the memory available.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..simulate import SimulationError, simulate
from ..units import TIME, Dimension, UnitError, parse_quantity, to_si
from .dataset import Dataset
from .files import check_memory

#: Random streams of generated data, separated by a tag: ``np.random.default_rng([seed, TAG, k])`` with the
#: section's ``seed``. OU_INPUT_STREAM draws the k-th OU input (inputs in sorted order), NOISE_STREAM the
#: observation noise of the k-th recorded output (sorted); the model's own noise (``xi``) is drawn by
#: ``simulate(seed=seed)``. A tag other than 0 keeps each apart from a plain ``default_rng(seed)``.
OU_INPUT_STREAM = 1
NOISE_STREAM = 2

# fields of a stimulus holding values of the input (the rest are times or counts), by kind
_VALUE_FIELDS = {"steps": ("amplitudes", "baseline"), "ramp": ("amp_start", "amp_stop", "baseline"),
                 "ou": ("mean", "sigma")}


def synthetic_dataset(model, spec: dict, dt, params: dict, where: str) -> Dataset:
    """The recordings described by ``spec`` (a validated ``data.synthetic`` mapping): ``model`` simulated
    at ``params`` (name -> SI value, every parameter) from ``spec["init"]`` with ``spec["method"]`` on the
    generated inputs, sampled every ``dt``, plus ``spec["noise"]``. ``where`` (the key path of ``spec``)
    starts every ConfigError message."""
    dt, duration, n_steps = check_size(model, spec, dt, where)
    inputs, units = _inputs(model, spec, n_steps, dt, duration, where)
    record = _record(model, spec, where)
    noise = _noise(model, spec, record, where)
    try:
        result = simulate(model, params, inputs, dt, init=spec["init"], record=record, method=spec["method"],
                          seed=spec["seed"])
    except SimulationError as err:
        raise ConfigError(f"{where}: {err}") from None
    outputs = {name: result.traces[name][0] for name in record}
    diverged = [name for name, trace in outputs.items() if not np.isfinite(trace).all()]
    if result.invalid[0].any() or diverged:
        raise ConfigError(f"{where}: the simulation at the ground truth diverged (NaN or inf in "
                          f"{', '.join(diverged) or 'a state'}); check ground_truth, init, method and dt")
    for k, (name, sd) in enumerate(sorted(noise.items())):
        draws = np.random.default_rng([spec["seed"], NOISE_STREAM, k]).standard_normal(outputs[name].shape)
        outputs[name] = outputs[name] + sd * draws
    units.update({name: str(model.dimensions[name]) for name in record})
    return Dataset(inputs=inputs, outputs=outputs, dt=dt, units=units, source={"synthetic": where})


def check_size(model, spec: dict, dt, where: str) -> tuple[float, float, int]:
    """(dt s, duration s, n_steps) of the data ``spec`` describes, after checking that its traces fit in the
    memory available: n_traces x n_steps samples for each input (and its random draws) and each recorded
    output (its simulation, noise and noisy copy). ConfigError naming ``where``.duration otherwise."""
    dt = _time(dt, "dt", where)
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigError(f"{where}: dt = {dt:g} s must be a positive time step")
    duration = _time(spec["duration"], f"{where}.duration")
    n_steps = round(duration / dt) if math.isfinite(duration) else math.inf
    if n_steps < 2:
        raise ConfigError(f"{where}.duration: {spec['duration']!r} is {n_steps} sample(s) of dt = {dt:g} s; "
                          f"give at least 2 samples")
    n_traces = max([_trace_count(stimulus) for stimulus in spec["inputs"].values()], default=1)
    n_inputs, n_outputs = len(model.inputs), len(spec["record"] or model.states[:1])
    check_memory(f"{where}.duration", 8.0 * n_traces * n_steps * (2 * n_inputs + 3 * n_outputs),
                 f"{duration:g} s at dt = {dt:g} s is {n_steps:g} steps; {n_traces} trace(s) of {n_inputs} "
                 f"input(s) and {n_outputs} output(s)")
    return dt, duration, n_steps


def _trace_count(stimulus: dict) -> int:
    """Traces a stimulus generates: one per amplitude (steps), n_traces (ou), one (ramp)."""
    if stimulus["kind"] == "steps":
        return len(stimulus["amplitudes"]) if isinstance(stimulus.get("amplitudes"), list) else 1
    return int(stimulus.get("n_traces", 1)) if stimulus["kind"] == "ou" else 1


def _time(value, key: str, where: str | None = None) -> float:
    try:
        return to_si(value, TIME, name=key)
    except UnitError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None


def _inputs(model, spec: dict, n_steps: int, dt: float, duration: float, where: str) -> tuple[dict, dict]:
    """Every model input generated → ({name: (n_traces, n_steps)}, {name: SI unit name where known})."""
    given = spec["inputs"]
    unknown = [name for name in given if name not in model.inputs]
    if unknown:
        raise ConfigError(f"{where}.inputs.{unknown[0]}: not an input of the model "
                          f"(inputs: {', '.join(model.inputs) or 'none'})")
    missing = [name for name in model.inputs if name not in given]
    if missing:
        raise ConfigError(f"{where}.inputs: the model needs input(s) {', '.join(missing)} "
                          f"(given: {', '.join(given)})")
    arrays, units = {}, {}
    for k, name in enumerate(sorted(given)):
        key = f"{where}.inputs.{name}"
        stimulus = given[name]
        dimension = _input_dimension(model, name, stimulus, key)
        trace = _stimulus(stimulus, dimension, n_steps, dt, duration, [spec["seed"], OU_INPUT_STREAM, k], key)
        arrays[name] = np.atleast_2d(trace)
        if dimension is not None:
            units[name] = str(dimension)
    counts = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise ConfigError(f"{where}.inputs: every input needs the same number of traces (got {listed}; steps "
                          f"give one per amplitude, ramp one, ou n_traces)")
    return {name: arrays[name] for name in given}, units


def _input_dimension(model, name: str, stimulus: dict, key: str) -> Dimension | None:
    """The input's dimension: the model's (declared or inferred from the equations), else that of the
    first value of the stimulus written with a unit, else None (plain SI numbers, nothing to check)."""
    known = model.dimensions.get(name) or model.scope.input_dims.get(name)
    if known is not None:
        return known
    for field in _VALUE_FIELDS[stimulus["kind"]]:
        values = stimulus[field] if isinstance(stimulus[field], list) else [stimulus[field]]
        for value in values:
            if isinstance(value, str):
                try:
                    return parse_quantity(value)[1]
                except UnitError as err:
                    raise ConfigError(f"{key}.{field}: {err}") from None
    return None


def _stimulus(stimulus: dict, dimension, n_steps: int, dt: float, duration: float, seed, key: str):
    """One input's traces from its stimulus mapping (values checked against ``dimension``)."""
    from . import stimuli  # scipy.signal: not imported when the Snakefile only checks sizes
    kind = stimulus["kind"]
    if kind == "steps" and stimulus["amplitudes"] is None:
        raise ConfigError(f"{key}.amplitudes: missing (required for kind steps, e.g. [0.5 nA])")
    if kind != "steps" and stimulus["amplitudes"] is not None:
        raise ConfigError(f"{key}.amplitudes: only for kind steps (kind is {kind}; its fields: "
                          f"{', '.join(_VALUE_FIELDS[kind])})")

    def value(field):
        try:
            if isinstance(stimulus[field], list):
                return [to_si(v, dimension, name=f"{key}.{field}") for v in stimulus[field]]
            return to_si(stimulus[field], dimension, name=f"{key}.{field}")
        except UnitError as err:
            raise ConfigError(str(err)) from None

    start = _time(stimulus["start"], f"{key}.start")
    stop = duration if stimulus["stop"] is None else _time(stimulus["stop"], f"{key}.stop")
    try:
        if kind == "steps":
            return stimuli.steps(n_steps, dt, value("amplitudes"), start, stop, value("baseline"))
        if kind == "ramp":
            return stimuli.ramp(n_steps, dt, start, stop, value("amp_start"), value("amp_stop"), value("baseline"))
        return stimuli.ornstein_uhlenbeck(n_steps, dt, _time(stimulus["tau"], f"{key}.tau"), value("sigma"),
                                          mu=value("mean"), seed=seed, n_traces=stimulus["n_traces"])
    except stimuli.StimulusError as err:
        raise ConfigError(f"{key}: {err}") from None


def _record(model, spec: dict, where: str) -> tuple:
    record = spec["record"] or model.states[:1]
    unknown = [name for name in record if name not in model.recordable()]
    if unknown:
        raise ConfigError(f"{where}.record: {', '.join(unknown)} not a variable of the model "
                          f"(recordable: {', '.join(model.recordable())})")
    return tuple(record)


def _noise(model, spec: dict, record: tuple, where: str) -> dict:
    """Observation-noise SD per recorded output, SI."""
    sds = {}
    for name, value in spec["noise"].items():
        key = f"{where}.noise.{name}"
        if name not in record:
            raise ConfigError(f"{key}: not a recorded output (recorded: {', '.join(record)}; add it to record)")
        try:
            sds[name] = to_si(value, model.dimensions[name], name=key)
        except UnitError as err:
            raise ConfigError(str(err)) from None
        if not sds[name] >= 0:
            raise ConfigError(f"{key}: {value!r} must be >= 0 (the standard deviation of the noise)")
    return sds
