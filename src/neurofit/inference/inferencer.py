"""Inferencer: a posterior over a neuron model's parameters from recordings, by simulation-based inference.

brian2modelfitting's Inferencer API on the ``sbi`` package (NPE, NLE, NRE; the old names SNPE,
SNLE, SNRE are accepted as aliases) and neurofit's simulator::

    inferencer = Inferencer(dt, model, input={"I": I}, output={"v": v}, features={"v": ["v_max", "v_mean"]})
    inferencer.infer(n_samples=5000, g_Na=["1 uS", "100 uS"], g_K=["0.1 uS", "10 uS", "log"])
    samples = inferencer.sample((10_000,))          # SI, shape (10000, 2)

Parameters are SI floats; priors are uniform or log-uniform boxes. Training data are drawn from a
seeded prior up front and simulated in batches, so a chunk of them (``simulate_training_chunk``)
is exactly the corresponding slice of an unchunked run. Simulations whose features are NaN/inf are
counted and left out of training. A saved posterior is data only - the network's weights and a JSON
description it is rebuilt from - so loading a posterior file never unpickles (and never runs) code.

A study's ``infer`` section drives the same through the workflow: see ``neurofit.workflow.infer_section``.

brian2modelfitting's module functions are here too: ``calc_prior(param_names, **bounds)`` (the prior of
``init_prior``) and ``get_param_dict(param_values, param_names, n_values)``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import pickle
import pickletools
import warnings
import weakref
import zipfile

import numpy as np
import torch
from torch.distributions import TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from ..data.files import atomic_save_npz, atomic_write_bytes
from ..equations.model import Model
from ..equations.namespace import caller_namespace, external_names
from ..errors import NeurofitError
from ..fitting.bounds import parse_bounds
from ..simulate import simulate
from ..units import DIMENSIONLESS, to_si
from .features import SPIKES, FeatureSet, RawTraces, stimulus_windows


class InferenceError(NeurofitError):
    """Inference set-up or data that cannot be used (one line naming the argument and what would be valid)."""


class InferenceNameError(InferenceError, NameError):
    """An unknown inference method: an InferenceError that is also a NameError, the class brian2modelfitting's
    ``init_inference`` raises."""


class InferenceTypeError(InferenceError, TypeError):
    """A parameter without bounds for ``calc_prior``: an InferenceError that is also a TypeError, as
    brian2modelfitting's."""


class NothingToSaveError(InferenceError, AttributeError):
    """``save_summary_statistics`` without training data: an InferenceError that is also an AttributeError, as
    brian2modelfitting's."""


class MisspecificationWarning(UserWarning):
    """The data's features lie outside the distribution of the training simulations' features: the model
    (with its prior and observation noise) does not produce data like these, and a posterior conditioned on
    them may be confidently wrong. Issued by ``Inferencer.infer`` and ``Inferencer.sample`` when
    ``Inferencer.check_misspecification`` fails; the message names the features furthest out."""


METHODS = {"NPE": "NPE", "NLE": "NLE", "NRE": "NRE", "SNPE": "NPE", "SNLE": "NLE", "SNRE": "NRE"}
DENSITY_ESTIMATORS = ("maf", "mdn", "nsf", "made", "maf_rqs")
CLASSIFIERS = ("resnet", "mlp", "linear")
EMBEDDINGS = ("mlp", "cnn")
_NOISE_STREAM = 0x6F6273  # keeps observation-noise draws apart from other uses of the seed
AUTO = "auto"  # noise="auto": each output's noise SD estimated from the recordings' baseline; raw_samples="auto"
#: Block means per trace of automatic features for neurofit's embedding nets (raw_samples="auto").
AUTO_RAW_SAMPLES = 256
#: Length (s) of the centred moving average the baseline is compared with by ``estimate_noise_sd``.
NOISE_SMOOTHING = 1e-3
#: Fewest baseline samples per trace (after the moving average's half-windows) ``estimate_noise_sd`` uses.
MIN_BASELINE_SAMPLES = 10
#: Added to the inferencer's seed by default for the posterior predictive check (calibration takes + 1).
PREDICTIVE_SEED_OFFSET = 2
POSTERIOR_FORMAT = "neurofit.posterior"
#: Version 2: weights and a JSON description, read with ``torch.load(weights_only=True)``; version 1
#: held pickled sbi objects and is refused (loading it could run code).
POSTERIOR_VERSION = 2
_BUILD_BATCH = 16  # rows of the stand-in training batch a saved network is rebuilt from
_REGENERATE = "regenerate it with `neurofit infer` (or Inferencer.infer and save_posterior)"


def set_threads(threads: int | None = None) -> int:
    """``torch.set_num_threads`` from ``threads``, else env NEUROFIT_THREADS, else 1; returns the number."""
    n = threads if threads is not None else int(os.environ.get("NEUROFIT_THREADS", "1"))
    if n < 1:
        raise InferenceError(f"threads = {n}: must be a positive number of threads (e.g. the cores given to the job)")
    torch.set_num_threads(n)
    return n


class NoTracker:
    """An sbi training tracker that does nothing (pass ``tracker=NoTracker()``): sbi's default writes TensorBoard
    logs into ./sbi-logs of whatever folder a job runs in. Epochs and losses stay in the inference object's
    ``summary``."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        """Ignore one training metric (name, value, epoch)."""

    def log_metrics(self, metrics, step=None):
        """Ignore a mapping of training metrics."""

    def log_params(self, params):
        """Ignore the training settings."""

    def add_figure(self, name, figure, step=None):
        """Ignore a figure."""

    def flush(self):
        """Nothing to write."""


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch and numpy's global generator for the block; restore both afterwards."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % 2 ** 32)
        try:
            yield
        finally:
            np.random.set_state(state)


# --- priors ---------------------------------------------------------------------------------------

class _LogScale(Transform):
    """exp() on the masked (log-uniform) dimensions, identity on the others."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask

    def __eq__(self, other):
        return isinstance(other, _LogScale) and torch.equal(self.mask, other.mask)

    def _call(self, x):
        return torch.where(self.mask, x.exp(), x)

    def _inverse(self, y):
        return torch.where(self.mask, y.clamp_min(torch.finfo(y.dtype).tiny).log(), y)

    def log_abs_det_jacobian(self, x, y):
        return torch.where(self.mask, x, torch.zeros_like(x)).sum(-1)


def _box_prior(low, high, log_mask):
    """The prior over [low, high] (SI): sbi's BoxUniform, or a BoxPrior if any dimension is log-uniform."""
    if any(log_mask):
        return BoxPrior(low, high, log_mask)
    from sbi.utils import BoxUniform
    return BoxUniform(torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32))


class BoxPrior(TransformedDistribution):
    """Independent priors in [low, high] (SI): uniform, or log-uniform where ``log_mask`` is True."""

    arg_constraints = {}

    def __init__(self, low, high, log_mask, device: str = "cpu"):
        from sbi.utils import BoxUniform
        self.low = torch.as_tensor(low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=device)
        self.log_mask = torch.as_tensor(log_mask, dtype=torch.bool, device=device)
        base = BoxUniform(torch.where(self.log_mask, self.low.log(), self.low),
                          torch.where(self.log_mask, self.high.log(), self.high), device=device)
        super().__init__(base, _LogScale(self.log_mask))

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return constraints.independent(constraints.interval(self.low, self.high), 1)


def _method(name: str) -> str:
    key = str(name).upper()
    if key not in METHODS:
        raise InferenceNameError(f"inference_method = {name!r} is not valid (valid: NPE, NLE, NRE; aliases SNPE, "
                                 f"SNLE, SNRE)")
    return METHODS[key]


def _device(name) -> str:
    """The torch device for ``sbi_device``: "cpu"; "cuda" (or "gpu", or "cuda:<n>") when a CUDA device is
    available, else "cpu" with a warning; anything else "cpu" with a warning (as brian2modelfitting, which
    falls back to the cpu)."""
    device = str(name).lower()
    device = "cuda" if device == "gpu" else device
    if device == "cpu":
        return device
    if device.split(":")[0] == "cuda":
        if torch.cuda.is_available():
            return device
        warnings.warn(f"sbi_device = {name!r}: no CUDA device is available; training on the cpu", stacklevel=3)
        return "cpu"
    warnings.warn(f"sbi_device = {name!r} is not a device (valid: 'cpu', 'cuda', 'gpu'); training on the cpu",
                  stacklevel=3)
    return "cpu"


def get_param_dict(param_values, param_names, n_values: int) -> dict:
    """Parameter values by name, each spread to ``n_values`` values, as brian2modelfitting's ``get_param_dict``.

    param_values: (n_rows, n_parameters) values, columns in ``param_names`` order (a 1-D array: one row), SI;
    n_rows is 1 (the row is repeated) or n_values; param_names: the parameter names; n_values: values per
    parameter (e.g. the number of simulated neurons). Returns a dict name → float64 array (n_values,). Raises
    InferenceError when the columns do not match the names or n_rows is neither 1 nor n_values.
    """
    values = np.atleast_2d(np.asarray(param_values, dtype=np.float64))
    names = list(param_names)
    if values.shape[1] != len(names) or values.shape[0] not in (1, n_values):
        raise InferenceError(f"get_param_dict: param_values of shape {values.shape} do not give {len(names)} "
                             f"parameters ({', '.join(names)}) for 1 or {n_values} rows")
    return {name: np.broadcast_to(values[:, j], (n_values,)).copy() for j, name in enumerate(names)}


def calc_prior(param_names, **bounds):
    """The uniform prior over the box of ``bounds``, as brian2modelfitting's ``calc_prior`` (what
    ``Inferencer.init_prior`` builds for the model's parameters).

    param_names: the parameters, in the order of the prior's dimensions; bounds: one keyword per name,
    ``name=[low, high]`` (or ``[low, high, "log"]`` for a log-uniform dimension, low > 0), SI numbers or
    quantity strings, low < high. Returns sbi's ``BoxUniform`` (float32, on the cpu), or a ``BoxPrior`` when a
    dimension is log-uniform; its samples have shape (..., len(param_names)). Raises InferenceTypeError (an
    InferenceError and a TypeError, as brian2modelfitting) for a name without bounds, BoundsError for bounds
    of another name or that cannot be read.
    """
    names = list(param_names)
    missing = [name for name in names if name not in bounds]
    if missing:
        raise InferenceTypeError(f"calc_prior: no bounds for parameter(s) {', '.join(missing)}: give "
                                 f"{missing[0]}=[low, high]")
    space = parse_bounds(bounds, names)
    return _box_prior([space.free[n][0] for n in names], [space.free[n][1] for n in names],
                      [n in space.log_scale for n in names])


