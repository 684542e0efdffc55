"""Simulation-based inference (neurofit.inference.features, neurofit.inference.inferencer, neurofit.inference.diagnostics).

Ground truth: brian2modelfitting's Inferencer tutorial (HH, E_Na 53 mV, E_K -107 mV, E_l -70 mV,
VT -60 mV, g_l 10 nS, Cm 200 pF; truth g_Na 32 uS, g_K 1 uS), data simulated here with a step
current and 0.2 mV observation noise; calibration on a noisy rate model. torch runs on one thread.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from neurofit import Model, models, simulate
from neurofit.data.stimuli import step, steps
from neurofit.inference import diagnostics
from neurofit.inference.features import FeatureSet, RawTraces, detect_spikes, stimulus_windows
from neurofit.inference.inferencer import BoxPrior, Inferencer, chunk_range, set_threads
from neurofit.workflow.infer_section import (
    CALIBRATION_FILES,
    INFERENCE_FILES,
    gather_training_chunks,
    run_calibration,
    run_inference,
    run_training_chunk,
)
from neurofit.workflow.study import ConfigError, Study

torch.set_num_threads(1)

HH_SPEC = models.SPECS["hh_inferencer"]  # the manual's Inferencer tutorial model
HH_EQS = HH_SPEC.equations()
HH_NS = {name: quantity for name, (quantity, _) in HH_SPEC.constants.items()}
HH_INIT = HH_SPEC.init
HH_EVENTS = {"threshold": "m > 0.5", "refractory": "m > 0.5"}
HH_DT, HH_STEPS, NOISE = 0.1e-3, 10_000, 0.2e-3  # 1 s at 0.1 ms as in the tutorial's synthetic data

RATE_EQS = """
dr/dt = (-r + 1/(1 + exp(-a*(I_ext - theta))) - 1/(1 + exp(a*theta)))/tau + sigma*xi*tau**-0.5 : 1
a : 1 (constant)
theta : 1 (constant)
"""
RATE_NS = {"tau": "10 ms", "sigma": 0.05}
RATE_TRUTH = {"a": 1.2, "theta": 2.8}


def hh_data(model, truth, amplitudes=("0.5 nA",), spikes=False):
    """Steps (100–900 ms) and the truth's membrane potential plus seeded 0.2 mV noise."""
    current = steps(HH_STEPS, HH_DT, list(amplitudes), "100 ms", "900 ms")
    result = simulate(model, truth, {"I": current}, HH_DT, init=HH_INIT, method="exponential_euler", spikes=spikes)
    v = result.traces["v"][0] + np.random.default_rng(1).normal(0, NOISE, current.shape)
    return current, v, result.spikes[0] if spikes else None


def rate_inferencer(**kwargs):
    current = steps(400, 0.5e-3, [1.0, 2.0, 4.0], "20 ms", "200 ms")
    result = simulate(Model(RATE_EQS, namespace=RATE_NS), RATE_TRUTH, {"I_ext": current}, 0.5e-3, init={"r": 0.0},
                      record="r", method="euler", seed=123)
    settings = dict(features={"r": ["v_mean", "v_std"]}, window=["40 ms", "200 ms"], namespace=RATE_NS,
                    param_init={"r": 0.0}, method="euler", seed=0)
    settings.update(kwargs)
    inferencer = Inferencer(0.5e-3, RATE_EQS, {"I_ext": current}, {"r": result.traces["r"][0]}, **settings)
    inferencer.init_prior(a=[0.5, 2.0], theta=[1.0, 4.0])
    return inferencer


@pytest.fixture(scope="module")
def rate_npe():
    """A quickly trained NPE (MDN) on the noisy rate model."""
    inferencer = rate_inferencer()
    inferencer.infer(n_samples=600, density_estimator_model="mdn")
    return inferencer


# --- features -----------------------------------------------------------------------------------------

