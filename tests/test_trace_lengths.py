"""Sweeps of different lengths (padded, ``Dataset.lengths``), a simulation step finer than the recording's
(``simulation_dt``) and per-sweep initial states (``fit.init: {v: baseline}`` and ``steady_state``)."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import neurofit as nf
from neurofit import models
from neurofit.data.dataset import Dataset, pre_stimulus_baseline
from neurofit.data.files import DataError
from neurofit.errors import ConfigError
from neurofit.fitting.fitters import FitError, OnlineTraceFitter, SpikeFitter, TraceFitter
from neurofit.fitting.metrics import GammaFactor, MSEMetric, TraceMetric
from neurofit.fitting.optimizers import NevergradOptimizer
from neurofit.workflow.fit_section import FitSection, mse, run_fit, run_refine
from neurofit.workflow.study import Study, validate_config
from test_recording_study import ABF, direct_input_resistances

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"gl": 10e-9, "El": -70e-3, "C": 100e-12}
BOUNDS = {"gl": [1e-9, 100e-9, "log"], "El": [-90e-3, -50e-3], "C": [10e-12, 1e-9, "log"]}
DT = 1e-4
LENGTHS = [3000, 2000]


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def step(n, start, stop, amplitude, dt=DT):
    current = np.zeros(n)
    current[int(round(start / dt)):int(round(stop / dt))] = amplitude
    return current


@pytest.fixture(scope="module")
def two_sweeps():
    """The passive model at TRUTH on two step currents of different durations (300 ms and 200 ms, 0.2 mV
    noise), each simulated on its own; the shorter padded: current held at its last value, voltage NaN."""
    model = models.get("passive")
    currents = [step(3000, 0.05, 0.25, 50e-12), step(2000, 0.05, 0.15, -80e-12)]
    rng = np.random.default_rng(0)
    voltages = []
    for current in currents:
        v = nf.simulate(model, TRUTH, {"I": current[None]}, DT, init={"v": "El"}, method="exponential_euler",
                        backend="numpy").traces["v"][0, 0]
        voltages.append(v + rng.normal(0, 2e-4, v.size))
    inputs = np.stack([currents[0], np.r_[currents[1], np.full(1000, currents[1][-1])]])
    outputs = np.stack([voltages[0], np.r_[voltages[1], np.full(1000, np.nan)]])
    return model, currents, voltages, inputs, outputs


def passive_fitter(two_sweeps, lengths=LENGTHS, cls=TraceFitter, **kwargs):
    model, _, _, inputs, outputs = two_sweeps
    return cls(model, {"I": inputs}, {"v": outputs}, DT, n_samples=kwargs.pop("n_samples", 30),
               method="exponential_euler", param_init={"v": "El"}, lengths=lengths, **kwargs)


# --- the dataset ------------------------------------------------------------------------------------------

def test_dataset_lengths_are_checked_and_saved(tmp_path, two_sweeps):
    _, _, _, inputs, outputs = two_sweeps
    ds = Dataset({"I": inputs}, {"v": outputs}, DT, lengths=LENGTHS)
    assert ds.lengths.dtype == np.int64 and not ds.full_length and ds.n_steps == 3000
    assert ds.valid_mask().sum(axis=1).tolist() == LENGTHS
    ds.save_npz(tmp_path / "data.npz")
    back = Dataset.load_npz(tmp_path / "data.npz")
    assert back.lengths.tolist() == LENGTHS
    np.testing.assert_array_equal(back.outputs["v"], outputs)  # NaN padding kept
    with pytest.raises(DataError) as err:  # padded without lengths: refused as today
        Dataset({"I": inputs}, {"v": outputs}, DT)
    assert "row 1, column 2000 is NaN" in one_line(err)
    bad = outputs.copy()
    bad[1, 10] = np.nan
    with pytest.raises(DataError) as err:  # NaN only after a trace's end
        Dataset({"I": inputs}, {"v": bad}, DT, lengths=LENGTHS)
    assert "row 1, column 10 is NaN" in one_line(err) and "lengths[1] = 2000" in one_line(err)
    bad = outputs.copy()
    bad[1, 2500] = np.inf
    with pytest.raises(DataError) as err:
        Dataset({"I": inputs}, {"v": bad}, DT, lengths=LENGTHS)
    assert "column 2500 is inf" in one_line(err)
    for lengths, text in (([3000], "shape (1,)"), ([3000, 0], "lengths[1] = 0"), ([3001, 2000], "lengths[0] = 3001"),
                          ([3000, 1999.5], "whole number"), ("abc", "whole number")):
        with pytest.raises(DataError) as err:
            Dataset({"I": inputs}, {"v": outputs}, DT, lengths=lengths)
        assert text in one_line(err)
    with pytest.raises(DataError) as err:  # a recorded spike after its trace's end
        Dataset({"I": inputs}, {"v": outputs}, DT, lengths=LENGTHS, spikes={"v": [[0.1], [0.25]]})
    assert "trace 1 has spike times outside [0, 0.2] s" in one_line(err)


def test_full_datasets_are_written_as_before(tmp_path):
    """No lengths: format version 1 without a lengths entry (the bytes of today's data.npz), read back as
    None; a file of version 1 (older neurofit) is read the same."""
    ds = Dataset({"I": np.zeros((2, 5))}, {"v": np.ones((2, 5))}, 1e-4)
    ds.save_npz(tmp_path / "a.npz")
    meta = json.loads(str(np.load(tmp_path / "a.npz")["__meta__"]))
    assert meta["version"] == 1 and "lengths" not in meta
    assert Dataset.load_npz(tmp_path / "a.npz").lengths is None
    full = Dataset({"I": np.zeros((2, 5))}, {"v": np.ones((2, 5))}, 1e-4, lengths=[5, 5])
    assert full.full_length and full.lengths.tolist() == [5, 5]


def test_pre_stimulus_baseline_exact_means():
    dt = 1e-3
    n = 400
    current = np.zeros((4, n))
    current[0, 150:250] = 1e-10  # changes at sample 150: the 100 samples before it (50 .. 149)
    current[1, 30:] = -5e-11  # changes at sample 30: samples 0 .. 29 only
    current[2] = 2e-11  # never changes: the first 100 samples
    current[3, :] = 1e-11
    current[3, 80:] = 3e-11  # changes at 80 while held at 1e-11 before
    voltage = np.arange(4 * n, dtype=float).reshape(4, n) * 1e-3 + np.sin(np.arange(n))[None, :]
    base = pre_stimulus_baseline({"I": current}, {"v": voltage}, dt)["v"]
    expected = [voltage[0, 50:150].mean(), voltage[1, :30].mean(), voltage[2, :100].mean(), voltage[3, :80].mean()]
    np.testing.assert_array_equal(base, expected)
    short = pre_stimulus_baseline(current, {"v": voltage}, dt, window=0.02)["v"]  # 20 samples
    np.testing.assert_array_equal(short, [voltage[0, 130:150].mean(), voltage[1, 10:30].mean(),
                                          voltage[2, :20].mean(), voltage[3, 60:80].mean()])
    # a second input that changes earlier; padded traces: only the recorded samples count
    other = np.zeros((4, n))
    other[0, 120:] = 1.0
    padded = voltage.copy()
    padded[2, 60:] = np.nan
    both = pre_stimulus_baseline({"I": current, "J": other}, {"v": padded}, dt, lengths=[n, n, 60, n])["v"]
    np.testing.assert_array_equal(both, [voltage[0, 20:120].mean(), voltage[1, :30].mean(), voltage[2, :60].mean(),
                                         voltage[3, :80].mean()])
    noisy = current + np.random.default_rng(1).normal(0, 1e-13, current.shape)  # a measured current
    assert pre_stimulus_baseline(noisy, {"v": voltage}, dt, tolerance=1e-12)["v"] == pytest.approx(expected)
    with pytest.raises(DataError):
        pre_stimulus_baseline(current, {"v": voltage}, dt, window=0)


# --- metrics and fitters on traces of different lengths ------------------------------------------------------

def test_mse_is_the_mean_over_the_valid_samples(two_sweeps):
    _, _, _, _, outputs = two_sweeps
    rng = np.random.default_rng(2)
    model = outputs[None] + rng.normal(0, 1e-3, (3, 2, 3000))
    model[:, 1, 2000:] = rng.normal(0, 1.0, (3, 1000))  # whatever the model does after the end is ignored
    valid = np.arange(3000)[None, :] < np.array(LENGTHS)[:, None]
    hand = np.array([np.mean((m - outputs)[valid] ** 2) for m in model])
    np.testing.assert_allclose(MSEMetric().calc(model, outputs, DT, lengths=LENGTHS), hand, rtol=1e-12)
    start = 500  # t_start = 50 ms
    hand = np.array([np.mean((m - outputs)[:, start:][valid[:, start:]] ** 2) for m in model])
    np.testing.assert_allclose(MSEMetric(t_start=0.05).calc(model, outputs, DT, lengths=LENGTHS), hand, rtol=1e-12)
    weights = rng.uniform(0, 1, 3000)
    w = np.broadcast_to(weights, (2, 3000))[valid]
    hand = np.array([np.sum((m - outputs)[valid] ** 2 * w) / w.sum() for m in model])
    np.testing.assert_allclose(MSEMetric(t_weights=weights).calc(model, outputs, DT, lengths=LENGTHS), hand,
                               rtol=1e-12)
    diverged = model.copy()
    diverged[0, 1, 5] = np.nan
    diverged[1, 1, 2500] = np.nan  # NaN in the padding only: a valid set
    errors = MSEMetric().calc(diverged, outputs, DT, lengths=LENGTHS)
    assert errors[0] == np.inf and np.isfinite(errors[1:]).all()
    with pytest.raises(ValueError) as err:
        MSEMetric(t_start=0.25).calc(model, outputs, DT, lengths=LENGTHS)
    assert "trace 1" in one_line(err)


def test_full_lengths_give_todays_numbers_exactly(two_sweeps):
    """lengths all full (or None): today's code path - the same bits as the formula of today's MSEMetric."""
    full = np.nan_to_num(two_sweeps[4], nan=-0.07)
    model = full[None] + np.random.default_rng(3).normal(0, 1e-3, (4, 2, 3000))
    today = ((model - full) ** 2).mean(axis=2).mean(axis=1)
    for lengths in (None, [3000, 3000], np.array([3000, 3000])):
        assert np.array_equal(MSEMetric().calc(model, full, DT, lengths=lengths), today)
    m, inputs = two_sweeps[0], two_sweeps[3]
    fitters = [TraceFitter(m, {"I": inputs}, {"v": full}, DT, n_samples=4, method="exponential_euler",
                           param_init={"v": "El"}, lengths=lengths) for lengths in (None, [3000, 3000])]
    assert fitters[1].lengths is None
    for f in fitters:
        f.metric = MSEMetric()
    candidates = [dict(TRUTH), {**TRUTH, "gl": 12e-9}, {**TRUTH, "C": 80e-12}, {**TRUTH, "El": -0.06}]
    errors = [f._errors(candidates, 0) for f in fitters]
    simulated = fitters[0]._simulate(fitters[0]._param_arrays(candidates, 0)).traces["v"]
    assert np.array_equal(errors[0], errors[1])
    assert np.array_equal(errors[0], ((simulated - full) ** 2).mean(axis=2).mean(axis=1))
    refined = [f.refine(params=TRUTH, max_nfev=3, **BOUNDS)[1] for f in fitters]
    assert np.array_equal(refined[0].fun, refined[1].fun) and np.array_equal(refined[0].x, refined[1].x)


class MaxError(TraceMetric):
    """A user metric: the largest |difference| per trace, averaged over traces."""

    def get_features(self, model_traces, data_traces, dt):
        return np.abs(model_traces - data_traces).max(axis=2)


def test_a_user_trace_metric_sees_each_trace_cropped_to_its_length(two_sweeps):
    _, _, _, _, outputs = two_sweeps
    model = outputs[None] + 1e-3
    model[:, 1, 2000:] = 5.0
    assert MaxError().calc(model, outputs, DT, lengths=LENGTHS) == pytest.approx([1e-3], rel=1e-9)


def test_passive_fit_on_sweeps_of_different_lengths(two_sweeps):
    """Fit (DE) and refine recover the parameters within 1 %; the error is the MSE over the valid samples."""
    model, currents, voltages, _, _ = two_sweeps
    fitter = passive_fitter(two_sweeps)
    fitter.fit(NevergradOptimizer("DE", seed=1), MSEMetric(), n_rounds=10, callback=None, **BOUNDS)
    refined, result = fitter.refine()
    for p, value in TRUTH.items():
        assert refined[p] == pytest.approx(value, rel=0.01), p  # measured: gl +0.13 %, El +0.001 %, C -0.20 %
    assert result.fun.size == sum(LENGTHS)  # padded samples left out of the residuals
    # the fitter's error = the MSE by hand over the valid samples, each sweep simulated on its own
    candidates = [dict(TRUTH), dict(refined), {**TRUTH, "C": 150e-12}]
    errors = fitter._errors(candidates, 0)
    for candidate, error in zip(candidates, errors):
        squares = []
        for current, voltage in zip(currents, voltages):
            v = nf.simulate(model, candidate, {"I": current[None]}, DT, init={"v": "El"}, method="exponential_euler",
                            backend="numpy").traces["v"][0, 0]
            squares.append((v - voltage) ** 2)
        assert error == pytest.approx(np.concatenate(squares).mean(), rel=1e-9)
    assert errors[1] == pytest.approx(np.mean(result.fun ** 2), rel=1e-9)
    assert mse(fitter, refined) == pytest.approx(errors[1], rel=1e-9)
    traces = fitter.generate(params=refined)
    assert np.isnan(traces[1, 2000:]).all() and np.isfinite(traces[1, :2000]).all()
    # finite differences: the same residuals, padded rows left out of the Jacobian too
    fd = passive_fitter(two_sweeps).refine(params=refined, calc_gradient=False, **BOUNDS)[1]
    assert fd.fun.size == sum(LENGTHS) and np.mean(fd.fun ** 2) == pytest.approx(np.mean(result.fun ** 2), rel=1e-6)


def test_fitters_that_cannot_mask_refuse_in_one_line(two_sweeps):
    with pytest.raises(FitError) as err:
        passive_fitter(two_sweeps, cls=OnlineTraceFitter)
    assert "different lengths (2000 to 3000 samples)" in one_line(err)
    with pytest.raises(FitError) as err:
        OnlineTraceFitter(two_sweeps[0], {"I": two_sweeps[3]}, {"v": np.nan_to_num(two_sweeps[4])}, DT,
                          simulation_dt=DT / 10)
    assert "simulation_dt must equal dt" in one_line(err)
    with pytest.raises(FitError) as err:
        passive_fitter(two_sweeps, lengths=None)
    assert "contains NaN" in one_line(err) and "lengths=" in one_line(err)
    with pytest.raises(FitError) as err:
        passive_fitter(two_sweeps, lengths=[3000, 2001])
    assert "within a trace's length" in one_line(err)


def test_spike_fitter_ignores_spikes_after_a_trace_end():
    model = models.get("lif")
    spec = models.SPECS["lif"]
    params = dict(spec.defaults)
    inputs = np.stack([step(2000, 0.02, 0.18, 0.5e-9), step(2000, 0.02, 0.2, 0.5e-9)])  # 2nd: held in the padding
    lengths = [2000, 1000]
    res = nf.simulate(model, params, {"I": inputs}, DT, init=spec.init, spikes=True, record=(),
                      method=spec.method, backend="numpy")
    data = [res.spikes[0][0], res.spikes[0][1][res.spikes[0][1] < 0.1]]
    assert (res.spikes[0][1] >= 0.1).any()  # the model fires in the padding
    fitter = SpikeFitter(model, {"I": inputs}, data, DT, n_samples=2, method=spec.method, param_init=spec.init,
                         lengths=lengths)
    spikes = fitter.generate_spikes(params=params)
    assert spikes[1].max() < 0.1 and np.array_equal(spikes[0], res.spikes[0][0])
    fitter.metric = GammaFactor(delta=2e-3, time=0.2)
    assert fitter._errors([params, {**params, "gl": 12e-9}], 0)[0] == pytest.approx(0.0, abs=1e-12)


# --- a simulation step finer than the recording's ------------------------------------------------------------

def test_simulation_dt_finer_than_the_recording():
    """Data simulated (forward Euler) at dt/10 and sampled every 10th step: fitting at simulation_dt = dt/10
    recovers the parameters (measured: gl +3e-10, El +1e-10, C -5e-11 relative), fitting at dt does not
    (measured: C +2.27 %, the Euler step error of dt = 0.5 ms against tau = 10 ms absorbed by the capacitance;
    gl +3e-10, El +1e-10)."""
    model = models.get("passive")
    dt, k = 5e-4, 10
    inputs = np.stack([step(600, 0.05, 0.2, 50e-12, dt), step(600, 0.05, 0.2, -80e-12, dt)])
    fine = nf.simulate(model, TRUTH, {"I": np.repeat(inputs, k, axis=1)}, dt / k, init={"v": "El"}, method="euler",
                       backend="numpy").traces["v"][0]
    data = fine[:, ::k]
    worst = {}
    for simulation_dt in (None, dt / k):
        fitter = TraceFitter(model, {"I": inputs}, {"v": data}, dt, n_samples=30, method="euler",
                             param_init={"v": "El"}, simulation_dt=simulation_dt)
        bounds = {**BOUNDS, "gl": [2e-9, 50e-9, "log"], "C": [50e-12, 1e-9, "log"]}  # Euler stays stable
        fitter.fit(NevergradOptimizer("DE", seed=1), MSEMetric(), n_rounds=10, callback=None, **bounds)
        refined, _ = fitter.refine()
        worst[simulation_dt] = max(abs(refined[p] / TRUTH[p] - 1) for p in TRUTH)
        if simulation_dt is not None:
            assert fitter.substeps == k and fitter.generate(params=TRUTH).shape == (2, 600)
            np.testing.assert_allclose(fitter.generate(params=TRUTH), data, rtol=0, atol=1e-12)
    assert worst[dt / k] < 1e-6 and worst[None] > 0.01, worst


def test_simulation_dt_must_divide_dt():
    model = models.get("passive")
    data = {"I": np.zeros((1, 10))}, {"v": np.zeros((1, 10))}
    for bad in (3e-5, 2e-4, -1e-5):
        with pytest.raises(FitError) as err:
            TraceFitter(model, *data, 1e-4, simulation_dt=bad)
        assert "simulation_dt" in one_line(err)
    assert TraceFitter(model, *data, 1e-4, simulation_dt="10 us").substeps == 10
    assert TraceFitter(model, *data, 1e-4, simulation_dt=1e-4).substeps == 1


# --- the fit section: per-sweep initial states, simulation_dt, lengths -----------------------------------------

def abf_study(fit: dict | None = None) -> Study:
    """config/examples/passive_abf.yaml with the fit section changed by ``fit``."""
    doc = yaml.safe_load((ROOT / "config" / "examples" / "passive_abf.yaml").read_text())
    study = doc["studies"]["passive_171116"]
    study["data"]["recording"]["path"] = str(ABF)
    study["fit"].update(fit or {})
    return Study.from_config(validate_config(doc), "passive_171116")


@pytest.mark.parametrize("init", [{"v": "baseline"}, "steady_state"])
def test_passive_fit_of_the_shared_cell_with_per_sweep_initial_states(init):
    """Both run and give 1/gl within the direct ΔV/ΔI range (measured: 127.1 and 126.9 MΩ; direct 94-154 MΩ)."""
    study = abf_study({"init": init})
    plan = FitSection(study)
    dataset = study.dataset(study.model())
    fitter = plan.fitter(dataset, seed=1)
    if init == "steady_state":
        assert fitter.at_rest and fitter.param_init == {"v": "El"}  # the built-in's init: Newton's guess
    else:
        expected = pre_stimulus_baseline(dataset.inputs, dataset.outputs, dataset.dt)["v"]
        assert fitter.param_init["v"].shape == (1, dataset.n_traces) and not fitter.at_rest
        np.testing.assert_array_equal(fitter.param_init["v"][0], expected)
        assert np.ptp(expected) > 1e-3  # the sweeps do start at different potentials
    run = run_fit(plan, dataset, "DE", seed=1)
    refined = run_refine(plan, dataset, {**run.doc, "_path": "fit/DE_1/fit.json"}, run.history)
    resistance = 1 / refined["params"]["gl"]
    direct = direct_input_resistances()
    assert direct.min() <= resistance <= direct.max(), (resistance, direct)
    assert np.sqrt(refined["mse"]) < 1.2e-3


def test_fit_section_settings_are_checked():
    with pytest.raises(ConfigError) as err:
        FitSection(abf_study({"init": {"w": "baseline"}}))
    assert "fit.init.w: not a state variable" in one_line(err)
    study = abf_study({"simulation_dt": "30 us"})
    plan = FitSection(study)
    dataset = study.dataset(study.model())
    with pytest.raises(ConfigError) as err:
        plan.fitter(dataset)
    assert "fit.simulation_dt: simulation_dt = 3e-05 s must divide" in one_line(err)
    study = abf_study({"simulation_dt": "20 us"})
    assert FitSection(study).fitter(dataset).substeps == 5
    # sweeps of different lengths reach the fitter as lengths; an online fit refuses them
    outputs = dataset.outputs["v"].copy()
    outputs[0, 6000:] = np.nan
    lengths = [6000] + [dataset.n_steps] * (dataset.n_traces - 1)
    padded = Dataset(dataset.inputs, {"v": outputs}, dataset.dt, lengths=lengths)
    assert FitSection(abf_study()).fitter(padded).lengths.tolist() == lengths
    with pytest.raises(ConfigError) as err:
        FitSection(abf_study({"kind": "online", "refine": {"enabled": None}})).fitter(padded)
    assert "fit.kind: the sweeps have different lengths" in one_line(err)
