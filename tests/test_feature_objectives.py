"""Feature objectives as the field does them: eFEL settings, spike visibility, targets as mean ± SD, z-scores.

Synthetic AdEx traces (the built-in at its defaults, step currents): its reset (v > VT + 5 DeltaT, v = Vr) keeps v
at or below -40.4 mV, under eFEL's default Threshold of -20 mV.
"""
import math
import warnings

import efel
import numpy as np
import pytest

from neurofit import models
from neurofit.fitting.feature_targets import (
    MISSING_ZSCORE,
    SD_FLOOR_DEFAULT,
    FeatureTargets,
    MissingFeatureWarning,
    SpikeVisibilityError,
    feature_targets,
    repeat_groups,
    spike_ceiling,
)
from neurofit.fitting.fitters import TraceFitter
from neurofit.fitting.metrics import MISSING_FEATURE_PENALTY, FeatureMetric
from neurofit.workflow.fit_section import FitSection
from neurofit.workflow.study import ConfigError, Study

DT = 1e-4  # s
N_STEPS = 5000  # 500 ms
STIM = (0.1, 0.4)  # s: the current step
FEATURES = ["spike_count", "mean_frequency", "time_to_first_spike", "voltage_base", "steady_state_voltage"]
SPEC = models.SPECS["adex"]
ADEX = models.get("adex")


def steps(amplitudes) -> np.ndarray:
    current = np.zeros((len(amplitudes), N_STEPS))
    for row, amplitude in zip(current, amplitudes):
        row[int(STIM[0] / DT):int(STIM[1] / DT)] = amplitude
    return current


def simulate(amplitudes, params=None) -> tuple[np.ndarray, list]:
    """AdEx potentials (n, N_STEPS) in V and threshold events (s) under current steps of ``amplitudes`` (A)."""
    current = steps(amplitudes)
    fitter = TraceFitter(ADEX, {"I": current}, {"v": np.zeros_like(current)}, DT, param_init=SPEC.init,
                         method=SPEC.method)
    out = fitter.generate(["v", "spikes"], params=params or SPEC.defaults)
    return out["v"], out["spikes"]


@pytest.fixture(scope="module")
def adex():
    v, spikes = simulate([0.8e-9, 1.2e-9])
    return v, spikes


def direct_efel(traces, settings, features=FEATURES):
    """Features of traces (V) from eFEL called directly with ``settings`` (efel.set_setting), mV / ms."""
    efel.reset()
    try:
        for name, value in settings.items():
            efel.set_setting(name, value)
        inputs = [{"T": np.arange(N_STEPS) * DT * 1e3, "V": trace * 1e3, "stim_start": [STIM[0] * 1e3],
                   "stim_end": [STIM[1] * 1e3]} for trace in traces]
        results = efel.get_feature_values(inputs, features, raise_warnings=False)
    finally:
        efel.reset()
    return [{k: (None if v is None or len(v) == 0 else float(v[0])) for k, v in r.items()} for r in results]


def with_spike_shape(v, spikes) -> np.ndarray:
    """The AdEx traces with a +20 mV sample before each reset: spikes eFEL's default Threshold can see."""
    shaped = v.copy()
    for row, train in zip(shaped, spikes):
        row[np.rint(np.asarray(train) / DT).astype(int)] = 20e-3
    return shaped


# --- the AdEx reset below eFEL's default threshold is caught -------------------------------------------------

