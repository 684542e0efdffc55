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


# --- one metric per output (b2mf's multiobjective example: fit(metric=[metric_v, metric_m])) --------------------

TWO = MODEL + "v2 = 2*v : volt\n"
TAU, C_TRUE = 5e-3, 0.02
#: the per-output metrics: v compared from 5 ms on in mV, v2 with zero weight on its last 50 samples, in 10 mV
WEIGHTS = np.r_[np.ones(N - 50), np.zeros(50)]


def _two_outputs():
    """Noise-free data c (1 - exp(-t/tau)) and its double, corrupted where each output's metric does not look: v
    before 5 ms (+3 mV), v2 on its last 50 samples (+7 mV). Exponential Euler is exact for this linear equation."""
    v = _data(C_TRUE)["v"]
    data_v, data_v2 = v.copy(), 2 * v
    data_v[:, :50] += 3e-3
    data_v2[:, -50:] += 7e-3
    fitter = TraceFitter(TWO, input={"x": np.zeros((1, N))}, output={"v": data_v, "v2": data_v2}, dt=DT,
                         param_init={"v": 0.0}, n_samples=6, method="exponential_euler")
    metrics = [MSEMetric(t_start="5 ms", normalization="1 mV"), MSEMetric(t_weights=WEIGHTS, normalization="10 mV")]
    return fitter, metrics, data_v, data_v2


def test_a_list_of_metrics_is_one_metric_per_output_in_order():
    fitter, metrics, data_v, data_v2 = _two_outputs()
    with pytest.warns(DeprecationWarning, match="list of metrics"):
        best, error = fitter.fit(NevergradOptimizer("DE", seed=3), metrics, n_rounds=2, callback=None,
                                 c=["0 mV", "40 mV"])
    assert fitter.metric == {"v": metrics[0], "v2": metrics[1]}
    # the error of c = 10 mV, from the closed form: each output's normalized mean squared error, summed
    model_v = 0.01 * (1 - np.exp(-np.arange(N) * DT / TAU))
    expected_v = np.mean(((model_v - data_v[0])[50:] / 1e-3) ** 2)
    expected_v2 = np.sum(WEIGHTS * ((2 * model_v - data_v2[0]) / 1e-2) ** 2) / WEIGHTS.sum()
    assert fitter.error({"c": "10 mV"}) == pytest.approx(expected_v + expected_v2, rel=1e-9)
    # the same fit with the dict {output: metric}: the same candidates and errors
    same, _, _, _ = _two_outputs()
    same.fit(NevergradOptimizer("DE", seed=3), dict(zip(["v", "v2"], metrics)), n_rounds=2, callback=None,
             c=["0 mV", "40 mV"])
    assert same.results("list") == fitter.results("list")
    assert set(fitter.best_objective_errors_normalized) == {"v", "v2"}
    with pytest.warns(DeprecationWarning):  # continuing with the same list is no change of metric
        fitter.fit(metric=metrics, n_rounds=1, callback=None)
    assert len(fitter.history) == 18


def test_refine_uses_each_outputs_metric_from_a_list():
    """Each output's residuals from its own metric: the corrupted samples are out of both windows, so refine finds
    c = 20 mV exactly (with either Jacobian), the normalized errors at 0."""
    for calc_gradient in (False, True):
        fitter, metrics, _, _ = _two_outputs()
        with pytest.warns(DeprecationWarning):
            fitter.fit(NevergradOptimizer("DE", seed=3), metrics, n_rounds=0, c=["0 mV", "40 mV"])
        params, result = fitter.refine({"c": "5 mV"}, calc_gradient=calc_gradient)
        assert params["c"] == pytest.approx(C_TRUE, rel=1e-7)
        assert max(result.objective_errors_normalized.values()) < 1e-12
        with pytest.warns(DeprecationWarning):  # refine takes the list too
            again, _ = fitter.refine({"c": "5 mV"}, metric=metrics, calc_gradient=calc_gradient)
        assert again["c"] == pytest.approx(C_TRUE, rel=1e-7)
        # without the metrics (t_start 0, no weights) the corrupted samples pull c away
        off, _ = fitter.refine({"c": "5 mV"}, metric=MSEMetric(), calc_gradient=calc_gradient)
        assert abs(off["c"] - C_TRUE) > 1e-4


def test_metrics_per_output_are_checked():
    fitter, metrics, _, _ = _two_outputs()
    with pytest.warns(DeprecationWarning), pytest.raises(FitTypeError, match="a list of 1 metrics for 2 outputs"):
        fitter.fit(metric=metrics[:1], n_rounds=1, callback=None, c=["0 mV", "40 mV"])
    with pytest.raises(FitError, match="no metric for the output\\(s\\) v2"):
        fitter.fit(metric={"v": metrics[0]}, n_rounds=1, callback=None, c=["0 mV", "40 mV"])
    assert fitter.optimizer is None  # refused before anything changed
    single = _fitter(n_samples=2)
    with pytest.warns(DeprecationWarning):  # one output: a list of one metric is that metric
        single.fit(NevergradOptimizer("DE", seed=0), [metrics[0]], n_rounds=1, callback=None, c=["0 mV", "40 mV"])
    assert single.metric is metrics[0]


def test_fit_prints_b2mfs_callback_text(capsys):
    """fit(callback='text') is b2mf's callback_text, with the output's name after the error."""
    fitter = _fitter(n_samples=3)
    fitter.fit(NevergradOptimizer("DE", seed=0), MSEMetric(), n_rounds=1, c=["0 mV", "40 mV"])
    shown = f"{fitter.best_params['c']:.3g}"
    assert capsys.readouterr()[0] == f"Round 0: Best parameters c={shown}\n         Best error: {fitter.best_error:.4g} (v)\n"
    refused = _fitter(n_samples=3)
    with pytest.raises(TypeError, match="valid values are 'text', 'progressbar', None or a function"):
        refused.fit(n_rounds=1, callback="verbose", c=["0 mV", "40 mV"])
    assert refused.optimizer is None  # refused before anything changed
