"""Metrics: MSE, GammaFactor, FeatureMetric and user metrics against hand-computed numbers."""
import numpy as np
import pytest

from neurofit.fitting.metrics import (
    MISSING_FEATURE_PENALTY,
    FeatureMetric,
    GammaFactor,
    MSEMetric,
    SpikeMetric,
    TraceMetric,
)

DT = 1e-3


# ---------------------------------------------------------------- MSE

def _mse_case():
    data = np.array([[0.0, 1.0, 2.0, 3.0],
                     [1.0, 1.0, 1.0, 1.0]])
    model = np.array([data + 1.0,                       # every sample off by 1
                      data + np.array([0.0, 0.0, 2.0, 4.0])])  # trace-independent offsets
    return model, data


def test_mse_plain_mean():
    model, data = _mse_case()
    # set 0: all squared diffs 1 -> 1; set 1: (0 + 0 + 4 + 16) / 4 = 5 in both traces
    np.testing.assert_allclose(MSEMetric().calc(model, data, DT), [1.0, 5.0])


def test_mse_t_start_quantity_and_normalization():
    model, data = _mse_case()
    # t_start = 2 ms keeps samples 2, 3; normalization 2 divides diffs by 2
    # set 1: ((2/2)**2 + (4/2)**2) / 2 = 2.5 ; set 0: (0.5**2 + 0.5**2) / 2 = 0.25
    metric = MSEMetric(t_start="2 ms", normalization=2.0)
    np.testing.assert_allclose(metric.calc(model, data, "1 ms"), [0.25, 2.5])
    # a t_start between samples keeps only samples at or after it (t = 3 ms)
    np.testing.assert_allclose(MSEMetric(t_start=2.5e-3).calc(model, data, DT), [1.0, 16.0])


def test_mse_weights_and_t_start_exclude_each_other():
    model, data = _mse_case()
    w = np.array([5.0, 1.0, 1.0, 2.0])
    # set 1 squared diffs (0, 0, 4, 16): weighted mean = (0 + 0 + 4 + 32) / 9 = 4
    np.testing.assert_allclose(MSEMetric(t_weights=w).calc(model, data, DT), [1.0, 4.0])
    # t_start = 2 ms as zero weights before it: only weights (1, 2) apply, (4 + 32) / 3 = 12
    np.testing.assert_allclose(MSEMetric(t_weights=[0.0, 0.0, 1.0, 2.0]).calc(model, data, DT), [1.0, 12.0])
    # both at once: refused, as brian2modelfitting's TraceMetric
    with pytest.raises(ValueError, match="t_start = 0.002 s and t_weights exclude each other"):
        MSEMetric(t_start=2e-3, t_weights=w)


def test_mse_diverged_set_is_inf_and_others_unchanged():
    model, data = _mse_case()
    model = np.concatenate([model, model[:1]])
    model[2, 1, 0] = np.nan
    errors = MSEMetric().calc(model, data, DT)
    np.testing.assert_allclose(errors[:2], [1.0, 5.0])
    assert errors[2] == np.inf


@pytest.mark.parametrize("kwargs, message", [
    (dict(t_weights=[1.0, -1.0, 1.0, 1.0]), "non-negative"),
    (dict(t_weights=[0.0, 0.0, 0.0, 0.0]), "all zero"),
    (dict(t_start="2 mV"), "t_start"),
    (dict(normalization=0.0), "normalization"),
])
def test_mse_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MSEMetric(**kwargs)


def test_mse_rejects_wrong_shapes_and_weight_length():
    model, data = _mse_case()
    with pytest.raises(ValueError, match="n_sets, n_traces, n_steps"):
        MSEMetric().calc(model[0], data, DT)
    with pytest.raises(ValueError, match="4 steps"):
        MSEMetric(t_weights=np.ones(3)).calc(model, data, DT)


# ---------------------------------------------------------------- GammaFactor

def test_gamma_identical_trains_give_zero():
    data = [np.array([0.01, 0.05, 0.12, 0.3]), np.array([0.2])]
    metric = GammaFactor(delta="2 ms", time="0.5 s")
    errors = metric.calc([data, [d.copy() for d in data]], data, "0.1 ms")
    np.testing.assert_allclose(errors, [0.0, 0.0], atol=1e-12)