def _check_estimator(method: str, model) -> None:
    valid = CLASSIFIERS if method == "NRE" else DENSITY_ESTIMATORS
    if model not in valid and not str(model).startswith("zuko_"):
        raise InferenceError(f"density_estimator_model = {model!r} is not valid for {method} "
                             f"(valid: {', '.join(valid)})")


def _embedding_key(method: str) -> str:
    """The argument of sbi's network builder that takes the embedding net (of x; of theta for NLE)."""
    return "embedding_net_x" if method == "NRE" else "embedding_net"


def _builder(method: str, model: str, kwargs: dict, embedding=None):
    """sbi's network builder (``posterior_nn`` / ``likelihood_nn`` / ``classifier_nn``) for ``method``;
    ``embedding``: a torch module for the argument named by ``_embedding_key``, or None."""
    from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn
    factory = {"NPE": posterior_nn, "NLE": likelihood_nn, "NRE": classifier_nn}[method]
    extra = {} if embedding is None else {_embedding_key(method): embedding}
    return factory(model=model, **kwargs, **extra)


def _trainer(method: str, prior, builder, device: str, show_progress_bars: bool):
    """A new sbi inference object (NPE, NLE or NRE) training networks made by ``builder``."""
    from sbi.inference import NLE, NPE, NRE
    if method == "NRE":
        return NRE(prior=prior, classifier=builder, device=device, show_progress_bars=show_progress_bars,
                   tracker=NoTracker())
    return (NPE if method == "NPE" else NLE)(prior=prior, density_estimator=builder, device=device,
                                             show_progress_bars=show_progress_bars, tracker=NoTracker())


def _network(posterior) -> torch.nn.Module:
    """The trained network inside an sbi posterior (direct, or behind its potential function)."""
    for owner in (posterior, getattr(posterior, "potential_fn", None)):
        for name in ("posterior_estimator", "likelihood_estimator", "ratio_estimator"):
            if isinstance(getattr(owner, name, None), torch.nn.Module):
                return getattr(owner, name)
    raise InferenceError(f"save_posterior: cannot find the network of a {type(posterior).__name__}")


