"""brian2modelfitting's helpers in neurofit beyond what b2mf's own tests check (tests/b2mf): the metric helpers
(firing_rate, get_gamma_factor, calc_eFEL, GammaFactor's normalization and argument order, FeatureMetric's t_start
and normalization), the fitting
utilities (callback_text, callback_setup, ProgressBar, make_dic, get_param_dic) and the Inferencer's (calc_prior,
get_param_dict, sbi_device, continuing without n_samples, automatic features for a custom embedding net).
"""
import io

import numpy as np
import pytest
import torch

from neurofit import (
    FeatureMetric,
    GammaFactor,
    Inferencer,
    ProgressBar,
    calc_eFEL,
    callback_setup,
    callback_text,
    firing_rate,
    get_gamma_factor,
    get_param_dic,
    make_dic,
)
from neurofit.fitting.callbacks import CallbackError, ParameterValuesError
from neurofit.inference.inferencer import (
    BoxPrior,
    InferenceError,
    InferenceTypeError,
    NothingToSaveError,
    calc_prior,
    get_param_dict,
)

MS = 1e-3


# --- metric helpers -----------------------------------------------------------------------------------

def test_firing_rate_needs_two_spikes_and_sorts():
    assert np.isnan(firing_rate([])) and np.isnan(firing_rate([0.3]))
    assert firing_rate([0.3, 0.1, 0.2]) == pytest.approx(10.0)  # 2 intervals over 0.2 s


def test_get_gamma_factor_is_gammafactors_error_per_trace():
    model = [np.array([1.0, 4.2, 9.0]) * MS, np.array([2.0, 7.0]) * MS]
    data = [np.array([1.1, 5.0, 9.0]) * MS, np.array([2.0, 3.0, 7.0]) * MS]
    gf = GammaFactor(delta=0.5 * MS, time=10 * MS, t_start=0.5 * MS)
    # GammaFactor counts the rates over time - t_start (9.5 ms): the same as get_gamma_factor with time=9.5 ms
    per_trace = [get_gamma_factor(m, d, delta="0.5 ms", time=9.5 * MS, dt="0.1 ms") for m, d in zip(model, data)]
    np.testing.assert_allclose(gf.get_features([model], data, 0.1 * MS)[0], per_trace)
    # trace 0 by hand: 2 coincidences (1.1/1 ms, 9/9 ms; 5/4.2 ms are 0.8 ms apart), expected 2*0.5 ms*3*(3/9.5 ms)
    # = 9/9.5, normalisation 0.5*(1 - 2*0.5 ms*3/9.5 ms), equal rates: error = 1 - (2 - 9/9.5)/(0.5*(1 - 3/9.5)*6)
    assert per_trace[0] == pytest.approx(1 - (2 - 9 / 9.5) / (0.5 * (1 - 3 / 9.5) * 6))


def test_get_gamma_factor_edge_cases():
    assert get_gamma_factor([], [], 1 * MS, 0.1, 0.1 * MS) == 0.0  # silent model, silent data
    assert get_gamma_factor([0.01, 0.02], [], 1 * MS, 0.1, 0.1 * MS) == 5.0  # 1 + 2 * N_model
    assert get_gamma_factor([0.01, 0.02], [], 1 * MS, 0.1, 0.1 * MS, rate_correction=False) == 1.0
    with pytest.raises(ValueError, match="too long for 5 data spikes"):  # 2 * 10 ms * 5 / 0.1 s = 1
        get_gamma_factor([0.01], np.arange(5) * 0.02, 10 * MS, 0.1, 0.1 * MS)


def test_gammafactor_takes_b2mfs_argument_order_and_a_normalization():
    gf = GammaFactor(2 * MS, 0.1, 10 * MS, 0.5, False)  # b2mf: delta, time, t_start, normalization, rate_correction
    assert (gf.delta, gf.time, gf.t_start, gf.normalization, gf.rate_correction) == (2e-3, 0.1, 0.01, 0.5, False)
    # normalization divides the errors once (b2mf's SpikeMetric.calc divides GammaFactor's a second time)
    data = [np.array([20.0, 50.0]) * MS]
    model = [[np.array([21.0, 70.0]) * MS]]
    assert gf.calc(model, data, 0.1 * MS)[0] == pytest.approx(2 * GammaFactor(2 * MS, 0.1, 10 * MS, 1.0, False)
                                                              .calc(model, data, 0.1 * MS)[0])
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="normalization must be a positive number"):
            GammaFactor(2 * MS, 0.1, normalization=bad)


