"""Global optimizers behind one ask/tell interface.

Parameters are told and returned as dicts of SI floats. Internally every parameter lives in a
search space that is linear, or log10 for parameters named in ``log_scale``; backends only see
that internal space. ``NevergradOptimizer`` wraps nevergrad (DE, CMA, PSO, NGOpt, ...),
``SkoptOptimizer`` wraps scikit-optimize (GP, RF, ET, GBRT); users plug in their own by
subclassing ``Optimizer`` and implementing ``ask``::

    opt = NevergradOptimizer("DE", seed=1)
    popsize = opt.initialize(["gl", "C"], {"gl": ("1 nS", "100 nS"), "C": (1e-12, 1e-9)},
                             log_scale={"C"}, popsize=20)
    for _ in range(rounds):
        params = opt.ask(popsize)
        opt.tell(params, errors_of(params))
    best = opt.recommend()

A diverged simulation (NaN/inf error) is never a crash: each backend receives a finite
penalty instead (see the classes), while the history keeps the error as told.

Resuming is by replay, never by unpickling: ``get_state`` is plain data (the ``initialize`` arguments
and every told batch), and ``set_state`` (or ``replay_round``, which ``Fitter`` checkpoints use) asks a
freshly built optimizer of the same settings and seed for each batch again, checks that it proposes the
recorded candidates, and tells it the recorded errors - the backend ends in the state of the original.
"""
from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import NeurofitError
from .bounds import parse_bounds

__all__ = ["Optimizer", "NevergradOptimizer", "SkoptOptimizer", "ReplayError", "MethodError", "BoundsSpellingError",
           "calc_bounds", "replay_round"]

#: Loss told to nevergrad for NaN/inf errors; below nevergrad's own clipping level (5e20).
NEVERGRAD_PENALTY = 1e20

_SKOPT_METHODS = ("GP", "RF", "ET", "GBRT")


class MethodError(ValueError, AssertionError):
    """An optimizer method that does not exist: a ValueError (neurofit's one-line errors) that is also the
    AssertionError brian2modelfitting raises."""


class BoundsSpellingError(ValueError, AssertionError):
    """Bounds given as keywords (brian2modelfitting's spelling) that are not ``[low, high]``: a ValueError that is
    also the AssertionError brian2modelfitting raises."""


class ReplayError(NeurofitError):
    """Replaying recorded asks gave other candidates: another method, seed or version, or an unseeded optimizer."""


def replay_round(optimizer, n_samples: int, parameters: list[Mapping], errors) -> list[dict]:
    """Ask ``optimizer`` (any object with ``ask``/``tell``) for ``n_samples`` candidates, check that they equal
    the recorded ``parameters`` (dicts of SI floats, in order), and tell it the recorded ``errors``
    (n_samples,); returns the candidates. ReplayError if they differ: the optimizer is then unusable."""
    asked = optimizer.ask(n_samples)
    same = len(asked) == len(parameters) and all(
        set(a) == set(b) and all(float(a[k]) == float(b[k]) for k in a) for a, b in zip(asked, parameters))
    if not same:
        raise ReplayError("the optimizer proposed other candidates than recorded (another method, seed or version "
                          "of it, or no seed)")
    optimizer.tell(asked, errors)
    return asked


def calc_bounds(parameter_names, bounds: Mapping | None = None, log_scale: Iterable[str] = (), **bounds_kw):
    """Validated bounds of the parameters (quantity strings allowed), in one of two spellings.

    parameter_names: the fitted parameters (list or set of str); bounds: name → (low, high) (SI numbers or
    quantity strings, ``[low, high, "log"]`` allowed); log_scale: names searched in log10 space (their low
    must be positive); bounds_kw: brian2modelfitting's spelling, the bounds as keywords ``name=[low, high]``
    (instead of ``bounds``).

    Returns ``{name: (low, high)}`` of SI floats for neurofit's spelling, or brian2modelfitting's
    ``[[low, high], ...]`` in the order of ``parameter_names`` for the keyword spelling. Raises ValueError (one
    line naming the parameter) for unknown or unreadable bounds, low >= high, or a ``log_scale`` name that is
    not fitted; a missing parameter is a ValueError in neurofit's spelling and a TypeError in the keyword
    spelling (as brian2modelfitting); a keyword value that is not [low, high] is a BoundsSpellingError (a
    ValueError and an AssertionError).
    """
    names, log_scale = list(parameter_names), set(log_scale)
    if bounds is None and bounds_kw:
        for name in names:
            if name not in bounds_kw:
                raise TypeError(f"bounds must be set for parameter '{name}' (e.g. {name}=[low, high])")
        _check_spelling(bounds_kw)
        checked = calc_bounds(names, bounds_kw, log_scale)
        return [list(checked[n]) for n in names]
    for extra in sorted(log_scale - set(names)):
        raise ValueError(f"log_scale names '{extra}', which is not a fitted parameter (fitted: {', '.join(names)})")
    spec = {n: ([*b, "log"] if n in log_scale else list(b)) if isinstance(b, (list, tuple)) else b
            for n, b in (bounds or {}).items()}
    return parse_bounds(spec, names, where=lambda n: f"bounds of '{n}'").free


