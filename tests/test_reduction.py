"""Model reduction / fitting under an experiment protocol (CompNeuroPy's opt_neuron, done right)."""
import numpy as np
import pytest

import neurofit as nf
from neurofit import models
from neurofit.fitting.metrics import GammaFactor
from neurofit.reduction.optneuron import Chunk, Experiment, OptNeuron, ReductionError

LINEAR = nf.Model("dr/dt = (a*I_in + b - r)/tau : 1\na : 1 (constant)\nb : 1 (constant)",
                  namespace={"tau": "1 ms"}, inputs=["I_in"])
LEVELS = [0.0, 0.5, 1.0, 2.0]


def linear_experiment():
    return Experiment([Chunk({"I_in": np.full(200, level)}, record=("r",)) for level in LEVELS], dt="0.1 ms")


def steady_state_loss(ist, soll):
    return [(rec["r"][0, -1] - target) ** 2 for rec, target in zip(ist.recordings, soll)]


def test_data_mode_recovers_a_linear_rate_model():
    a, b = 1.7, -0.3
    soll = [a * level + b for level in LEVELS]  # the data: steady-state rates at four inputs
    opt = OptNeuron(linear_experiment(), steady_state_loss, {"a": [0, 5], "b": [-2, 2]}, LINEAR, results_soll=soll)
    result = opt.run(max_evals=600)
    assert result.best_params["a"] == pytest.approx(a, abs=1e-3)
    assert result.best_params["b"] == pytest.approx(b, abs=1e-3)
    assert len(result.parts) == 4 and result.loss == pytest.approx(sum(result.parts))
    assert len(result.history) == 600 and result.loss == min(h["loss"] for h in result.history)
    # the re-simulated recordings of the best parameters are in the result
    assert result.results.recordings[2]["r"][0, -1] == pytest.approx(a * 1.0 + b, abs=1e-3)


def test_constants_and_expressions_in_bounds():
    soll = [1.7 * level + 0.85 for level in LEVELS]
    opt = OptNeuron(linear_experiment(), steady_state_loss, {"a": [0, 5], "b": "a/2"}, LINEAR, results_soll=soll)
    result = opt.run(max_evals=300)
    assert result.best_params["a"] == pytest.approx(1.7, abs=1e-3)
    assert result.best_params["b"] == pytest.approx(result.best_params["a"] / 2, rel=1e-12)
    fixed = OptNeuron(linear_experiment(), steady_state_loss, {"a": [0, 5], "b": 0.85}, LINEAR, results_soll=soll)
    assert fixed.run(max_evals=300).best_params["b"] == 0.85


@pytest.mark.slow
def test_target_mode_recovers_hidden_izhikevich_parameters():
    spec = models.SPECS["izhikevich"]
    model = models.get("izhikevich")
    experiment = Experiment.steps("I", [-5e-3, 4e-3, 10e-3, 15e-3], dt="0.1 ms", duration="300 ms",
                                  start="20 ms", stop="280 ms", record=("v",), spikes=True, init=spec.init,
                                  method="euler")
    hidden = {"a": 20.0, "b": 0.2, "c": -65e-3, "d": 8e-3}
    gamma = GammaFactor(delta=2e-3, time=0.3)

    def loss(ist, soll):
        spikes = gamma.calc([ist.spikes[0]], soll.spikes[0], 1e-4)[0]
        sub = np.mean((np.clip(ist.recordings[0]["v"], None, -40e-3)
                       - np.clip(soll.recordings[0]["v"], None, -40e-3)) ** 2) / 1e-6
        return [spikes, sub]

    bounds = {"a": [5, 50, "log"], "b": [0.1, 0.3], "c": [-70e-3, -50e-3], "d": [2e-3, 12e-3]}
    opt = OptNeuron(experiment, loss, bounds, model, target_neuron_model=model, target_params=hidden, seed=0)
    result = opt.run(max_evals=3000, n_samples=50)
    for name, value in hidden.items():
        assert result.best_params[name] == pytest.approx(value, rel=0.05)