def test_calc_efel_stimulus_times_and_missing_features():
    voltage = np.repeat([-70.0, -60.0], 100)[None, :] * 1e-3  # 200 samples of 1 ms: -70 mV, then -60 mV
    # stimulus times in ms (b2mf), or quantity strings; voltage_base is the mean before the stimulus (eFEL, mV)
    numbers = calc_eFEL(voltage, [[150, 190]], ["voltage_base", "spike_count"], dt="1 ms")
    strings = calc_eFEL(voltage, [["0.15 s", "190 ms"]], ["voltage_base", "spike_count"], dt=1 * MS)
    for result in (numbers, strings):
        # eFEL's voltage_base: the mean of the 90 % - 100 % part of the time before the stimulus (135-150 ms)
        np.testing.assert_allclose(result[0]["voltage_base"], [-60.0])
        np.testing.assert_array_equal(result[0]["spike_count"], [0])
    with pytest.raises(ValueError, match="unknown eFEL feature 'voltage_bas' \\(did you mean voltage_base"):
        calc_eFEL(voltage, [[150, 190]], ["voltage_bas"], dt=1 * MS)
    with pytest.raises(ValueError, match="one \\[stim_start, stim_end\\] \\(ms\\) per trace"):
        calc_eFEL(voltage, [[150, 190], [10, 20]], ["voltage_base"], dt=1 * MS)


def test_feature_metric_takes_b2mfs_t_start_and_normalization():
    """FeatureMetric(stim_times, feat_list, weights, combine, t_start, normalization), b2mf's order: eFEL sees the
    traces from t_start on with their time counted from there (as b2mf's calc_eFEL on the cut traces); the errors
    are divided by normalization, the potentials are not scaled (eFEL's voltage_base: the mean over 90-100 % of the
    time before stim_start)."""
    data = np.repeat([-70.0, -60.0, -50.0, -40.0], 50)[None, :] * MS  # V, 1 ms per sample
    model = data.copy()
    model[0, :50] += 2.5 * MS
    model[0, 50:100] += 5 * MS

    def absolute(x, y):
        return abs(x - y)
    whole = FeatureMetric([[49 * MS, 150 * MS]], ["voltage_base"], None, absolute)
    assert whole.calc(model[None], data, 1 * MS) == pytest.approx([2.5])  # 44-49 ms: the first step
    later = FeatureMetric([[49 * MS, 150 * MS]], ["voltage_base"], None, absolute, "50 ms", 4)
    assert (later.t_start, later.normalization) == (0.05, 4.0)
    assert later.calc(model[None], data, 1 * MS) == pytest.approx([5 / 4])  # 94-99 ms: the second step, / 4
    assert later.get_errors(np.array([[1.0, 3.0]])) == pytest.approx([2 / 4])
    for bad in (0, -1, np.inf):
        with pytest.raises(ValueError, match="normalization must be a positive number"):
            FeatureMetric([[49 * MS, 150 * MS]], ["voltage_base"], normalization=bad)
    with pytest.raises(ValueError, match="t_start must be >= 0"):
        FeatureMetric([[49 * MS, 150 * MS]], ["voltage_base"], t_start=-1 * MS)


# --- fitting utilities ------------------------------------------------------------------------------------

def test_callback_text_with_several_outputs(capsys):
    info = {"output_var": ["v", "I"], "objective_errors": [2.0, 3.0], "objective_errors_normalized": [2.0, 0.5]}
    callback_text([], [], {"gl": 1.23456e-8, "El": -0.065}, 2.5, 4, info)
    out, _ = capsys.readouterr()
    assert out == ("Round 4: Best parameters El=-0.065, gl=1.23e-08\n"
                   "         Best error: 2.5 = 2 (v) + 0.5 (I, unnormalized error: 3)\n")
    callback_text([], [], {"g": 2.0}, 0.125, 0)  # without additional_info: no output name
    assert capsys.readouterr()[0] == "Round 0: Best parameters g=2\n         Best error: 0.125\n"


def test_callback_setup_refuses_other_values_as_b2mf():
    for bad in ("verbose", 3):
        with pytest.raises(TypeError, match="valid values are 'text', 'progressbar', None or a function"):
            callback_setup(bad, 10)
    assert issubclass(CallbackError, ValueError)
    bar = ProgressBar(total=2, disable=True)
    assert callback_setup(bar, 2) is bar  # any callable, e.g. a ProgressBar made by the user


def test_progress_bar_closes_after_its_rounds():
    out = io.StringIO()
    bar = ProgressBar(total=2, file=out)
    bar([], [], {}, 1.5, 0, {})
    assert bar.t.n == 1 and not bar.t.disable  # open
    bar([], [], {}, 0.5, 1, {})
    assert bar.t.n == 2 and bar.t.disable  # closed after its 2 rounds
    assert "2/2" in out.getvalue() and "best_error=0.5" in out.getvalue()


def test_make_dic_and_get_param_dic():
    with pytest.raises(ParameterValuesError, match="2 names but 1 values"):
        make_dic(["a", "b"], [1])
    # b2mf's newest test_get_param_dic (dicts), and lists of values in param_names order (older b2mf)
    d = get_param_dic([{"a": 1, "b": 3}, {"a": 2, "b": 4}], ["a", "b"], 2, 2)
    assert {k: v.tolist() for k, v in d.items()} == {"a": [1, 1, 2, 2], "b": [3, 3, 4, 4]}
    d = get_param_dic([[1, 3], [2, 4]], ["a", "b"], 3, 2)
    assert {k: v.tolist() for k, v in d.items()} == {"a": [1, 1, 1, 2, 2, 2], "b": [3, 3, 3, 4, 4, 4]}
    with pytest.raises(ParameterValuesError, match="2 parameter sets for n_samples = 1"):
        get_param_dic([{"a": 1}, {"a": 2}], ["a"], 1, 1)
    with pytest.raises(ParameterValuesError, match="parameter set 0 has no b"):
        get_param_dic([{"a": 1}], ["a", "b"], 1, 1)


