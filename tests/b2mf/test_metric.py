"""Port of brian2modelfitting/tests/test_metric.py (MSEMetric, GammaFactor, FeatureMetric and helpers).

Ported from the newest stored version (the one testing t_weights, normalization and GammaFactor's t_start). Its
GammaFactor numbers are those of b2mf's metric.py (``clip(1 + 2*|r_data - r_model|/r_data - gamma, 0, inf)``, 0
for identical trains); neurofit's GammaFactor is ``1 + rate term - gamma`` unclipped (equal where b2mf's tests
look; identical trains give 0 up to rounding, so ``assert_equal(..., 0)`` is ported as ``assert_almost_equal``).

Units: b2mf checks units of Quantity arguments (DimensionMismatchError); neurofit's floats carry none, so those
checks are ported with quantity strings, which neurofit checks (UnitError, a ValueError) - item 1.

FeatureMetric: b2mf's ``get_features`` returns a list over parameter sets of dicts feature -> per-trace
``combine`` (default ``|model - data|``) and ``get_errors`` sums them over traces and features; neurofit keeps its
design (deliberate, docs/differences_from_brian2modelfitting.md): ``get_features`` returns the (n_sets, n_traces)
array of the weighted per-trace error - b2mf's own Metric contract -, the default ``combine`` is the relative
difference (features of different units comparable), ``get_errors`` averages over traces as every other metric,
and feature names eFEL does not know are refused at construction (b2mf fails in eFEL at fit time). The two b2mf
tests are ported on b2mf's data, asserting neurofit's numbers.
"""
import numpy as np
import pytest
from numpy.testing import assert_almost_equal, assert_equal, assert_raises

from neurofit import FeatureMetric, GammaFactor, MSEMetric, calc_eFEL, firing_rate, get_gamma_factor
from neurofit.units import UnitError, ms, mV


def test_firing_rate():
    assert_equal(firing_rate([1, 2, 3]), 1)
    assert_equal(firing_rate([1, 1.2, 1.4, 1.6, 1.8]), 5)
    assert_almost_equal(firing_rate([1.1, 1.2, 1.3, 1.4, 1.5]), 10)


def test_get_gamma_factor():
    src = np.array([7, 9, 11])*ms
    src2 = np.array([1, 2, 3])*ms
    trg = np.array([0, 2, 4, 6, 8, 10])*ms
    gf0 = get_gamma_factor(trg, trg, delta=0.5*ms, time=12*ms, dt=0.1*ms)
    gf1 = get_gamma_factor(src2, trg, delta=0.5*ms, time=12*ms, dt=0.1*ms)
    gf2 = get_gamma_factor(src, src2, delta=0.5*ms, time=5*ms, dt=0.1*ms)
    assert_almost_equal(gf0, 0)
    assert gf1 > 1  # Since data rate = 2 * model rate
    assert gf2 > 0
    # by hand: gf1 has 1 coincidence (2 ms), 3 expected (2*0.5 ms*6*500 Hz), normalisation 0.5*(1 - 0.5), so
    # gamma = (1 - 3)/(0.25*9) = -8/9 and the rate term 2*|250 - 500|/500 = 1; gf2: rates equal (600 Hz), no
    # coincidence, 1.8 expected, normalisation 0.2: gamma = -1.8/(0.2*6) = -1.5
    assert_almost_equal(gf1, 2 + 8/9)
    assert_almost_equal(gf2, 2.5)
    gf0 = get_gamma_factor(trg, trg, delta=0.5*ms, time=12*ms, dt=0.1*ms, rate_correction=False)
    gf1 = get_gamma_factor(src2, trg, delta=0.5*ms, time=12*ms, dt=0.1*ms, rate_correction=False)
    gf2 = get_gamma_factor(src, src2, delta=0.5*ms, time=5*ms, dt=0.1*ms, rate_correction=False)
    assert_almost_equal(gf0, 0)
    assert gf1 > 0
    assert gf2 > 0
    assert_almost_equal(gf1, 1 + 8/9)
    assert_almost_equal(gf2, 2.5)


def test_init():
    MSEMetric()
    GammaFactor(10*ms, time=10*ms)