def test_num_rep_loss_on_a_noisy_model_reports_mean_and_sd():
    noisy = nf.Model("dv/dt = (El - v)/tau + sigma*sqrt(2/tau)*xi : volt\nEl : volt (constant)\n"
                     "sigma : volt (constant)", namespace={"tau": "10 ms"})
    run = Experiment([Chunk({}, record=("v",), n_steps=5000)], dt="0.1 ms", init={"v": -65e-3})
    truth = {"El": -65e-3, "sigma": 2e-3}
    target = run.run(noisy, {k: np.array([v]) for k, v in truth.items()}, seed=99)[0].recordings[0]["v"][0, 500:]
    soll = (target.mean(), target.std())

    def loss(ist, soll):
        v = ist.recordings[0]["v"][0, 500:]
        return [((v.mean() - soll[0]) / 1e-3) ** 2, ((v.std() - soll[1]) / 1e-3) ** 2]

    opt = OptNeuron(run, loss, {"El": [-75e-3, -55e-3], "sigma": [0.5e-3, 5e-3]}, noisy, results_soll=soll,
                    num_rep_loss=5, seed=3)
    result = opt.run(max_evals=400, n_samples=20)
    assert result.loss_sd > 0  # five noisy repetitions per candidate differ
    # a 500 ms run with tau 10 ms has ~25 independent samples: the mean is known to ~sigma/5 = 0.4 mV
    assert result.best_params["El"] == pytest.approx(truth["El"], abs=1.5e-3)
    assert result.best_params["sigma"] == pytest.approx(truth["sigma"], rel=0.3)
    assert all("loss_sd" in h for h in result.history)


@pytest.mark.parametrize("bounds,kw,word", [
    ({"a": [0, 5], "b": [-2, 2], "c": [0, 1]}, {}, "c"),  # unknown parameter
    ({"a": [5, 0], "b": [-2, 2]}, {}, "a"),  # lo > hi
    ({"a": [0, 5]}, {}, "b"),  # a parameter without a value
    ({"a": [0, 5], "b": [-2, 2]}, {"both": True}, "exactly one"),
    ({"a": [0, 5], "b": [-2, 2]}, {"neither": True}, "exactly one"),
    ({"a": [0, 5], "b": [-2, 2]}, {"nan_loss": True}, "not finite"),
])
def test_bad_input_is_one_clear_line(bounds, kw, word):
    soll = [0.0] * 4
    loss = (lambda ist, s: [float("nan")]) if kw.get("nan_loss") else steady_state_loss
    targets = {"results_soll": soll}
    if kw.get("both"):
        targets["target_neuron_model"] = LINEAR
    if kw.get("neither"):
        targets = {}
    with pytest.raises(ReductionError) as info:
        OptNeuron(linear_experiment(), loss, bounds, LINEAR, **targets)
    assert word in str(info.value) and "\n" not in str(info.value)


def hh_to_adex_experiment(amplitudes, init):
    return Experiment.steps("I", amplitudes, dt="0.01 ms", duration="120 ms", start="20 ms", stop="120 ms",
                            record=("v",), spikes=True, init=init, method="euler")