def test_adex_reset_below_the_default_threshold_is_a_one_line_error(adex):
    v, spikes = adex
    assert [len(s) for s in spikes] == [6, 16] and v.max() <= -40.4e-3 + 1e-12
    low, high, condition = spike_ceiling(ADEX, SPEC.defaults)
    assert low == high == pytest.approx(-40.4e-3) and condition == "v > VT + 5*DeltaT"
    metric = FeatureMetric([STIM], FEATURES)
    with pytest.raises(SpikeVisibilityError) as caught:
        metric.check_model(ADEX, SPEC.defaults)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("eFEL's Threshold (-20 mV) is above every potential")
    assert "peaks at -40.4 mV" in message and "{'Threshold': -45.4}" in message and "adjust_threshold" in message
    with pytest.raises(SpikeVisibilityError, match=r"^2 of 2 model traces with threshold events peak at or below "
                                                   r"eFEL's Threshold \(-20 mV; their highest sample: -40.4 mV\)"):
        metric.check_spikes_visible(v, spikes)
    # data that spike (to eFEL) against model traces that never reach the Threshold
    with pytest.raises(SpikeVisibilityError, match=r"^the data show 22 spikes to eFEL but the model's traces peak "
                                                   r"at -40.4 mV, below eFEL's Threshold \(-20 mV\)"):
        metric.check_spikes_visible(v, data_traces=with_spike_shape(v, spikes), dt=DT)
    # a Threshold below the reset potential passes both checks
    visible = FeatureMetric([STIM], FEATURES, efel_settings={"Threshold": -45})
    assert visible.check_model(ADEX, SPEC.defaults) == -45.0
    assert visible.check_spikes_visible(v, spikes) == -45.0
    assert [f["spike_count"] for f in visible.feature_values(v, DT)] == [6, 16]


def test_the_check_runs_over_the_bounds_and_leaves_spike_shapes_alone():
    metric = FeatureMetric([STIM], FEATURES)
    # VT + 5 DeltaT from -60 + 5 = -55 mV to -50 + 15 = -35 mV: below -20 mV everywhere
    below = {"VT": (-60e-3, -50e-3, "linear"), "DeltaT": (1e-3, 3e-3)}
    with pytest.raises(SpikeVisibilityError, match=r"peaks at -55\.0 to -35\.0 mV over the bounds\).*"
                                                   r"\{'Threshold': -60\}"):
        metric.check_model(ADEX, below)
    # -57.5 to -15 mV: partly above -20 mV -> a warning, no error
    with pytest.warns(MissingFeatureWarning, match=r"peaks at -57\.5 to -15\.0 mV over the bounds"):
        assert metric.check_model(ADEX, {"VT": (-60e-3, -40e-3), "DeltaT": (0.5e-3, 5e-3)}) == -20.0
    hh = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV")  # no reset: spikes have a shape
    assert spike_ceiling(hh, {}) is None and metric.check_model(hh, {}) == -20.0
    izhikevich = models.get("izhikevich")  # v >= 30 mV, v = c: its ceiling is above -20 mV
    assert spike_ceiling(izhikevich, {})[:2] == pytest.approx((30e-3, 30e-3))
    assert metric.check_model(izhikevich, {}) == -20.0


def test_adjust_threshold_lowers_it_and_the_features_become_finite(adex):
    v, spikes = adex
    metric = FeatureMetric([STIM], FEATURES, adjust_threshold=True)
    assert metric.check_model(ADEX, SPEC.defaults) == -45.4
    assert metric.efel_settings == {"Threshold": -45.4}
    assert metric.threshold_note.startswith("eFEL Threshold lowered from -20 to -45.4 mV: 5 mV below the lowest")
    values = metric.feature_values(v, DT)
    assert all(math.isfinite(f[name]) for f in values for name in FEATURES)
    assert [f["spike_count"] for f in values] == [len(s) for s in spikes] == [6, 16]
    assert metric.check_model(ADEX, SPEC.defaults) == -45.4  # a second check changes nothing
    # from simulated traces: 5 mV below the lowest peak of the traces with threshold events
    from_traces = FeatureMetric([STIM], FEATURES, adjust_threshold=True)
    expected = round(float(v.max(axis=1).min()) * 1e3 - 5.0, 1)
    assert from_traces.check_spikes_visible(v[None], [spikes]) == expected == -45.6
    assert [f["spike_count"] for f in from_traces.feature_values(v, DT)] == [6, 16]


# --- eFEL settings ------------------------------------------------------------------------------------------

