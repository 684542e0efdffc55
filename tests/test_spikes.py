"""The one spike detector (neurofit.data.spikes) and its use by the fit, inference and reduction stages."""
import numpy as np
import pytest

from neurofit.data.spikes import DEFAULT_DEAD_TIME, SpikeDetectionError, detect_spikes, spike_counts
from neurofit.fitting.metrics import GammaFactor
from neurofit.inference import features
from neurofit.reduction.optneuron import SpikeTrainLoss

DT = 1e-5  # 0.01 ms
REST = -0.065


def flat(n=1000, value=REST):
    return np.full(n, value)


def loop_rule(trace, dt, threshold, dead_steps):
    """The rule of the module docstring, written out as a loop over samples."""
    kept = []
    for k in range(1, len(trace)):
        if trace[k - 1] < threshold <= trace[k] and (not kept or k - kept[-1] >= dead_steps):
            kept.append(k)
    return np.array(kept, dtype=float) * dt


# --- the rule, on hand-made traces ------------------------------------------------------------------

def test_single_crossing_is_one_spike_at_the_crossing_sample():
    v = flat()
    v[250:300] = 0.02
    [times] = detect_spikes(v, DT)
    np.testing.assert_array_equal(times, [250 * DT])  # the first sample at or above 0 V, not interpolated
    v[250] = 0.0  # exactly at the threshold: counts ("v[k-1] < threshold <= v[k]")
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [250 * DT])


def test_noisy_upstroke_crossing_three_times_is_one_spike():
    v = flat()
    v[400], v[401:410] = 0.001, -0.001  # crossings at samples 400, 410 and 425: within 0.25 ms
    v[410], v[411:425] = 0.001, -0.001
    v[425:480] = 0.03
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [400 * DT])
    np.testing.assert_allclose(detect_spikes(v, DT, dead_time=0)[0], [400 * DT, 410 * DT, 425 * DT])


def test_two_spikes_half_a_millisecond_apart_are_one_with_the_default_dead_time():
    v = flat()
    v[300:310] = 0.02
    v[350:360] = 0.02  # 0.5 ms later
    assert DEFAULT_DEAD_TIME == 1e-3
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [300 * DT])
    np.testing.assert_array_equal(detect_spikes(v, DT, dead_time="0.4 ms")[0], [300 * DT, 350 * DT])
    v[400:410] = 0.02  # 1 ms after the counted spike: a spike (the dead time excludes its end)
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [300 * DT, 400 * DT])


def test_the_dead_time_runs_from_the_last_counted_spike():
    v = flat()
    for k in (100, 160, 220, 280):  # 0.6 ms apart: 160 is ignored, 220 counts (1.2 ms after 100), 280 not
        v[k:k + 5] = 0.02
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [100 * DT, 220 * DT])


def test_a_trace_starting_above_threshold_has_no_spike_at_time_zero():
    v = flat()
    v[:50] = 0.03
    v[600:620] = 0.03
    np.testing.assert_array_equal(detect_spikes(v, DT)[0], [600 * DT])
    assert detect_spikes(np.full(100, 0.03), DT)[0].size == 0


def test_exact_times_shapes_and_units():
    v = np.stack([flat(), flat(), flat()])
    v[0, [100, 500, 900]] = 0.01
    v[2, 700] = 0.01
    trains = detect_spikes(v, DT, threshold=0.0)
    assert len(trains) == 3
    np.testing.assert_array_equal(trains[0], np.array([100, 500, 900]) * DT)
    assert trains[1].size == 0 and trains[1].dtype == np.float64
    np.testing.assert_array_equal(trains[2], [700 * DT])
    assert len(detect_spikes(v[0], DT)) == 1  # a 1-D trace: a list of one train
    nested = detect_spikes(np.stack([v, v[::-1]]), "0.01 ms", "0 mV", "1 ms")  # (n_sets, n_traces, n_steps)
    np.testing.assert_array_equal(nested[1][0], trains[2])
    np.testing.assert_array_equal(spike_counts(v, DT), [3, 0, 1])
    np.testing.assert_array_equal(detect_spikes(v * 1e3, DT, threshold=-20.0)[0], trains[0])  # any unit, same rule
    nan = flat()
    nan[[99, 300]], nan[[100, 301]] = np.nan, 0.01  # a NaN sample is not below the threshold
    np.testing.assert_array_equal(detect_spikes(nan, DT)[0], [])