def test_library_features_match_their_definitions():
    dt, n = 1e-4, 1000
    t = np.arange(n) * dt
    rng = np.random.default_rng(0)
    trace = -0.07 + 0.001 * rng.standard_normal(n)
    trace[400:600] += 0.02 + 0.01 * np.sin(t[400:600] * 300)
    windows = stimulus_windows({"I": step(n, dt, 1e-9, 0.04, 0.06)[None]}, dt)
    assert windows == [(400, 600)]
    names = ["v_max", "v_mean", "v_std", "v_kurtosis", "resting_potential", "voltage_deflection"]
    fs = FeatureSet({"v": names + [lambda x: x[0], np.median]}, windows, dt, n)
    x = fs({"v": np.stack([trace, 2 * trace])[:, None, :]})
    w = trace[400:600]
    rest = trace[40:360].mean()
    expected = [w.max(), w.mean(), w.std(), ((w - w.mean()) ** 4).mean() / w.var() ** 2, rest,
                trace[580:600].mean() - rest, trace[0], np.median(trace)]
    np.testing.assert_allclose(x[0], expected, rtol=1e-12)
    np.testing.assert_allclose(x[1, :3], 2 * np.array(expected[:3]), rtol=1e-12)
    assert fs.names == [f"v[0].{k}" for k in names] + ["v[0].f6", "v[0].median"]


def test_spike_features_count_spikes_inside_the_window():
    windows = [(100, 900), (100, 900)]
    fs = FeatureSet({"spikes": ["spike_count", "mean_isi", "first_spike_latency"]}, windows, 1e-4, 1000)
    trains = [[np.array([0.005, 0.02, 0.03, 0.06, 0.095]), np.array([])]]
    np.testing.assert_allclose(fs({}, trains)[0], [3, 0.02, 0.01, 0, 0.08, 0.08])


def test_efel_features_and_spike_detection():
    dt, n = 1e-4, 2000
    v = np.full((1, n), -0.07)
    for k in (600, 900, 1300):
        v[0, k:k + 10] = 0.02
    np.testing.assert_allclose(detect_spikes(v, dt, -0.02)[0], [0.06, 0.09, 0.13])
    fs = FeatureSet({"v": ["efel:spike_count", "voltage_base", "v_max"]}, [(500, 1500)], dt, n)
    x = fs({"v": v[None]})[0]
    np.testing.assert_allclose(x, [3, -70.0, 0.02])  # eFEL keeps its units (mV)


def test_feature_errors_are_one_line_and_name_the_feature():
    with pytest.raises(ValueError, match=r"features\['v'\]: unknown feature 'v_mode'"):
        FeatureSet({"v": ["v_mode"]}, [(10, 20)], 1e-4, 100)
    with pytest.raises(ValueError, match="spike_count.*mean_isi"):
        FeatureSet({"spikes": ["AP_amplitude"]}, [(10, 20)], 1e-4, 100)
    with pytest.raises(ValueError, match="resting_potential .* need time before the stimulus"):
        FeatureSet({"v": ["resting_potential"]}, [(0, 20)], 1e-4, 100)
    with pytest.raises(ValueError, match="window"):
        stimulus_windows({"I": np.zeros((1, 100))}, 1e-4, ["5 ms", "50 ms"])


def test_raw_traces_are_block_averaged():
    raw = RawTraces(["v"], 2, 1000, max_samples=256)
    traces = np.arange(2 * 2 * 1000, dtype=float).reshape(2, 2, 1000)
    x = raw({"v": traces})
    assert raw.factor == 4 and x.shape == (2, 2 * 250) and len(raw.names) == 500
    np.testing.assert_allclose(x[0, :2], [1.5, 5.5])


# --- priors -------------------------------------------------------------------------------------------