def test_efel_settings_change_the_values_as_efel_does(adex):
    v, _ = adex
    settings = {"Threshold": -45, "interp_step": 0.025}
    values = FeatureMetric([STIM], FEATURES, efel_settings=settings).feature_values(v, DT)
    assert values == direct_efel(v, settings)
    coarse = FeatureMetric([STIM], FEATURES, efel_settings={"Threshold": -45}).feature_values(v, DT)
    assert coarse == direct_efel(v, {"Threshold": -45})
    # interp_step moves the steady-state voltage (-81.698 vs -81.711 mV on the 1.2 nA trace), not the spike count
    assert coarse[1]["steady_state_voltage"] == pytest.approx(-81.6983, abs=1e-3)
    assert values[1]["steady_state_voltage"] == pytest.approx(-81.7107, abs=1e-3)
    assert values[1]["spike_count"] == coarse[1]["spike_count"] == 16
    assert FeatureMetric([STIM], FEATURES).feature_values(v, DT) == direct_efel(v, {})


def test_unknown_settings_and_bad_values_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^efel_settings: unknown eFEL setting 'Treshold' \(did you mean Threshold\? "
                                         r"valid: Threshold, DerivativeThreshold, DownDerivativeThreshold, "):
        FeatureMetric([STIM], FEATURES, efel_settings={"Treshold": -45})
    with pytest.raises(ValueError, match=r"'-45 mV' is not a value for eFEL setting 'Threshold'"):
        FeatureMetric([STIM], FEATURES, efel_settings={"Threshold": "-45 mV"})
    with pytest.raises(ValueError, match="zscore_combine must be 'mean' or 'max'"):
        FeatureMetric([STIM], FEATURES, zscore_combine="sum")


def test_settings_of_one_metric_do_not_leak_into_another(adex):
    v, _ = adex
    lowered = FeatureMetric([STIM], ["spike_count"], efel_settings={"Threshold": -45, "interp_step": 0.025})
    default = FeatureMetric([STIM], ["spike_count"])
    efel.reset()
    try:
        assert [f["spike_count"] for f in lowered.feature_values(v, DT)] == [6, 16]
        assert [f["spike_count"] for f in default.feature_values(v, DT)] == [0, 0]
        assert efel.get_settings().Threshold == -20.0 and efel.get_settings().interp_step == 0.1
        # eFEL's global settings do not reach a metric either, and are left as they were
        efel.set_setting("Threshold", -45.0)
        assert [f["spike_count"] for f in default.feature_values(v, DT)] == [0, 0]
        assert [f["spike_count"] for f in lowered.feature_values(v, DT)] == [6, 16]
        assert efel.get_settings().Threshold == -45.0 and efel.get_settings().interp_step == 0.1
    finally:
        efel.reset()


# --- targets as mean ± SD, z-scores ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def repeats():
    """Six sweeps: three 'repeats' of about 1 nA (slightly different), three identical ones at 0.8 nA."""
    amplitudes = [0.95e-9, 1.0e-9, 1.05e-9, 0.8e-9, 0.8e-9, 0.8e-9]
    v, _ = simulate(amplitudes)
    return v, ["1 nA"] * 3 + ["0.8 nA"] * 3