def _check_spelling(bounds_kw: Mapping) -> None:
    """BoundsSpellingError unless every keyword bound is a pair [low, high] of numbers or quantity strings."""
    for name, pair in bounds_kw.items():
        ok = isinstance(pair, (list, tuple, np.ndarray)) and len(pair) == 2 and all(
            isinstance(v, (int, float, str, np.number)) for v in pair)
        if not ok:
            raise BoundsSpellingError(f"bounds of '{name}' must be [low, high], got {pair!r}")


def _initialize_arguments(bounds, log_scale, popsize, rounds, bounds_kw):
    """(bounds, log_scale, popsize, rounds) of an ``initialize`` call in either spelling: neurofit's
    ``initialize(names, bounds, log_scale=, popsize=, rounds=)`` or brian2modelfitting's ``initialize(names,
    popsize, rounds, **bounds)`` (positional popsize and rounds land in bounds and log_scale)."""
    if bounds_kw or not isinstance(bounds, (Mapping, type(None))):
        if bounds is not None and not isinstance(bounds, Mapping):  # initialize(names, popsize, rounds, ...)
            popsize, rounds, log_scale = bounds, (None if log_scale == () else log_scale), ()
        if rounds is None:
            raise TypeError("initialize() with bounds as keywords (brian2modelfitting's spelling) needs rounds= "
                            "(rounds the fit will run)")
        _check_spelling(bounds_kw)
        bounds = dict(bounds_kw)
    elif bounds is None:
        raise TypeError("initialize() needs the bounds: a dict {name: (low, high)} or keywords name=[low, high]")
    return bounds, log_scale, popsize, rounds