def test_calc_mse():
    mse = MSEMetric()
    out = np.random.rand(2, 20)
    inp = np.random.rand(5, 2, 20)
    errors = mse.calc(inp, out, 0.01*ms)
    assert_equal(np.shape(errors), (5,))
    assert_equal(mse.calc(np.tile(out, (5, 1, 1)), out, 0.1*ms), np.zeros(5))
    assert np.all(mse.calc(inp, out, 0.1*ms) > 0)
    inp = np.vstack([np.ones((1, 3, 10)), np.zeros((1, 3, 10))])
    out = np.ones((3, 10))
    errors = mse.calc(inp, out, 0.01*ms)
    assert_equal(errors, [0, 1])
    mse = MSEMetric(normalization=1/2)
    errors = mse.calc(inp, out, 0.01*ms)
    # The normalization factor scales the traces, so the squared error scales with the square of the factor
    assert_equal(errors, [0, 4])


def test_calc_mse_t_start():
    mse = MSEMetric(t_start=1*ms)
    out = np.random.rand(2, 20)
    inp = np.random.rand(5, 2, 20)
    errors = mse.calc(inp, out, 0.1*ms)
    assert_equal(np.shape(errors), (5,))
    assert np.all(errors > 0)
    # Everything before 1ms should be ignored, so having the same values for the rest should give an error of 0
    inp[:, :, 10:] = out[None, :, 10:]
    assert_equal(mse.calc(inp, out, 0.1*ms), np.zeros(5))


def test_calc_mse_t_weights():
    with pytest.raises(ValueError):
        # t_start and t_weights
        MSEMetric(t_start=1*ms, t_weights=np.ones(20))
    with pytest.raises(ValueError):
        # all values zero
        MSEMetric(t_weights=np.zeros(20))
    with pytest.raises(ValueError):
        # negative values
        weights = np.ones(20)
        weights[17] = -1
        MSEMetric(t_weights=weights)
    weights = np.ones(20)
    weights[:10] = 0
    mse = MSEMetric(t_weights=weights)
    out = np.random.rand(2, 20)
    inp = np.random.rand(5, 2, 20)
    errors = mse.calc(inp, out, 0.1*ms)
    assert_equal(np.shape(errors), (5,))
    assert np.all(errors > 0)
    # Everything before 1ms should be ignored, so having the same values for the rest should give an error of 0
    inp[:, :, 10:] = out[None, :, 10:]
    assert_equal(mse.calc(inp, out, 0.1*ms), np.zeros(5))


def test_calc_mse_t_weights_normalization():
    # check that normalization works correctly
    dt = 0.1*ms
    metric1 = MSEMetric(t_start=50*dt)
    weights = np.ones(100)
    weights[:50] = 0
    metric2 = MSEMetric(t_weights=weights)
    weights2 = weights*2  # should not make any difference
    metric3 = MSEMetric(t_weights=weights2)
    data_traces = np.random.rand(3, 100)
    model_traces = np.random.rand(2, 3, 100)
    error_1 = metric1.calc(model_traces=model_traces, data_traces=data_traces, dt=dt)
    error_2 = metric2.calc(model_traces=model_traces, data_traces=data_traces, dt=dt)
    error_3 = metric3.calc(model_traces=model_traces, data_traces=data_traces, dt=dt)
    assert_almost_equal(error_1, error_2)
    assert_almost_equal(error_1, error_3)


def test_calc_gf():
    assert_raises(TypeError, GammaFactor)
    # b2mf: DimensionMismatchError for delta=10*mV and for time=10 (no unit); floats carry no units (item 1):
    # the same checks on quantity strings
    assert_raises(UnitError, GammaFactor, delta="10 mV", time=10*ms)
    assert_raises(UnitError, GammaFactor, delta=10*ms, time="10")
    model_spikes = [[np.array([1, 5, 8])*1e-3, np.array([2, 3, 8, 9])*1e-3],  # Correct rate
                    [np.array([1, 5])*1e-3, np.array([0, 2, 3, 8, 9])*1e-3]]  # Wrong rate
    data_spikes = [np.array([0, 5, 9])*1e-3, np.array([1, 3, 5, 6])*1e-3]
    gf = GammaFactor(delta=0.5*ms, time=10*ms)
    errors = gf.calc([data_spikes]*5, data_spikes, 0.1*ms)
    assert_almost_equal(errors, np.zeros(5))
    errors = gf.calc(model_spikes, data_spikes, 0.1*ms)
    assert errors[0] > 0  # correct rate
    assert errors[1] > errors[0]
    gf = GammaFactor(delta=0.5*ms, time=10*ms, rate_correction=False)
    errors = gf.calc([data_spikes]*5, data_spikes, 0.1*ms)
    assert_almost_equal(errors, np.zeros(5))
    errors = gf.calc(model_spikes, data_spikes, 0.1*ms)
    assert all(errors > 0)