def test_priors_uniform_and_log_uniform_in_si():
    from sbi.utils.user_input_checks import process_prior
    inferencer = rate_inferencer()
    inferencer.init_prior(a=["0.1", 2.0, "log"], theta=[1, 4])
    assert inferencer.bounds == {"a": pytest.approx((0.1, 2.0)), "theta": (1, 4)} and inferencer.log_scale == {"a"}
    inferencer.init_prior(a=[0.5, 2.0], theta="2.8")
    assert inferencer.fixed == {"theta": pytest.approx(2.8)} and inferencer.param_names == ["a"]
    prior = BoxPrior([1e-6, 0.0], [1e-4, 2.0], [True, False])
    checked, n_params, _ = process_prior(prior)
    assert n_params == 2
    torch.manual_seed(0)
    s = checked.sample((20_000,)).numpy().astype(float)
    assert s[:, 0].min() >= 1e-6 * 0.999 and s[:, 0].max() <= 1e-4 * 1.001
    assert np.histogram(np.log10(s[:, 0]), bins=4, range=(-6, -4))[0].min() > 4500  # uniform in log
    assert np.histogram(s[:, 1], bins=4, range=(0, 2))[0].min() > 4500
    lp = prior.log_prob(torch.tensor([[1e-5, 1.0]]))
    np.testing.assert_allclose(lp.item(), -np.log(1e-5 * np.log(100)) - np.log(2), rtol=1e-5)
    assert not prior.support.check(torch.tensor([[2e-4, 1.0]])).item()
    with pytest.raises(ValueError, match="no bounds for parameter"):
        rate_inferencer().init_prior(a=[1, 2])
    with pytest.raises(ValueError, match="a log-scale range needs low > 0"):
        rate_inferencer().init_prior(a=[0, 2, "log"], theta=[1, 4])


# --- the manual's toy case ---------------------------------------------------------------------------

def test_hh_two_parameters_npe_recovers_the_truth():
    model = Model(HH_EQS, namespace=HH_NS, **HH_EVENTS)
    current, v, _ = hh_data(model, {"g_Na": 32e-6, "g_K": 1e-6})
    inferencer = Inferencer(HH_DT, HH_EQS, {"I": current}, {"v": v}, namespace=HH_NS, method="exponential_euler",
                            features={"v": ["v_max", "v_mean", "v_std", "resting_potential"]}, noise={"v": NOISE},
                            param_init=HH_INIT, seed=0, **HH_EVENTS)
    inferencer.infer(n_samples=3000, g_Na=["1 uS", "100 uS"], g_K=["0.1 uS", "10 uS"])
    samples = inferencer.sample((10_000,))
    truth = np.array([32e-6, 1e-6])
    np.testing.assert_allclose(samples.mean(axis=0), truth, rtol=0.1)
    lo, hi = np.quantile(samples, [0.05, 0.95], axis=0)
    assert np.all((lo < truth) & (truth < hi)), (lo, hi)
    assert inferencer.n_invalid == 0 and inferencer.theta.shape == (3000, 2)


@pytest.mark.slow
def test_hh_four_parameters_with_spike_features_cover_the_truth():
    eqs = HH_EQS + "g_l : siemens (constant)\nCm : farad (constant)\n"
    namespace = {k: v for k, v in HH_NS.items() if k not in ("g_l", "Cm")}
    truth = {"g_Na": 32e-6, "g_K": 1e-6, "g_l": 10e-9, "Cm": 200e-12}
    model = Model(eqs, namespace=namespace, **HH_EVENTS)
    current, v, trains = hh_data(model, truth, ["0.05 nA", "0.5 nA"], spikes=True)  # g_l, Cm: subthreshold step
    features = {"v": ["v_max", "v_mean", "v_std", "v_kurtosis", "resting_potential", "voltage_deflection"],
                "spikes": ["spike_count", "mean_isi", "first_spike_latency"]}
    inferencer = Inferencer(HH_DT, eqs, {"I": current}, {"v": v, "spikes": trains}, features=features,
                            namespace=namespace, method="exponential_euler", noise={"v": NOISE}, param_init=HH_INIT,
                            seed=0, **HH_EVENTS)
    inferencer.infer(n_samples=4000, g_Na=["1 uS", "100 uS"], g_K=["0.1 uS", "10 uS"], g_l=["1 nS", "100 nS"],
                     Cm=["20 pF", "2 nF"])
    samples = inferencer.sample((10_000,))
    lo, hi = np.quantile(samples, [0.025, 0.975], axis=0)
    values = np.array(list(truth.values()))
    assert np.all((lo < values) & (values < hi)), (lo / values, hi / values)


# --- calibration ---------------------------------------------------------------------------------------

