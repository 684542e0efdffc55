"""``simulate``: every parameter set against every input trace, in one batch."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .codegen.integrators import resolve_method
from .codegen.kernel import build_kernel
from .codegen.numpy_backend import helper_namespace
from .codegen.printing import Printer
from .equations.expressions import ExpressionError, parse_expression
from .equations.model import as_model
from .equations.parser import EquationError
from .errors import NeurofitError
from .units import TIME, UnitError, shorten, to_si

BACKENDS = ("auto", "numpy", "c")
DTYPES = ("float64", "float32")


class SimulationError(NeurofitError):
    """Bad arguments to ``simulate`` (the message names the argument and what would be valid)."""


@dataclass
class SimulationResult:
    """Output of ``simulate``.

    ``traces[var]``: (n_sets, n_traces, n_steps), index k = value at t = k·dt (k = 0: initial);
    ``spikes[i][j]``: spike times (s) of parameter set i on trace j (None unless ``spikes=True``);
    ``invalid``: (n_sets, n_traces) True where a state became NaN/inf; ``final_state[state]``:
    (n_sets, n_traces) value after the last step; ``dt``: the time step (s); ``n_steps``: samples per
    trace; ``backend``: "c" or "numpy" (the one that ran); ``method``: the integration method used
    (e.g. "exponential_euler"); ``dtype``: "float64" or "float32"; ``sq_error[var]``:
    Σ_k (x_k − target_k)² per (set, trace), (n_sets, n_traces), when targets were given;
    ``sensitivities[var]``: (n_sets, n_traces, n_steps, n_parameters) derivatives of the recorded
    variable ``var`` (state or subexpression) with respect to the requested parameters (empty unless
    requested).
    """

    traces: dict
    spikes: list | None
    invalid: np.ndarray
    final_state: dict
    dt: float
    n_steps: int
    backend: str
    method: str
    dtype: str
    sq_error: dict = field(default_factory=dict)
    sensitivities: dict = field(default_factory=dict)

    @property
    def t(self) -> np.ndarray:
        """(n_steps,) sample times (s): k·dt."""
        return np.arange(self.n_steps) * self.dt

    @property
    def spike_counts(self) -> np.ndarray:
        """(n_sets, n_traces) number of spikes; raises ValueError when spikes were not requested."""
        if self.spikes is None:
            raise ValueError("simulate(..., spikes=True) was not requested")
        return np.array([[len(s) for s in row] for row in self.spikes], dtype=int)

    @property
    def invalid_sets(self) -> np.ndarray:
        """(n_sets,) True where any trace of the set diverged."""
        return self.invalid.any(axis=1)


@functools.lru_cache(maxsize=64)
def _kernel_spec(model, method, record, targets):
    return build_kernel(model, method, record=record, targets=targets)


@functools.lru_cache(maxsize=64)
def _compiled(model, method, record, targets, backend, dtype, sensitivities=()):
    spec = _kernel_spec(model, method, record, targets)
    if sensitivities:
        from .codegen.sensitivity import with_sensitivities
        spec = with_sensitivities(spec, sensitivities, record)
    if backend == "numpy":
        from .codegen.numpy_backend import NumpyKernel
        return NumpyKernel(spec, dtype)
    from .codegen.c_backend import CKernel
    return CKernel(spec, dtype)


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise SimulationError(f"backend='{backend}' is not valid (valid: {', '.join(BACKENDS)})")
    if backend == "auto":
        from .codegen.c_backend import compiler_works
        return "c" if compiler_works() else "numpy"
    return backend


def _as_array(name, value, what, expected=None):
    try:
        if isinstance(value, str):
            return np.array(to_si(value, expected, name=f"{what}['{name}']"))
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            return np.array([to_si(v, expected, name=f"{what}['{name}']") for v in value])
    except UnitError as err:
        raise SimulationError(str(err)) from None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SimulationError(f"{what}['{name}'] = {value!r} is not a number, array or quantity string") from None


def _check_names(given, expected: list, what: str, label: str, unknown_text: str, missing_text: str) -> None:
    """One-line errors for names not in ``expected`` and expected names not given."""
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise SimulationError(f"{what}: {unknown_text.format(', '.join(unknown))} "
                              f"(model {label}: {', '.join(expected) or 'none'})")
    missing = [n for n in expected if n not in given]
    if missing:
        raise SimulationError(f"{what}: {missing_text.format(', '.join(missing))}")


def _check_params(model, params: dict) -> tuple[dict, int]:
    _check_names(params, model.parameters, "params", "parameters", "unknown parameter(s) {}",
                 "missing value(s) for {} (give a number or an array with one value per parameter set)")
    arrays = {k: _as_array(k, v, "params", model.dimensions.get(k)).reshape(-1) for k, v in params.items()}
    sizes = {a.size for a in arrays.values() if a.size != 1}
    if len(sizes) > 1:
        raise SimulationError(f"params: arrays have different lengths {sorted(sizes)}; every parameter needs one "
                              f"value per parameter set (or a single value)")
    n_sets = sizes.pop() if sizes else 1
    return {k: np.broadcast_to(a, (n_sets,)).copy() for k, a in arrays.items()}, n_sets


def _check_inputs(model, inputs: dict, n_steps: int | None) -> tuple[dict, int, int]:
    _check_names(inputs, model.inputs, "inputs", "inputs", "{} not used by the model",
                 "missing input variable(s) {}; give an array (n_traces, n_steps) for each")
    arrays = {}
    for name, value in inputs.items():
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise SimulationError(f"inputs['{name}'] has shape {a.shape}; expected (n_traces, n_steps)")
        if not np.all(np.isfinite(a)):
            raise SimulationError(f"inputs['{name}'] contains NaN or inf; inputs must be finite")
        arrays[name] = a
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1:
        raise SimulationError(f"inputs: arrays have different shapes {sorted(shapes)}; all inputs need the same "
                              f"(n_traces, n_steps)")
    if arrays:
        n_traces, steps = shapes.pop()
        if n_steps is not None and n_steps != steps:
            raise SimulationError(f"n_steps={n_steps} but the inputs have {steps} samples")
        return arrays, n_traces, steps
    if n_steps is None:
        raise SimulationError("the model has no inputs: give n_steps= (number of samples to simulate)")
    return arrays, 1, int(n_steps)


def numpy_function(expr, label: str):
    """A parsed (sympy) expression → function of ``{model name: value}``, computed by the printer's numpy code.

    Only code printed from the expression is compiled (never user text); it runs without builtins and sees
    only the helpers of generated numpy code and the values of the expression's symbols.
    """
    printer = Printer("numpy")
    code = compile(printer(expr), label, "eval")
    names = {printer(sym): sym.name for sym in expr.free_symbols}  # source name -> model name
    helpers = {"__builtins__": {}, **helper_namespace(np.float64)}

    def evaluate(values: dict):
        return eval(code, helpers, {source: values[name] for source, name in names.items()})

    return evaluate


@functools.lru_cache(maxsize=256)
def _init_function(model, text: str):
    """An initial-value expression (e.g. '1/(1 + beta_m/alpha_m)') read by the restricted parser and compiled
    once per model."""
    expr, _ = parse_expression(text, model.scope)
    return numpy_function(model.expand(expr), "<neurofit init expression>")


def _initial_state(model, init: dict | None, params: dict, inputs: dict, n_sets: int, n_traces: int, dt: float):
    init = dict(init or {})
    unknown = sorted(set(init) - set(model.states))
    if unknown:
        raise SimulationError(f"init: {', '.join(unknown)} not a state variable "
                              f"(states: {', '.join(model.states)})")
    values = {s: np.zeros((n_sets, n_traces)) for s in model.states}
    expressions = {}
    for name, value in init.items():
        if isinstance(value, str):
            try:
                values[name][:] = to_si(value, name=f"init['{name}']")
                continue
            except UnitError:
                expressions[name] = value
                continue
        a = np.asarray(value, dtype=np.float64)
        try:
            values[name][:] = a.reshape(-1, 1) if a.ndim == 1 else a
        except ValueError:
            raise SimulationError(f"init['{name}'] has shape {a.shape}; expected a number, (n_sets,) or "
                                  f"(n_sets, n_traces) = ({n_sets}, {n_traces})") from None
    for name, text in expressions.items():  # e.g. 'm': '1/(1 + beta_m/alpha_m)' at the initial state
        try:
            function = _init_function(model, text)
        except ExpressionError as err:
            raise SimulationError(f"init['{name}'] = '{shorten(text)}': {err}") from None
        env = {s: values[s] for s in model.states}
        env.update({p: v.reshape(n_sets, 1) for p, v in params.items()})
        env.update({i: a[:, 0][None, :] for i, a in inputs.items()})
        env.update({"t": 0.0, "dt": dt})
        try:
            with np.errstate(all="ignore"):
                values[name][:] = function(env)
        except KeyError as err:
            raise SimulationError(f"init['{name}'] = '{shorten(text)}': '{err.args[0]}' has no value at the "
                                  f"initial state (use states, parameters, inputs, t, dt)") from None
    return values


#: Newton iterations and tolerance of the steady-state solve (``simulate(..., at_rest=True)``): the state is
#: at rest when the Newton step is below ``REST_TOLERANCE`` times the state's own scale (max(|x|, 1e-3)).
REST_ITERATIONS = 100
REST_TOLERANCE = 1e-10
#: Before Newton's method, the model runs this long (s) under its holding input, so that the solve starts near
#: the stable rest (a cell that fires tonically under its holding current has none, and gets NaN).
REST_RELAX_TIME = 0.5


@functools.lru_cache(maxsize=64)
def _rest_functions(model):
    """The right-hand sides (noise terms at 0) and their Jacobian over the states, compiled once per model."""
    states = [model.symbol(s) for s in model.states]
    noise = {model.symbol(n): 0 for n in model.noise}
    rhs = [model.expand(model.rhs[s]).subs(noise) for s in model.states]
    jacobian = [[numpy_function(f.diff(x), "<neurofit steady state>") for x in states] for f in rhs]
    return [numpy_function(f, "<neurofit steady state>") for f in rhs], jacobian


def steady_state(model, values: dict, params: dict, inputs: dict, n_sets: int, n_traces: int, dt: float) -> dict:
    """The model at rest under each trace's first input sample (the holding current), solved by Newton's method.

    model: the ``Model``; values: state -> (n_sets, n_traces) starting guess (``simulate`` passes the
    state after ``REST_RELAX_TIME`` under the holding input);
    params: name -> (n_sets,) SI; inputs: name -> (n_traces, n_steps) SI; n_sets, n_traces: the
    number of parameter sets and input traces; dt: time step (s), the value of ``dt`` in the equations.
    Returns state -> (n_sets, n_traces)
    where every derivative is zero (the Newton step below ``REST_TOLERANCE``); a cell for which the
    iteration diverges or finds no rest within ``REST_ITERATIONS`` steps gets NaN, which the simulation
    reports as an invalid (bad) candidate rather than an error. Raises nothing of its own (KeyError for a
    missing state, parameter or input).
    """
    rhs, jacobian = _rest_functions(model)
    states = list(model.states)
    x = np.stack([np.broadcast_to(values[s], (n_sets, n_traces)).astype(np.float64) for s in states], axis=-1)
    env = {p: np.asarray(v, dtype=np.float64).reshape(n_sets, 1) for p, v in params.items()}
    env.update({name: a[:, 0][None, :] for name, a in inputs.items()})
    env.update({"t": 0.0, "dt": dt})
    done = np.zeros((n_sets, n_traces), dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(REST_ITERATIONS):
            env.update({s: x[..., i] for i, s in enumerate(states)})
            f = np.stack([np.broadcast_to(g(env), (n_sets, n_traces)) for g in rhs], axis=-1)
            J = np.empty((n_sets, n_traces, len(states), len(states)))
            for i, row in enumerate(jacobian):
                for j, g in enumerate(row):
                    J[..., i, j] = np.broadcast_to(g(env), (n_sets, n_traces))
            finite = np.all(np.isfinite(J), axis=(-2, -1)) & np.all(np.isfinite(f), axis=-1)
            J[~finite], f[~finite] = np.eye(len(states)), 0.0
            step = np.linalg.solve(J, -f[..., None])[..., 0]
            step[~finite] = np.nan
            step[done] = 0.0
            x = x + step
            done |= np.all(np.abs(step) <= REST_TOLERANCE * np.maximum(np.abs(x), 1e-3), axis=-1)
            if done.all():
                break
    x[~done] = np.nan
    return {s: x[..., i] for i, s in enumerate(states)}


def _relaxed(model, method, backend, dtype, params, inputs, init_values, dt, seed, set_offset, threads) -> dict:
    """The state after ``REST_RELAX_TIME`` under each trace's first input sample (nothing recorded)."""
    n_steps = int(min(np.ceil(REST_RELAX_TIME / dt), 10 ** 6))
    kernel = _compiled(model, method, (), (), backend, dtype, ())
    held = {name: np.repeat(a[:, :1], n_steps, axis=1) for name, a in inputs.items()}
    shape = np.shape(next(iter(init_values.values())))
    _, _, bad, final, _ = kernel.run(shape, params, held, init_values, dt, n_steps, seed if seed is not None else 0,
                                     set_offset, {}, 0, **({"threads": threads} if backend == "c" else {}))
    relaxed = {s: np.where(bad, np.nan, final[s]) for s in model.states}
    return relaxed