def test_gamma_hand_counted_example():
    data = [np.array([0.010, 0.020, 0.030, 0.040])]
    model = [[np.array([0.0105, 0.0215, 0.033, 0.041, 0.050])]]
    # coincidences within 2 ms: 10/10.5, 20/21.5, 40/41 -> 3 (30/33 is 3 ms apart)
    # T = 0.1 s: r_data = 40 Hz, r_model = 50 Hz; expected = 2 * 0.002 * 4 * 40 = 0.64
    # norm = 0.5 * (1 - 2 * 0.002 * 40) = 0.42; gamma = (3 - 0.64) / (0.42 * 9)
    gamma = (3 - 0.64) / (0.42 * 9)
    plain = GammaFactor(delta=2e-3, time=0.1, rate_correction=False).calc(model, data, 1e-4)
    corrected = GammaFactor(delta=2e-3, time=0.1).calc(model, data, 1e-4)
    np.testing.assert_allclose(plain, [1 - gamma])
    np.testing.assert_allclose(corrected, [1 - gamma + 2 * 10 / 40])


def test_gamma_matches_each_spike_once():
    # one model spike between two data spikes, both within delta: one coincidence, not two
    data = [np.array([0.010, 0.012])]
    model = [[np.array([0.011])]]
    r = 2 / 1.0
    gamma = (1 - 2 * 2e-3 * 2 * r) / (0.5 * (1 - 2 * 2e-3 * r) * 3)
    error = GammaFactor(delta=2e-3, time=1.0, rate_correction=False).calc(model, data, 1e-4)
    np.testing.assert_allclose(error, [1 - gamma])


def test_gamma_shifted_train_scores_below_chance():
    # a regular 20 Hz train shifted by 10 ms (> delta) has no coincidence at all:
    # gamma = -2 delta r / (1 - 2 delta r), the rate term is 0
    data = np.arange(0.025, 10.0, 0.05)
    delta, r = 2e-3, len(data) / 10.0
    error = GammaFactor(delta=delta, time=10.0).calc([[data + 0.01]], [data], 1e-4)
    np.testing.assert_allclose(error, [1 + 2 * delta * r / (1 - 2 * delta * r)])


def test_gamma_independent_poisson_trains_are_at_chance_level():
    rng = np.random.default_rng(0)
    rate, duration = 20.0, 1000.0
    trains = [np.sort(rng.uniform(0, duration, rng.poisson(rate * duration))) for _ in range(2)]
    error = GammaFactor(delta=2e-3, time=duration, rate_correction=False).calc([[trains[0]]], [trains[1]], 1e-4)
    assert abs(1 - error[0]) < 0.02  # gamma ~ 0 (its standard deviation here is ~0.003)


def test_gamma_silent_data_and_t_start():
    metric = GammaFactor(delta=2e-3, time=1.0)
    silent = [np.array([])]
    errors = metric.calc([[np.array([])], [np.array([0.1, 0.2])]], silent, 1e-4)
    np.testing.assert_allclose(errors, [0.0, 1.0 + 2 * 2])
    # spikes before t_start are ignored: only the spike at 0.5 s remains, identical in both
    late = GammaFactor(delta=2e-3, time=1.0, t_start="0.3 s")
    np.testing.assert_allclose(late.calc([[np.array([0.1, 0.5])]], [np.array([0.2, 0.5])], 1e-4), [0.0])


def test_gamma_rejects_delta_too_long_for_the_rate():
    data = [np.arange(0.0, 1.0, 0.002)]  # 500 Hz
    with pytest.raises(ValueError, match="delta"):
        GammaFactor(delta=2e-3, time=1.0).calc([data], data, 1e-4)


# ---------------------------------------------------------------- user metrics

class PeakDifference(TraceMetric):
    """|max(model) - max(data)| per trace, summed over traces."""

    def get_features(self, model_traces, data_traces, dt):
        return np.abs(model_traces.max(axis=2) - data_traces.max(axis=1))

    def get_errors(self, features):
        return features.sum(axis=1)