def test_expected_coverage_on_the_rate_model():
    inferencer = rate_inferencer()
    inferencer.infer(n_samples=2000, density_estimator_model="mdn")
    result = diagnostics.simulation_based_calibration(inferencer, n_tests=200, num_posterior_samples=500)
    assert result.ranks.shape == (200, 2) and result.n_invalid == 0
    coverage = result.coverage([0.5, 0.9])
    np.testing.assert_allclose(coverage, [[0.5, 0.5], [0.9, 0.9]], atol=0.1)
    hpd = diagnostics.run_sbc(inferencer.posterior, result.theta, result.x, 500, kind="hpd")
    np.testing.assert_allclose(hpd.coverage([0.5, 0.9])[:, 0], [0.5, 0.9], atol=0.1)
    samples = np.stack([inferencer.sample((500,), x=x, seed=k) for k, x in enumerate(result.x[:50])])
    direct = diagnostics.empirical_coverage(samples, result.theta[:50], [0.5, 0.9])
    np.testing.assert_allclose(direct, coverage, atol=0.2)
    assert set(result.checks()) >= {"ks_pvals", "c2st_ranks"}


def test_diagnostic_figures():
    rng = np.random.default_rng(0)
    result = diagnostics.SBCResult(rng.integers(0, 100, (50, 2)), rng.random((50, 2)), rng.random((50, 3)),
                                   rng.random((50, 2)), 100, "marginal")
    inside = ((result.ranks >= 25) & (result.ranks <= 75)).mean(axis=0)
    np.testing.assert_array_equal(result.coverage([0.5, 1.0]), [inside, [1.0, 1.0]])
    for fig in (diagnostics.plot_rank_histograms(result, ["a", "b"]),
                diagnostics.plot_coverage(diagnostics.LEVELS, result.coverage(), ["a", "b"], 50),
                diagnostics.plot_predictive(np.arange(100) * 1e-4, rng.random((2, 100)), rng.random((20, 2, 100)),
                                            {"I": rng.random((2, 100))})):
        assert isinstance(fig, Figure) and fig.axes
    samples = np.column_stack([rng.normal(32e-6, 2e-6, 5000), rng.normal(1e-6, 5e-8, 5000), rng.random(5000)])
    fig = diagnostics.plot_posterior(samples, ["g_Na", "g_K", "c"], {"g_Na": "siemens", "g_K": "siemens"},
                                     truth={"g_Na": 32e-6, "g_K": 1e-6})
    assert len(fig.axes) == 6  # 3 marginals + 3 pairs
    assert [ax.get_xlabel() for ax in fig.axes[-3:]] == ["g_Na (uS)", "g_K (uS)", "c"]
    lo, hi = fig.axes[0].get_xlim()  # zoomed on the samples (0.5-99.5 % range + 10 %), in uS
    assert 24 < lo < 28 and 36 < hi < 40
    assert fig.axes[0].lines[-1].get_xdata()[0] == pytest.approx(32.0)  # the truth, in uS


# --- methods, rounds, persistence ------------------------------------------------------------------------

@pytest.mark.parametrize("method, estimator", [("NLE", "maf"), ("NRE", "resnet")])
def test_nle_and_nre_end_to_end(method, estimator, tmp_path):
    inferencer = rate_inferencer()
    inferencer.infer(n_samples=500, inference_method=method, density_estimator_model=estimator)
    samples = inferencer.sample((100,))
    assert samples.shape == (100, 2) and np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples.mean(axis=0), list(RATE_TRUTH.values()), rtol=0.2)
    inferencer.save_posterior(tmp_path / "posterior.pt")
    loaded = rate_inferencer()
    loaded.load_posterior(tmp_path / "posterior.pt")
    np.testing.assert_array_equal(loaded.sample((20,), seed=5), inferencer.sample((20,), seed=5))