def test_calc_gf_t_start():
    # Spikes starting at 3ms are identical to data
    model_spikes = [[np.array([1, 5, 9])*1e-3, np.array([2, 3, 5, 6])*1e-3],
                    [np.array([5, 9])*1e-3, np.array([3, 5, 6])*1e-3]]
    data_spikes = [np.array([0, 5, 9])*1e-3, np.array([1, 3, 5, 6])*1e-3]
    gf = GammaFactor(delta=0.5*ms, time=10*ms, t_start=2.5*ms)
    assert_almost_equal(gf.calc(model_spikes, data_spikes, 0.1*ms), 0)


def test_get_features_mse():
    mse = MSEMetric()
    out_mse = np.random.rand(2, 20)
    inp_mse = np.random.rand(5, 2, 20)
    features = mse.get_features(inp_mse, out_mse, 0.1*ms)
    assert_equal(np.shape(features), (5, 2))
    assert np.all(np.array(features) > 0)
    features = mse.get_features(np.tile(out_mse, (5, 1, 1)), out_mse, 0.1*ms)
    assert_equal(np.shape(features), (5, 2))
    assert_equal(features, np.zeros((5, 2)))


def test_get_errors_mse():
    mse = MSEMetric()
    errors = mse.get_errors(np.random.rand(5, 10))
    assert_equal(np.shape(errors), (5,))
    assert np.all(np.array(errors) > 0)
    errors = mse.get_errors(np.zeros((2, 10)))
    assert_equal(np.shape(errors), (2,))
    assert_equal(errors, [0., 0.])


def test_get_features_gamma():
    model_spikes = [[np.array([1, 5, 8]), np.array([2, 3, 8, 9])],  # Correct rate
                    [np.array([1, 5]), np.array([0, 2, 3, 8, 9])]]  # Wrong rate
    data_spikes = [np.array([0, 5, 9]), np.array([1, 3, 5, 6])]
    gf = GammaFactor(delta=0.5*ms, time=10*ms)
    features = gf.get_features(model_spikes, data_spikes, 0.1*ms)
    assert_equal(np.shape(features), (2, 2))
    assert np.all(np.array(features) > -1)
    normed_gf = GammaFactor(delta=0.5*ms, time=10*ms, normalization=1/2.)
    normed_features = normed_gf.get_features(model_spikes, data_spikes, 0.1*ms)
    assert_equal(normed_features, 2*features)
    features = gf.get_features([data_spikes]*3, data_spikes, 0.1*ms)
    assert_equal(np.shape(features), (3, 2))
    assert_almost_equal(features, np.zeros((3, 2)))


def test_get_errors_gamma():
    gf = GammaFactor(delta=10*ms, time=10*ms)
    errors = gf.get_errors(np.random.rand(5, 10))
    assert_equal(np.shape(errors), (5,))
    assert np.all(np.array(errors) > 0)
    errors = gf.get_errors(np.zeros((2, 10)))
    assert_equal(np.shape(errors), (2,))
    assert_almost_equal(errors, [0., 0.])


def _voltage(n):
    # "voltage traces" that are constant at -70*mV, -60mV, -50mV, -40mV for 50ms each.
    return np.ones((n, 200))*np.repeat([-70, -60, -50, -40], 50)*mV