class Optimizer(abc.ABC):
    """Base class: bounds, log-scale transform, history, best-so-far and resuming by replay.

    Subclasses implement ``ask``; they may extend ``initialize`` and ``tell`` (calling
    ``super()``) to set up and feed a backend. Helpers for subclasses: ``internal_lower`` /
    ``internal_upper`` (bounds in the internal space), ``to_internal`` and ``from_internal``.
    """

    def initialize(self, parameter_names: list[str], bounds: Mapping | None = None, log_scale: Iterable[str] = (),
                   popsize: int = 1, rounds: int | None = None, **bounds_kw) -> int:
        """Set up the search; returns the population size the method will actually use.

        parameter_names: the fitted parameters, in the order of the internal space; bounds: name →
        (low, high), SI floats or quantity strings ("1 nS"), one pair per name; log_scale: names
        searched in log10 space (their bounds must be positive); popsize: candidates wanted per round
        (≥ 1); ``rounds`` (optional) lets budget-aware backends plan ``rounds * popsize`` evaluations.
        bounds_kw: brian2modelfitting's spelling ``initialize(names, popsize, rounds, g=[low, high], ...)``,
        the bounds as keywords instead of ``bounds`` (``rounds`` is then required, TypeError without it).
        Returns the population size as an int (it may differ from ``popsize``, e.g. 1 for a
        sequential method). Raises BoundsSpellingError (a ValueError and an AssertionError) for a keyword
        bound that is not [low, high]; ValueError (one line naming the parameter) for missing, unknown or
        unreadable bounds, low ≥ high, a non-positive log-scale low, a ``log_scale`` name that is not
        fitted, or ``popsize`` < 1.
        """
        bounds, log_scale, popsize, rounds = _initialize_arguments(bounds, log_scale, popsize, rounds, bounds_kw)
        checked = calc_bounds(parameter_names, bounds, log_scale)
        if int(popsize) < 1:
            raise ValueError(f"popsize must be a positive integer, got {popsize}")
        self.parameter_names = list(parameter_names)
        self.bounds = checked
        self.log_scale = frozenset(log_scale)
        self._log_mask = np.array([n in self.log_scale for n in self.parameter_names])
        lo = np.array([checked[n][0] for n in self.parameter_names])
        hi = np.array([checked[n][1] for n in self.parameter_names])
        self._si_lower, self._si_upper = lo, hi
        self.internal_lower = np.where(self._log_mask, np.log10(np.where(self._log_mask, lo, 1.0)), lo)
        self.internal_upper = np.where(self._log_mask, np.log10(np.where(self._log_mask, hi, 1.0)), hi)
        self.tested_parameters: list[dict] = []
        self.errors: list[float] = []
        self._setup = {"parameter_names": list(self.parameter_names),
                       "bounds": {n: [float(lo), float(hi)] for n, (lo, hi) in checked.items()},
                       "log_scale": sorted(self.log_scale), "popsize": int(popsize), "rounds": rounds}
        self._batch_sizes: list[int] = []  # of the told batches, in order
        return int(popsize)

    def to_internal(self, parameters: list[Mapping]) -> np.ndarray:
        """Parameter dicts (SI) → array (n, n_params) in the internal space, clipped to bounds.

        parameters: n dicts name → SI float, each with every parameter of ``initialize``. Returns the
        float array (n, n_params), columns in ``parameter_names`` order, log10 for log-scale ones.
        Raises ValueError for a set that lacks a parameter, a value that is not a number, or a
        non-positive log-scale value.
        """
        try:
            x = np.array([[float(p[n]) for n in self.parameter_names] for p in parameters], dtype=float)
        except KeyError as err:
            raise ValueError(f"parameter set lacks '{err.args[0]}' "
                             f"(needs {', '.join(self.parameter_names)})") from None
        x = x.reshape(len(parameters), len(self.parameter_names))
        with np.errstate(divide="ignore", invalid="ignore"):
            x[:, self._log_mask] = np.log10(x[:, self._log_mask])
        if np.isnan(x).any():
            raise ValueError("parameter sets must be numbers, and positive for log-scale parameters "
                             f"({', '.join(sorted(self.log_scale)) or 'none'})")
        return np.clip(x, self.internal_lower, self.internal_upper)

    def from_internal(self, x) -> list[dict[str, float]]:
        """Array (n, n_params) in the internal space → parameter dicts (SI), within bounds.

        x: internal coordinates, (n, n_params) or (n_params,), columns in ``parameter_names`` order
        (log10 for log-scale parameters); values outside the bounds are clipped. Returns n dicts
        name → SI float.
        """
        x = np.clip(np.atleast_2d(np.asarray(x, dtype=float)), self.internal_lower, self.internal_upper)
        si = np.where(self._log_mask, 10.0 ** np.where(self._log_mask, x, 0.0), x)
        si = np.clip(si, self._si_lower, self._si_upper)
        return [dict(zip(self.parameter_names, map(float, row))) for row in si]

    @abc.abstractmethod
    def ask(self, n_samples: int) -> list[dict[str, float]]:
        """``n_samples`` parameter sets (dicts of SI floats) to evaluate next.

        n_samples: how many candidates (usually the population size). Returns a list of n_samples
        dicts name → SI float, within bounds. Raises ValueError when the method cannot give that
        many at once (sequential nevergrad methods) or needs a budget that was not set.
        """

    def tell(self, parameters: list[Mapping], errors) -> None:
        """Record the errors of evaluated parameter sets (NaN/inf allowed).

        parameters: the evaluated sets, dicts name → SI float (usually those ``ask`` returned);
        errors: one float per set, shape (n,). Returns None. Raises ValueError when the numbers of
        sets and errors differ.
        """
        errors = np.asarray(errors, dtype=float).ravel()
        if len(errors) != len(parameters):
            raise ValueError(f"tell got {len(parameters)} parameter sets but {len(errors)} errors")
        self.tested_parameters.extend(dict(p) for p in parameters)
        self.errors.extend(errors.tolist())
        self._batch_sizes.append(len(errors))

    def recommend(self) -> dict[str, float]:
        """The best parameter set told so far (lowest error; NaN counts as worst).

        Returns a dict name → SI float. Raises RuntimeError when nothing was told yet.
        """
        if not self.errors:
            raise RuntimeError("nothing was told yet: call ask() and tell() before recommend()")
        errors = np.nan_to_num(np.asarray(self.errors), nan=np.inf)
        return dict(self.tested_parameters[int(np.argmin(errors))])

    def get_state(self) -> dict:
        """Plain data (JSON-serialisable) to continue later: the class name, the ``initialize`` arguments and
        every told batch ({"parameters": [dicts of SI floats], "errors": [floats, NaN/inf as told]}).

        Returns {"class": the class's name, "setup": the ``initialize`` arguments, "batches": [...]}.
        """
        batches, start = [], 0
        for size in self._batch_sizes:
            told = self.tested_parameters[start:start + size]
            batches.append({"parameters": [{k: float(v) for k, v in p.items()} for p in told],
                            "errors": self.errors[start:start + size]})
            start += size
        return {"class": type(self).__qualname__, "setup": dict(self._setup), "batches": batches}

    def set_state(self, state: Mapping) -> None:
        """Continue from ``get_state()`` data on a new optimizer built with the same settings and seed:
        ``initialize`` with the recorded arguments, then ``replay_round`` every batch (each must have been
        asked as one batch right before it was told); later asks equal those of the original.

        state: the dict ``get_state()`` returned (e.g. read back from JSON). Returns None.
        ValueError (one line) for another class, ReplayError if the replayed asks differ."""
        name = state.get("class") if isinstance(state, Mapping) else None
        if name != type(self).__qualname__:
            raise ValueError(f"state was saved by {name}, cannot load it into {type(self).__qualname__}")
        self.initialize(**state["setup"])
        for batch in state["batches"]:
            replay_round(self, len(batch["parameters"]), batch["parameters"], batch["errors"])