def test_save_load_sample_gives_identical_samples(rate_npe, tmp_path):
    a = rate_npe.sample((1000,), seed=7)
    np.testing.assert_array_equal(a, rate_npe.sample((1000,), seed=7))
    assert not np.array_equal(a, rate_npe.sample((1000,), seed=8))
    rate_npe.save_posterior(tmp_path / "posterior.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["posterior.pt"]  # atomic: no temporary left
    other = rate_inferencer(seed=3)
    other.load_posterior(tmp_path / "posterior.pt")
    np.testing.assert_array_equal(other.sample((1000,), seed=7), a)
    assert other.param_names == ["a", "theta"] and other.bounds == rate_npe.bounds
    with pytest.raises(ValueError, match="not a neurofit posterior"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        other.load_posterior(tmp_path / "other.pt")


def test_summary_statistics_round_trip(rate_npe, tmp_path):
    rate_npe.save_summary_statistics(tmp_path / "data.npz")
    theta, x = rate_inferencer().load_summary_statistics(tmp_path / "data.npz")
    np.testing.assert_array_equal(theta, rate_npe.theta)
    np.testing.assert_array_equal(x, rate_npe.x)


def test_multi_round_uses_the_posterior_as_proposal_and_restart_starts_over():
    inferencer = rate_inferencer()
    inferencer.infer(n_samples=300, n_rounds=2, density_estimator_model="mdn")
    assert inferencer._round == 2
    lo, hi = np.quantile(inferencer.theta, [0.05, 0.95], axis=0)
    assert np.all(hi - lo < 0.5 * np.array([1.5, 3.0]))  # round 2 drew from a posterior, not the prior
    inferencer.infer(n_samples=300, density_estimator_model="mdn", a=[0.5, 2.0])  # same bounds: round 3
    assert inferencer._round == 3
    inferencer.infer(n_samples=300, density_estimator_model="mdn", restart=True)
    assert inferencer._round == 1
    with pytest.raises(ValueError, match="bounds changed while continuing"):
        inferencer.infer(n_samples=300, a=[0.1, 3.0])


def test_old_method_names_are_aliases():
    from sbi.inference import NLE, NPE, NRE
    inferencer = rate_inferencer()
    assert isinstance(inferencer.init_inference("SNPE", "mdn"), NPE)
    assert isinstance(inferencer.init_inference("snle", "maf"), NLE)
    assert isinstance(inferencer.init_inference("SNRE", "mlp"), NRE)
    with pytest.raises(ValueError, match=r"inference_method = 'ABC' is not valid \(valid: NPE, NLE, NRE"):
        inferencer.init_inference("ABC")
    with pytest.raises(ValueError, match="density_estimator_model = 'resnet' is not valid for NPE"):
        inferencer.init_inference("NPE", "resnet")


def test_automatic_features_with_embedding_nets():
    inferencer = rate_inferencer(features=None, raw_samples=40)
    assert len(inferencer.feature_names) == 3 * 40 and inferencer.x_o.shape == (120,)
    recorded = inferencer.output["r"]  # 3 traces of 400 steps → 40 means of 10 samples each
    np.testing.assert_allclose(inferencer.x_o, recorded.reshape(3, 40, 10).mean(axis=-1).ravel(), rtol=1e-12)
    theta = inferencer.generate_training_data(200)
    x = inferencer.extract_summary_statistics(theta)
    for embedding in (None, "cnn", torch.nn.Sequential(torch.nn.Linear(120, 8), torch.nn.ReLU())):
        kwargs = {} if embedding is None else {"embedding_net": embedding}
        inference = inferencer.init_inference("NPE", "mdn", **kwargs)
        inferencer.infer_step(inferencer.prior, inference, theta=theta, x=x, train_kwargs={"max_num_epochs": 3})
        assert inferencer.sample((10,)).shape == (10, 2)
    with pytest.raises(ValueError, match="embedding_net = 'rnn' is not valid"):
        inferencer.init_inference("NPE", "maf", embedding_net="rnn")


def test_pairplots_correlations_and_generated_traces(rate_npe):
    samples = rate_npe.sample((500,))
    fig, axes = rate_npe.pairplot(points=RATE_TRUTH, limits={"a": [0.5, 2.0]}, labels={"a": "gain"},
                                  ticks={"theta": [1, 4]})
    assert fig is not None and np.size(axes) == 4
    fig, _ = rate_npe.conditional_pairplot(condition=samples[:1], resolution=20)
    matrix = rate_npe.conditional_corrcoeff(condition=RATE_TRUTH, resolution=20)
    assert matrix.shape == (2, 2) and np.allclose(np.diag(matrix), 1, atol=1e-3)
    mean_trace = rate_npe.generate_traces(n_samples=100)
    assert mean_trace.shape == (3, 400)
    data = rate_npe.output["r"]  # within the model's own noise (RMS 0.045 at the truth; 0.16 at a=0.6, theta=1.2)
    assert np.sqrt(np.mean((mean_trace - data) ** 2)) < 0.08
    predictive = rate_npe.generate_traces(n_samples=5, output_var=["r"], reduce=None)
    assert predictive["r"].shape == (5, 3, 400)
    assert np.all(np.sqrt(np.mean((predictive["r"] - data) ** 2, axis=(1, 2))) < 0.08)
    with pytest.raises(ValueError, match="points: missing value"):
        rate_npe.pairplot(points={"a": 1.0})


# --- chunks, invalid simulations, config -------------------------------------------------------------------

def test_chunked_training_data_equal_the_unchunked_run():
    inferencer = rate_inferencer(noise={"r": 0.01}, batch_size=7)  # noise in the model and on the observation
    theta = inferencer.generate_training_data(50)
    x = inferencer.extract_summary_statistics(theta)
    chunks = [inferencer.simulate_training_chunk(50, i, 3) for i in range(3)]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), theta)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), x)
    assert [chunk_range(50, i, 3) for i in range(3)] == [(0, 16), (16, 33), (33, 50)]
    assert not np.array_equal(x, inferencer.extract_summary_statistics(theta, seed=1))