def test_targets_are_numpy_mean_and_sd_of_the_efel_features_with_floors(repeats):
    v, groups = repeats
    settings = {"Threshold": -45.0}
    targets = feature_targets(v, DT, [STIM], FEATURES, settings, groups=groups)
    direct = direct_efel(v, settings)
    assert targets.groups == ["1 nA", "0.8 nA"] and targets.trace_group.tolist() == [0, 0, 0, 1, 1, 1]
    for g, rows in enumerate((slice(0, 3), slice(3, 6))):
        for f, name in enumerate(FEATURES):
            values = np.array([d[name] for d in direct[rows]])
            mean, sd = np.mean(values), np.std(values)
            assert targets.mean[g, f] == pytest.approx(mean, rel=1e-12)
            assert targets.raw_sd[g, f] == pytest.approx(sd, abs=1e-12)
            floor = 1.0 if name == "spike_count" else SD_FLOOR_DEFAULT
            assert targets.sd[g, f] == pytest.approx(max(sd, 0.05 * abs(mean), floor), rel=1e-12)
            assert targets.count[g, f] == 3
    # identical repeats: SD 0, so the floors decide
    spike_count, voltage_base = FEATURES.index("spike_count"), FEATURES.index("voltage_base")
    assert targets.raw_sd[1, spike_count] == 0 and targets.mean[1, spike_count] == 6
    assert targets.sd[1, spike_count] == 1.0  # the one-spike absolute floor (5 % of 6 spikes is 0.3)
    assert targets.raw_sd[1, voltage_base] == 0 and targets.sd[1, voltage_base] == pytest.approx(0.05 * 70.6, rel=1e-4)
    no_relative = feature_targets(v, DT, [STIM], FEATURES, settings, groups=groups, sd_floor=0.0,
                                  abs_floor={"spike_count": 0.5})
    assert no_relative.sd[1, voltage_base] == SD_FLOOR_DEFAULT and no_relative.sd[1, spike_count] == 0.5
    # 10, 11, 12 spikes about 1 nA: SD 0.82 spike, floored to 1; their mean frequency's spread is above its floor
    assert targets.mean[0, spike_count] == 11 and targets.raw_sd[0, spike_count] == pytest.approx(math.sqrt(2 / 3))
    assert targets.sd[0, spike_count] == 1.0
    frequency = FEATURES.index("mean_frequency")
    assert targets.sd[0, frequency] == targets.raw_sd[0, frequency] > 0.05 * targets.mean[0, frequency]
    assert targets.as_dict()["0.8 nA"]["spike_count"] == {"mean": 6.0, "sd": 1.0, "raw_sd": 0.0, "n": 3}
    assert repeat_groups({"I": steps([0.95e-9, 1.0e-9, 1.05e-9, 0.8e-9, 0.8e-9, 0.8e-9])}) == [0, 1, 2, 3, 3, 3]


def test_zscore_metric_is_zero_at_the_mean_and_one_at_one_sd(adex):
    v, _ = adex
    names = ["spike_count", "mean_frequency", "voltage_base"]
    settings = {"Threshold": -45}
    model = v[None, 1:]  # one parameter set, the 1.2 nA trace
    f = FeatureMetric([STIM], names, efel_settings=settings).feature_values(v[1:], DT)[0]
    sd = {"spike_count": 2.0, "mean_frequency": 5.0, "voltage_base": 0.5}

    def error(means, combine="mean", weights=None):
        metric = FeatureMetric([STIM], names, efel_settings=settings, weights=weights, zscore_combine=combine,
                               targets={n: (means[n], sd[n]) for n in names})
        return metric.calc(model, v[1:], DT)[0]

    assert error(f) == 0.0
    with pytest.raises(ValueError, match=r"targets\['spike_count'\]: the SD must be a positive number, got 0"):
        FeatureTargets.of({"spike_count": (16, 0)})
    one_sd = {n: f[n] - sd[n] for n in names}
    assert error(one_sd) == pytest.approx(1.0, rel=1e-12)
    assert error(one_sd, "max") == pytest.approx(1.0, rel=1e-12)
    mixed = {**f, "spike_count": f["spike_count"] + 2 * sd["spike_count"]}  # 2 SD, 0, 0
    assert error(mixed) == pytest.approx(2 / 3, rel=1e-12) and error(mixed, "max") == pytest.approx(2.0, rel=1e-12)
    assert error(mixed, weights={"spike_count": 2.0}) == pytest.approx(4 / 4, rel=1e-12)  # (2*2 + 0 + 0) / (2+1+1)
    # a feature the target has and the model lacks scores MISSING_ZSCORE
    silent = FeatureMetric([STIM], names, efel_settings=settings, targets={n: (f[n], sd[n]) for n in names})
    resting = np.full((1, 1, N_STEPS), -70e-3)
    with pytest.warns(MissingFeatureWarning):
        error = silent.calc(resting, v[1:], DT)[0]
    # spike_count 0 (eFEL counts no spike: 0, not missing), no mean_frequency, voltage_base -70 mV
    expected = (f["spike_count"] / 2.0 + MISSING_ZSCORE + abs(-70.0 - f["voltage_base"]) / 0.5) / 3
    assert error == pytest.approx(expected, rel=1e-9) and f["spike_count"] == 16


