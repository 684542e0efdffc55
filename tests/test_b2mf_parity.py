"""brian2modelfitting parity beyond b2mf's own tests (tests/b2mf): custom optimizers written for b2mf, the
defaults of fit/refine/constructors, and the error classes b2mf's users catch."""
import numpy as np
import pytest

from neurofit import MSEMetric, NevergradOptimizer, OnlineTraceFitter, SpikeFitter, TraceFitter
from neurofit.fitting.fitters import FitError, FitTypeError
from neurofit.fitting.optimizers import BoundsSpellingError, MethodError, Optimizer, calc_bounds

MODEL = """
dv/dt = (c + x - v)/(5*ms) : volt
c : volt (constant)
"""
DT, N = 1e-4, 200


def _data(c=0.02):
    t = np.arange(N) * DT
    return {"v": (c * (1 - np.exp(-t / 5e-3)))[None, :]}


def _fitter(cls=TraceFitter, **kw):
    return cls(MODEL, input={"x": np.zeros((1, N))}, output=_data(), dt=DT, param_init={"v": 0.0}, **kw)


class B2mfRandomSearch(Optimizer):
    """A custom optimizer as written for b2mf: initialize(names, popsize, rounds, **bounds), lists of values."""

    def initialize(self, parameter_names, popsize, rounds, **params):
        self.names, self.popsize, self.rounds = list(parameter_names), popsize, rounds
        self.bounds = calc_bounds(parameter_names, **params)  # b2mf's spelling: [[low, high], ...]
        self.rng, self.told = np.random.default_rng(0), []
        return popsize

    def ask(self, n_samples):
        return [[float(self.rng.uniform(lo, hi)) for lo, hi in self.bounds] for _ in range(n_samples)]

    def tell(self, parameters, errors):
        self.told.extend(zip(map(tuple, parameters), errors))

    def recommend(self):
        return list(min(self.told, key=lambda t: t[1])[0])


def test_a_b2mf_style_optimizer_runs_a_fit():
    fitter = _fitter(n_samples=20)
    opt = B2mfRandomSearch()
    best, error = fitter.fit(optimizer=opt, metric=MSEMetric(), n_rounds=3, callback=None, c=["0 mV", "40 mV"])
    assert (opt.popsize, opt.rounds, opt.bounds) == (20, 3, [[0.0, 0.04]])
    assert len(opt.told) == 60 and all(isinstance(p, tuple) and len(p) == 1 for p, _ in opt.told)
    assert set(best) == {"c"} and 0 <= best["c"] <= 0.04 and error == min(e for _, e in opt.told)
    with pytest.raises(FitError, match="log-scale"):
        fitter.fit(optimizer=B2mfRandomSearch(), metric=MSEMetric(), restart=True, callback=None,
                   c=["1 mV", "40 mV", "log"])


def test_defaults_are_b2mfs():
    assert _fitter().n_samples == 60
    assert _fitter(OnlineTraceFitter).n_samples == 30
    spikes = SpikeFitter(MODEL, input={"x": np.zeros((1, N))}, output=[np.array([5e-3])], dt=DT, threshold="v > 10*mV",
                         reset="v = 0*mV", param_init={"v": 0.0})
    assert spikes.n_samples == 30
    fitter = _fitter(n_samples=4)
    best, error = fitter.fit(n_rounds=2, callback=None, c=["0 mV", "40 mV"])
    assert isinstance(fitter.optimizer, NevergradOptimizer) and isinstance(fitter.metric, MSEMetric)
    assert fitter.best_params == best and len(fitter.history) == 8


def test_online_t_start_is_the_default_metrics():
    fitter = _fitter(OnlineTraceFitter, n_samples=4, t_start="5 ms")
    fitter.fit(n_rounds=1, callback=None, c=["0 mV", "40 mV"])
    assert fitter.metric.t_start == pytest.approx(5e-3) and fitter.t_start == pytest.approx(5e-3)