def test_invalid_simulations_are_excluded_and_counted():
    eqs = "dr/dt = (-r + sqrt(k))/tau : 1\nk : 1 (constant)\n"
    current = np.zeros((1, 100))
    inferencer = Inferencer(1e-3, eqs, {"I": current}, {"r": np.full((1, 100), 0.5)}, namespace={"tau": "10 ms"},
                            features={"r": ["v_mean", "v_std"]}, param_init={"r": 0.0}, window=["0 ms", "100 ms"],
                            method="euler")
    inferencer.init_prior(k=[-1.0, 1.0])
    theta = inferencer.generate_training_data(400)
    x = inferencer.extract_summary_statistics(theta)
    bad = ~np.all(np.isfinite(x), axis=1)
    np.testing.assert_array_equal(bad, theta[:, 0] < 0)
    with pytest.warns(UserWarning, match=f"{bad.sum()} of 400 simulations are invalid"):
        inferencer.infer(theta=theta, x=x, density_estimator_model="mdn", train_kwargs={"max_num_epochs": 5})
    assert inferencer.n_invalid == bad.sum() > 100
    with pytest.raises(ValueError, match="all 10 simulations are invalid"):
        inferencer.train(inferencer.init_inference("NPE", "mdn"), theta[:10], np.full((10, 2), np.nan))


def _study(tmp_path, sbc=0) -> dict:
    current = steps(400, 0.5e-3, [1.0, 2.0, 4.0], "20 ms", "200 ms")
    result = simulate(Model(RATE_EQS, namespace=RATE_NS), RATE_TRUTH, {"I_ext": current}, 0.5e-3, init={"r": 0.0},
                      record="r", method="euler", seed=123)
    np.save(tmp_path / "input.npy", current)
    np.save(tmp_path / "output.npy", result.traces["r"][0])
    return {"model": {"equations": RATE_EQS, "namespace": RATE_NS, "inputs": ["I_ext"]},
            "data": {"dt": "0.5 ms", "inputs": {"I_ext": {"path": str(tmp_path / "input.npy"), "unit": "1"}},
                     "outputs": {"r": {"path": str(tmp_path / "output.npy"), "unit": "1"}}},
            "simulate": {"init": {"r": 0}, "method": "euler"},
            "infer": {"bounds": {"a": [0.5, 2.0], "theta": [1.0, 4.0]}, "features": {"r": ["v_mean", "v_std"]},
                      "window": ["40 ms", "200 ms"], "noise": {"r": 0.01}, "n_samples": 300,
                      "density_estimator": "mdn", "batch_size": 64, "num_posterior_samples": 500,
                      "sbc_simulations": sbc}}


def _load(section: dict) -> Study:
    return Study.from_config({"studies": {"study": section}}, "study")