@pytest.mark.parametrize("kwargs, message", [
    ({"dt": 0}, "dt = 0.0 must be a positive"),
    ({"dead_time": -1e-3}, "dead_time = -0.001 must be a finite time >= 0"),
    ({"threshold": float("nan")}, "threshold is NaN"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    args = {"dt": DT, **kwargs}
    with pytest.raises(SpikeDetectionError, match=message):
        detect_spikes(flat(), **args)
    with pytest.raises(ValueError):  # SpikeDetectionError is a ValueError too
        detect_spikes(flat(), **args)


def test_vectorised_detector_follows_the_rule_on_noise():
    rng = np.random.default_rng(0)
    for dead_steps in (0, 1, 3, 17, 100):
        x = rng.normal(size=(6, 700))
        trains = detect_spikes(x, DT, threshold=0.5, dead_time=dead_steps * DT)
        for row, train in zip(x, trains):
            np.testing.assert_array_equal(train, loop_rule(row, DT, 0.5, dead_steps))


# --- one noisy trace, three stages ----------------------------------------------------------------

N_STEPS = 6000  # 60 ms at 0.01 ms
SPIKES = [[1500, 2500, 3800], [2000, 4000]]  # crossing samples of the true spikes per trace
EXTRA = [[], [2045]]  # a second spike 0.45 ms after one (and its downstroke): within the dead time


def noisy_traces(seed=1):
    """Two noisy voltage traces (V): baseline noise, and at each spike a noisy upstroke crossing 0 mV three
    times within 0.25 ms (once exactly at 0 mV), a peak, and a downstroke wiggling back above 0 mV."""
    rng = np.random.default_rng(seed)
    v = REST + 0.3e-3 * rng.standard_normal((2, N_STEPS))
    for j, ks in enumerate(SPIKES):
        for k in ks + EXTRA[j]:
            v[j, k - 3:k] = [-0.03, -0.015, -0.002]
            v[j, k] = 0.0 if k == 2500 else 0.001
            v[j, k + 1:k + 10] = -0.001
            v[j, k + 10] = 0.0015
            v[j, k + 11:k + 25] = -0.0005
            v[j, k + 25:k + 40] = 0.03
            v[j, k + 40:k + 70] = np.linspace(0.03, -0.07, 30)
            v[j, k + 52] = 0.0005  # the downstroke crosses 0 mV upwards again
    return v


def test_noisy_traces_have_the_known_spikes_and_the_old_inference_rule_overcounted():
    v = noisy_traces()
    expected = [np.array(ks) * DT for ks in SPIKES]
    for train, want in zip(detect_spikes(v, DT, 0.0), expected):
        np.testing.assert_allclose(train, want, rtol=0, atol=1e-15)
    above = v > 0.0  # the former inference rule: ">" and no dead time
    old = (above[:, 1:] & ~above[:, :-1]).sum(axis=1)
    assert old.tolist() == [11, 11]  # instead of 3 and 2: 3 or 4 crossings per spike (one exactly at 0 mV missed)


@pytest.fixture(scope="module")
def three_stages(tmp_path_factory):
    """One study on the noisy traces (saved in mV) with a spike fit, spike features and a reduction target."""
    from neurofit.workflow.study import Study

    work = tmp_path_factory.mktemp("spikes")
    v = noisy_traces()
    current = np.zeros((2, N_STEPS))
    current[:, 1000:5000] = [[0.5e-9], [0.8e-9]]
    np.save(work / "v_mV.npy", v * 1e3)
    np.save(work / "I.npy", current)
    config = {"studies": {"noisy": {
        "model": {"builtin": "hh_traub", "threshold": "v > -20*mV", "refractory": "v > -20*mV"},
        "data": {"dt": "0.01 ms", "inputs": {"I": {"path": str(work / "I.npy"), "unit": "amp"}},
                 "outputs": {"v": {"path": str(work / "v_mV.npy"), "unit": "mV"}}},
        "fit": {"kind": "spike", "spike_threshold": "0 mV", "metric": {"delta": "1 ms"},
                "bounds": {"gl": ["1 nS", "100 nS"], "g_na": ["1 uS", "100 uS"], "g_kd": ["1 uS", "100 uS"]},
                "init": {"v": "-65 mV"}, "optimizers": [{"name": "DE"}], "seeds": [1], "n_samples": 10,
                "n_rounds": 1},
        "infer": {"bounds": {"g_na": ["1 uS", "100 uS"], "g_kd": ["1 uS", "100 uS"]},
                  "features": {"spikes": ["spike_count", "mean_isi", "first_spike_latency"]},
                  "spike_threshold": "0 mV", "n_samples": 10},
        "reduction": {
            "target": {"data": {"train": {"path": str(work / "v_mV.npy"), "unit": "mV"}, "spike_threshold": "0 mV"}},
            "model": {"builtin": "adex", "init": {"v": "-65 mV", "w": 0}, "method": "euler"},
            "protocol": {"train_amplitudes": ["0.5 nA", "0.8 nA"], "dt": "0.01 ms", "duration": "60 ms",
                         "start": "10 ms", "stop": "50 ms"},
            "variables_bounds": {"C": ["50 pF", "500 pF"], "gl": ["2 nS", "50 nS"]},
            "max_evals": 10},
    }}}
    return Study.from_config(config, "noisy"), v


def test_one_noisy_trace_gives_the_same_spikes_in_fit_inference_and_reduction(three_stages):
    from neurofit.workflow.fit_section import FitSection
    from neurofit.workflow.infer_section import inferencer_from_config
    from neurofit.workflow.reduction_section import ReductionSection, spike_statistics

    study, v = three_stages
    dataset = study.dataset()
    expected = detect_spikes(dataset.outputs["v"], dataset.dt, 0.0)
    for train, ks in zip(expected, SPIKES):
        np.testing.assert_allclose(train, np.array(ks) * DT, rtol=0, atol=1e-15)

    # fitting: the recorded spike trains a spike fit is scored against (SpikeFitter, GammaFactor)
    plan = FitSection(study)
    fitted_data = plan.fitter(dataset).output_spikes
    gamma = plan.metric(dataset)
    assert isinstance(gamma, GammaFactor)
    np.testing.assert_allclose(gamma.calc([expected], fitted_data, dataset.dt), [0.0], atol=1e-12)

    # inference: the data's spike trains and their spike features
    inferencer, _, _ = inferencer_from_config(study, dataset)
    x_o = inferencer.x_o  # per trace: spike_count, mean_isi, first_spike_latency
    window = 1000 * dataset.dt

    # reduction: the recorded target's spike trains, its loss against itself and the spike counts reported
    reduction = ReductionSection(study)
    target = reduction.target_results("train")
    stats = spike_statistics(target, target, reduction.amplitudes["train"], 2e-3, reduction.duration, reduction.dt)
    loss = SpikeTrainLoss()(target, target)

    for j, want in enumerate(expected):
        np.testing.assert_array_equal(fitted_data[j], want)
        np.testing.assert_array_equal(inferencer.output_spikes[j], want)
        np.testing.assert_array_equal(target.spikes[0][j], want)
        np.testing.assert_allclose(x_o[3 * j:3 * j + 3], [want.size, np.diff(want).mean(), want[0] - window],
                                   rtol=1e-12)
    assert stats["target_counts"] == [len(ks) for ks in SPIKES] == [int(c) for c in x_o[::3]]
    assert loss[:2] == [pytest.approx(0.0, abs=1e-12), 0.0]  # no gamma error, no count difference


def test_inference_features_use_the_shared_detector():
    v = noisy_traces()
    for a, b in zip(features.detect_spikes(v, DT, 0.0), detect_spikes(v, DT)):
        np.testing.assert_array_equal(a, b)
    windows = [(1000, 5000), (1000, 5000)]
    fs = features.FeatureSet({"spikes": ["spike_count"]}, windows, DT, N_STEPS)
    x = fs({}, [features.detect_spikes(v, DT, 0.0)])
    np.testing.assert_array_equal(x, [[3, 2]])