# --- inference --------------------------------------------------------------------------------------------

def test_calc_prior_and_get_param_dict():
    with pytest.raises(TypeError, match="no bounds for parameter\\(s\\) b"):
        calc_prior(["a", "b"], a=[1, 2])
    assert issubclass(InferenceTypeError, InferenceError)
    prior = calc_prior(["a", "b"], a=["1 nS", "100 nS", "log"], b=[0, 1])
    assert isinstance(prior, BoxPrior)
    np.testing.assert_allclose(prior.low.numpy(), [1e-9, 0])
    np.testing.assert_allclose(prior.high.numpy(), [1e-7, 1])
    # one row of values is spread to n_values (b2mf's generate_traces), n_values rows are taken as they are
    d = get_param_dict(np.array([1.0, 2.0]), ["a", "b"], 3)
    assert {k: v.tolist() for k, v in d.items()} == {"a": [1, 1, 1], "b": [2, 2, 2]}
    with pytest.raises(InferenceError, match="shape \\(2, 2\\) do not give 2 parameters"):
        get_param_dict(np.ones((2, 2)), ["a", "b"], 3)


EQS = "dv/dt = (g*I - v)/(5*ms) : 1\ng : 1 (constant)"


def small_inferencer(n_steps=10, **kwargs):
    current = np.ones((2, n_steps)) * [[1.0], [2.0]]
    v = np.cumsum(current, axis=1) * 1e-3  # any finite recording of the right shape
    return Inferencer(1e-4, EQS, {"I": current}, {"v": v}, **kwargs)


TRAIN = {"max_num_epochs": 2}


def test_sbi_device_falls_back_to_the_cpu():
    inferencer = small_inferencer(features={"v": ["v_mean"]})
    inferencer.init_prior(g=[0.5, 2.0])
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="no CUDA device is available; training on the cpu"):
            inferencer.init_inference("NPE", "mdn", sbi_device="gpu")
        assert inferencer.sbi_device == "cpu"
    with pytest.raises(NameError, match="inference_method = 'XYZ' is not valid"):
        inferencer.init_inference("XYZ")
    with pytest.raises(AttributeError, match="give theta and x"):
        inferencer.save_summary_statistics("unused.npz")
    assert issubclass(NothingToSaveError, ValueError)


def test_infer_continues_with_the_last_n_samples():
    inferencer = small_inferencer(features={"v": ["v_mean", "v_max"]})
    with pytest.raises(ValueError, match="give n_samples"):
        inferencer.infer(g=[0.5, 2.0])
    inferencer.infer(n_samples=30, density_estimator_model="mdn", train_kwargs=TRAIN, g=[0.5, 2.0])
    assert inferencer.n_samples == 30 and inferencer.params == {"g": [0.5, 2.0]}
    inferencer.infer(train_kwargs=TRAIN)  # continuing: b2mf draws the last round's n_samples again
    assert inferencer.theta.shape == (30, 1) and inferencer.n_samples == 30
    traces = inferencer.generate_traces(level=1)  # b2mf's namespace depth: accepted
    assert traces.shape == (2, 10)


def test_automatic_features_at_full_length_for_a_custom_embedding_net():
    inferencer = small_inferencer(n_steps=600)
    assert inferencer.features is None and inferencer.x_o.shape == (2 * 200,)  # 600 steps: 200 means of 3
    inferencer.init_prior(g=[0.5, 2.0])
    theta = inferencer.generate_training_data(20)
    blocked = inferencer.extract_summary_statistics(theta)
    net = torch.nn.Sequential(torch.nn.Linear(2 * 600, 4), torch.nn.Tanh())  # b2mf-style: n_traces * n_steps
    inference = inferencer.init_inference("NPE", "mdn", embedding_net=net)
    assert inferencer.x_o.shape == (1200,) and len(inferencer.feature_names) == 1200
    with pytest.raises(InferenceError, match="x has 400 features per row, this inferencer 1200"):
        inferencer.infer_step(inferencer.prior, inference, theta=theta, x=blocked, train_kwargs=TRAIN)
    inferencer.infer_step(inferencer.prior, inference, theta=theta, train_kwargs=TRAIN)
    assert inferencer.x.shape == (20, 1200) and inferencer.sample((3,)).shape == (3, 1)
    inferencer.init_inference("NPE", "mdn")  # neurofit's own embedding net: block means again
    assert inferencer.x_o.shape == (400,)
    explicit = small_inferencer(n_steps=600, raw_samples=100)  # raw_samples given: kept whatever the net
    explicit.init_prior(g=[0.5, 2.0])
    explicit.init_inference("NPE", "mdn", embedding_net=torch.nn.Linear(200, 4))
    assert explicit.x_o.shape == (200,)
