"""Preprocessing options that hold for any cell: a window relative to the current step ({step: [before, after]})
and each sweep cut short before its first spike (stop_before_spike), in Recording.to_dataset and through a
study's data.recording settings."""
from pathlib import Path

import igor2.binarywave
import numpy as np
import pyabf
import pytest

from helpers import raises_one_line
from neurofit.data.recordings import Recording, Sweep, read_recording
from neurofit.errors import ConfigError
from neurofit.workflow.study import Study

REC = Path(__file__).resolve().parents[1] / "data" / "recordings"
FI_ABF = REC / "abf" / "18711001.abf"
IGOR = REC / "igor"
V_WAVES = sorted(IGOR.glob("B6_Ch3_IDRest_*.ibw"))
I_WAVES = sorted(IGOR.glob("B6_Ch0_IDRest_*.ibw"))
DT = 1e-4  # s, the synthetic sweeps' sampling step
N = 20000  # samples of a synthetic sweep (2 s)


def sweep(index, step=(0.5, 1.5), spikes=(), amplitude=100e-12, n=N, seed=0) -> Sweep:
    """A synthetic sweep: a current step (s, s; None for no step) and spikes at the given times (s) - the
    voltage jumps from about -65 mV to +20 mV for 1 ms, so the upward 0 V crossing is at the spike's sample."""
    t = np.arange(n) * DT
    current = np.zeros(n) if step is None else np.where((t >= step[0] - DT / 2) & (t < step[1] - DT / 2), amplitude,
                                                        0.0)
    voltage = -0.065 + np.random.default_rng(seed).normal(0, 5e-5, n)
    for time in spikes:
        k = int(round(time / DT))
        voltage[k:k + 10] = 0.02
    return Sweep(index, DT, voltage, current)


def first_upward_crossing(v, after=0) -> int:
    """Sample index of the first upward 0 crossing of ``v`` at or after sample ``after`` (read directly)."""
    k = np.flatnonzero((v[:-1] < 0) & (v[1:] >= 0)) + 1
    return int(k[k >= after][0])


# --- window {step: [before, after]} ----------------------------------------------------------------------

def test_step_window_spans_the_steps_plus_margins():
    rec = Recording([sweep(0, step=(0.5, 1.5)), sweep(1, step=(0.6, 1.3)), sweep(2, step=None)], "steps", "arrays")
    assert rec.sweeps[0].stimulus.start == pytest.approx(0.5) and rec.sweeps[1].stimulus.stop == pytest.approx(1.3)
    dataset = rec.to_dataset(sweeps=[0, 1, 2], window={"step": ["100 ms", 0.2]})
    # earliest start 0.5 s - 0.1 s, latest stop 1.5 s + 0.2 s; the sweep without a step does not count
    assert dataset.n_steps == 13000 and dataset.lengths is None
    for row, s in enumerate(rec.sweeps):
        np.testing.assert_array_equal(dataset.outputs["v"][row], s.voltage[4000:17000])
        np.testing.assert_array_equal(dataset.inputs["I"][row], s.current[4000:17000])
    preprocessing = dataset.source["preprocessing"]
    assert preprocessing["window"] == pytest.approx([0.4, 1.7], abs=1e-12)
    assert preprocessing["window_rule"] == {"step": [pytest.approx(0.1), pytest.approx(0.2)]}
    explicit = rec.to_dataset(sweeps=[0, 1, 2], window=(0.4, 1.7))
    np.testing.assert_array_equal(explicit.outputs["v"], dataset.outputs["v"])
    assert explicit.source["preprocessing"]["window_rule"] is None
    only_second = rec.to_dataset(sweeps=[1], window={"step": ["50 ms", "50 ms"]})
    assert only_second.n_steps == 8000 and only_second.source["preprocessing"]["window"] == pytest.approx([0.55, 1.35])
    np.testing.assert_array_equal(only_second.outputs["v"][0], rec.sweeps[1].voltage[5500:13500])


def test_step_window_is_clipped_to_the_sweeps():
    rec = Recording([sweep(0, step=(0.05, 1.9)), sweep(1, step=(0.5, 1.5), n=18000)], "clip", "arrays")
    dataset = rec.to_dataset(sweeps=[0, 1], window={"step": ["100 ms", "200 ms"]})
    assert dataset.source["preprocessing"]["window"] == [0.0, pytest.approx(2.0)]  # 0 and the longest sweep's end
    assert dataset.n_steps == N and dataset.lengths.tolist() == [N, 18000]
    np.testing.assert_array_equal(dataset.outputs["v"][0], rec.sweeps[0].voltage)
    late = rec.to_dataset(sweeps=[1], window={"step": ["1 s", "1 s"]})  # only sweep 1 chosen: its own length
    assert late.n_steps == 18000 and late.source["preprocessing"]["window"] == [0.0, pytest.approx(1.8)]