def test_calc_EFL():
    dt = 1*ms
    voltage = _voltage(2)
    # Note that calcEFL takes times in ms
    inp_times = [[99, 150], [49, 150]]
    results = calc_eFEL(voltage, inp_times, ["voltage_base"], dt=dt)
    assert len(results) == 2
    assert all(res.keys() == {"voltage_base"} for res in results)
    assert_almost_equal(results[0]["voltage_base"], -60)  # eFEL's units (mV), as b2mf
    assert_almost_equal(results[1]["voltage_base"], -70)


def _feature_case():
    """b2mf's test_get_features_feature_metric data: target voltage_base -60 mV (trace 0, stimulus at 99 ms) and
    -70 mV (trace 1, at 49 ms); parameter set 0 is 2.5 and 5 mV too high, set 1 exact, set 2 2.5 and 5 mV low."""
    voltage_target = _voltage(2)
    voltage_model = np.ones((3, 2, 200))*np.repeat([-70, -60, -50, -40], 50)*mV
    voltage_model[0, 0, :] += 2.5*mV
    voltage_model[0, 1, :] += 5*mV
    voltage_model[2, 0, :] -= 2.5*mV
    voltage_model[2, 1, :] -= 5*mV
    return voltage_model, voltage_target, [[99*ms, 150*ms], [49*ms, 150*ms]]


def test_get_features_feature_metric():
    """Deliberate difference (module docstring): get_features returns the (n_sets, n_traces) array of the per-trace
    error, by default the relative difference |model - data| / (|data| + 1e-3) of eFEL's values (mV here); b2mf's
    dicts of |model - data| per trace are [2.5, 5], [0, 0], [2.5, 5] mV. A custom combine gives b2mf's values."""
    voltage_model, voltage_target, inp_times = _feature_case()
    dt = 1*ms
    # Default comparison: relative difference (b2mf: absolute difference)
    feature_metric = FeatureMetric(inp_times, ["voltage_base"])
    results = feature_metric.get_features(voltage_model, voltage_target, dt=dt)
    assert_equal(np.shape(results), (3, 2))
    assert_almost_equal(results, [[2.5/60.001, 5/70.001], [0, 0], [2.5/60.001, 5/70.001]])
    # b2mf's default comparison as combine: its numbers, per trace
    feature_metric = FeatureMetric(inp_times, ["voltage_base"], combine=lambda x, y: abs(x - y))
    assert_almost_equal(feature_metric.get_features(voltage_model, voltage_target, dt=dt), [[2.5, 5], [0, 0], [2.5, 5]])
    # Custom comparison: squared difference
    feature_metric = FeatureMetric(inp_times, ["voltage_base"], combine=lambda x, y: (x - y)**2)
    results = feature_metric.get_features(voltage_model, voltage_target, dt=dt)
    assert_almost_equal(results, [[2.5**2, 5**2], [0, 0], [2.5**2, 5**2]])


def test_get_errors_feature_metric():
    """Deliberate difference (module docstring): feature names eFEL does not know are refused at construction, and
    get_errors takes the (n_sets, n_traces) array of get_features (features already weighted per trace) and
    averages over traces; b2mf's test sums fake per-feature dicts ([3.5, 0, 3.5], weighted [4, 0, 6.5])."""
    inp_times = [[99*ms, 150*ms], [49*ms, 150*ms]]  # Not used
    with pytest.raises(ValueError, match="unknown eFEL feature 'feature1'"):
        FeatureMetric(inp_times, ["feature1", "feature2"])
    # b2mf's fake results as neurofit's per-trace sums (feature1 + feature2 on each trace), equal weights
    feature_metric = FeatureMetric(inp_times, ["voltage_base", "spike_count"])
    features = np.array([[0 + 1, 0.5 + 2], [0, 0], [1 + 0, 2 + 0.5]])
    assert_almost_equal(feature_metric.get_errors(features), [3.5/2, 0, 3.5/2])
    # the weights act per trace in get_features: voltage_base (b2mf's feature1) twice as high
    voltage_model, voltage_target, inp_times = _feature_case()
    weighted = FeatureMetric(inp_times, ["voltage_base"], weights={"voltage_base": 2}, combine=lambda x, y: abs(x - y))
    assert_almost_equal(weighted.calc(voltage_model, voltage_target, 1*ms), [2*(2.5 + 5)/2, 0, 2*(2.5 + 5)/2])