def test_fit_n_rounds_0_sets_up_a_refine_with_callback():
    fitter = _fitter(n_samples=4)
    assert fitter.fit(n_rounds=0, metric=MSEMetric(t_start="1 ms"), c=["0 mV", "40 mV"]) == (None, None)
    seen = []
    params, result = fitter.refine({"c": "5 mV"}, callback=lambda *args: seen.append(args))
    assert params["c"] == pytest.approx(0.02, rel=1e-6) and seen
    point, errors, best_params, best_error, index, info = seen[-1]
    assert index == len(seen) - 1 and isinstance(errors, list) and set(info) >= {"objective_errors", "output_var"}
    assert best_error == pytest.approx(min(sum(e) for e in errors))


def test_refine_bounds_keywords_and_errors():
    fitter = _fitter(n_samples=4)
    params, _ = fitter.refine({"c": "5 mV"}, c=["0 mV", "15 mV"])  # no fit: the keywords are the bounds
    assert params["c"] == pytest.approx(0.015)
    with pytest.raises(FitTypeError, match="start parameters"):
        fitter.refine(c=["0 mV", "15 mV"])
    two = TraceFitter(MODEL.replace("(c + x - v)", "(c + d + x - v)") + "d : volt (constant)\n", input={"x": np.zeros((1, N))},
                      output=_data(), dt=DT, n_samples=4)
    with pytest.raises(FitTypeError, match="no bounds for d"):
        two.refine({"c": "5 mV", "d": "0 mV"}, c=["0 mV", "15 mV"])


def test_error_classes():
    assert issubclass(FitTypeError, FitError) and issubclass(FitTypeError, TypeError)
    assert issubclass(MethodError, ValueError) and issubclass(MethodError, AssertionError)
    assert issubclass(BoundsSpellingError, ValueError) and issubclass(BoundsSpellingError, AssertionError)
    fitter = _fitter(n_samples=4)
    fitter.fit(n_rounds=1, callback=None, c=["0 mV", "40 mV"])
    with pytest.raises(FitError, match="restart=True"):
        fitter.fit(n_rounds=1, metric=MSEMetric(), callback=None)
    fitter.fit(n_rounds=1, callback=None)  # None continues with the fit's optimizer and metric
    with pytest.raises(FitError, match="param_init"):
        TraceFitter(MODEL, input={"x": np.zeros((1, N))}, output=_data(), dt=DT, param_init={"V": 0.0})


def test_budget_only_for_methods_that_need_one():
    """NGOpt gets rounds * popsize (as b2mf); DE's candidates do not depend on the number of rounds."""
    ngopt = NevergradOptimizer("NGOpt", seed=1)
    ngopt.initialize(["c"], {"c": [0, 1]}, popsize=5, rounds=3)
    assert ngopt.optim.budget == 15
    asked = []
    for rounds in (2, 50):
        de = NevergradOptimizer("DE", seed=1)
        de.initialize(["c"], {"c": [0, 1]}, popsize=10, rounds=rounds)
        assert de.optim.budget is None
        asked.append(de.ask(10))
    assert asked[0] == asked[1]


def test_penalty_units_follow_the_metric():
    model = MODEL + "pen_v2 = 1e-6*volt**2 : volt**2\npen_1 = 0.5 : 1\n"
    fitter = TraceFitter(model, input={"x": np.zeros((1, N))}, output=_data(), dt=DT, param_init={"v": 0.0},
                         n_samples=4)
    fitter.fit(n_rounds=1, metric=MSEMetric(), penalty="pen_v2", callback=None, c=["0 mV", "40 mV"])
    with pytest.raises(FitError, match="units"):
        fitter.fit(n_rounds=1, penalty="pen_1", callback=None)
    assert fitter.penalty == "pen_v2"  # the refused penalty changed nothing
    fitter.fit(n_rounds=1, metric=MSEMetric(normalization="1 mV"), penalty="pen_1", restart=True, callback=None,
               c=["0 mV", "40 mV"])