class NevergradOptimizer(Optimizer):
    """Any nevergrad method by registry name (``DE``, ``TwoPointsDE``, ``CMA``, ``PSO``,
    ``NGOpt``, ``OnePlusOne``, ...; all: ``sorted(nevergrad.optimizers.registry)``).

    The parametrization is an ``ng.p.Array`` bounded in the internal (linear/log10) space.
    ``seed`` makes runs reproducible; ``budget`` is required by budget-planning methods such
    as NGOpt: when it is None they get ``rounds * popsize`` if ``initialize`` got ``rounds``
    (as brian2modelfitting), while the other methods run without a budget, so that their
    candidates do not depend on the number of rounds (nevergrad's CMA plans with a budget).
    ``initialize`` returns the population nevergrad uses (``llambda``: at least 30 for DE,
    40 for PSO). ``kwds`` go to the nevergrad optimizer's constructor. NaN/inf errors are told
    as ``NEVERGRAD_PENALTY``. Sequential-only methods (e.g. SQP, NelderMead, and DS9 and
    MetaModelDSproba, which nevergrad flags as parallel) run with ``popsize`` 1. CMA variants
    on a single parameter run as TwoPointsDE (nevergrad's 1-D CMA
    needs the optional fcmaes package).

    method: the registry name (default "DE"); seed: int seed of the candidates (None: not
    reproducible, and not resumable); budget: total number of evaluations (None: see above).
    Raises MethodError (a ValueError, and the AssertionError brian2modelfitting raises) for a method that is
    not in nevergrad's registry.
    """

    def __init__(self, method: str = "DE", seed: int | None = None, budget: int | None = None, **kwds):
        from nevergrad.optimization import registry

        if method not in registry:
            raise MethodError(f"unknown nevergrad method '{method}' (valid names include DE, TwoPointsDE, "
                             f"CMA, PSO, NGOpt, OnePlusOne; all: sorted(nevergrad.optimizers.registry))")
        self.method = method
        self.seed = seed
        self.budget = budget
        self.kwds = kwds

    def initialize(self, parameter_names, bounds=None, log_scale=(), popsize=1, rounds=None, **bounds_kw) -> int:
        """As ``Optimizer.initialize`` (either spelling); then builds the nevergrad optimizer (``optim``).

        parameter_names, bounds, log_scale, popsize, rounds, bounds_kw: as for ``Optimizer.initialize``.
        Returns the population nevergrad uses (its ``llambda`` when it has one, 1 for a sequential method).
        Raises as ``Optimizer.initialize``.
        """
        bounds, log_scale, popsize, rounds = _initialize_arguments(bounds, log_scale, popsize, rounds, bounds_kw)
        popsize = super().initialize(parameter_names, bounds, log_scale, popsize, rounds)
        from nevergrad.optimization import registry
        wanted = 1 if registry[self.method].no_parallelization else popsize
        for workers in dict.fromkeys((wanted, 1)):  # 1: nevergrad flags a few methods as parallel that are not
            budget = self.budget
            if budget is None and rounds and self._needs_budget(workers):
                budget = int(rounds) * workers  # a budget-planning method (NGOpt, ...), as brian2modelfitting
            try:
                popsize = self._build(workers, budget)
                break
            except ValueError as err:
                if workers == 1 or "does not support parallelization" not in str(err):
                    raise
        self._pending: dict[tuple, list] = {}  # asked, not yet told candidates by SI values
        if hasattr(self._optim, "llambda"):
            return int(self._optim.llambda)
        return popsize

    def _needs_budget(self, popsize: int) -> bool:
        """Whether the method fails without a budget: a throwaway twin (its own random state) runs two rounds of
        ``popsize`` candidates on a quadratic loss; the optimizer itself is not touched."""
        import warnings
        twin = NevergradOptimizer(self.method, seed=0, budget=None, **self.kwds)
        twin.parameter_names, twin.internal_lower, twin.internal_upper = (
            self.parameter_names, self.internal_lower, self.internal_upper)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n = twin._build(popsize, None)
                for _ in range(2):  # two rounds: some methods fail only once told
                    asked = [twin._optim.ask() for _ in range(n)]
                    for candidate in asked:
                        twin._optim.tell(candidate, float(np.sum(np.square(candidate.value))))
        except Exception as err:  # noqa: BLE001 - nevergrad fails in many ways without a budget
            return "does not support parallelization" not in str(err)  # that one is not about the budget
        return False

    def _build(self, popsize: int, budget) -> int:
        """(Re)create the nevergrad optimizer for ``popsize`` workers and ``budget``; returns the popsize (1 for a
        sequential method)."""
        import nevergrad as ng
        from nevergrad.optimization import registry

        method = registry[self.method]
        if len(self.parameter_names) == 1 and "CMA" in self.method:
            method = registry["TwoPointsDE"]  # nevergrad's 1-D CMA needs the optional fcmaes package
        if method.no_parallelization:
            popsize = 1
        parametrization = ng.p.Array(shape=(len(self.parameter_names),),
                                     lower=self.internal_lower, upper=self.internal_upper)
        if self.seed is not None:
            parametrization.random_state = np.random.RandomState(self.seed)
        self._optim = method(parametrization=parametrization, budget=budget, num_workers=popsize, **self.kwds)
        self._popsize = popsize
        return popsize

    @property
    def optim(self):
        """The nevergrad optimizer (``nevergrad.optimization.base.Optimizer``) of the last ``initialize``, as
        brian2modelfitting's ``NevergradOptimizer.optim``."""
        return self._optim

    def ask(self, n_samples: int) -> list[dict[str, float]]:
        if self._optim.no_parallelization and int(n_samples) > 1:
            raise ValueError(f"nevergrad method '{self.method}' evaluates one point at a time: "
                             f"ask(1), or choose a parallel method such as DE, CMA or PSO")
        try:
            candidates = [self._optim.ask() for _ in range(int(n_samples))]
        except AssertionError as err:
            if self._optim.budget is None:
                raise ValueError(f"nevergrad method '{self.method}' needs a budget: use "
                                 f"NevergradOptimizer('{self.method}', budget=...) or "
                                 f"initialize(..., rounds=...)") from err
            raise
        except TypeError as err:
            if "0-dimensional" not in str(err):
                raise
            raise RuntimeError(f"nevergrad method '{self.method}' failed inside nevergrad's surrogate "
                               f"model, which does not work with numpy >= 2.4 ({err}); use DE, "
                               f"TwoPointsDE, CMA or PSO") from err
        parameters = self.from_internal(np.array([c.value for c in candidates]))
        for p, c in zip(parameters, candidates):
            self._pending.setdefault(self._key(p), []).append(c)
        return parameters

    def tell(self, parameters, errors) -> None:
        super().tell(parameters, errors)
        losses = np.asarray(errors, dtype=float).ravel()
        losses = np.where(np.isfinite(losses), losses, NEVERGRAD_PENALTY)
        for p, loss in zip(parameters, losses):
            key = self._key(p)
            if key in self._pending:
                candidate = self._pending[key].pop(0)
                if not self._pending[key]:
                    del self._pending[key]
            else:  # a point that was not asked (e.g. a user's initial guess)
                candidate = self._optim.parametrization.spawn_child(new_value=self.to_internal([p])[0])
            self._optim.tell(candidate, float(loss))

    def _key(self, parameters: Mapping) -> tuple:
        return tuple(float(parameters[n]) for n in self.parameter_names)


