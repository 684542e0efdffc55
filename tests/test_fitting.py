"""TraceFitter / SpikeFitter / OnlineTraceFitter: recovery of known parameters, API behaviour, resume."""
import os

import numpy as np
import pandas as pd
import pytest

import neurofit as nf
from neurofit import models
from neurofit.fitting.fitters import FitError, OnlineTraceFitter, SpikeFitter, TraceFitter
from neurofit.fitting.metrics import FeatureMetric, GammaFactor, MSEMetric, TraceMetric
from neurofit.fitting.optimizers import NevergradOptimizer, Optimizer, SkoptOptimizer

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "brian2modelfitting")
NOISE_FLOOR = 9.95e-7  # V²: MSE of the ground truth against the recorded traces (data README)
TRUTH = {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6, "Cm": 200e-12}
MANUAL_BOUNDS = {"gl": [2e-12, 200e-9], "g_na": [200e-9, 0.4e-3], "g_kd": [200e-9, 200e-6]}


@pytest.fixture(scope="module")
def hh_data():
    inp = pd.read_csv(os.path.join(DATA, "input_traces_hh.csv"), index_col=0).to_numpy()
    out = pd.read_csv(os.path.join(DATA, "output_traces_hh.csv"), index_col=0).to_numpy() * 1e-3
    return inp, out


def hh_fitter(hh_data, cm_free=False, cls=TraceFitter, n_samples=100):
    inp, out = hh_data
    model = models.get("hh_traub", free=["Cm"] if cm_free else [])
    return cls(model=model, input={"I": inp}, output={"v": out}, dt=1e-5, n_samples=n_samples,
               method="exponential_euler", param_init={"v": -65e-3})


def fit_and_refine(hh_data, seed, cm_free):
    fitter = hh_fitter(hh_data, cm_free)
    bounds = dict(MANUAL_BOUNDS, **({"Cm": [20e-12, 2e-9]} if cm_free else {}))
    fitter.fit(n_rounds=10, optimizer=NevergradOptimizer("DE", seed=seed), metric=MSEMetric(), callback=None,
               **bounds)
    refined, result = fitter.refine()
    return fitter, refined, float(np.mean(result.fun ** 2))


@pytest.mark.slow
@pytest.mark.parametrize("cm_free", [False, True])
def test_hh_tutorial_fit_and_refine_reach_the_noise_floor(hh_data, cm_free):
    """The issue's bar: MSE ≤ 1.01 × floor and every parameter within 2 % for ≥ 2 of 3 seeds."""
    good = 0
    for seed in (1, 2, 3):
        fitter, refined, mse = fit_and_refine(hh_data, seed, cm_free)
        within = all(refined[p] == pytest.approx(TRUTH[p], rel=0.02) for p in refined)
        good += mse <= 1.01 * NOISE_FLOOR and within
    assert good >= 2


def test_online_fitter_error_equals_trace_fitter_mse(hh_data):
    candidates = [dict(TRUTH), {**TRUTH, "gl": 20e-9}, {**TRUTH, "g_na": 30e-6}]
    for c in candidates:
        c.pop("Cm")
    offline = hh_fitter(hh_data, n_samples=3)
    online = hh_fitter(hh_data, cls=OnlineTraceFitter, n_samples=3)
    for fitter in (offline, online):
        fitter.metric = MSEMetric(t_start=1e-3)
    e_off = offline._errors(candidates, 0)
    e_on = online._errors(candidates, 0)
    np.testing.assert_allclose(e_on, e_off, rtol=1e-10)
    assert e_off[0] == pytest.approx(NOISE_FLOOR, rel=0.05)