def test_config_chunks_gather_and_infer(tmp_path):
    study = _load(_study(tmp_path, sbc=30))
    paths = [run_training_chunk(study, i, 3, tmp_path / f"chunk_{i}.npz") for i in (2, 0, 1)]
    theta, x = gather_training_chunks(paths)
    reference = rate_inferencer(batch_size=64, noise={"r": 0.01})
    np.testing.assert_array_equal(theta, reference.generate_training_data(300))
    np.testing.assert_array_equal(x, reference.extract_summary_statistics(theta))
    with pytest.raises(ValueError, match=r"need each of 0 .. 2 once \(missing \[1\]\)"):
        gather_training_chunks(paths[:2])
    written = run_inference(study, paths, tmp_path / "out")
    assert sorted(written) == sorted(INFERENCE_FILES) and all(p.exists() for p in written.values())
    samples = pd.read_parquet(written["samples.parquet"])
    assert list(samples.columns) == ["a", "theta"] and len(samples) == 500
    summary = json.loads(written["summary.json"].read_text())
    assert summary["n_simulations"] == 300 and summary["n_invalid"] == 0
    for name in ("a", "theta"):
        assert summary["parameters"][name]["mean"] == pytest.approx(samples[name].mean(), rel=1e-12)
    calibration = run_calibration(study, written["posterior.pt"], tmp_path / "out")
    assert sorted(calibration) == sorted(CALIBRATION_FILES) and all(p.exists() for p in calibration.values())
    report = json.loads(calibration["calibration.json"].read_text())
    assert report["n_tests"] == 30 and len(report["coverage"]["a"]) == len(report["levels"])
    assert report["coverage"]["a"][-1] >= 0.8  # the widest (0.95) intervals hold nearly every truth


def test_config_errors_name_the_key(tmp_path):
    section = _study(tmp_path)
    section["infer"]["n_sample"] = 10
    with pytest.raises(ConfigError, match=r"studies.study.infer.n_sample: unknown key \(valid keys: bounds, "):
        _load(section)
    section = _study(tmp_path)
    section["infer"]["method"] = "SMC"
    with pytest.raises(ConfigError, match=r"studies.study.infer.method: 'SMC' is not valid \(valid: NPE, NLE"):
        _load(section)
    section = _study(tmp_path)
    section["infer"]["bounds"] = {"a": [0.5, 2.0]}
    with pytest.raises(ConfigError, match=r"studies.study.infer.bounds: no bounds for parameter\(s\) theta"):
        run_training_chunk(_load(section), 0, 1, tmp_path / "c.npz")
    section = _study(tmp_path)
    section["infer"]["bounds"]["a"] = [2.0, 0.5]
    with pytest.raises(ConfigError, match=r"studies.study.infer.bounds.a = \[2, 0.5\]: need finite low < high"):
        run_training_chunk(_load(section), 0, 1, tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


# --- set-up errors and threads --------------------------------------------------------------------------

def test_inferencer_errors_are_one_line():
    current = np.zeros((1, 100))
    with pytest.raises(ValueError, match=r"features\['w'\]: not an output \(outputs: r\)"):
        rate_inferencer(features={"w": ["v_max"]})
    with pytest.raises(ValueError, match="output\\['spikes'\\] needs a model threshold"):
        Inferencer(1e-3, "dv/dt = -v/(10*ms) : volt", {"I": current}, {"spikes": [np.array([])]})
    with pytest.raises(ValueError, match=r"noise: v not a trace output"):
        rate_inferencer(noise={"v": 0.1})
    with pytest.raises(ValueError, match="no posterior yet"):
        rate_inferencer().sample((10,))
    with pytest.raises(ValueError, match="n_rounds = 0"):
        rate_inferencer().infer(n_samples=10, n_rounds=0)


def test_torch_threads_follow_the_argument_or_the_environment(monkeypatch):
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("NEUROFIT_THREADS", "1")
        assert set_threads() == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads = 0"):
            set_threads(0)
        monkeypatch.delenv("NEUROFIT_THREADS")
        assert set_threads() == 1
    finally:
        torch.set_num_threads(1)