class SkoptOptimizer(Optimizer):
    """scikit-optimize's ``skopt.Optimizer`` (Bayesian optimization).

    ``method`` is "GP", "RF", "ET", "GBRT" or a scikit-learn regressor; other ``kwds``
    (``acq_optimizer``, ``acq_func_kwargs``, ...) go to ``skopt.Optimizer``. Batches come from
    ``ask(n_points=n)`` (constant liar). The surrogate runs with one BLAS thread: its matrices
    are small, and results then do not depend on the machine's thread count. NaN/inf errors
    are told as ``worst + (worst - best)`` of the finite errors so far (``worst + |worst|`` if
    they are all equal, 1.0 until one exists) and re-penalised on every tell, so the surrogate
    stays on the scale of real errors.

    method: the surrogate (default "GP"; case-insensitive); n_initial_points: candidates drawn at
    random before the surrogate proposes any; acq_func: skopt's acquisition function ("gp_hedge",
    "EI", "PI", "LCB", ...); random_state: int seed (None: not reproducible, and not resumable).
    Raises MethodError (a ValueError, and the AssertionError brian2modelfitting raises) for a method that is
    neither one of the names nor a regressor instance.
    """

    def __init__(self, method="GP", n_initial_points: int = 10, acq_func: str = "gp_hedge",
                 random_state: int | None = None, **kwds):
        from sklearn.base import RegressorMixin

        if isinstance(method, str):
            if method.upper() not in _SKOPT_METHODS:
                raise MethodError(f"unknown skopt method '{method}' (valid: {', '.join(_SKOPT_METHODS)} "
                                 f"or a scikit-learn regressor instance)")
            method = method.upper()
        elif not isinstance(method, RegressorMixin):
            raise MethodError(f"skopt method must be one of {', '.join(_SKOPT_METHODS)} or a scikit-learn "
                             f"regressor instance, got {method!r}")
        self.method = method
        self.n_initial_points = n_initial_points
        self.acq_func = acq_func
        self.random_state = random_state
        self.kwds = kwds

    def initialize(self, parameter_names, bounds=None, log_scale=(), popsize=1, rounds=None, **bounds_kw) -> int:
        """As ``Optimizer.initialize`` (either spelling); then builds the ``skopt.Optimizer`` (``optim``).

        parameter_names, bounds, log_scale, popsize, rounds, bounds_kw: as for ``Optimizer.initialize``.
        Returns ``popsize``. Raises as ``Optimizer.initialize``.
        """
        import skopt
        from skopt.space import Real

        bounds, log_scale, popsize, rounds = _initialize_arguments(bounds, log_scale, popsize, rounds, bounds_kw)
        popsize = super().initialize(parameter_names, bounds, log_scale, popsize, rounds)
        dimensions = [Real(lo, hi, transform="normalize", name=name) for name, lo, hi
                      in zip(self.parameter_names, self.internal_lower, self.internal_upper)]
        self._optim = skopt.Optimizer(dimensions, base_estimator=self.method,
                                      n_initial_points=self.n_initial_points, acq_func=self.acq_func,
                                      random_state=self.random_state, **self.kwds)
        self._penalized: list[int] = []  # indices into skopt's yi told as penalties
        return popsize

    @property
    def optim(self):
        """The ``skopt.Optimizer`` of the last ``initialize``, as brian2modelfitting's ``SkoptOptimizer.optim``."""
        return self._optim

    def ask(self, n_samples: int) -> list[dict[str, float]]:
        n = int(n_samples)  # a single point needs no constant-liar copy of the optimizer
        with threadpool_limits(limits=1):
            return self.from_internal([self._optim.ask()] if n == 1 else self._optim.ask(n_points=n))

    def tell(self, parameters, errors) -> None:
        super().tell(parameters, errors)
        told = np.asarray(self.errors)
        finite = told[np.isfinite(told)]
        penalty = 1.0
        if finite.size:
            spread = finite.max() - finite.min() or abs(finite.max()) or 1.0
            penalty = float(finite.max() + spread)
        for i in self._penalized:
            self._optim.yi[i] = penalty
        losses = np.asarray(errors, dtype=float).ravel()
        bad = ~np.isfinite(losses)
        offset = len(self._optim.yi)
        self._penalized.extend(offset + int(i) for i in np.flatnonzero(bad))
        losses = np.where(bad, penalty, losses)
        with threadpool_limits(limits=1):
            self._optim.tell(self.to_internal(parameters).tolist(), losses.tolist())