@pytest.mark.slow
def test_hh_reduced_to_adex_keeps_spike_counts_and_timing_on_a_held_out_amplitude():
    from neurofit.reduction.optneuron import SpikeTrainLoss
    hh = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV")
    hh_params = {k: np.array([v]) for k, v in models.SPECS["hh_traub"].defaults.items()}
    train = [0.2e-9, 0.4e-9, 0.6e-9, 0.8e-9, 1.2e-9, 1.5e-9, 2.0e-9]
    target = hh_to_adex_experiment(train, {"v": -65e-3}).run(hh, hh_params)[0]
    bounds = {"C": [50e-12, 500e-12], "gl": [2e-9, 50e-9], "El": [-80e-3, -55e-3], "VT": [-60e-3, -40e-3],
              "DeltaT": [0.5e-3, 5e-3], "a": [0.0, 20e-9], "tau_w": [10e-3, 300e-3], "b": [0.0, 0.2e-9],
              "Vr": [-80e-3, -50e-3]}
    adex = models.get("adex")
    opt = OptNeuron(hh_to_adex_experiment(train, {"v": -65e-3, "w": 0.0}), SpikeTrainLoss(), bounds, adex,
                    results_soll=target, seed=0)
    result = opt.run(max_evals=5000, n_samples=50)
    fitted = [len(s) for s in result.results.spikes[0]]
    wanted = [len(s) for s in target.spikes[0]]
    assert np.abs(np.subtract(fitted, wanted)).max() <= 1
    held_out = [1.0e-9]
    hh_run = hh_to_adex_experiment(held_out, {"v": -65e-3}).run(hh, hh_params)[0]
    adex_run = hh_to_adex_experiment(held_out, {"v": -65e-3, "w": 0.0}).run(
        adex, {k: np.array([v]) for k, v in result.best_params.items()})[0]
    assert abs(len(adex_run.spikes[0][0]) - len(hh_run.spikes[0][0])) <= 1
    gamma = 1 - GammaFactor(delta=2e-3, time=0.12, rate_correction=False).calc(
        [adex_run.spikes[0]], hh_run.spikes[0], 1e-5)[0]
    assert gamma >= 0.7


def test_result_is_saved_and_plotted(tmp_path):
    from neurofit.reduction.plots import plot_chunks, plot_loss_history
    soll = [1.7 * level - 0.3 for level in LEVELS]
    opt = OptNeuron(linear_experiment(), steady_state_loss, {"a": [0, 5], "b": [-2, 2]}, LINEAR, results_soll=soll)
    result = opt.run(max_evals=60)
    result.save(tmp_path / "reduction.json", tmp_path / "reduction.npz")
    import json
    summary = json.loads((tmp_path / "reduction.json").read_text())
    assert summary["loss"] == result.loss and summary["n_evaluations"] == 60
    arrays = dict(np.load(tmp_path / "reduction.npz"))
    np.testing.assert_array_equal(arrays["loss"], [h["loss"] for h in result.history])
    np.testing.assert_array_equal(arrays["fitted/3/r"], result.results.recordings[3]["r"])
    fig = plot_chunks(arrays, variable="r", scale=1.0, unit="1")
    assert len(fig.axes) == 4  # one trace × four chunks
    np.testing.assert_array_equal(fig.axes[3].lines[-1].get_ydata(), arrays["fitted/3/r"][0])  # the fitted trace
    evaluations, best = plot_loss_history(arrays["loss"]).axes[0].lines
    np.testing.assert_array_equal(evaluations.get_ydata(), arrays["loss"])
    np.testing.assert_array_equal(best.get_ydata(), np.minimum.accumulate(arrays["loss"]))


@pytest.mark.slow
def test_sbi_method_conditions_on_target_features_not_on_the_loss():
    a, b = 1.7, -0.3
    target_params = {"a": a, "b": b}

    def features(results):
        return np.array([rec["r"][0, -1] for rec in results.recordings])  # steady state at each input

    def loss(ist, soll):
        return list((features(ist) - features(soll)) ** 2)

    opt = OptNeuron(linear_experiment(), loss, {"a": [0, 5], "b": [-2, 2]}, LINEAR,
                    target_neuron_model=LINEAR, target_params=target_params, method="sbi", features=features)
    result = opt.run(max_evals=2000, n_samples=200)
    assert result.posterior_samples.shape == (200, 2)
    mean = result.posterior_samples.mean(axis=0)
    assert mean[0] == pytest.approx(a, abs=0.1) and mean[1] == pytest.approx(b, abs=0.1)
    assert result.best_params["a"] == pytest.approx(a, abs=0.05)
    assert result.best_params["b"] == pytest.approx(b, abs=0.05)
    with pytest.raises(ReductionError, match="features"):
        OptNeuron(linear_experiment(), steady_state_loss, {"a": [0, 5], "b": [-2, 2]}, LINEAR,
                  results_soll=[0.0] * 4, method="sbi")