class SpikeCountDifference(SpikeMetric):
    def get_features(self, model_spikes, data_spikes, dt):
        return np.array([[abs(len(m) - len(d)) for m, d in zip(one, data_spikes)] for one in model_spikes])


def test_user_trace_metric_gets_sliced_normalized_finite_sets():
    model, data = _mse_case()
    model = np.concatenate([model, np.full((1,) + data.shape, np.inf)])
    metric = PeakDifference(t_start=1e-3, normalization=0.5)
    # set 0: peaks differ by 1 in each trace -> 2 / 0.5; set 1: 4 and 4 -> 16
    np.testing.assert_allclose(metric.calc(model, data, DT), [4.0, 16.0, np.inf])


def test_user_spike_metric_defaults_to_mean_over_traces():
    data = [np.array([0.1, 0.2]), np.array([])]
    model = [[np.array([0.1]), np.array([0.3, 0.4, 0.5])]]
    np.testing.assert_allclose(SpikeCountDifference().calc(model, data, DT), [(1 + 3) / 2])


# ---------------------------------------------------------------- FeatureMetric

def lif_trace(current, dt=2.5e-5, duration=0.3, stim=(0.05, 0.25)):
    """Voltage (V) of a LIF neuron with a 1 ms spike waveform, driven by a current step."""
    tau, r, v_rest, v_th, v_reset = 10e-3, 1e8, -70e-3, -50e-3, -75e-3
    n, spike_steps = int(round(duration / dt)), int(round(1e-3 / dt))
    v, x, left = np.empty(n), v_rest, 0
    for i in range(n):
        if left:  # spike waveform: jump to +20 mV, fall linearly to reset
            left -= 1
            x = v_reset if left == 0 else 20e-3 - 95e-3 * (1 - left / spike_steps)
        else:
            drive = current if stim[0] <= i * dt < stim[1] else 0.0
            x += dt * (v_rest - x + r * drive) / tau
            if x > v_th:
                x, left = 20e-3, spike_steps
        v[i] = x
    return v


FEATURES = ["spike_count", "mean_frequency", "time_to_first_spike", "voltage_base"]


@pytest.fixture(scope="module")
def lif_traces():
    return {i: lif_trace(i) for i in (0.3e-9, 0.4e-9, 0.1e-9)}


def test_feature_metric_zero_against_itself_positive_otherwise(lif_traces):
    data = np.array([lif_traces[0.3e-9]])
    model = np.array([[lif_traces[0.3e-9]], [lif_traces[0.4e-9]]])
    metric = FeatureMetric([("50 ms", "250 ms")], FEATURES)
    errors = metric.calc(model, data, "0.025 ms")
    assert errors[0] == pytest.approx(0.0, abs=1e-12)
    assert errors[1] > 0.3  # e.g. spike count 22 vs 14 alone gives 8 / 14


def test_feature_metric_weights_combine_and_missing_features(lif_traces):
    data = np.array([lif_traces[0.3e-9]])
    model = np.array([[lif_traces[0.4e-9]], [lif_traces[0.1e-9]]])  # the second never spikes
    counts = FeatureMetric([(0.05, 0.25)], ["spike_count"]).get_features(model, data, 2.5e-5)
    difference = FeatureMetric([(0.05, 0.25)], ["spike_count", "time_to_first_spike"],
                               weights={"spike_count": 2.0}, combine=lambda m, d: abs(m - d))
    errors = difference.calc(model, data, 2.5e-5)
    # LIF: drive 30 / 40 mV above rest, first spike at 10 ln(3) / 10 ln(2) ms after onset;
    # inter-spike interval 1 ms + 10 ln(3.5) / 10 ln(2.5) ms -> 14 / 22 spikes in 200 ms
    n_data, n_fast = 14, 22
    first_spike_shift = 10 * (np.log(3) - np.log(2))  # ms
    np.testing.assert_allclose(counts[:, 0], [(n_fast - n_data) / (n_data + 1e-3), n_data / (n_data + 1e-3)])
    assert errors[0] == pytest.approx(2.0 * (n_fast - n_data) + first_spike_shift, abs=0.1)
    assert errors[1] == pytest.approx(2.0 * n_data + MISSING_FEATURE_PENALTY)  # no first spike