def simulate(model, params: dict, inputs: dict, dt, init: dict | None = None, record=("v",), spikes: bool = False,
             method: str | None = None, backend: str = "auto", dtype: str = "float64", seed: int | None = None,
             n_steps: int | None = None, targets: dict | None = None, target_start: int = 0, set_offset: int = 0,
             threads: int = 1, sensitivities=(), at_rest: bool = False) -> SimulationResult:
    """Simulate ``model`` for every parameter set (``params``: name → scalar or (n_sets,)) against every
    input trace (``inputs``: name → (n_traces, n_steps)); values in SI units.

    ``sensitivities`` (parameter names) adds ``result.sensitivities[var]`` of shape
    (n_sets, n_traces, n_steps, n_parameters): the exact derivative of each recorded variable.
    ``at_rest=True`` starts every (set, trace) at the model's steady state under the trace's first input
    sample (``steady_state``: Newton's method from ``init`` as the guess; NaN - an invalid run - where it finds
    none). ``targets`` (state or subexpression → (n_traces, n_steps)) accumulates the squared error online from sample
    ``target_start`` on, so long batches need not keep their traces (use ``record=()``).
    Noise (``xi``) draws depend on (seed, set_offset + set, trace, step): chunks of a batch given
    their ``set_offset`` reproduce the unchunked batch.

    model: a ``Model`` or an equations string; params: parameter name → SI number, quantity string or
    (n_sets,) array (one value per parameter set; every parameter of the model is needed); inputs:
    input name → (n_traces, n_steps) or (n_steps,) SI array, finite; dt: time step, s or a quantity
    string ("0.01 ms"); init: state → initial value (SI number, quantity string, (n_sets,) or
    (n_sets, n_traces) array, or an expression such as "1/(1 + beta_m/alpha_m)"; unset states start
    at 0); record: the variables to record (states, subexpressions, or parameters - recorded as their
    constant value; a name or a sequence);
    spikes: return spike times (needs a threshold); method: integration method ("euler", "rk2",
    "rk4", "exponential_euler", "euler_maruyama"; None: euler_maruyama for a model with noise, else
    exponential_euler when every equation is linear in its own variable, else euler); backend: "auto" (C
    when a compiler works, else numpy), "c" or "numpy"; dtype: "float64" or "float32"; seed: noise seed
    (required when the model has noise);
    n_steps: samples to simulate (only needed when the model has no inputs); targets, target_start:
    see above (target_start is a sample index); set_offset: index of the first parameter set within
    the whole batch (for the noise draws); threads: C-backend threads (ignored by numpy);
    sensitivities, at_rest: see above.
    Returns a ``SimulationResult``. Raises SimulationError (one line naming the argument) for a bad dt,
    dtype, backend, method, record or targets name, missing or unknown parameters/inputs/init
    states, arrays of mismatched shapes, non-finite inputs, spikes without a threshold, or noise
    without a seed; EquationError when ``model`` is equations text that does not parse.
    """
    model = as_model(model)
    try:
        dt = to_si(dt, TIME, name="dt")
    except UnitError as err:
        raise SimulationError(str(err)) from None
    if not np.isfinite(dt) or dt <= 0:
        raise SimulationError(f"dt = {dt} s must be a positive duration (e.g. 1e-5 or '0.01 ms')")
    if dtype not in DTYPES:
        raise SimulationError(f"dtype='{dtype}' is not valid (valid: {', '.join(DTYPES)})")
    record = (record,) if isinstance(record, str) else tuple(record or ())
    bad_record = [r for r in record if r not in model.recordable() and r not in model.parameters]
    if bad_record:
        raise SimulationError(f"record: {', '.join(bad_record)} not a variable of the model "
                              f"(recordable: {', '.join(model.recordable() + model.parameters)})")
    constant = [r for r in record if r in model.parameters]  # a parameter's trace is its value at every step
    record = tuple(r for r in record if r not in model.parameters)
    targets = dict(targets or {})
    bad_target = [v for v in targets if v not in model.recordable()]
    if bad_target:
        raise SimulationError(f"targets: {', '.join(bad_target)} not a state variable or subexpression "
                              f"(recordable: {', '.join(model.recordable())})")
    if spikes and model.threshold is None:
        raise SimulationError("spikes=True needs a model with a threshold (Model(..., threshold='v > -50*mV'))")
    if model.noise and seed is None:
        raise SimulationError(f"the model has noise ({', '.join(model.noise)}): give seed= for reproducible draws")
    try:
        method = resolve_method(model, method)
    except (ValueError, EquationError) as err:
        raise SimulationError(str(err)) from None
    params, n_sets = _check_params(model, params)
    inputs, n_traces, n_steps = _check_inputs(model, inputs, n_steps)
    for v, a in targets.items():
        a = np.asarray(a, dtype=np.float64)
        targets[v] = a[None, :] if a.ndim == 1 else a
        if targets[v].shape != (n_traces, n_steps):
            raise SimulationError(f"targets['{v}'] has shape {targets[v].shape}; expected ({n_traces}, {n_steps})")
    init_values = _initial_state(model, init, params, inputs, n_sets, n_traces, dt)
    backend = _resolve_backend(backend)
    if at_rest and model.states:  # without differential equations every state is at rest
        init_values = _relaxed(model, method, backend, dtype, params, inputs, init_values, dt, seed, set_offset,
                               threads)
        init_values = steady_state(model, init_values, params, inputs, n_sets, n_traces, dt)
    sensitivities = tuple(sensitivities or ())
    try:
        kernel = _compiled(model, method, record, tuple(targets), backend, dtype, sensitivities)
    except ValueError as err:
        raise SimulationError(str(err)) from None
    for name in kernel.spec.states[len(model.states):]:
        init_values[name] = np.zeros((n_sets, n_traces))
    records, events, bad, final, sq_err = kernel.run(
        (n_sets, n_traces), params, inputs, init_values, dt, n_steps, seed if seed is not None else 0, set_offset, targets,
        target_start, **({"threads": threads} if backend == "c" else {}))
    spike_trains = None
    if spikes:
        spike_trains = _spike_trains(events, n_sets, n_traces, dt)
    derivatives = {}
    if sensitivities:
        from .codegen.sensitivity import sensitivity_name
        for var in record:
            derivatives[var] = np.stack([records.pop(sensitivity_name(var, p)) for p in sensitivities], axis=-1)
        final = {k: v for k, v in final.items() if k in model.states}
    for name in constant:
        records[name] = np.broadcast_to(params[name][:, None, None], (n_sets, n_traces, n_steps)).astype(dtype)
    return SimulationResult(traces=records, spikes=spike_trains, invalid=bad, final_state=final, dt=dt,
                            n_steps=n_steps, backend=backend, method=method, dtype=dtype, sq_error=sq_err,
                            sensitivities=derivatives)


def _spike_trains(events, n_sets, n_traces, dt):
    """Events (step, sets, traces) in step order → spike times per (set, trace)."""
    steps = np.concatenate([np.full(len(sets), k) for k, sets, _ in events] or [np.zeros(0, dtype=int)])
    cells = np.concatenate([sets * n_traces + traces for _, sets, traces in events] or [np.zeros(0, dtype=int)])
    order = np.argsort(cells, kind="stable")  # stable: each cell's spikes stay in time order
    bounds = np.cumsum(np.bincount(cells, minlength=n_sets * n_traces))[:-1]
    times = np.split(steps[order].astype(np.float64) * dt, bounds)
    return [times[i * n_traces:(i + 1) * n_traces] for i in range(n_sets)]