def test_diverging_candidates_get_infinite_error_and_the_fit_goes_on(hh_data):
    fitter = hh_fitter(hh_data, n_samples=3)
    fitter.metric = MSEMetric()
    bad = {"gl": -1e-3, "g_na": 20e-6, "g_kd": 6e-6}  # a huge negative leak: v explodes
    errors = fitter._errors([dict(bad), {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, dict(bad)], 0)
    assert np.isinf(errors[0]) and np.isinf(errors[2])
    assert errors[1] == pytest.approx(NOISE_FLOOR, rel=0.05)
    best, error = fitter.fit(optimizer=NevergradOptimizer("DE", seed=0), metric=MSEMetric(), n_rounds=4,
                             callback=None, gl=[-1e-3, 1e-3], g_na=[200e-9, 0.4e-3], g_kd=[200e-9, 200e-6])
    errors = fitter.results(format="dict")["error"]
    assert errors.size == 12 and np.isinf(errors).any() and np.isfinite(errors).any()
    assert np.isfinite(error) and best["gl"] > 0


def test_resume_after_kill_gives_the_uninterrupted_result(hh_data, tmp_path):
    def run(checkpoint, stop_after=None):
        fitter = hh_fitter(hh_data, n_samples=20)

        def killer(params, errors, best_params, best_error, index, info):
            if stop_after is not None and index + 1 == stop_after:
                raise KeyboardInterrupt  # the job is killed after this round's checkpoint
        return fitter, fitter.fit(optimizer=NevergradOptimizer("DE", seed=5), metric=MSEMetric(), n_rounds=6,
                                  callback=killer, checkpoint=checkpoint, **MANUAL_BOUNDS)

    _, (reference, ref_error) = run(None)
    path = str(tmp_path / "fit.ckpt")
    with pytest.raises(KeyboardInterrupt):
        run(path, stop_after=3)
    fitter, (resumed, res_error) = run(path)
    assert resumed == reference and res_error == ref_error
    assert len(fitter.results()) == 6 * 20


def test_continue_restart_results_and_callback_stop(hh_data):
    fitter = hh_fitter(hh_data, n_samples=10)
    fitter.fit(optimizer=NevergradOptimizer("DE", seed=0), metric=MSEMetric(), n_rounds=2, callback=None,
               **MANUAL_BOUNDS)
    first = fitter.best_error
    fitter.fit(n_rounds=2, callback=None)  # continues with the same optimizer
    assert len(fitter.results()) == 40 and fitter.best_error <= first
    table = fitter.results(format="dataframe")
    assert list(table.columns[:3]) == fitter.parameter_names and table["error"].min() == fitter.best_error
    arrays = fitter.results(format="dict")
    assert arrays["error"].shape == (40,)
    np.testing.assert_array_equal(arrays["error"], table["error"].to_numpy())
    np.testing.assert_array_equal(arrays["gl"], table["gl"].to_numpy())
    calls = []

    def stop_at_second(params, errors, best_params, best_error, index, info):
        calls.append(index)
        return index == 1

    fitter.fit(optimizer=NevergradOptimizer("DE", seed=0), metric=MSEMetric(), n_rounds=5, restart=True,
               callback=stop_at_second, **MANUAL_BOUNDS)
    assert calls == [0, 1] and len(fitter.results()) == 20
    with pytest.raises(FitError, match="format"):
        fitter.results(format="xml")


def test_skopt_gp_and_a_user_optimizer_improve_on_random(hh_data):
    class RandomSearch(Optimizer):
        """A user optimizer: uniform random candidates in the bounds."""

        def initialize(self, parameter_names, bounds, log_scale=(), popsize=None):
            self.names, self.bounds, self.rng, self.best = parameter_names, bounds, np.random.default_rng(0), None

        def ask(self, n_samples):
            return [{p: float(self.rng.uniform(*self.bounds[p])) for p in self.names} for _ in range(n_samples)]

        def tell(self, parameters, errors):
            i = int(np.argmin(errors))
            if self.best is None or errors[i] < self.best[1]:
                self.best = (parameters[i], errors[i])

        def recommend(self):
            return self.best[0]

    bounds = {"gl": [5e-9, 20e-9], "g_na": [10e-6, 40e-6], "g_kd": [3e-6, 12e-6]}
    for optimizer in (SkoptOptimizer("GP", n_initial_points=5, random_state=0), RandomSearch()):
        fitter = hh_fitter(hh_data, n_samples=5)
        best, error = fitter.fit(optimizer=optimizer, metric=MSEMetric(), n_rounds=3, callback=None, **bounds)
        assert set(best) == {"gl", "g_na", "g_kd"}
        assert all(bounds[p][0] <= best[p] <= bounds[p][1] for p in best)
        assert error < 30 * NOISE_FLOOR  # random parameters in these bounds average ~100× the floor
    refined, result = fitter.refine()
    assert np.mean(result.fun ** 2) <= 1.01 * NOISE_FLOOR


def test_user_metric_and_two_output_fit():
    class MaxVoltage(TraceMetric):
        """A user metric: squared difference of each trace's maximum."""

        def get_features(self, model_traces, data_traces, dt):
            return model_traces.max(axis=2) - data_traces.max(axis=1)[None, :]

        def get_errors(self, features):
            return (features ** 2).mean(axis=1)

    model = nf.Model("""
        dv/dt = (El - v + R*I)/tau : volt
        dw/dt = (v - El - w)/tau_w : volt
        tau : second (constant)
        tau_w : second (constant)
        R : ohm (constant)
        """, namespace={"El": "-70 mV"})
    dt, n = 1e-4, 600
    inp = np.zeros((2, n))
    inp[0, 100:400] = 100e-12
    inp[1, 100:500] = 200e-12
    truth = {"tau": 20e-3, "tau_w": 50e-3, "R": 100e6}
    res = nf.simulate(model, truth, {"I": inp}, dt, init={"v": -70e-3}, record=("v", "w"), backend="numpy")
    output = {"v": res.traces["v"][0], "w": res.traces["w"][0]}
    bounds = {"tau": [5e-3, 50e-3], "tau_w": [10e-3, 200e-3], "R": [20e6, 300e6]}
    fitter = TraceFitter(model, input={"I": inp}, output=output, dt=dt, n_samples=30, param_init={"v": -70e-3})
    fitter.fit(optimizer=NevergradOptimizer("DE", seed=0), n_rounds=15, callback=None,
               metric={"v": MSEMetric(normalization=1e-3), "w": MSEMetric(normalization=1e-3)}, **bounds)
    refined, _ = fitter.refine()
    for p in truth:
        assert refined[p] == pytest.approx(truth[p], rel=1e-4)
    both = fitter.generate(output_var=["v", "w"], params=refined)
    np.testing.assert_allclose(both["w"], output["w"], atol=1e-9)
    user = TraceFitter(model, input={"I": inp}, output={"v": output["v"]}, dt=dt, n_samples=30,
                       param_init={"v": -70e-3})
    user.fit(optimizer=NevergradOptimizer("DE", seed=0), metric=MaxVoltage(), n_rounds=10, callback=None, **bounds)
    peak = user.generate_traces().max(axis=1)
    np.testing.assert_allclose(peak, output["v"].max(axis=1), atol=0.2e-3)


def test_feature_metric_fit_matches_spike_features_of_hh(hh_data):
    inp, _ = hh_data
    model = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV").fix({"gl": TRUTH["gl"]})
    truth = {"g_na": TRUTH["g_na"], "g_kd": TRUTH["g_kd"]}
    target = nf.simulate(model, truth, {"I": inp[:4]}, 1e-5, init={"v": -65e-3}, record=("v",))
    metric = FeatureMetric(stim_times=[(5e-3, 10e-3)] * 4,
                           feat_list=["spike_count", "time_to_first_spike", "voltage_base"])
    fitter = TraceFitter(model, input={"I": inp[:4]}, output={"v": target.traces["v"][0]}, dt=1e-5, n_samples=30,
                         param_init={"v": -65e-3}, method="exponential_euler")
    best, error = fitter.fit(optimizer=NevergradOptimizer("DE", seed=1), metric=metric, n_rounds=10, callback=None,
                             g_na=[10e-6, 40e-6], g_kd=[3e-6, 12e-6])
    assert error < 0.05  # summed relative feature differences, averaged over traces
    fitted = nf.simulate(model, best, {"I": inp[:4]}, 1e-5, init={"v": -65e-3}, spikes=True, record=(),
                         ).spike_counts
    reference = nf.simulate(model, truth, {"I": inp[:4]}, 1e-5, init={"v": -65e-3}, spikes=True, record=(),
                            ).spike_counts
    np.testing.assert_array_equal(fitted, reference)


def adex_spike_data(amplitudes, truth, dt=1e-4, n=5000):
    inp = np.zeros((len(amplitudes), n))
    for i, a in enumerate(amplitudes):
        inp[i, 500:4500] = a
    spec = models.SPECS["adex"]
    res = nf.simulate(models.get("adex"), truth, {"I": inp}, dt, init=spec.init, spikes=True, record=(),
                      method="euler")
    return inp, res.spikes[0]


@pytest.mark.slow
def test_adex_spike_fitter_recovers_known_parameters():
    spec = models.SPECS["adex"]
    truth = dict(spec.defaults)
    inp, spikes = adex_spike_data([0.8e-9, 1.0e-9, 1.5e-9], truth)
    assert all(len(s) >= 5 for s in spikes)
    free = {"gl": [10e-9, 60e-9], "b": [0.02e-9, 0.2e-9], "tau_w": [50e-3, 300e-3], "VT": [-55e-3, -45e-3]}
    model = models.get("adex").fix({k: v for k, v in truth.items() if k not in free})
    fitter = SpikeFitter(model, input={"I": inp}, output=spikes, dt=1e-4, n_samples=60, method="euler",
                         param_init=spec.init)
    metric = GammaFactor(delta=2e-3, time=inp.shape[1] * 1e-4)
    best, error = fitter.fit(optimizer=NevergradOptimizer("CMA", seed=2), metric=metric, n_rounds=30,
                             callback=None, **free)
    assert error <= 0.05
    for name in free:
        assert best[name] == pytest.approx(truth[name], rel=0.1)
    generated = fitter.generate_spikes()
    assert [len(s) for s in generated] == pytest.approx([len(s) for s in spikes], abs=1)


def test_v_target_coupling_with_iteration_and_penalty(hh_data):
    inp, out = hh_data
    eqs = models.SPECS["hh_traub"].equations().replace(
        "+ I)/Cm : volt", "+ I)/Cm + coupling*(v_target - v)/(1 + iteration) : volt")
    eqs += "pen = gl/(1*nS) * 1e-9 : 1\n"
    ns = {"El": "-65 mV", "EK": "-90 mV", "ENa": "50 mV", "VT": "-63 mV", "Cm": "200 pF", "coupling": "1/ms"}
    fitter = TraceFitter(eqs, input={"I": inp}, output={"v": out}, dt=1e-5, n_samples=4, param_init={"v": -65e-3},
                         method="exponential_euler", namespace=ns, penalty="pen")
    assert "iteration" in fitter.model.parameters and "v_target" in fitter.model.inputs
    fitter.metric = MSEMetric()
    wrong = [{"gl": 10e-9, "g_na": 12e-6, "g_kd": 6e-6}] * 4  # too little sodium: spikes are missed
    coupled = fitter._errors(wrong, 0)[0]
    late = fitter._errors(wrong, 10 ** 9)[0]
    assert coupled < 0.6 * late  # the coupling pulls v towards the data while iteration is small
    plain = hh_fitter(hh_data, n_samples=4)
    plain.metric = MSEMetric()
    penalty = 10e-9 / 1e-9 * 1e-9  # pen at the end of the run, averaged over traces
    assert late == pytest.approx(plain._errors(wrong, 0)[0] + penalty, rel=1e-6)
    free = fitter.generate_traces(params={"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6})  # iteration 1e9: no coupling
    assert np.mean((free - out) ** 2) == pytest.approx(NOISE_FLOOR, rel=0.01)


def test_bad_fit_arguments_are_one_line_errors(hh_data):
    fitter = hh_fitter(hh_data, n_samples=4)
    cases = [
        (dict(MANUAL_BOUNDS, bogus=[1, 2]), "bogus"),
        ({"gl": [2e-9, 1e-9], "g_na": [1e-6, 1e-4], "g_kd": [1e-6, 1e-4]}, "gl"),
        ({"gl": [1e-9, 2e-9], "g_na": [1e-6, 1e-4]}, "g_kd"),
        ({"gl": [0, 2e-9, "log"], "g_na": [1e-6, 1e-4], "g_kd": [1e-6, 1e-4]}, "log"),
    ]
    for bounds, word in cases:
        with pytest.raises(FitError) as info:
            fitter.fit(optimizer=NevergradOptimizer("DE", seed=0), metric=MSEMetric(), restart=True, callback=None,
                       **bounds)
        assert word in str(info.value) and "\n" not in str(info.value)
    inp, out = hh_data
    with pytest.raises(FitError, match="shape"):
        TraceFitter(models.get("hh_traub"), input={"I": inp}, output={"v": out[:3]}, dt=1e-5)


def test_at_rest_starts_every_trace_at_its_steady_state():
    """at_rest=True: each trace starts at the model's rest under its holding current (El + I_hold / gl for
    the passive model), and refine (finite differences then) recovers the parameters of such data."""
    model = models.get("passive")
    truth = {"gl": 10e-9, "El": -70e-3, "C": 100e-12}
    holding = np.array([20e-12, -30e-12])
    inputs = np.repeat(holding[:, None], 2000, axis=1)
    inputs[:, 500:1500] += 50e-12
    rest = truth["El"] + holding / truth["gl"]
    data = nf.simulate(model, truth, {"I": inputs}, 1e-4, init={"v": rest[None, :]}, method="exponential_euler",
                       backend="numpy").traces["v"][0]
    fitter = TraceFitter(model, {"I": inputs}, {"v": data}, 1e-4, n_samples=2, method="exponential_euler",
                         param_init={"v": "El"}, at_rest=True)
    generated = fitter.generate(params=truth)
    np.testing.assert_allclose(generated[:, 0], rest, rtol=1e-9)
    np.testing.assert_allclose(generated, data, rtol=0, atol=1e-9)
    fitter.metric = MSEMetric()
    fitter.bounds = {"gl": (1e-9, 1e-7), "El": (-0.09, -0.05), "C": (1e-11, 1e-9)}
    refined, _ = fitter.refine(params={"gl": 12e-9, "El": -65e-3, "C": 80e-12})
    for p, value in truth.items():
        assert refined[p] == pytest.approx(value, rel=1e-4)