def _check_json(value, where: str) -> None:
    """A one-line InferenceError unless ``value`` is plain JSON data (numbers, strings, lists, dicts)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InferenceError(f"{where} = {type(value).__name__} cannot be saved in a posterior file (only numbers, "
                             f"strings, lists and dicts are)") from None


# --- the Inferencer -------------------------------------------------------------------------------

class Inferencer:
    """Simulation-based inference of ``model``'s parameters from recorded ``output`` under ``input``.

    dt: time step of the recordings and of the simulations, s (number) or quantity string ("0.01 ms").
    model: equations text (Brian2 syntax) or a ``neurofit.Model``. input: input variable name →
    (n_traces, n_steps) SI, one row per recorded trace. output: variable → (n_traces, n_steps) SI, and/or
    ``"spikes"`` → one array of spike times (s) per trace. features: {output: [feature, ...]} (see
    ``neurofit.inference.features``) or None for automatic features (the raw traces, fed to an embedding
    net; see raw_samples). method: integration method ("euler",
    "rk2", "rk4", "exponential_euler", "euler_maruyama"; None: as ``neurofit.simulate`` chooses).
    threshold: spike condition such as "v > -50*mV" (needed for a "spikes" output); reset: statements
    run after a spike, one per line ("v = -70*mV"); refractory: dead time after a spike, as seconds
    (number), a duration string ("2 ms") or a condition ("v > -20*mV"); the three as for
    ``neurofit.Model`` - with a ``Model``, giving any of them replaces all three of its events (None
    removes one). param_init: initial values, state → SI number, quantity string or expression such as
    "1/(1 + beta_m/alpha_m)" (unset states start at 0). namespace: constants used by equations text,
    name → SI number or quantity string ("10 ms"); not with a ``Model``, which carries its own. None
    (default) with equations text: as Brian2, the names the equations (and threshold, reset, refractory,
    param_init expressions) use without defining them - other than the inputs - are looked up among the
    caller's local, then global, variables (``level``), once, here; each must be a number (SI). level: where
    they are looked up: 0 the scope calling the constructor, 1 the scope calling that one, and so on
    (brian2modelfitting's ``level``).
    backend: simulation backend, "auto" (C when a compiler works, else numpy; the one used is in
    ``simulation_backend``), "c" or "numpy". dtype: simulation precision, "float64" or "float32".
    seed: integer seed of everything random - the prior draws of the training data, model noise and
    observation noise, network initialisation and batch order, posterior samples - so equal seeds
    give equal results. window: stimulus (start, end), s or quantity strings, for the features of
    every trace; by default the first to last nonzero input sample of each trace. batch_size: parameter
    sets simulated at a time (memory grows with batch_size * n_traces * n_steps). threads: torch (and
    C backend) threads; default env NEUROFIT_THREADS, else 1. raw_samples: automatic features are the
    traces block-averaged to at most this many samples per trace (an int >= 1), or at full length (None);
    "auto" (default): full length when ``init_inference`` gets a custom embedding net (a torch module, e.g.
    one written for brian2modelfitting, whose automatic features are the full traces), else at most
    ``AUTO_RAW_SAMPLES`` (256) - ``x_o`` and ``feature_names`` follow the embedding net of the last
    ``init_inference`` (or ``load_posterior``).

    noise: {output: SD} observation noise (SD: SI number or quantity string such as "0.5 mV") added to
    simulated traces before their features (the recordings already hold theirs); draws depend on (seed,
    parameter-set index) only. ``noise="auto"`` (or ``{output: "auto"}``) estimates each output's SD
    from the recordings' baseline before the stimulus (``estimate_noise_sd``; the estimates in
    ``noise_estimate``, SI). After training, ``infer`` checks whether the data's features lie within
    the training simulations' (``check_misspecification``, result in ``misspecification``) and warns
    with a ``MisspecificationWarning`` when they do not.

    brian2modelfitting's attributes: ``output_var`` (the output names, "spikes" included), ``output_dim``
    (their dimensions), ``sim_time`` (n_steps * dt, s), ``threshold``, ``reset``, ``refractory`` (the model's
    events as given), ``features`` (the features given - a ``FeatureSet``, which is the dict given with the
    pipeline computing them -, None for automatic features), ``params`` (the bounds of the last
    ``init_prior``, None before), ``n_samples`` (the parameter sets of the last training round, None before)
    and ``sbi_device`` (the torch device of the last ``init_inference``, "cpu" before). The pipeline computing
    the features, hand-picked or automatic (a ``RawTraces``), is ``feature_set``.

    Bad arguments raise a one-line ``NeurofitError`` naming the argument: InferenceError; FeatureError
    for features and window; EquationError for equations text (one that does not parse, uses a name defined
    nowhere, or finds a constant in the caller's scope that is not a number); UnitError for an unreadable
    quantity.
    """

    def __init__(self, dt, model, input: dict, output: dict, features: dict | None = None, method: str | None = None,
                 threshold=None, reset=None, refractory=None, param_init: dict | None = None,
                 namespace: dict | None = None, backend: str = "auto", dtype: str = "float64", seed: int = 0,
                 window=None, batch_size: int = 1000, threads: int | None = None, raw_samples: int | str | None = AUTO,
                 noise: dict | None = None, level: int = 0):
        self.threads = set_threads(threads)
        self.dt = to_si(dt, name="dt")
        if not self.dt > 0:
            raise InferenceError(f"dt = {dt!r}: must be a positive time step (e.g. '0.01 ms')")
        if not isinstance(input, dict) or not input:
            raise InferenceError("input must be a dict {input_variable: array (n_traces, n_steps)}, e.g. {'I': traces}")
        self.input = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in input.items()}
        shapes = {a.shape for a in self.input.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise InferenceError(f"input arrays must share one shape (n_traces, n_steps); got {sorted(shapes)}")
        self.n_traces, self.n_steps = shapes.pop()
        self.output, self.output_spikes = self._read_output(output)
        self.output_var = list(output)
        self.sim_time = self.n_steps * self.dt
        self.method, self.param_init = method, dict(param_init or {})
        if namespace is None and isinstance(model, str):  # Brian2's get_local_namespace: the caller's constants
            defined = {*self.input, *(f"{v}_target" for v in self.output_var)}
            expressions = [v for v in self.param_init.values() if isinstance(v, str)]
            names = [n for n in external_names(model, threshold, reset, refractory, expressions) if n not in defined]
            namespace = caller_namespace(names, level)
        self.model = self._build_model(model, namespace, threshold, reset, refractory)
        self.output_dim = [DIMENSIONLESS if v == SPIKES else self.model.dimensions[v] for v in self.output_var]
        self.threshold, self.reset = self.model.threshold_text, self.model.reset_text
        self.refractory = self.model.refractory_spec
        self.backend, self.dtype, self.seed = backend, dtype, int(seed)
        self.simulation_backend = None  # the backend "auto" resolved to, once simulations ran
        if batch_size < 1:
            raise InferenceError(f"batch_size = {batch_size}: must be a positive number of parameter sets")
        self.batch_size = int(batch_size)
        self.raw_samples = raw_samples
        self.feature_set = self._build_features(features, window, raw_samples)
        self.features = None if isinstance(self.feature_set, RawTraces) else self.feature_set
        self.noise, self.noise_estimate = self._read_noise(noise)
        self.prior = self.params = self.n_samples = None
        self.bounds, self.log_scale, self.fixed, self.param_names = {}, set(), {}, []
        self.inference = self.posterior = self.samples = None
        self.inference_method = None
        self.sbi_device = "cpu"
        self.theta = self.x = None
        self.n_invalid = 0
        self._round = 0
        self._x_o = None
        self.misspecification = None  # check_misspecification's result for the data, after infer
        self._checked = {}  # features (bytes) -> check_misspecification's result, for the current training data
        self._networks = weakref.WeakKeyDictionary()  # sbi inference object -> how its networks are built
        self._saved_as = None  # how self.posterior is rebuilt: its network's and build_posterior's settings

    # --- set-up ---------------------------------------------------------------------------------
    def _read_output(self, output) -> tuple[dict, list | None]:
        if not isinstance(output, dict) or not output:
            raise InferenceError("output must be a dict {variable: array (n_traces, n_steps)} and/or "
                                 "{'spikes': [spike times per trace]}")
        traces, spikes = {}, None
        for name, value in output.items():
            if name == SPIKES:
                spikes = [np.asarray(s, dtype=np.float64).reshape(-1) for s in value]
                if len(spikes) != self.n_traces:
                    raise InferenceError(f"output['spikes'] has {len(spikes)} spike trains; expected one per input "
                                         f"trace ({self.n_traces})")
                continue
            a = np.atleast_2d(np.asarray(value, dtype=np.float64))
            if a.shape != (self.n_traces, self.n_steps):
                raise InferenceError(f"output['{name}'] has shape {a.shape}; expected {(self.n_traces, self.n_steps)} "
                                     f"like the input")
            if not np.all(np.isfinite(a)):
                raise InferenceError(f"output['{name}'] contains NaN or inf; recordings must be finite")
            traces[name] = a
        return traces, spikes

    def _read_noise(self, noise) -> tuple[dict, dict]:
        """(noise SD per output, SI; the SDs estimated from the baseline) from ``noise``: None, "auto", or
        {output: SD or "auto"}."""
        if isinstance(noise, str) and noise.strip().lower() == AUTO:
            noise = {var: AUTO for var in self.output}
        if noise is not None and not isinstance(noise, dict):
            raise InferenceError(f"noise = {noise!r} is not valid (valid: None, 'auto', or {{output: SD or 'auto'}}, "
                                 f"e.g. {{'v': '0.5 mV'}})")
        noise = dict(noise or {})
        bad = [k for k in noise if k not in self.output]
        if bad:
            raise InferenceError(f"noise: {', '.join(bad)} not a trace output (outputs: {', '.join(self.output)})")
        given, estimated = {}, {}
        for var, value in noise.items():
            if isinstance(value, str) and value.strip().lower() == AUTO:
                estimated[var] = estimate_noise_sd(self.output[var], self.dt, self.input, name=f"noise['{var}']")
                given[var] = estimated[var]
            else:
                given[var] = to_si(value, name=f"noise['{var}']")
                if not given[var] >= 0:
                    raise InferenceError(f"noise['{var}'] = {value!r}: must be a standard deviation >= 0")
        return given, estimated

    def _build_model(self, model, namespace, threshold, reset, refractory) -> Model:
        events = {"threshold": threshold, "reset": reset, "refractory": refractory}
        if isinstance(model, Model):
            if namespace:
                raise InferenceError("namespace: a neurofit.Model carries its own; pass namespace= with the equations "
                                     "text, or build the Model with Model(equations, namespace=...)")
            if any(e is not None for e in events.values()):
                model = model.with_events(**events)
        elif isinstance(model, str):
            model = Model(model, namespace=namespace, inputs=list(self.input), **events)
        else:
            raise InferenceError(f"model must be equations text or a neurofit.Model, not {type(model).__name__}")
        bad = [v for v in self.output if v not in model.recordable()]
        if bad:
            raise InferenceError(f"output: {', '.join(bad)} not a variable of the model "
                                 f"(recordable: {', '.join(model.recordable())})")
        if self.output_spikes is not None and model.threshold is None:
            raise InferenceError("output['spikes'] needs a model threshold (threshold='v > -50*mV')")
        return model

    def _build_features(self, features, window, raw_samples):
        if features is None:
            if raw_samples != AUTO and raw_samples is not None and not isinstance(raw_samples, int):
                raise InferenceError(f"raw_samples = {raw_samples!r} is not valid (valid: a number of samples per "
                                     f"trace, None for full length, or 'auto')")
            return RawTraces(list(self.output), self.n_traces, self.n_steps,
                             AUTO_RAW_SAMPLES if raw_samples == AUTO else raw_samples)
        if not isinstance(features, dict):
            raise InferenceError("features must be a dict {output: [feature, ...]} or None (automatic)")
        bad = [k for k in features if k != SPIKES and k not in self.output]
        if bad or (SPIKES in features and self.output_spikes is None):
            name = bad[0] if bad else SPIKES
            raise InferenceError(f"features['{name}']: not an output (outputs: "
                                 f"{', '.join(list(self.output) + ([SPIKES] if self.output_spikes else []))})")
        windows = stimulus_windows(self.input, self.dt, window)
        return FeatureSet(features, windows, self.dt, self.n_steps)

    @property
    def x_o(self) -> np.ndarray:
        """Features of the recorded output (n_features,)."""
        if self._x_o is None:
            traces = {v: self.output[v][None] for v in self.feature_set.trace_vars}
            x = self.feature_set(traces, [self.output_spikes])[0]
            bad = [n for n, value in zip(self.feature_set.names, x) if not np.isfinite(value)]
            if bad:
                raise InferenceError(f"features of the data are NaN/inf: {', '.join(bad[:5])}; choose features "
                                     f"defined for the recordings")
            self._x_o = x
        return self._x_o

    @property
    def feature_names(self) -> list[str]:
        """The names of the features, in the order of ``x_o`` and of the columns of training data ``x``."""
        return self.feature_set.names

    def _raw_layout(self, custom_embedding: bool) -> None:
        """With automatic features and raw_samples="auto": the traces at full length for a custom embedding net,
        else block means of at most AUTO_RAW_SAMPLES samples per trace; the data's features follow."""
        if not isinstance(self.feature_set, RawTraces) or self.raw_samples != AUTO:
            return
        wanted = None if custom_embedding else AUTO_RAW_SAMPLES
        if self.feature_set.max_samples != wanted:
            self.feature_set = RawTraces(self.feature_set.trace_vars, self.n_traces, self.n_steps, wanted)
            self._x_o, self._checked = None, {}

    # --- prior and training data -----------------------------------------------------------------
    def init_prior(self, **bounds):
        """Uniform prior over name=[low, high] (log-uniform for [low, high, "log"]); name=value fixes a parameter.

        bounds: one keyword per parameter of the model (every parameter needs bounds or a fixed value);
        low, high and fixed values are SI numbers or quantity strings ("10 nS", checked against the
        parameter's unit); low < high, and low > 0 for "log". The inferred parameters, in order, become
        ``param_names``; the fixed ones ``fixed``; the bounds as given ``params``. Returns the prior (also kept
        in ``prior``): sbi's ``BoxUniform``, or a ``BoxPrior`` when a parameter is log-uniform; its samples have
        shape (..., n_parameters), SI. Raises BoundsError for a missing, unknown or unusable bound.
        """
        space = parse_bounds(bounds, self.model.parameters, allow_fixed=True, dimensions=self.model.dimensions)
        self.params = dict(bounds)
        self.bounds, self.log_scale, self.fixed = space.free, space.log_scale, space.fixed
        self.param_names = list(self.bounds)
        low = [self.bounds[p][0] for p in self.param_names]
        high = [self.bounds[p][1] for p in self.param_names]
        self.prior = _box_prior(low, high, [p in self.log_scale for p in self.param_names])
        return self.prior

    def _require_prior(self):
        if self.prior is None:
            raise InferenceError("no prior yet: call init_prior(name=[low, high], ...) or infer(..., name=[low, high])")

    def generate_training_data(self, n_samples: int, prior=None, seed: int | None = None) -> np.ndarray:
        """``n_samples`` parameter sets drawn from ``prior`` (default: the prior of ``init_prior``).

        n_samples: number of parameter sets (positive); prior: any distribution over the inferred
        parameters with a ``sample`` method, e.g. the prior or a posterior (drawn at its default x, the
        data's features) as the proposal of a later round; seed: seed of the draws (default: the
        inferencer's ``seed``), the same seed giving the same sets. Returns a float64 array
        (n_samples, n_parameters), SI, columns in ``param_names`` order.
        """
        if prior is None:
            self._require_prior()
            prior = self.prior
        if int(n_samples) < 1:
            raise InferenceError(f"n_samples = {n_samples}: must be a positive number of simulations")
        return _draw(prior, (int(n_samples),), self.seed if seed is None else seed)

    def extract_summary_statistics(self, theta, training_data: dict | None = None, seed: int | None = None,
                                   set_offset: int = 0) -> np.ndarray:
        """Features of simulations at ``theta``: every parameter set against every input trace.

        theta: parameter sets (n_sets, n_parameters), SI, columns in ``param_names`` order;
        training_data: already simulated traces {var: (n_sets, n_traces, n_steps)} SI (and 'spikes':
        spikes[set][trace], spike times in s), whose features are taken instead of simulating (no noise
        is added to them); seed: seed of model and observation noise (default: the inferencer's
        ``seed``); set_offset: index of theta's first row within the whole batch - noise draws depend
        on (seed, set_offset + row), so chunks reproduce the unchunked batch. Simulations run
        ``batch_size`` sets at a time. Returns the features, a float64 array (n_sets, n_features) in
        ``feature_names`` order. A simulation whose state became NaN/inf gives a row of NaN, a feature
        undefined for a simulation a NaN entry; ``train`` leaves such rows out.
        """
        theta = self._check_theta(theta)
        if training_data is not None:
            traces = {v: training_data[v] for v in self.feature_set.trace_vars}
            return self.feature_set(traces, training_data.get(SPIKES))
        seed = self.seed if seed is None else seed
        x = np.empty((theta.shape[0], len(self.feature_set.names)))
        for start in range(0, theta.shape[0], self.batch_size):
            stop = min(start + self.batch_size, theta.shape[0])
            result = self._simulate(theta[start:stop], self.feature_set.trace_vars, self.feature_set.needs_spikes,
                                    seed, set_offset + start)
            self._add_noise(result.traces, seed, set_offset + start)
            self.simulation_backend = result.backend
            with np.errstate(all="ignore"):
                x[start:stop] = self.feature_set(result.traces, result.spikes)
            x[start:stop][result.invalid_sets] = np.nan
        return x

    def _add_noise(self, traces: dict, seed: int, set_offset: int):
        for var, sd in self.noise.items():
            if var in traces and sd > 0:
                for i, row in enumerate(traces[var]):
                    row += sd * np.random.default_rng([seed, _NOISE_STREAM, set_offset + i]).standard_normal(row.shape)

    def simulate_training_chunk(self, n_samples: int, chunk: int, n_chunks: int, prior=None,
                                seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One chunk of the training data, for splitting the simulations over jobs.

        n_samples: number of simulations of the whole run; chunk: which chunk (0 .. n_chunks-1); n_chunks:
        the number of near-equal chunks (``chunk_range``); prior: the distribution theta is drawn from
        (default: the prior of ``init_prior``); seed: seed of the draws and the noise (default: the
        inferencer's ``seed``). All ``n_samples`` theta are drawn from the seeded prior and the chunk's
        slice is simulated, so the chunks concatenated equal one unchunked ``generate_training_data`` +
        ``extract_summary_statistics`` with the same seed. Returns (theta, x) of the chunk: theta
        (n_chunk, n_parameters) SI and x (n_chunk, n_features), n_chunk its number of rows.
        """
        start, stop = chunk_range(n_samples, chunk, n_chunks)
        theta = self.generate_training_data(n_samples, prior, seed)
        x = self.extract_summary_statistics(theta[start:stop], seed=seed, set_offset=start)
        return theta[start:stop], x

    def _check_theta(self, theta) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if not self.param_names:
            self._require_prior()
        if theta.shape[1] != len(self.param_names):
            raise InferenceError(f"theta has {theta.shape[1]} columns; expected one per inferred parameter "
                                 f"({', '.join(self.param_names)})")
        return theta

    def _simulate(self, theta, record, spikes, seed, set_offset=0, init=None):
        params = {p: theta[:, k] for k, p in enumerate(self.param_names)}
        params.update(self.fixed)
        inputs = {k: v for k, v in self.input.items() if k in self.model.inputs}
        return simulate(self.model, params, inputs, self.dt, init=self.param_init if init is None else init,
                        record=tuple(record), spikes=spikes, method=self.method, backend=self.backend,
                        dtype=self.dtype, seed=seed, n_steps=self.n_steps, set_offset=set_offset, threads=self.threads)

    def save_summary_statistics(self, path, theta=None, x=None):
        """Write theta and x (default: the last training data) to ``path`` (.npz, atomic).

        path: the file (str or os.PathLike); theta: parameter sets (n_samples, n_parameters), SI; x: their features
        (n_samples, n_features). Returns None. Raises NothingToSaveError (an InferenceError and an AttributeError,
        as brian2modelfitting) when there is neither a given nor a last theta or x, TypeError for a path that is
        not one.
        """
        theta = self.theta if theta is None else theta
        x = self.x if x is None else x
        if theta is None or x is None:
            raise NothingToSaveError("save_summary_statistics: give theta and x (or run infer / infer_step first)")
        arrays = {"theta": np.asarray(theta, dtype=np.float64), "x": np.asarray(x, dtype=np.float64),
                  "param_names": np.array(self.param_names), "feature_names": np.array(self.feature_names)}
        atomic_save_npz(path, arrays, compress=True)

    def load_summary_statistics(self, path) -> tuple[np.ndarray, np.ndarray]:
        """Read training data written by ``save_summary_statistics`` (or an .npz with arrays arr_0, arr_1).

        path: the .npz file (str or os.PathLike); it is read without unpickling. The data are also kept
        in the inferencer's ``theta`` and ``x``; pass them on as ``infer(theta=theta, x=x)``. Returns
        (theta, x): theta (n_samples, n_parameters) SI and x (n_samples, n_features).
        """
        with np.load(path, allow_pickle=False) as f:
            keys = ("theta", "x") if "theta" in f.files else ("arr_0", "arr_1")
            if not set(keys) <= set(f.files):
                raise InferenceError(f"{path}: expected arrays 'theta' and 'x' (found: {', '.join(f.files)})")
            self.theta, self.x = f[keys[0]], f[keys[1]]
        return self.theta, self.x

    # --- sbi ----------------------------------------------------------------------------------------
    def init_inference(self, inference_method: str = "NPE", density_estimator_model: str = "maf", prior=None,
                       sbi_device: str = "cpu", **inference_kwargs):
        """A new sbi inference object (NPE, NLE or NRE). ``inference_kwargs`` go to sbi's ``posterior_nn`` /
        ``likelihood_nn`` / ``classifier_nn``; ``embedding_net`` may be "mlp", "cnn" or a torch module
        (for NPE and NRE it embeds x; with automatic features it defaults to "mlp").

        inference_method: "NPE" (posterior estimation), "NLE" (likelihood) or "NRE" (ratio); the old
        names "SNPE", "SNLE", "SNRE" are aliases. density_estimator_model: the network - "maf", "mdn",
        "nsf", "made", "maf_rqs" (or a "zuko_..." flow) for NPE and NLE; "resnet", "mlp", "linear" for
        NRE. prior: the prior over the inferred parameters (default: the prior of ``init_prior``).
        sbi_device: torch device of the training, "cpu" (advisable for most cases), "cuda" or "gpu" (an
        alias of "cuda"), e.g. for a large custom embedding net; without a CUDA device, or for another name,
        training falls back to the cpu with a warning (as brian2modelfitting); the device used becomes the
        attribute ``sbi_device``. With automatic features and raw_samples="auto", a custom embedding module
        gets the traces at full length (see the class). ``show_progress_bars`` in
        inference_kwargs turns sbi's progress bars on (default off); for NRE the embedding of x may also
        be given as ``embedding_net_x``; for NLE, ``embedding_net`` embeds theta and goes to sbi as given.
        Returns the sbi inference object (``sbi.inference.NPE``, ``NLE`` or ``NRE``), untrained, for
        ``train`` / ``infer_step``. Raises InferenceNameError (an InferenceError and a NameError, as
        brian2modelfitting) for an unknown method, InferenceError for an unknown network.
        """
        method = _method(inference_method)
        if prior is None:
            self._require_prior()
            prior = self.prior
        _check_estimator(method, density_estimator_model)
        kwargs = dict(inference_kwargs)
        show = kwargs.pop("show_progress_bars", False)
        key = _embedding_key(method)
        embedding = kwargs.pop(key, kwargs.pop("embedding_net", None))
        self._raw_layout(method != "NLE" and isinstance(embedding, torch.nn.Module))
        if method != "NLE":  # for NLE, sbi's embedding_net embeds theta and is passed through as given
            if embedding is None and isinstance(self.feature_set, RawTraces):
                embedding = "mlp"
        module = self._embedding(embedding) if method != "NLE" and embedding is not None else embedding
        self.sbi_device = _device(sbi_device)
        trainer = _trainer(method, prior, _builder(method, density_estimator_model, kwargs, module),
                           self.sbi_device, show)
        self._networks[trainer] = {"model": density_estimator_model, "kwargs": kwargs,
                                   "embedding": embedding if isinstance(embedding, str) or embedding is None
                                   else "custom"}
        self.inference_method = method
        return trainer

    def _embedding(self, embedding):
        from sbi.neural_nets.embedding_nets import CNNEmbedding, FCEmbedding
        if isinstance(embedding, torch.nn.Module):
            return embedding
        n_x = len(self.feature_names)
        if embedding == "mlp":
            return FCEmbedding(input_dim=n_x)
        if embedding == "cnn":
            return CNNEmbedding(input_shape=(n_x,))
        raise InferenceError(f"embedding_net = {embedding!r} is not valid (valid: {', '.join(EMBEDDINGS)} "
                             f"or a torch.nn.Module)")

    def _valid(self, theta, x) -> tuple[np.ndarray, np.ndarray]:
        theta = self._check_theta(theta)
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[0] != theta.shape[0]:
            raise InferenceError(f"theta has {theta.shape[0]} rows but x has {x.shape[0]}; one row of x per "
                                 f"parameter set")
        if x.shape[1] != len(self.feature_names):
            raise InferenceError(f"x has {x.shape[1]} features per row, this inferencer {len(self.feature_names)} "
                                 f"(feature_names); x must come from its current features (automatic features "
                                 f"follow the embedding net of init_inference)")
        ok = np.all(np.isfinite(x), axis=1)
        self.n_invalid = int((~ok).sum())
        if not ok.any():
            raise InferenceError(f"all {x.shape[0]} simulations are invalid (NaN/inf features); check the bounds, "
                                 f"the features and the integration method")
        if self.n_invalid:
            warnings.warn(f"{self.n_invalid} of {x.shape[0]} simulations are invalid (NaN/inf features) and left "
                          f"out of training", stacklevel=3)
        return theta[ok], x[ok]

    def train(self, inference, theta, x, proposal=None, **train_kwargs):
        """Add (theta, x) to ``inference`` (invalid rows left out, counted in ``n_invalid``) and train it;
        ``proposal``: the distribution theta came from, if not the prior (NPE only).

        inference: an sbi inference object of ``init_inference``; theta: parameter sets (n_samples,
        n_parameters), SI; x: their features (n_samples, n_features). Rows of x with NaN/inf are left out
        (with a warning); all invalid raises InferenceError. proposal: for NPE after the first round, the
        posterior theta was drawn from (None: the prior; NLE and NRE ignore it). train_kwargs: keyword
        arguments of sbi's ``train``, e.g. ``training_batch_size``, ``learning_rate``,
        ``validation_fraction``, ``max_num_epochs``, ``stop_after_epochs``. Returns ``inference``, trained
        (its ``summary`` holds the epochs and losses).
        """
        from sbi.inference.trainers.npe.npe_base import PosteriorEstimatorTrainer
        theta, x = self._valid(theta, x)
        theta_t = torch.as_tensor(theta, dtype=torch.float32)
        x_t = torch.as_tensor(x, dtype=torch.float32)
        if isinstance(inference, PosteriorEstimatorTrainer):
            inference.append_simulations(theta_t, x_t, proposal=proposal)
        else:  # NLE / NRE: data of later rounds are simply appended
            inference.append_simulations(theta_t, x_t)
        inference.train(**train_kwargs)
        return inference

    def build_posterior(self, inference, **posterior_kwargs):
        """The posterior of a trained sbi inference object, conditioned by default on the data.

        inference: an sbi inference object trained by ``train``; posterior_kwargs: keyword arguments of
        sbi's ``build_posterior``, e.g. ``sample_with`` ("direct", NPE's default; "mcmc", the default of
        NLE and NRE; "rejection", "vi", "importance"), ``mcmc_method``, ``mcmc_parameters``. Returns
        (inference, posterior): the inference object and an sbi ``NeuralPosterior`` whose default x is
        the data's features ``x_o`` (n_features,).
        """
        posterior = inference.build_posterior(**posterior_kwargs)
        posterior.set_default_x(torch.as_tensor(self.x_o, dtype=torch.float32))
        return inference, posterior

    def infer_step(self, proposal, inference, n_samples: int | None = None, theta=None, x=None,
                   train_kwargs: dict | None = None, posterior_kwargs: dict | None = None, seed: int | None = None):
        """One round: draw ``n_samples`` from ``proposal`` and simulate them (or use theta, x), train, and build
        the posterior.

        proposal: the distribution the round's parameter sets are drawn from - the prior in the first
        round, the previous posterior in later ones; inference: the sbi inference object of
        ``init_inference`` (for several rounds the same object, which keeps the earlier rounds' data);
        n_samples: number of simulations (needed unless theta is given); theta: parameter sets
        (n_samples, n_parameters), SI, drawn from ``proposal``, instead of drawing; x: their features
        (n_samples, n_features), instead of simulating (only with theta); train_kwargs: keyword
        arguments of ``train`` (sbi's ``train``); posterior_kwargs: keyword arguments of
        ``build_posterior``; seed: seed of the draws, of the simulations' noise and of the network
        initialisation and batch order (default: the inferencer's ``seed``). The round's data are kept
        in ``theta`` and ``x``, their number of parameter sets in ``n_samples``. A truncated prior as
        proposal (``truncated_prior``, or any sbi ``RestrictedPrior`` of the prior; NPE only) makes the
        round truncated sequential NPE: its draws count as prior draws (sbi gets no proposal), and the
        network is trained by maximum likelihood on every round's data (sbi's ``force_first_round_loss``). Returns the trained
        posterior (an sbi ``NeuralPosterior``, default x the data's features), also kept in ``posterior``
        (and the inference object in ``inference``).
        """
        seed = self.seed if seed is None else seed
        from sbi.inference.trainers.npe.npe_base import PosteriorEstimatorTrainer
        from sbi.utils import RestrictedPrior
        is_npe = isinstance(inference, PosteriorEstimatorTrainer)
        truncated = isinstance(proposal, RestrictedPrior)
        if truncated:
            if not is_npe:
                raise InferenceError("infer_step: a truncated prior as proposal is truncated sequential NPE; use "
                                     "inference_method='NPE'")
            if max(inference._data_round_index, default=0) > 0:
                raise InferenceError("infer_step: truncated rounds cannot follow rounds trained with a posterior "
                                     "as proposal (atomic loss); start again from the prior (infer(restart=True))")
            train_kwargs = {"force_first_round_loss": True, **(train_kwargs or {})}
        if theta is None:
            if x is not None or n_samples is None:
                raise InferenceError("infer_step: give n_samples (to simulate) or theta (and optionally x)")
            theta = self.generate_training_data(n_samples, proposal, seed)
        if x is None:
            x = self.extract_summary_statistics(theta, seed=seed)
        self.theta, self.x = np.asarray(theta), np.asarray(x)
        self.n_samples = len(self.theta)
        self._checked = {}
        npe_proposal = proposal if is_npe and proposal is not self.prior and not truncated else None
        with _seeded(seed):  # network initialisation and batch order
            inference = self.train(inference, theta, x, npe_proposal, **(train_kwargs or {}))
        inference, posterior = self.build_posterior(inference, **(posterior_kwargs or {}))
        self.inference, self.posterior = inference, posterior
        network = self._networks.get(inference)
        self._saved_as = None if network is None else {"method": self.inference_method, "network": network,
                                                       "posterior_kwargs": dict(posterior_kwargs or {})}
        return posterior

    def infer(self, n_samples: int | None = None, theta=None, x=None, n_rounds: int = 1,
              inference_method: str = "NPE", density_estimator_model: str = "maf", inference_kwargs: dict | None = None,
              train_kwargs: dict | None = None, posterior_kwargs: dict | None = None, restart: bool = False,
              sbi_device: str = "cpu", truncate: bool | float = False, **bounds):
        """Train and return the posterior. The first call (or ``restart=True``) starts from the prior given by
        ``bounds``; later calls continue with the current posterior as proposal (multi-round inference).
        ``n_rounds`` > 1 runs that many rounds, each drawing ``n_samples`` from the previous posterior - or,
        with ``truncate``, from the prior truncated to the previous posterior's highest-density region
        (truncated sequential NPE, TSNPE: Deistler et al. 2022; see ``truncated_prior``).
        Parameters named like an argument of ``infer`` (theta, x, ...) get their bounds from ``init_prior``.
        After the round trained on prior draws (the first), ``check_misspecification`` compares the data's
        features with that round's simulations (result in ``misspecification``; a ``MisspecificationWarning``
        if they lie outside); later rounds, simulated near the data, keep that result.

        n_samples: number of simulations per round (needed on a first call unless theta is given; None when
        continuing: the last round's ``n_samples``, as brian2modelfitting); theta, x: training
        data of the first round instead of drawing and simulating (e.g. of ``load_summary_statistics``)
        - theta (n_samples, n_parameters) SI, drawn from the prior on a first call or from the current
        posterior when continuing, and x (n_samples, n_features) its features (simulated when None);
        n_rounds: 1 for amortized inference, more for multi-round inference focused on the data;
        inference_method, density_estimator_model, sbi_device and inference_kwargs (a dict): as for
        ``init_inference``, used when a new inference object is made (first call, ``restart``, or
        continuing after ``load_posterior``); train_kwargs: dict of keyword arguments of
        ``train`` (sbi's ``train``: training_batch_size, learning_rate, max_num_epochs, ...);
        posterior_kwargs: dict of keyword arguments of ``build_posterior``; restart: start again from
        the prior (new bounds allowed) instead of continuing; truncate: False for plain multi-round
        inference (the posterior as proposal, sbi's atomic loss); True (or a quantile, a float in (0, 1);
        True means 1e-4) for TSNPE (NPE only): every round after the first - and every round of a call
        that continues - draws its ``n_samples`` from the prior restricted to the region where the
        current posterior's density, given the data, exceeds its ``quantile`` level (all but ``quantile``
        of its mass), and NPE is trained by maximum likelihood on all rounds' data (the truncated prior
        is no posterior proposal: no atomic loss, no leakage); the round's sets are drawn from the
        truncated prior (``theta`` of a continuing call must be drawn from ``truncated_prior()``); bounds:
        as for ``init_prior`` (name=[low, high], [low, high, "log"] or a fixed value; SI numbers or
        quantity strings), needed on the first call unless ``init_prior`` was called; when continuing,
        bounds given must equal the current ones. Returns the posterior (an sbi ``NeuralPosterior`` whose
        default x is the data's features), also kept in ``posterior``.
        """
        if not isinstance(n_rounds, int) or n_rounds < 1:
            raise InferenceError(f"n_rounds = {n_rounds!r}: must be a positive integer (1: amortized inference)")
        quantile = None if truncate is None or truncate is False else 1e-4 if truncate is True else truncate
        if quantile is not None and not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
            raise InferenceError(f"truncate = {truncate!r}: must be True, False or a quantile in (0, 1) (e.g. 1e-4)")
        fresh = restart or self.posterior is None
        if n_samples is None and theta is None and (fresh or self.n_samples is None):
            raise InferenceError("infer: give n_samples (number of simulations per round) or theta and x")
        if fresh:
            if bounds or self.prior is None:
                self.init_prior(**bounds)
            self.inference = self.init_inference(inference_method, density_estimator_model, self.prior, sbi_device,
                                                 **(inference_kwargs or {}))
            proposal, self._round = self.prior, 0
            self.misspecification = None
        else:
            current = {p: [*b, "log" if p in self.log_scale else "linear"] for p, b in self.bounds.items()}
            space = parse_bounds({**current, **self.fixed, **bounds}, self.model.parameters, allow_fixed=True,
                                 dimensions=self.model.dimensions) if bounds else None
            if space is not None and (space.free, space.log_scale, space.fixed) != \
                    (self.bounds, self.log_scale, self.fixed):
                raise InferenceError("infer: bounds changed while continuing; pass restart=True to start from the new "
                                     "prior")
            if self.inference is None:  # a loaded posterior: new networks, trained on proposal draws
                self.inference = self.init_inference(inference_method, density_estimator_model, self.prior,
                                                     sbi_device, **(inference_kwargs or {}))
            proposal = self.posterior
        if quantile is not None and self.inference_method != "NPE":
            raise InferenceError(f"truncate: truncated sequential inference is for NPE, not {self.inference_method}")
        for r in range(n_rounds):
            seed = self.seed if self._round == 0 else int(np.random.SeedSequence([self.seed, self._round])
                                                          .generate_state(1)[0])
            if quantile is not None and proposal is not self.prior:
                proposal = self.truncated_prior(proposal, quantile=quantile, seed=seed)
            from_prior = proposal is self.prior
            proposal = self.infer_step(proposal, self.inference, self.n_samples if n_samples is None else n_samples,
                                       theta if r == 0 else None, x if r == 0 else None, train_kwargs,
                                       posterior_kwargs, seed)
            self._round += 1
            if from_prior or self.misspecification is None:  # later rounds keep the check against the prior's
                self.misspecification = self.check_misspecification(stacklevel=3)
        return self.posterior

    def truncated_prior(self, posterior=None, x=None, quantile: float = 1e-4, support_samples: int = 100_000,
                        seed: int | None = None, margin: float = 0.2):
        """The prior truncated to the highest-density region of ``posterior`` given ``x``: the proposal of a
        round of truncated sequential NPE (TSNPE, Deistler et al. 2022; used by ``infer(truncate=True)``).

        posterior: an sbi posterior with ``sample`` and ``log_prob`` (default: the inferencer's
        ``posterior``); x: features (n_features,) the posterior is conditioned on (default: the data's,
        ``x_o``); quantile: the share of the posterior's mass left out - the region is where its log
        density exceeds the ``quantile`` quantile of the log densities of ``support_samples`` posterior
        draws (sbi's ``get_density_thresholder``; 1e-4 as in the paper); support_samples: number of those
        draws (10^5: the threshold is the 10th lowest of them at quantile 1e-4; sbi's default 10^6 costs
        ~25 s per round for a small flow on one thread); seed: seed of the draws (default: the
        inferencer's ``seed``); margin: the region's bounding box - the range of the draws inside it -
        widened by this fraction of its width on each side (on the log scale for log-uniform
        parameters) and cut to the prior's bounds: proposals come from the prior restricted to that box,
        not from the whole prior, since a region of 10^-4 of the prior's volume would take 10^4 prior
        draws per accepted one. Returns sbi's ``RestrictedPrior``: its ``sample`` draws from the prior in
        the box and keeps the draws inside the region (rejection; quietly, its ``acceptance_rate`` kept
        after each call), i.e. the prior truncated to the region; ``generate_training_data(n,
        prior=truncated)`` gives a round's parameter sets, and ``infer_step`` takes it as ``proposal``.
        """
        import functools
        import inspect
        import types

        from sbi.utils import RestrictedPrior, get_density_thresholder
        self._require_prior()
        posterior = self._posterior(posterior)
        quantile = float(quantile)
        if not 0 < quantile < 1:
            raise InferenceError(f"quantile = {quantile!r}: must be in (0, 1) (e.g. 1e-4)")
        if int(support_samples) * quantile < 1:
            raise InferenceError(f"support_samples = {support_samples}: too few for quantile {quantile:g} (need at "
                                 f"least {int(np.ceil(1 / quantile))})")
        if not margin >= 0:
            raise InferenceError(f"margin = {margin!r}: must be a fraction >= 0 (e.g. 0.2)")
        x = torch.as_tensor(self.x_o if x is None else np.asarray(x, dtype=np.float64).reshape(-1),
                            dtype=torch.float32)
        norm = {"norm_posterior": False} if "norm_posterior" in inspect.signature(posterior.log_prob).parameters else {}
        drawn = []

        def sample(shape):
            drawn.append(posterior.sample(shape, x=x, show_progress_bars=False))
            return drawn[-1]
        at_x = types.SimpleNamespace(  # the posterior at x, without progress bars; log densities unnormalised
            sample=sample, log_prob=lambda theta: posterior.log_prob(theta, x=x, **norm))
        with _seeded(self.seed if seed is None else seed), torch.no_grad():
            inside = get_density_thresholder(at_x, quantile=quantile, num_samples_to_estimate_support=int(support_samples))
            support = drawn[0][inside(drawn[0])].detach().cpu().numpy().astype(np.float64)
        log_mask = np.array([p in self.log_scale for p in self.param_names])
        low = np.array([self.bounds[p][0] for p in self.param_names])
        high = np.array([self.bounds[p][1] for p in self.param_names])

        def scaled(a):
            return np.where(log_mask, np.log(np.maximum(a, np.finfo(float).tiny)), a)
        lo, hi = scaled(support).min(axis=0), scaled(support).max(axis=0)
        lo, hi = np.maximum(lo - margin * (hi - lo), scaled(low)), np.minimum(hi + margin * (hi - lo), scaled(high))
        lo, hi = np.where(log_mask, np.exp(lo), lo), np.where(log_mask, np.exp(hi), hi)
        lo, hi = np.where(lo < hi, lo, low), np.where(lo < hi, hi, high)  # a degenerate width: the whole range
        box = _box_prior(lo.tolist(), hi.tolist(), log_mask.tolist())
        truncated = RestrictedPrior(box, inside, sample_with="rejection")
        truncated.sample = functools.partial(truncated.sample, print_rejected_frac=False, save_acceptance_rate=True)
        return truncated

    def features_of(self, output) -> np.ndarray:
        """Features of another recording under this inferencer's input traces, by its own feature pipeline (the
        same as ``x_o`` for the data), e.g. one cell of a group recorded with the same protocol.

        output: {variable: (n_traces, n_steps)} SI like the constructor's ``output`` (its trace outputs used
        by the features; ``"spikes"`` → spike times (s) per trace when spike features are used). No noise
        is added. Returns the features, a float64 array (n_features,) in ``feature_names`` order.
        InferenceError when a needed output is missing, a shape differs from the input's or a feature is
        NaN/inf.
        """
        traces, spikes = self._read_output(output)
        missing = [v for v in self.feature_set.trace_vars if v not in traces]
        if self.feature_set.needs_spikes and spikes is None:
            missing.append(SPIKES)
        if missing:
            used = self.feature_set.trace_vars + ([SPIKES] if self.feature_set.needs_spikes else [])
            raise InferenceError(f"features_of: output lacks {', '.join(missing)} (the features use {', '.join(used)})")
        with np.errstate(all="ignore"):
            x = self.feature_set({v: traces[v][None] for v in self.feature_set.trace_vars}, [spikes])[0]
        bad = [n for n, value in zip(self.feature_set.names, x) if not np.isfinite(value)]
        if bad:
            raise InferenceError(f"features_of: features are NaN/inf: {', '.join(bad[:5])}")
        return x

    def check_misspecification(self, x=None, alpha: float | None = None, warn: bool = True, stacklevel: int = 2):
        """Whether features ``x`` (n_features,; default: the data's) lie within the distribution of the last
        training simulations' features (``neurofit.inference.diagnostics.misspecification_test``: mean
        whitened distance to the 10 nearest simulations, split-conformal p-value; false-alarm rate ``alpha``,
        default 0.01, when the data are like the simulations). With ``warn``, a failed check issues a
        ``MisspecificationWarning`` naming the features furthest out (``stacklevel`` as for
        ``warnings.warn``). Returns the ``MisspecificationResult`` (None without training data, e.g. after
        ``load_posterior``); results are kept per x until the training data change."""
        from .diagnostics import MISSPECIFICATION_ALPHA, misspecification_test
        if self.x is None or self.x.ndim != 2 or self.x.shape[1] != len(self.feature_names):
            return None
        x = self.x_o if x is None else np.asarray(x, dtype=np.float64).reshape(-1)
        alpha = MISSPECIFICATION_ALPHA if alpha is None else float(alpha)
        key = (x.tobytes(), alpha)
        if key not in self._checked:
            self._checked[key] = misspecification_test(x, self.x, self.feature_names, alpha=alpha, seed=self.seed)
            if warn and self._checked[key].failed:
                warnings.warn(self._checked[key].message(), MisspecificationWarning, stacklevel=stacklevel)
        return self._checked[key]

    def predictive_check(self, n: int = 100, seed: int | None = None, level: float = 0.9, samples=None):
        """Posterior predictive check of the features: ``n`` posterior draws given the data (or the first ``n``
        rows of ``samples``, posterior samples (n_samples, n_parameters) SI already drawn), simulated with the
        observation noise (seeded by ``seed``; default: the inferencer's seed + 2), their features against the
        data's. Returns a ``neurofit.inference.diagnostics.PredictiveCheck``: per feature the two-sided
        predictive p-value, the central ``level`` (0.9) interval and whether the data lie inside
        (``to_dict()`` for JSON; ``diagnostics.plot_predictive_check`` draws it)."""
        from .diagnostics import predictive_check
        return predictive_check(self, n, seed, level, samples)

    # --- posterior --------------------------------------------------------------------------------
    def _posterior(self, posterior=None):
        posterior = self.posterior if posterior is None else posterior
        if posterior is None:
            raise InferenceError("no posterior yet: call infer(...) or load_posterior(path) first")
        return posterior

    def sample(self, shape, posterior=None, x=None, seed: int | None = None, **kwargs) -> np.ndarray:
        """Returns samples from the posterior given x (default: the data's features), SI, as a numpy array of
        shape (*shape, n_parameters); the same seed gives the same samples. For a new ``x`` the
        misspecification check runs first (a ``MisspecificationWarning`` if x is unlike the training
        simulations).

        shape: number of samples (int) or sample shape (tuple, e.g. (10_000,)); posterior: an sbi
        posterior to draw from (default: the inferencer's ``posterior``); x: features (n_features,) to
        condition on (default: the data's, ``x_o``); seed: seed of the draws (default: the inferencer's
        ``seed``); kwargs: keyword arguments of the posterior's ``sample`` (e.g. ``show_progress_bars``,
        default off; ``num_chains`` for MCMC). The samples are also kept in ``samples`` (the default of
        ``pairplot``).
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if x is not None and posterior is None:  # new data: are they like the training simulations?
            self.check_misspecification(x, stacklevel=3)
        self.samples = _draw(self._posterior(posterior), shape, self.seed if seed is None else seed,
                             x=self.x_o if x is None else x, **kwargs)
        return self.samples

    def save_posterior(self, path):
        """Write the posterior to ``path`` (atomic): its network's weights and a JSON description (method,
        network settings, prior, parameter and feature names, x_o) - plain data that ``load_posterior``
        reads with ``torch.load(weights_only=True)``, so loading the file cannot run code."""
        posterior = self._posterior()
        if self._saved_as is None:
            raise InferenceError("save_posterior: the posterior was trained with an sbi object not made by "
                                 "init_inference; only posteriors of infer / infer_step with init_inference can be "
                                 "saved")
        network = self._saved_as["network"]
        for key, value in network["kwargs"].items():
            _check_json(value, f"inference_kwargs['{key}']")
        for key, value in self._saved_as["posterior_kwargs"].items():
            _check_json(value, f"posterior_kwargs['{key}']")
        description = {
            "method": self._saved_as["method"], "network": network,
            "posterior_kwargs": self._saved_as["posterior_kwargs"],
            "prior": {"names": self.param_names, "low": [self.bounds[p][0] for p in self.param_names],
                      "high": [self.bounds[p][1] for p in self.param_names],
                      "log": [p in self.log_scale for p in self.param_names]},
            "fixed": self.fixed, "feature_names": self.feature_names, "x_o": self.x_o.tolist()}
        weights = {k: v.detach().cpu() for k, v in _network(posterior).state_dict().items()}
        buffer = io.BytesIO()
        torch.save({"format": POSTERIOR_FORMAT, "version": POSTERIOR_VERSION,
                    "description": json.dumps(description), "weights": weights}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_posterior(self, path, embedding_net: torch.nn.Module | None = None):
        """Read a posterior written by ``save_posterior``; it becomes this inferencer's posterior (on the
        cpu). The network is rebuilt from the file's description and gets the file's weights.
        ``embedding_net``: for a posterior trained with a custom embedding module, a module of the same
        architecture (a copy of it receives the saved weights). Files of older neurofit versions, which
        held pickled Python objects, are refused: loading them could run code.

        path: the posterior file (str or os.PathLike). Its parameters must be parameters of this
        inferencer's model and its features this inferencer's ``feature_names``. The file's prior,
        ``param_names``, bounds and fixed values replace the inferencer's; a later ``infer`` continues
        from the loaded posterior with new networks. Returns the posterior (an sbi ``NeuralPosterior``
        whose default x is the saved data features), also kept in ``posterior``. Raises InferenceError
        (one line) for a file of the old format, a foreign or damaged file, or one that does not fit
        this inferencer; OSError when the file cannot be opened.
        """
        description, weights = _read_posterior(path)
        prior = description["prior"]
        names, fixed = prior["names"], description["fixed"]
        bad = [p for p in names + list(fixed) if p not in self.model.parameters]
        if bad:
            raise InferenceError(f"{path}: parameter(s) {', '.join(bad)} not in this model "
                                 f"(parameters: {', '.join(self.model.parameters)})")
        method, network = _method(description["method"]), description["network"]
        self._raw_layout(method != "NLE" and network["embedding"] == "custom")
        if description["feature_names"] != self.feature_names:
            raise InferenceError(f"{path}: trained on features {description['feature_names'][:4]}...; this "
                                 f"inferencer has {self.feature_names[:4]}...")
        _check_estimator(method, network["model"])
        embedding = network["embedding"]
        if embedding == "custom":
            if not isinstance(embedding_net, torch.nn.Module):
                raise InferenceError(f"{path}: trained with a custom embedding net; pass a module of the same "
                                     f"architecture: load_posterior(path, embedding_net=...)")
            embedding = copy.deepcopy(embedding_net)
        elif embedding is not None and method != "NLE":
            embedding = self._embedding(embedding)
        low, high = [float(v) for v in prior["low"]], [float(v) for v in prior["high"]]
        log = list(prior["log"])
        box = _box_prior(low, high, log)
        x_o = torch.as_tensor(description["x_o"], dtype=torch.float32)
        try:
            builder = _builder(method, network["model"], network["kwargs"], embedding)
            with _seeded(0):  # a stand-in batch of the training data's shapes; the weights replace what it set
                estimator = builder(box.sample((_BUILD_BATCH,)), x_o + torch.randn(_BUILD_BATCH, x_o.numel()))
            estimator.load_state_dict(weights)
            estimator.eval()
            posterior = _trainer(method, box, builder, "cpu", False).build_posterior(
                density_estimator=estimator, prior=box, **description["posterior_kwargs"])
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as err:
            raise InferenceError(f"{path}: the posterior it describes cannot be rebuilt with its weights "
                                 f"({_first_line(err)}); {_REGENERATE}") from None
        posterior.set_default_x(x_o)
        self.posterior = posterior
        self.prior = box
        self.param_names = list(names)
        self.bounds = {p: (lo, hi) for p, lo, hi in zip(names, low, high)}
        self.log_scale = {p for p, is_log in zip(names, log) if is_log}
        self.fixed = {p: float(v) for p, v in fixed.items()}
        self.inference_method, self.inference = method, None
        self._saved_as = {"method": method, "network": network, "posterior_kwargs": description["posterior_kwargs"]}
        self._round = 1
        return self.posterior

    # --- plots and analysis -----------------------------------------------------------------------
    def _per_parameter(self, values: dict | None, what: str, default=None) -> list | None:
        if values is None:
            return None
        bad = [k for k in values if k not in self.param_names]
        if bad:
            raise InferenceError(f"{what}: {', '.join(bad)} not an inferred parameter ({', '.join(self.param_names)})")
        return [values.get(p, default(p) if default else None) for p in self.param_names]

    def _limits(self, limits: dict | None, fallback: bool = False):
        if limits is None and not fallback:
            return None
        limits = limits or {}
        rows = self._per_parameter(limits, "limits", default=lambda p: self.bounds[p])
        return [[to_si(v, name=f"limits['{p}']") for v in row] for p, row in zip(self.param_names, rows)]

    def _points(self, points):
        if points is None or not isinstance(points, dict):
            return points
        values = self._per_parameter(points, "points")
        missing = [p for p, v in zip(self.param_names, values) if v is None]
        if missing:
            raise InferenceError(f"points: missing value(s) for {', '.join(missing)}")
        return np.array([[to_si(v, name="points") for v in values]])

    def _subset(self, subset):
        if subset is None:
            return None
        bad = [s for s in subset if s not in self.param_names]
        if bad:
            raise InferenceError(f"subset: {', '.join(bad)} not an inferred parameter ({', '.join(self.param_names)})")
        return [self.param_names.index(s) for s in subset]

    def _labels_ticks(self, labels, ticks):
        labels = self._per_parameter(labels, "labels", default=lambda p: p) or list(self.param_names)
        if ticks is not None:  # sbi needs ticks for every parameter: the others get their bounds
            ticks = [[to_si(v, name=f"ticks['{p}']") for v in row] for p, row in
                     zip(self.param_names, self._per_parameter(ticks, "ticks", default=lambda p: self.bounds[p]))]
        return labels, ticks

    def pairplot(self, samples=None, points=None, limits=None, subset=None, labels=None, ticks=None, **kwargs):
        """``sbi.analysis.pairplot`` of posterior samples (default: the last ``sample``); points, limits,
        labels, ticks are dicts keyed by parameter name (SI or quantity strings). Returns (fig, axes).

        samples: posterior samples (n_samples, n_parameters), SI, columns in ``param_names`` order;
        points: extra points to mark, e.g. the true values - {parameter: value} for every parameter, or
        an array (n_points, n_parameters); limits: {parameter: [low, high]} axis ranges (parameters left
        out get their prior bounds; None: the samples' range); subset: names of the parameters to plot
        (default: all); labels: {parameter: axis label} (default: the names); ticks: {parameter: [tick,
        ...]} (parameters left out get their prior bounds); kwargs: further keyword arguments of
        ``sbi.analysis.pairplot`` (e.g. ``upper``, ``diag``, ``figsize``). fig and axes are matplotlib's.
        """
        from sbi.analysis import pairplot
        samples = self.samples if samples is None else samples
        if samples is None:
            raise InferenceError("pairplot: no samples; call sample(shape) first or pass samples=")
        labels, ticks = self._labels_ticks(labels, ticks)
        return pairplot(np.asarray(samples), points=self._points(points), limits=self._limits(limits),
                        subset=self._subset(subset), labels=labels, ticks=ticks, **kwargs)

    def _condition(self, condition) -> torch.Tensor:
        if isinstance(condition, dict):
            condition = self._points(condition)
        return torch.as_tensor(np.atleast_2d(np.asarray(condition, dtype=np.float64)), dtype=torch.float32)

    def conditional_pairplot(self, condition, density=None, points=None, limits=None, subset=None, labels=None,
                             ticks=None, **kwargs):
        """``sbi.analysis.conditional_pairplot``: slices of the posterior density through ``condition``
        (array (1, n_parameters) or dict); limits default to the prior bounds. Returns (fig, axes).

        condition: the values the parameters not shown in a panel are fixed to - {parameter: value} for
        every parameter (SI or quantity strings) or an array (1, n_parameters) SI, e.g. a posterior
        sample; density: the posterior to slice (default: the inferencer's ``posterior``, at its default
        x, the data's features); points: extra points to mark, {parameter: value} for every parameter or
        an array (n_points, n_parameters); limits: {parameter: [low, high]} ranges the density is
        evaluated over (parameters left out: their prior bounds); subset: names of the parameters to
        plot (default: all); labels: {parameter: axis label} (default: the names); ticks: {parameter:
        [tick, ...]} (parameters left out get their prior bounds); kwargs: further keyword arguments of
        ``sbi.analysis.conditional_pairplot`` (e.g. ``resolution``, ``figsize``). fig and axes are
        matplotlib's.
        """
        from sbi.analysis import conditional_pairplot
        labels, ticks = self._labels_ticks(labels, ticks)
        return conditional_pairplot(self._posterior(density), self._condition(condition),
                                    torch.tensor(self._limits(limits, fallback=True)), points=self._points(points),
                                    subset=self._subset(subset), labels=labels, ticks=ticks, **kwargs)

    def conditional_corrcoeff(self, condition, density=None, limits=None, subset=None, **kwargs) -> np.ndarray:
        """``sbi.analysis.conditional_corrcoeff``: correlation matrix of parameter pairs with the others fixed
        at ``condition``.

        condition: the values all but the two parameters of a pair are fixed to - {parameter: value} for
        every parameter (SI or quantity strings) or an array (n_conditions, n_parameters) SI (for several
        conditions the matrices are averaged); density: the posterior (default: the inferencer's
        ``posterior``, at its default x, the data's features); limits: {parameter: [low, high]} ranges
        the density is evaluated over (parameters left out: their prior bounds); subset: names of the
        parameters to correlate (default: all); kwargs: further keyword arguments of
        ``sbi.analysis.conditional_corrcoeff`` (``resolution``: grid points per parameter, default 50).
        Returns the Pearson correlation matrix, a numpy array (n, n) with n = len(subset) or
        n_parameters, rows and columns in the order of ``subset`` (default: ``param_names``).
        """
        from sbi.analysis import conditional_corrcoeff
        matrix = conditional_corrcoeff(self._posterior(density), torch.tensor(self._limits(limits, fallback=True)),
                                       self._condition(condition), subset=self._subset(subset), **kwargs)
        return matrix.detach().cpu().numpy()

    def generate_traces(self, n_samples: int = 1, posterior=None, output_var=None, param_init: dict | None = None,
                        level: int = 0, reduce: str | None = "mean", seed: int | None = None):
        """Simulate every input trace with posterior samples. ``reduce="mean"`` (the manual's behaviour):
        one simulation at the mean of ``n_samples`` samples → (n_traces, n_steps); ``reduce=None``: the
        posterior predictive, one simulation per sample → (n_samples, n_traces, n_steps). output_var: a
        variable, "spikes" (spike trains), or a list (→ dict); default: the outputs.

        n_samples: number of posterior samples, drawn given the data's features; posterior: the
        posterior to draw from (default: the inferencer's ``posterior``); output_var: any recordable
        variable of the model or "spikes" (needs a threshold); param_init: initial values for these
        simulations, state → SI number, quantity string or expression, over those given to the
        constructor; level: brian2modelfitting's namespace depth, accepted and not used (the constructor read
        the constants, from its ``namespace`` or the caller's scope); reduce: "mean" or None, as above; seed:
        seed of the draws and of model noise (default: the inferencer's ``seed``); no observation noise is
        added. Returns, for one variable,
        its traces SI - (n_traces, n_steps) with "mean", (n_samples, n_traces, n_steps) with None; for
        "spikes", spike times (s) - spikes[trace] with "mean", spikes[sample][trace] with None; for
        several variables (a list, or by default more than one output) a dict variable → those.
        """
        if reduce not in ("mean", None):
            raise InferenceError(f"reduce = {reduce!r} is not valid (valid: 'mean', None)")
        seed = self.seed if seed is None else seed
        samples = _draw(self._posterior(posterior), (int(n_samples),), seed, x=self.x_o)
        theta = samples.mean(axis=0, keepdims=True) if reduce == "mean" else samples
        names = ([*self.output] + ([SPIKES] if self.output_spikes is not None else [])) if output_var is None else \
            ([output_var] if isinstance(output_var, str) else list(output_var))
        record = [v for v in names if v != SPIKES]
        bad = [v for v in record if v not in self.model.recordable()]
        if bad:
            raise InferenceError(f"output_var: {', '.join(bad)} not a variable of the model "
                                 f"(recordable: {', '.join(self.model.recordable())}, or 'spikes')")
        result = self._simulate(theta, record, SPIKES in names, seed, init={**self.param_init, **(param_init or {})})
        out = {v: result.traces[v] for v in record}
        if SPIKES in names:
            out[SPIKES] = result.spikes
        if reduce == "mean":
            out = {k: v[0] for k, v in out.items()}
        single = isinstance(output_var, str) or (output_var is None and len(names) == 1)
        return out[names[0]] if single else out


def _draw(distribution, shape: tuple, seed: int, x=None, **kwargs) -> np.ndarray:
    """Seeded draws from a prior or an sbi posterior (given x; ``kwargs`` to its ``sample``), as float64 numpy."""
    from sbi.inference.posteriors.base_posterior import NeuralPosterior
    if isinstance(distribution, NeuralPosterior):
        kwargs.setdefault("show_progress_bars", False)
        if x is not None:
            kwargs["x"] = torch.as_tensor(x, dtype=torch.float32)
    with _seeded(seed):
        samples = distribution.sample(shape, **kwargs)
    return samples.detach().cpu().numpy().astype(np.float64)


def estimate_noise_sd(traces, dt: float, inputs: dict | None = None, smoothing: float = NOISE_SMOOTHING,
                      name: str = "noise") -> float:
    """The observation noise's standard deviation in recorded ``traces``, from their baseline.

    traces: (n_traces, n_steps) recordings (any unit; the SD is in the same); dt: sampling interval (s);
    inputs: {name: (n_traces, n_steps)} stimuli - a trace's baseline is its samples before the first nonzero
    sample of any input (every sample without inputs or without a nonzero one). Traces stimulated from
    their first sample have none; when no trace has a baseline, the samples after each trace's last
    nonzero input sample are used instead. smoothing: length (s) of the moving average; name: what the
    estimate is for, in error messages. Returns the SD (float, units of ``traces``).

    Method (robust to drift, and to a few spikes or artefacts in the baseline): each baseline minus its
    centred moving average over w samples (w odd, about ``smoothing`` / dt, at least 3, at most a third of
    the baseline) - a drift linear over w samples cancels exactly, a slower curvature nearly. For white noise
    of SD sigma these residuals have SD sigma * sqrt(1 - 1/w); sigma is estimated as 1.4826 * the median
    absolute deviation of the residuals of all traces (each divided by its sqrt(1 - 1/w)). Noise correlated
    over less than the window counts fully; fluctuations slower than the window count as drift and are
    not in the estimate. InferenceError (naming ``name``) when no trace has MIN_BASELINE_SAMPLES residuals.
    """
    traces = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    n_traces, n_steps = traces.shape
    on = np.zeros((n_traces, n_steps), dtype=bool)
    for value in (inputs or {}).values():
        on |= np.atleast_2d(np.asarray(value, dtype=np.float64)) != 0
    first = [int(np.argmax(row)) if row.any() else n_steps for row in on]
    last = [n_steps - int(np.argmax(row[::-1])) if row.any() else n_steps for row in on]
    width = max(3, int(round(smoothing / dt)) // 2 * 2 + 1)

    def residuals(segments):
        parts = []
        for v in segments:
            w = min(width, v.size // 3)
            w -= 1 - w % 2  # odd
            if w < 3 or v.size - w + 1 < MIN_BASELINE_SAMPLES:
                continue
            c = np.concatenate([[0.0], np.cumsum(v - v.mean())])
            r = (v - v.mean())[w // 2:v.size - w // 2] - (c[w:] - c[:-w]) / w
            parts.append(r / np.sqrt(1 - 1 / w))
        return parts

    parts = residuals([traces[j, :first[j]] for j in range(n_traces)]) or \
        residuals([traces[j, last[j]:] for j in range(n_traces)])
    if not parts:
        raise InferenceError(f"{name} = 'auto': no trace has a baseline of {MIN_BASELINE_SAMPLES + 2} samples or "
                             f"more before (or after) its stimulus to estimate the noise from; give the noise's "
                             f"SD (e.g. '0.5 mV')")
    r = np.concatenate(parts)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _first_line(err: BaseException) -> str:
    """The exception's type and the first sentence of its message (torch's run over lines and sentences)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(err).__name__


def _pickle_stream(path) -> bytes:
    """The pickle inside a torch file (data.pkl of its zip archive; the file itself in torch's legacy format)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else b""
    with open(path, "rb") as f:
        return f.read()


def _written_by_old_neurofit(path) -> bool:
    """Whether a file torch refused to load safely is a posterior of neurofit's old, pickled format: its
    pickle is scanned (``pickletools.genops`` only parses opcodes, nothing runs) for the format name."""
    try:
        return any(arg == POSTERIOR_FORMAT for _, arg, _ in pickletools.genops(_pickle_stream(path)))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False


def _check_description(d) -> None:
    """ValueError naming what a posterior file's description lacks (damage, or not written by
    ``save_posterior``)."""
    def need(ok, what):
        if not ok:
            raise ValueError(what)
    number = (int, float)
    need(isinstance(d, dict), "description is not a JSON object")
    need(isinstance(d.get("method"), str), "no method")
    network, prior = d.get("network"), d.get("prior")
    need(isinstance(network, dict) and isinstance(network.get("model"), str)
         and isinstance(network.get("kwargs"), dict) and isinstance(network.get("embedding", 0), (str, type(None))),
         "no network settings")
    need(isinstance(d.get("posterior_kwargs"), dict), "no posterior settings")
    need(isinstance(prior, dict) and all(isinstance(prior.get(k), list) for k in ("names", "low", "high", "log")),
         "no prior")
    n = len(prior["names"])
    need(n > 0 and all(len(prior[k]) == n for k in ("low", "high", "log"))
         and all(isinstance(v, str) for v in prior["names"])
         and all(isinstance(v, number) for v in prior["low"] + prior["high"])
         and all(isinstance(v, bool) for v in prior["log"]), "prior names, lows, highs and log flags do not match")
    need(isinstance(d.get("fixed"), dict) and all(isinstance(v, number) for v in d["fixed"].values()),
         "no fixed values")
    names, x_o = d.get("feature_names"), d.get("x_o")
    need(isinstance(names, list) and isinstance(x_o, list) and len(names) == len(x_o) > 0
         and all(isinstance(v, number) for v in x_o), "feature names and x_o do not match")


def _read_posterior(path) -> tuple[dict, dict]:
    """(description, weights) of a posterior file, read without unpickling objects; InferenceError (one line)
    for files of the old pickled format, foreign or damaged files."""
    with open(path, "rb") as f:  # a missing or unreadable file: the OSError names it
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # objects that are not plain data (or bytes that are no pickle at all)
            if _written_by_old_neurofit(path):
                raise InferenceError(f"{path}: written by an older neurofit (pickled Python objects), not loaded "
                                     f"for safety; {_REGENERATE}") from None
            raise InferenceError(f"{path}: holds pickled Python objects or is damaged, not loaded for safety; not "
                                 f"a neurofit posterior (written by Inferencer.save_posterior)") from None
        except Exception as err:  # torch raises RuntimeError, OSError, KeyError ... on bytes it cannot read
            raise InferenceError(f"{path}: damaged or not a torch file ({_first_line(err)}); "
                                 f"{_REGENERATE}") from None
    if not isinstance(state, dict) or state.get("format") != POSTERIOR_FORMAT:
        raise InferenceError(f"{path}: not a neurofit posterior (written by Inferencer.save_posterior)")
    if state.get("version") != POSTERIOR_VERSION:
        raise InferenceError(f"{path}: posterior format version {state.get('version')!r}, this neurofit reads "
                             f"version {POSTERIOR_VERSION}; {_REGENERATE}")
    weights = state.get("weights")
    try:
        description = json.loads(state.get("description"))
        _check_description(description)
        if not (isinstance(weights, dict) and weights and all(isinstance(v, torch.Tensor) for v in weights.values())):
            raise ValueError("no network weights")
    except (TypeError, ValueError) as err:
        raise InferenceError(f"{path}: damaged neurofit posterior ({err}); {_REGENERATE}") from None
    return description, weights


def chunk_range(n_samples: int, chunk: int, n_chunks: int) -> tuple[int, int]:
    """Rows [start, stop) of chunk ``chunk`` of ``n_samples`` split into ``n_chunks`` near-equal parts."""
    if n_chunks < 1 or not 0 <= chunk < n_chunks:
        raise InferenceError(f"chunk = {chunk} of n_chunks = {n_chunks}: need n_chunks >= 1 and 0 <= chunk < n_chunks")
    return chunk * n_samples // n_chunks, (chunk + 1) * n_samples // n_chunks