def test_zscore_metric_on_targets_from_recordings(repeats):
    v, groups = repeats
    settings = {"Threshold": -45.0}
    targets = feature_targets(v, DT, [STIM], FEATURES, settings, groups=groups)
    metric = FeatureMetric([STIM], FEATURES, efel_settings=settings, targets=targets)
    errors = metric.calc(v[None], v, DT)  # the recorded sweeps as one candidate
    values = np.array([[d[n] for n in FEATURES] for d in direct_efel(v, settings)])
    z = np.abs(values - targets.mean[targets.trace_group]) / targets.sd[targets.trace_group]
    assert errors[0] == pytest.approx(z.mean(axis=1).mean(), rel=1e-12)
    relative = FeatureMetric([STIM], FEATURES, efel_settings=settings).calc(v[None], v, DT)
    assert relative[0] == 0.0  # the default mode compares each sweep with itself
    with pytest.raises(ValueError, match=r"extracted with eFEL setting Threshold = -45.0 but this metric uses -20.0"):
        FeatureMetric([STIM], FEATURES, targets=targets)
    with pytest.raises(ValueError, match="the targets have no 'ISI_CV'"):
        FeatureMetric([STIM], ["ISI_CV"], efel_settings=settings, targets=targets)
    with pytest.raises(ValueError, match="groups of 6 sweeps, but the fit has 2 traces"):
        metric.calc(v[None, :2], v[:2], DT)


# --- a round on the missing-feature penalty warns -------------------------------------------------------------