def test_step_window_of_the_fi_abf_file():
    """18711001.abf: -100 pA prepulse at 0.0234-0.3234 s, test step 0.8234-1.3234 s, 1.5 s sweeps at 20 kHz."""
    abf = pyabf.ABF(str(FI_ABF))
    abf.setSweep(5)
    dt = 1 / abf.dataRate
    changes = np.flatnonzero(np.diff(abf.sweepC)) + 1  # the command's edges, read directly
    onset, offset = changes[-2], changes[-1]
    assert onset * dt == pytest.approx(0.8234) and offset * dt == pytest.approx(1.3234)
    rec = read_recording(FI_ABF)
    test_steps = list(range(1, abf.sweepCount))  # sweep 0's test step is 0 pA: its main step is the prepulse
    dataset = rec.to_dataset(sweeps=test_steps, window={"step": ["100 ms", "100 ms"]})
    assert abs(dataset.n_steps - (0.5 + 0.2) / dt) <= 1 and dataset.dt == dt
    start = onset - int(round(0.1 / dt))
    np.testing.assert_allclose(dataset.outputs["v"][4], abf.sweepY[start:start + dataset.n_steps] * 1e-3, atol=1e-9)
    np.testing.assert_allclose(dataset.inputs["I"][4], abf.sweepC[start:start + dataset.n_steps] * 1e-12, atol=1e-16)
    # {step: [100 ms, 200 ms]} would end at 1.5234 s: clipped to the sweeps' end, 1.5 s
    clipped = rec.to_dataset(sweeps=test_steps, window={"step": ["100 ms", "200 ms"]})
    assert abs(clipped.n_steps - (1.5 - (0.8234 - 0.1)) / dt) <= 1
    assert clipped.source["preprocessing"]["window"] == pytest.approx([0.7234, 1.5], abs=dt)
    # with sweep 0 the earliest step is its prepulse at 0.0234 s: the window starts at 0 (clipped)
    assert rec.to_dataset(window={"step": ["100 ms", "100 ms"]}).source["preprocessing"]["window"][0] == 0.0


def test_step_window_errors_are_one_line():
    rec = Recording([sweep(0, step=None), sweep(1, step=None, seed=1), sweep(2)], "flat.abf", "arrays")
    raises_one_line(lambda: rec.to_dataset(sweeps=[0, 1], window={"step": ["100 ms", "200 ms"]}), "flat.abf",
                    "needs a current step", "[start, stop]")
    raises_one_line(lambda: rec.to_dataset(sweeps=[2], window={"step": ["-1 ms", "200 ms"]}), ">= 0")
    raises_one_line(lambda: rec.to_dataset(sweeps=[2], window={"step": [0.1, -0.2]}), ">= 0")
    raises_one_line(lambda: rec.to_dataset(sweeps=[2], window={"step": ["1 ms"]}), "(before, after)")
    raises_one_line(lambda: rec.to_dataset(sweeps=[2], window={"stop": ["1 ms", "2 ms"]}), "(before, after)")
    raises_one_line(lambda: rec.to_dataset(sweeps=[2], window={"step": ["1 mV", "2 ms"]}), "window step before")


# --- stop_before_spike -----------------------------------------------------------------------------------

def test_sweeps_end_a_margin_before_their_first_spike():
    rec = Recording([sweep(0, spikes=(0.8, 1.0)), sweep(1), sweep(2, spikes=(0.3, 0.9), seed=2)], "spiky", "arrays")
    dataset = rec.to_dataset(sweeps=[0, 1, 2], window={"step": ["100 ms", "200 ms"]}, stop_before_spike="5 ms")
    start, margin = 4000, 50  # window 0.4-1.7 s; 5 ms at 0.1 ms
    expected = [8000 - margin - start, 13000, 9000 - margin - start]  # the spike at 0.3 s is before the window
    assert dataset.n_steps == 13000 and dataset.lengths.tolist() == expected
    for row, (s, n) in enumerate(zip(rec.sweeps, expected)):
        np.testing.assert_array_equal(dataset.outputs["v"][row, :n], s.voltage[start:start + n])
        assert np.isnan(dataset.outputs["v"][row, n:]).all()
        np.testing.assert_array_equal(dataset.inputs["I"][row, n:], s.current[start + n - 1])  # held
        assert dataset.outputs["v"][row, :n].max() < -0.06
    preprocessing = dataset.source["preprocessing"]
    assert preprocessing["stop_before_spike"] == pytest.approx(0.005)
    assert preprocessing["spike_cut"] == [13000 - expected[0], 0, 13000 - expected[2]]
    assert preprocessing["first_spike"] == [pytest.approx(0.8), None, pytest.approx(0.9)]
    whole = rec.to_dataset(sweeps=[0, 1], stop_before_spike=0)  # no window, no margin: up to the spike sample
    assert whole.lengths.tolist() == [8000, N]
    resampled = rec.to_dataset(sweeps=[0], window=(0.4, 1.7), stop_before_spike="5 ms", dt="0.2 ms")
    assert resampled.n_steps == 4000 - 25 - 2000 and resampled.lengths is None
    off = rec.to_dataset(sweeps=[0, 1])
    assert off.source["preprocessing"]["stop_before_spike"] is None and off.source["preprocessing"]["spike_cut"] is None