def test_feature_metric_rejects_unknown_features_and_bad_stim_times():
    with pytest.raises(ValueError, match="spike_count"):
        FeatureMetric([(0.05, 0.25)], ["spike_cont"])
    with pytest.raises(ValueError, match="start < end"):
        FeatureMetric([(0.25, 0.05)], ["spike_count"])
    metric = FeatureMetric([(0.0, 0.1), (0.0, 0.1)], ["spike_count"])
    with pytest.raises(ValueError, match="2 intervals for 3 traces"):
        metric.calc(np.zeros((1, 3, 100)), np.zeros((3, 100)), 1e-4)


# ---------------------------------------------------------------- traces of different lengths

def test_mse_with_lengths_pools_the_valid_samples():
    model, data = _mse_case()
    padded = data.copy()
    padded[1, 2:] = np.nan  # trace 1 has 2 samples
    # set 0: 6 valid samples all off by 1 -> 1; set 1: (0 + 0 + 4 + 16 + 0 + 0) / 6
    np.testing.assert_allclose(MSEMetric().calc(model, padded, DT, lengths=[4, 2]), [1.0, 20 / 6], rtol=1e-15)
    # full lengths: today's path, bit for bit
    assert np.array_equal(MSEMetric().calc(model, data, DT, lengths=[4, 4]), MSEMetric().calc(model, data, DT))
    weights = np.array([0.0, 1.0, 2.0, 3.0])  # valid: trace 0 all, trace 1 samples 0, 1
    expected = (1 * 0 + 1 * 0 + 2 * 4 + 3 * 16 + 0 * 0 + 1 * 0) / (0 + 1 + 2 + 3 + 0 + 1)
    assert MSEMetric(t_weights=weights).calc(model, padded, DT, lengths=[4, 2])[1] == pytest.approx(expected)
    with pytest.raises(ValueError, match="contain NaN or inf values within their lengths"):
        MSEMetric().calc(model, padded, DT, lengths=[4, 3])
    with pytest.raises(ValueError, match="lengths must be 2 whole numbers"):
        MSEMetric().calc(model, data, DT, lengths=[4, 5])


def test_user_trace_metric_gets_each_length_group_cropped():
    seen = []

    class Shapes(TraceMetric):
        def get_features(self, model_traces, data_traces, dt):
            seen.append((model_traces.shape, data_traces.shape, bool(np.isfinite(data_traces).all())))
            return np.abs(model_traces - data_traces).sum(axis=2)

    data = np.zeros((3, 6))
    data[1, 4:] = np.nan
    model = np.ones((2, 3, 6))
    errors = Shapes(t_start=2 * DT).calc(model, data, DT, lengths=[6, 4, 6])
    assert sorted(seen) == [((2, 1, 2), (1, 2), True), ((2, 2, 4), (2, 4), True)]
    np.testing.assert_allclose(errors, [(4 + 2 + 4) / 3] * 2)


def test_feature_metric_with_lengths_uses_each_trace_with_its_stimulus(lif_traces):
    long, short = lif_traces[0.3e-9], lif_traces[0.4e-9][:8000]  # 300 ms and 200 ms
    data = np.stack([long, np.r_[short, np.full(4000, np.nan)]])
    model = np.stack([data, np.stack([lif_traces[0.4e-9], lif_traces[0.4e-9]])])
    metric = FeatureMetric([(0.05, 0.25), (0.05, 0.19)], ["spike_count"])
    errors = metric.calc(model, data, 2.5e-5, lengths=[12000, 8000])
    assert errors[0] == pytest.approx(0.0, abs=1e-12)
    alone = FeatureMetric([(0.05, 0.19)], ["spike_count"]).get_features(model[1:, 1:, :8000], data[1:, :8000],
                                                                         2.5e-5)
    assert alone[0, 0] == pytest.approx(0.0, abs=1e-12)  # the short trace's own spikes agree
    assert errors[1] == pytest.approx((22 - 14) / (14 + 1e-3) / 2)  # only the long trace differs