def test_a_round_of_candidates_on_the_missing_feature_penalty_warns_once(adex):
    v, spikes = adex
    data = with_spike_shape(v, spikes)  # recorded spikes that reach +20 mV
    model = np.stack([v, v, v])  # the AdEx's own traces: nothing above -40.4 mV
    metric = FeatureMetric([STIM], ["spike_count", "mean_frequency", "voltage_base"])
    with pytest.warns(MissingFeatureWarning) as caught:
        errors = metric.calc(model, data, DT)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "lacks, on every trace, eFEL features the data have (mean_frequency)" in message
    assert "eFEL's Threshold (-20 mV)" in message
    assert np.all(errors > MISSING_FEATURE_PENALTY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.calc(model, data, DT)  # once per metric
        FeatureMetric([STIM], ["spike_count", "mean_frequency"], efel_settings={"Threshold": -45}).calc(model, v, DT)
        # some candidate that finds the features: no warning
        FeatureMetric([STIM], ["spike_count", "mean_frequency"]).calc(np.stack([v, data]), data, DT)


# --- the workflow's keys ------------------------------------------------------------------------------------

def adex_study(tmp_path, **metric):
    """An AdEx study on recorded (synthetic) sweeps: two repeats at 0.8 nA and two at 1.2 nA, noisy."""
    amplitudes = [0.8e-9, 0.8e-9, 1.2e-9, 1.2e-9]
    v, _ = simulate(amplitudes)
    v = v + np.random.default_rng(0).normal(0.0, 0.05e-3, v.shape)
    np.save(tmp_path / "I.npy", steps(amplitudes))
    np.save(tmp_path / "v.npy", v)
    fixed = {k: value for k, value in SPEC.defaults.items() if k not in ("VT", "gl")}
    section = {"bounds": {"VT": ["-52 mV", "-48 mV"], "gl": ["10 nS", "50 nS"]}, "fixed": fixed,
               "metric": {"name": "feature", "stim_times": ["100 ms", "400 ms"],
                          "features": ["spike_count", "mean_frequency", "voltage_base"], **metric},
               "optimizers": [{"name": "DE"}], "n_samples": 4, "n_rounds": 1}
    return {"studies": {"adex": {
        "model": {"builtin": "adex"},
        "data": {"dt": "0.1 ms", "inputs": {"I": {"path": str(tmp_path / "I.npy"), "unit": "amp"}},
                 "outputs": {"v": {"path": str(tmp_path / "v.npy"), "unit": "volt"}}},
        "fit": section}}}


def test_workflow_keys_give_the_same_metric(tmp_path):
    config = adex_study(tmp_path, efel_settings={"Threshold": -45}, zscore=True)
    study = Study.from_config(config, "adex")
    plan = FitSection(study)
    assert plan.metric_settings["efel_settings"] == {"Threshold": -45} and plan.metric_settings["zscore"] is True
    dataset = study.dataset()
    metric = plan.metric(dataset)
    names = ["spike_count", "mean_frequency", "voltage_base"]
    targets = feature_targets(dataset.outputs["v"], dataset.dt, [STIM], names, {"Threshold": -45},
                              groups=[0, 0, 1, 1])
    direct = FeatureMetric([STIM], names, efel_settings={"Threshold": -45}, targets=targets)
    assert metric.efel_settings == {"Threshold": -45.0} and metric.targets.trace_group.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(metric.targets.mean, targets.mean)
    np.testing.assert_array_equal(metric.targets.sd, targets.sd)
    candidates = np.stack([dataset.outputs["v"], simulate([0.8e-9, 0.8e-9, 1.2e-9, 1.2e-9],
                                                          {**SPEC.defaults, "VT": -48e-3})[0]])
    np.testing.assert_array_equal(metric.calc(candidates, dataset.outputs["v"], DT),
                                  direct.calc(candidates, dataset.outputs["v"], DT))
    assert metric.targets.mean[0, 0] == 6 and metric.targets.mean[1, 0] == 16

    # eFEL's default Threshold: the AdEx's reset (VT + 5 DeltaT: -42 to -38 mV over the bounds) is caught
    default = adex_study(tmp_path)
    study = Study.from_config(default, "adex")
    with pytest.raises(ConfigError, match=r"^studies\.adex\.fit\.metric\.efel_settings: eFEL's Threshold \(-20 mV\) "
                                          r"is above every potential the model's v records .*peaks at -42\.0 to "
                                          r"-38\.0 mV over the bounds\)"):
        FitSection(study).metric(study.dataset())
    adjusted = adex_study(tmp_path, adjust_threshold=True)
    study = Study.from_config(adjusted, "adex")
    metric = FitSection(study).metric(study.dataset())
    assert metric.efel_settings == {"Threshold": -47.0} and metric.targets is None
    recorded = study.dataset().outputs["v"]
    assert metric.feature_values(recorded, DT) == direct_efel(recorded, {"Threshold": -47.0}, names)
    clean, events = simulate([0.8e-9, 1.2e-9])  # without the recording noise: one eFEL spike per threshold event
    assert [f["spike_count"] for f in metric.feature_values(clean, DT)] == [len(e) for e in events] == [6, 16]

    with pytest.raises(ConfigError, match=r"^studies\.adex\.fit\.metric\.efel_settings\.Treshold: unknown eFEL "
                                          r"setting 'Treshold' \(did you mean Threshold\?"):
        FitSection(Study.from_config(adex_study(tmp_path, efel_settings={"Treshold": -45}), "adex"))
    mse = adex_study(tmp_path, efel_settings={"Threshold": -45})
    mse["studies"]["adex"]["fit"]["metric"] = {"name": "mse", "zscore": True}
    with pytest.raises(ConfigError, match=r"^studies\.adex\.fit\.metric\.zscore: only for metric feature"):
        FitSection(Study.from_config(mse, "adex"))