def test_stop_before_spike_errors_are_one_line():
    rec = Recording([sweep(0), sweep(1), sweep(2), sweep(3, spikes=(0.4021,))], "early.abf", "arrays")
    raises_one_line(lambda: rec.to_dataset(sweeps=[0, 3], window=(0.4, 1.7), stop_before_spike="2 ms"), "early.abf",
                    "sweep 3 spikes at 2.1 ms into the window", "nothing left before it")
    assert rec.to_dataset(sweeps=[3], window=(0.4, 1.7), stop_before_spike="1 ms").n_steps == 11  # 21 - 10 samples
    raises_one_line(lambda: rec.to_dataset(sweeps=[3], stop_before_spike="-5 ms"), "stop_before_spike", ">= 0")
    raises_one_line(lambda: rec.to_dataset(sweeps=[3], stop_before_spike="5 mV"), "stop_before_spike")


def test_igor_cell_rising_phase_before_the_first_spike():
    rec = read_recording(V_WAVES, current=I_WAVES)
    v = igor2.binarywave.load(str(V_WAVES[0]))["wave"]["wData"].astype(float)  # mV
    i = igor2.binarywave.load(str(I_WAVES[0]))["wave"]["wData"].astype(float)  # pA
    dt = 0.25e-3
    hold, level = np.median(i[:2000]), np.median(i[4000:10000])
    onset = int(np.flatnonzero(i - hold > (level - hold) / 2)[0])  # the step's first sample, read directly
    assert onset * dt == pytest.approx(0.7003, abs=1e-4)
    spike = first_upward_crossing(v, onset)
    assert (spike - onset) * dt == pytest.approx(0.041, abs=1e-3)
    dataset = rec.to_dataset(window={"step": ["100 ms", "200 ms"]}, stop_before_spike="5 ms")
    kept = int(dataset.lengths[0])
    assert abs(kept - (0.1 + 0.036) / dt) <= 2
    assert kept == spike - int(round(0.005 / dt)) - (onset - int(round(0.1 / dt)))
    np.testing.assert_allclose(dataset.outputs["v"][0, :kept], v[onset - 400:onset - 400 + kept] * 1e-3, atol=1e-9)
    assert np.nanmax(dataset.outputs["v"][0]) < -0.040
    assert np.isnan(dataset.outputs["v"][0, kept:]).all()
    assert dataset.n_steps == int(dataset.lengths.max()) and (dataset.lengths < 544 + 3).all()  # all five spike


# --- through a study's config ----------------------------------------------------------------------------

def igor_study(**settings) -> Study:
    recording = {"path": str(IGOR / "B6_Ch3_IDRest_*.ibw"), "current": str(IGOR / "B6_Ch0_IDRest_*.ibw"), **settings}
    doc = {"studies": {"s": {"model": {"builtin": "passive"}, "data": {"dt": "0.25 ms", "recording": recording}}}}
    return Study.from_config(doc, "s")


def test_config_settings_give_the_direct_dataset():
    settings = {"window": {"step": ["100 ms", "200 ms"]}, "stop_before_spike": "5 ms", "sweeps": [0, 2, 4]}
    dataset = igor_study(**settings).dataset()
    direct = read_recording(V_WAVES, current=I_WAVES).to_dataset(sweeps=[0, 2, 4], window={"step": [0.1, 0.2]},
                                                                 stop_before_spike=0.005, dt=0.25e-3)
    np.testing.assert_array_equal(dataset.outputs["v"], direct.outputs["v"])
    np.testing.assert_array_equal(dataset.inputs["I"], direct.inputs["I"])
    np.testing.assert_array_equal(dataset.lengths, direct.lengths)
    assert dataset.source["preprocessing"] == direct.source["preprocessing"]
    assert dataset.source["preprocessing"]["window_rule"] == {"step": [pytest.approx(0.1), pytest.approx(0.2)]}
    plain = igor_study().dataset()
    assert plain.n_steps == 12000 and plain.source["preprocessing"]["stop_before_spike"] is None


@pytest.mark.parametrize("settings, fragment", [
    ({"window": {"step": ["1 ms"]}}, "window"),
    ({"window": {"before": ["1 ms", "2 ms"]}}, "window"),
    ({"window": {"step": ["1 ms", "2 ms"], "after": 1}}, "window"),
    ({"stop_before_spike": [1]}, "stop_before_spike"),
])
def test_schema_refuses_bad_settings_on_one_line(settings, fragment):
    message = raises_one_line(lambda: igor_study(**settings), fragment, error=ConfigError)
    assert "recording" in message and ("{step: [before, after]}" in message or fragment == "stop_before_spike")


def test_config_errors_name_the_key():
    raises_one_line(lambda: igor_study(window={"step": ["-1 ms", "2 ms"]}).dataset(), "s.data.recording", ">= 0",
                    error=ConfigError)
    raises_one_line(lambda: igor_study(window=["600 ms", "3 s"], stop_before_spike="500 ms").dataset(),
                    "s.data.recording", "nothing left before it", error=ConfigError)
