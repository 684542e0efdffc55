"""Real recordings (neurofit.data.recordings): readers equal the format libraries, steps, QC, to_dataset, bad files."""
import datetime
import hashlib
import math
import re
import shutil
import struct
from pathlib import Path

import igor2.binarywave
import numpy as np
import pyabf
import pytest

from helpers import expected_step, raises_one_line
from neurofit.data.dataset import Dataset
from neurofit.data.recordings import (
    QCSettings,
    Recording,
    Step,
    Sweep,
    find_step,
    read_recording,
    run_qc,
)

REC = Path(__file__).resolve().parents[1] / "data" / "recordings"
ABF = REC / "abf"
IGOR = REC / "igor"
CLEAN_ABF = ["171116sh_0018.abf", "18711001.abf", "190619B_0003.abf"]
IMPLAUSIBLE_ABF = "2020_03_02_0000.abf"
V_WAVES = sorted(IGOR.glob("B6_Ch3_IDRest_*.ibw"))
I_WAVES = sorted(IGOR.glob("B6_Ch0_IDRest_*.ibw"))


@pytest.fixture(scope="module")
def recordings():
    """Every shared file read once: file name → Recording (the Igor pair under "igor")."""
    read = {name: read_recording(ABF / name) for name in CLEAN_ABF + [IMPLAUSIBLE_ABF]}
    read["igor"] = read_recording(V_WAVES, current=I_WAVES)
    return read


def synthetic_sweep(index=0, dt=1e-4, n=20000, step=(0.5, 1.5), amplitude=100e-12, rest=-0.065, noise=5e-5,
                    seed=0, **kwargs) -> Sweep:
    """A clean sweep: rest + RC response to a current step, white noise (V); change it in tests."""
    t = np.arange(n) * dt
    current = np.where((t >= step[0]) & (t < step[1]), amplitude, 0.0)
    tau, resistance = 0.02, 1e8
    charge = np.where(t >= step[0], 1 - np.exp(-(t - step[0]) / tau), 0.0)
    discharge = np.where(t >= step[1], 1 - np.exp(-(t - step[1]) / tau), 0.0)
    voltage = rest + amplitude * resistance * (charge - discharge)
    voltage = voltage + np.random.default_rng(seed).normal(0, noise, n)
    return Sweep(index, dt, voltage, current, **kwargs)


# --- vendored data ------------------------------------------------------------------------------

def test_vendored_files_match_the_readme_checksums():
    readme = (REC / "README.md").read_text()
    table = dict(re.findall(r"\| `([^`]+\.abf)` \| ([0-9a-f]{16}) \|", readme))
    assert sorted(table) == sorted(CLEAN_ABF + [IMPLAUSIBLE_ABF])
    for name, prefix in table.items():
        assert hashlib.sha256((ABF / name).read_bytes()).hexdigest()[:16] == prefix
    assert len(V_WAVES) == len(I_WAVES) == 5


# --- ABF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLEAN_ABF + [IMPLAUSIBLE_ABF])
def test_abf_sweeps_equal_pyabf(recordings, name):
    abf = pyabf.ABF(str(ABF / name))
    rec = recordings[name]
    assert rec.format == "abf" and rec.path == str(ABF / name)
    assert len(rec.sweeps) == abf.sweepCount
    for k in (0, abf.sweepCount - 1):
        abf.setSweep(k, channel=0)  # channel 0 is in mV in every shared file: the voltage by default
        sweep = rec.sweeps[k]
        assert sweep.index == k
        assert sweep.dt == 1 / abf.dataRate
        assert sweep.protocol == abf.protocol
        assert abf.adcUnits[0] == "mV" and abf.dacUnits[0] == "pA"
        np.testing.assert_array_equal(sweep.voltage, abf.sweepY.astype(float) * 1e-3)
        np.testing.assert_array_equal(sweep.current, abf.sweepC * 1e-12)
        assert sweep.voltage.dtype == sweep.current.dtype == np.float64


def test_abf_channel_by_index_and_name():
    path = ABF / "190619B_0003.abf"  # ABF 1.8, two channels in mV: 'IN 0' and 'IN 2'
    abf = pyabf.ABF(str(path))
    assert abf.adcNames == ["IN 0", "IN 2"] and abf.adcUnits == ["mV", "mV"]
    for channel in (1, "IN 2"):
        sweep = read_recording(path, channel=channel).sweeps[9]
        abf.setSweep(9, channel=1)
        np.testing.assert_array_equal(sweep.voltage, abf.sweepY.astype(float) * 1e-3)
        abf.setSweep(9, channel=0)
        np.testing.assert_array_equal(sweep.current, abf.sweepC * 1e-12)  # the current command (pA) of output 0


def test_abf_channel_that_is_not_a_voltage_is_refused():
    path = ABF / IMPLAUSIBLE_ABF  # channels 0 'Potential' (mV), 1 'I_Com' (pA)
    raises_one_line(lambda: read_recording(path, channel=1), IMPLAUSIBLE_ABF, "channel 1 'I_Com'", "pA",
                    "0 'Potential' (mV)")
    raises_one_line(lambda: read_recording(path, channel="nope"), IMPLAUSIBLE_ABF, "no channel named 'nope'")
    raises_one_line(lambda: read_recording(path, channel=7), IMPLAUSIBLE_ABF, "channel = 7")


def test_abf_without_command_uses_the_recorded_current(monkeypatch):
    monkeypatch.setattr(pyabf.ABF, "sweepC", property(lambda self: np.full(len(self.sweepY), np.nan)))
    path = ABF / IMPLAUSIBLE_ABF
    rec = read_recording(path)
    abf = pyabf.ABF(str(path))
    abf.setSweep(15, channel=1)
    np.testing.assert_array_equal(rec.sweeps[15].current, abf.sweepY.astype(float) * 1e-12)
    raises_one_line(lambda: read_recording(ABF / "171116sh_0018.abf"), "171116sh_0018.abf", "no current")


def test_several_abf_files_are_numbered_in_order():
    names = ["190619B_0003.abf", "18711001.abf"]
    rec = read_recording([ABF / n for n in names])
    assert [s.index for s in rec.sweeps] == list(range(40))
    assert rec.sweeps[10].source == str(ABF / "18711001.abf")
    assert rec.path == [str(ABF / n) for n in names]
    assert set(rec.files) == {str(ABF / n) for n in names}


def test_abf_is_recognised_by_content(tmp_path):
    copy = tmp_path / "cell.data"
    shutil.copy(ABF / "18711001.abf", copy)
    rec = read_recording(copy)
    assert rec.format == "abf" and len(rec.sweeps) == 30


# --- the main step ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLEAN_ABF)
def test_step_equals_the_edges_of_sweepC(recordings, name):
    abf = pyabf.ABF(str(ABF / name))
    for sweep in recordings[name].sweeps:
        abf.setSweep(sweep.index)
        expected = expected_step(abf.sweepC, 1 / abf.dataRate)
        expected = None if expected is None else (*expected[:2], expected[2] * 1e-12)
        assert sweep.holding == abf.sweepC[0] * 1e-12
        if expected is None:
            assert sweep.stimulus is None
        else:
            start, stop, amplitude = expected
            assert sweep.stimulus.start == pytest.approx(start, abs=1e-12)
            assert sweep.stimulus.stop == pytest.approx(stop, abs=1e-12)
            assert sweep.stimulus.amplitude == pytest.approx(amplitude, rel=1e-12)


def test_steps_of_the_shared_protocols(recordings):
    dual = recordings["171116sh_0018.abf"].sweeps  # step 1, -100 pA, step 2 (equal durations): step 2
    assert (dual[16].stimulus.start, dual[16].stimulus.stop) == pytest.approx((32937 / 20000, 42937 / 20000))
    assert dual[16].stimulus.amplitude == pytest.approx(300e-12)
    prepulse = recordings["18711001.abf"].sweeps  # -100 pA for 0.3 s, then the 0.5 s test step
    assert (prepulse[5].stimulus.start, prepulse[5].stimulus.stop) == pytest.approx((16468 / 20000, 26468 / 20000))
    assert prepulse[5].stimulus.amplitude == pytest.approx(50e-12)
    assert prepulse[0].stimulus.amplitude == pytest.approx(-100e-12)  # a 0 pA test step leaves the prepulse
    plain = recordings["190619B_0003.abf"].sweeps
    assert plain[9].stimulus == Step(pytest.approx(1.0478), pytest.approx(2.0478), pytest.approx(420e-12))
    assert plain[2].stimulus is None and plain[2].stimulus_start is None  # the 0 pA sweep


def test_find_step_refuses_what_is_not_a_step():
    rng = np.random.default_rng(1)
    dt, n = 1e-4, 20000
    t = np.arange(n) * dt
    assert find_step(np.zeros(n), dt) is None
    assert find_step(rng.normal(0, 1e-12, n), dt) is None
    assert find_step(np.linspace(0, 1e-10, n), dt) is None
    assert find_step(np.linspace(0, 1e-10, n) + rng.normal(0, 1e-12, n), dt) is None
    assert find_step(1e-10 * np.sin(2 * np.pi * 5 * t), dt) is None
    assert find_step(np.repeat(np.arange(20) * 1e-11, n // 20), dt) is None  # a staircase: no main step
    assert find_step(np.full(n, np.nan), dt) is None


def test_find_step_in_noise_and_after_a_prepulse():
    rng = np.random.default_rng(2)
    dt, n = 1e-4, 20000
    current = np.full(n, -20e-12)
    current[5000:15000] = 30e-12
    step = find_step(current + rng.normal(0, 5e-12, n), dt)
    assert (step.start, step.stop) == pytest.approx((0.5, 1.5))
    assert step.amplitude == pytest.approx(50e-12, abs=1e-12)
    current = np.zeros(n)
    current[1000:4000] = -100e-12  # prepulse 0.3 s
    current[9000:14000] = 40e-12  # test step 0.5 s
    assert find_step(current, dt) == Step(pytest.approx(0.9), pytest.approx(1.4), 40e-12)


# --- Igor ---------------------------------------------------------------------------------------

def test_igor_pairs_equal_igor2(recordings):
    rec = recordings["igor"]
    assert rec.format == "igor" and [s.index for s in rec.sweeps] == [0, 1, 2, 3, 4]
    for sweep, v_file, i_file in zip(rec.sweeps, V_WAVES, I_WAVES):
        v_wave, i_wave = igor2.binarywave.load(v_file)["wave"], igor2.binarywave.load(i_file)["wave"]
        assert sweep.dt == 2.5e-4
        np.testing.assert_array_equal(sweep.voltage, v_wave["wData"].astype(float) * 1e-3)
        np.testing.assert_array_equal(sweep.current, i_wave["wData"].astype(float) * 1e-12)
        assert sweep.stimulus.start == pytest.approx(0.7, abs=5e-4)
        assert sweep.stimulus.stop == pytest.approx(2.7, abs=5e-4)
    assert [round(s.stimulus.amplitude * 1e12) for s in rec.sweeps] == [119, 175, 237, 297, 353]
    globbed = read_recording(str(IGOR / "B6_Ch3_IDRest_*.ibw"), current=str(IGOR / "B6_Ch0_IDRest_*.ibw"))
    np.testing.assert_array_equal(globbed.sweeps[4].voltage, rec.sweeps[4].voltage)


def patched_wave(source: Path, target: Path, *, x_scaling=True, note_interval=True, units=True) -> Path:
    """A copy of an Igor wave without its x scaling (sfA = 1), its note's SI: entry or its data units."""
    data = bytearray(source.read_bytes())
    if not x_scaling:
        at = data.find(struct.pack(">d", 2.5e-4))
        data[at:at + 8] = struct.pack(">d", 1.0)
    if not note_interval:
        at = data.find(b";SI:250;")
        data[at:at + 8] = b";XX:250;"
    if not units:
        at = data.find(b"mV\0\0") if data.find(b"mV\0\0") >= 0 else data.find(b"pA\0\0")
        data[at:at + 2] = b"\0\0"
    target.write_bytes(bytes(data))
    return target


def test_igor_sampling_step_from_the_note_or_dt(tmp_path):
    v_note = patched_wave(V_WAVES[0], tmp_path / "v_note.ibw", x_scaling=False)
    i_note = patched_wave(I_WAVES[0], tmp_path / "i_note.ibw", x_scaling=False)
    assert igor2.binarywave.load(v_note)["wave"]["wave_header"]["sfA"][0] == 1.0
    assert read_recording(v_note, current=i_note).sweeps[0].dt == pytest.approx(2.5e-4)
    v_none = patched_wave(V_WAVES[0], tmp_path / "v_none.ibw", x_scaling=False, note_interval=False)
    i_none = patched_wave(I_WAVES[0], tmp_path / "i_none.ibw", x_scaling=False, note_interval=False)
    raises_one_line(lambda: read_recording(v_none, current=i_none), "v_none.ibw", "give dt=")
    assert read_recording(v_none, current=i_none, dt="0.25 ms").sweeps[0].dt == pytest.approx(2.5e-4)
    with pytest.warns(UserWarning, match="replaces"):
        assert read_recording(V_WAVES[0], current=I_WAVES[0], dt=5e-4).sweeps[0].dt == 5e-4


def test_igor_wave_without_units_is_assumed_mv_with_a_warning(tmp_path):
    bare = patched_wave(V_WAVES[0], tmp_path / "bare.ibw", units=False)
    with pytest.warns(UserWarning, match="no units; assumed mV"):
        sweep = read_recording(bare, current=I_WAVES[0]).sweeps[0]
    recorded = igor2.binarywave.load(V_WAVES[0])["wave"]["wData"]
    np.testing.assert_array_equal(sweep.voltage, recorded.astype(float) * 1e-3)


def test_igor_files_given_the_wrong_way_are_refused():
    raises_one_line(lambda: read_recording(V_WAVES[0], current=V_WAVES[1]), V_WAVES[1].name, "mV",
                    "a voltage given as current=")
    raises_one_line(lambda: read_recording(I_WAVES[0], current=I_WAVES[1]), I_WAVES[0].name, "pA",
                    "a current given as a voltage")
    raises_one_line(lambda: read_recording(V_WAVES[0]), V_WAVES[0].name, "current=")
    raises_one_line(lambda: read_recording(V_WAVES[:2], current=I_WAVES[:1]), "2 voltage files but 1 current")
    raises_one_line(lambda: read_recording(V_WAVES[0], current=I_WAVES[0], channel=1), "channel=")


# --- NWB ----------------------------------------------------------------------------------------

def write_nwb(path: Path, style: str, with_stimulus: bool = True) -> dict:
    """An NWB file of two current-clamp sweeps stored as integers with conversion and offset.

    style "tables": icephys tables filled, names and sweep numbers absent or misleading;
    "sweep_number": no tables, pairing by sweep_number (names misleading); "names": neither.
    Returns response name → (expected voltage V, expected current A, sweep number or None).
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile("test recording", "neurofit-test", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    electrode = nwb.create_icephys_electrode(name="elec0", description="patch pipette",
                                             device=nwb.create_device(name="amplifier"))
    rng = np.random.default_rng(3)
    n = 3000
    names = {"tables": [("ic_A", "ics_B"), ("ic_B", "ics_A")],
             "sweep_number": [("ic_A", "ics_B"), ("ic_B", "ics_A")],
             "names": [("ic_Step_3", "ics_Step_3"), ("Sweep4Series", "Sweep4StimulusSeries")]}[style]
    stimuli, expected, pairs = {}, {}, []
    for k, (response_name, stimulus_name) in enumerate(names):
        millivolts = (-65 + rng.normal(0, 0.2, n)).round(1) * 10  # stored in 0.1 mV steps
        picoamps = np.zeros(n, dtype=np.int32)
        picoamps[1000:2000] = 50 * (k + 1)
        number = {"sweep_number": dict(ic_A=7, ic_B=8)}.get(style, {}).get(response_name)
        stimulus_number = {"ics_B": 7, "ics_A": 8}.get(stimulus_name) if style == "sweep_number" else None
        response = CurrentClampSeries(name=response_name, data=millivolts.astype(np.int16), electrode=electrode,
                                      rate=10000.0, gain=1.0, conversion=1e-4, offset=0.5e-3,
                                      sweep_number=None if number is None else np.uint32(number))
        stimulus = CurrentClampStimulusSeries(name=stimulus_name, data=picoamps, electrode=electrode, rate=10000.0,
                                              gain=1.0, conversion=1e-12, offset=2e-12,
                                              stimulus_description=f"step {k}",
                                              sweep_number=None if stimulus_number is None
                                              else np.uint32(stimulus_number))
        nwb.add_acquisition(response)
        if with_stimulus:
            nwb.add_stimulus(stimulus)
        stimuli[stimulus_name] = picoamps * 1e-12 + 2e-12
        pairs.append((response, stimulus))
        expected[response_name] = [millivolts.astype(np.int16) * 1e-4 + 0.5e-3, None, number]
    if style == "tables":
        for response, stimulus in pairs:
            nwb.add_intracellular_recording(electrode=electrode, stimulus=stimulus, response=response)
    for response_name, stimulus_name in names:
        expected[response_name][1] = stimuli[stimulus_name]
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return expected


@pytest.mark.parametrize("style", ["tables", "sweep_number", "names"])
def test_nwb_pairing_and_values_in_si(tmp_path, style):
    path = tmp_path / f"{style}.nwb"
    expected = write_nwb(path, style)
    rec = read_recording(path)
    assert rec.format == "nwb" and len(rec.sweeps) == 2
    for position, (name, (voltage, current, number)) in enumerate(expected.items()):
        sweep = rec.sweeps[position]
        assert sweep.source == f"{path}:{name}"
        assert sweep.index == (position if number is None else number)
        assert sweep.dt == 1e-4
        np.testing.assert_array_equal(sweep.voltage, voltage)
        np.testing.assert_array_equal(sweep.current, current)
        assert sweep.holding == pytest.approx(2e-12)
        assert sweep.stimulus.start == pytest.approx(0.1) and sweep.stimulus.stop == pytest.approx(0.2)
    if style != "names":  # the misleading names pair ic_A with ics_B (tables / sweep numbers win)
        assert rec.sweeps[0].stimulus.amplitude == pytest.approx(50e-12)
        assert rec.sweeps[0].protocol == "step 0"


def test_nwb_response_without_stimulus_is_refused(tmp_path):
    path = tmp_path / "lonely.nwb"
    write_nwb(path, "names", with_stimulus=False)
    raises_one_line(lambda: read_recording(path),
                    f"NWB file {path}: response 'ic_Step_3' has no stimulus series (looked in the icephys tables, "
                    f"sweep_number and names")


def test_nwb_electrode_choice(tmp_path):
    path = tmp_path / "tables.nwb"
    write_nwb(path, "tables")
    assert len(read_recording(path, channel="elec0").sweeps) == 2
    raises_one_line(lambda: read_recording(path, channel="elec9"), "tables.nwb", "electrode 'elec9'", "elec0")


# --- neo and arrays -----------------------------------------------------------------------------

def test_neo_reads_abf_channels_by_units():
    path = ABF / IMPLAUSIBLE_ABF
    rec = read_recording(path, format="neo")
    abf = pyabf.ABF(str(path))
    assert rec.format == "neo" and len(rec.sweeps) == abf.sweepCount
    abf.setSweep(3, channel=0)
    np.testing.assert_allclose(rec.sweeps[3].voltage, abf.sweepY * 1e-3, rtol=1e-6, atol=1e-12)
    abf.setSweep(3, channel=1)  # neo reads the recorded current (pA), not the command
    np.testing.assert_allclose(rec.sweeps[3].current, abf.sweepY * 1e-12, rtol=1e-6, atol=1e-18)
    assert rec.sweeps[3].dt == pytest.approx(1e-4)


def test_neo_file_by_extension(tmp_path):
    import neo
    import quantities as pq
    from neo.io import NeoMatlabIO

    block = neo.Block()
    t = np.arange(2000)
    for k in range(2):
        segment = neo.Segment()
        segment.analogsignals += [
            neo.AnalogSignal((-65 + 0.001 * t)[:, None], units="mV", sampling_rate=10 * pq.kHz, name="Vm"),
            neo.AnalogSignal(np.where((t >= 500) & (t < 1500), 0.05 * (k + 1), 0.0)[:, None], units="nA",
                             sampling_rate=10 * pq.kHz, name="Im")]
        block.segments.append(segment)
    NeoMatlabIO(str(tmp_path / "cell.mat")).write_block(block)
    rec = read_recording(tmp_path / "cell.mat")
    assert rec.format == "neo" and [s.index for s in rec.sweeps] == [0, 1]
    np.testing.assert_allclose(rec.sweeps[1].voltage, (-65 + 0.001 * t) * 1e-3, rtol=1e-12)
    assert rec.sweeps[1].stimulus == Step(pytest.approx(0.05), pytest.approx(0.15), pytest.approx(100e-12))


def test_npz_arrays(tmp_path):
    voltage = np.full((2, 1000), -0.07)
    current = np.zeros((2, 1000))
    current[:, 200:700] = [[20e-12], [40e-12]]
    np.savez(tmp_path / "cell.npz", voltage=voltage, current=current, dt=2e-5)
    rec = read_recording(tmp_path / "cell.npz")
    assert rec.format == "arrays" and rec.sweeps[1].dt == 2e-5
    np.testing.assert_array_equal(rec.sweeps[1].current, current[1])
    assert rec.sweeps[1].stimulus == Step(pytest.approx(200 * 2e-5), pytest.approx(700 * 2e-5), 40e-12)
    np.savez(tmp_path / "nodt.npz", voltage=voltage, current=current)
    raises_one_line(lambda: read_recording(tmp_path / "nodt.npz"), "nodt.npz", "'dt'")
    assert read_recording(tmp_path / "nodt.npz", dt="0.02 ms").sweeps[0].dt == pytest.approx(2e-5)
    np.savez(tmp_path / "other.npz", v=voltage)
    raises_one_line(lambda: read_recording(tmp_path / "other.npz"), "other.npz", "'voltage' or 'current'", "v")


# --- quality control ----------------------------------------------------------------------------

def test_clean_shared_sweeps_pass(recordings):
    for name in CLEAN_ABF + ["igor"]:
        failed = {s.index: s.qc_reasons for s in recordings[name].sweeps if not s.passed_qc}
        assert failed == {}, name
    assert set(recordings["igor"].sweeps[0].qc) == {"finite", "plausible_voltage", "clipping", "baseline_potential",
                                                    "baseline_drift", "baseline_noise", "spontaneous_spike",
                                                    "post_stimulus_return"}


def test_implausible_shared_file_fails_with_its_reasons(recordings):
    sweeps = recordings[IMPLAUSIBLE_ABF].sweeps
    assert not any(s.passed_qc for s in sweeps)
    assert all("baseline -3." in s.qc_reasons["baseline_potential"] for s in sweeps)
    swinging = [s.index for s in sweeps if not s.qc["plausible_voltage"]]
    assert swinging == list(range(10, 16))  # +123 ... +300 mV
    assert "300.3 mV" in sweeps[15].qc_reasons["plausible_voltage"]
    assert all("\n" not in reason for s in sweeps for reason in s.qc_reasons.values())


def test_synthetic_faults_are_flagged():
    assert synthetic_sweep().passed_qc and synthetic_sweep().qc_reasons == {}
    drifting = synthetic_sweep()
    drifting.voltage[:5000] += np.linspace(-0.01, 0, 5000)
    drifting.check_quality()
    assert set(drifting.qc_reasons) == {"baseline_drift"}
    assert "drifts by 8.0 mV" in drifting.qc_reasons["baseline_drift"]
    noisy = synthetic_sweep(noise=3e-3)
    assert not noisy.qc["baseline_noise"] and "noise 2.95 mV RMS" in noisy.qc_reasons["baseline_noise"]
    spiking = synthetic_sweep()
    spiking.voltage[2000:2010] = np.linspace(-0.065, 0.03, 10)  # a 0.1 ms rise to +30 mV at 0.2 s
    spiking.check_quality()
    assert set(spiking.qc_reasons) == {"spontaneous_spike"} and "0.2000 s" in spiking.qc_reasons["spontaneous_spike"]
    for noise in (5e-5, 0.0):
        clipped = synthetic_sweep(amplitude=1e-9, noise=noise)  # would rise to +35 mV: clip it at -40 mV
        clipped.voltage[:] = np.minimum(clipped.voltage, -0.04)
        clipped.check_quality()
        if noise:
            assert not clipped.qc["clipping"] and "-40.0 mV" in clipped.qc_reasons["clipping"]
        else:  # a noise-free (simulated) sweep has flat runs by nature: not judged
            assert clipped.qc["clipping"]
    not_returning = synthetic_sweep()
    not_returning.voltage[16000:] += 0.02
    not_returning.check_quality()
    assert set(not_returning.qc_reasons) == {"post_stimulus_return"}
    broken = synthetic_sweep()
    broken.voltage[7] = np.nan
    broken.check_quality()
    assert broken.qc == {"finite": False} and "1 of 20000" in broken.qc_reasons["finite"]


def test_qc_settings_take_quantities_and_can_be_rerun(recordings):
    settings = QCSettings(baseline_min="-90 mV", baseline_max="0 mV", voltage_max="400 mV")
    assert (settings.baseline_min, settings.baseline_max, settings.voltage_max) == (-0.09, 0.0, 0.4)
    rec = read_recording(ABF / IMPLAUSIBLE_ABF, qc=settings)
    assert all(s.passed_qc for s in rec.sweeps)
    rec.check_quality()
    assert not any(s.passed_qc for s in rec.sweeps)
    qc, reasons = run_qc(rec.sweeps[0], settings)
    assert all(qc.values()) and reasons == {}
    raises_one_line(lambda: QCSettings(baseline_min="-90 pA"), "baseline_min", "expected volt")
    raises_one_line(lambda: QCSettings(recovery_time="soon"), "recovery_time")


# --- to_dataset ---------------------------------------------------------------------------------

def test_to_dataset_defaults_to_the_sweeps_passing_qc(recordings):
    rec = recordings["171116sh_0018.abf"]
    dataset = rec.to_dataset()
    assert isinstance(dataset, Dataset)
    assert dataset.inputs["I"].shape == dataset.outputs["v"].shape == (17, 60000)
    assert dataset.dt == 5e-5 and dataset.units == {"I": "amp", "v": "volt"}
    np.testing.assert_array_equal(dataset.outputs["v"][16], rec.sweeps[16].voltage)
    np.testing.assert_array_equal(dataset.inputs["I"][16], rec.sweeps[16].current)
    path = ABF / "171116sh_0018.abf"
    assert dataset.source["files"] == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    assert dataset.source["lengths"] == [60000] * 17
    assert dataset.source["preprocessing"]["sweeps"] == list(range(17))
    mixed = Recording([synthetic_sweep(0), synthetic_sweep(1, noise=3e-3), synthetic_sweep(2)], "synthetic", "arrays")
    assert mixed.to_dataset().source["preprocessing"]["sweeps"] == [0, 2]
    raises_one_line(lambda: recordings[IMPLAUSIBLE_ABF].to_dataset(), IMPLAUSIBLE_ABF,
                    "no sweep passes quality control", "sweeps=")


def test_to_dataset_sweeps_window_and_ljp(recordings, tmp_path):
    rec = recordings["171116sh_0018.abf"]
    dataset = rec.to_dataset(sweeps=[5, 3], window=("0.1 s", "600 ms"), ljp="14 mV")
    assert dataset.n_traces == 2 and dataset.n_steps == 10000
    np.testing.assert_array_equal(dataset.outputs["v"][0], rec.sweeps[5].voltage[2000:12000] - 0.014)
    np.testing.assert_array_equal(dataset.inputs["I"][1], rec.sweeps[3].current[2000:12000])
    preprocessing = dataset.source["preprocessing"]
    assert preprocessing["sweeps"] == [5, 3] and preprocessing["window"] == [0.1, 0.6]
    assert preprocessing["ljp"] == pytest.approx(0.014) and preprocessing["dt"] is None
    dataset.save_npz(tmp_path / "ds.npz")
    assert Dataset.load_npz(tmp_path / "ds.npz").source["preprocessing"]["sweeps"] == [5, 3]
    raises_one_line(lambda: rec.to_dataset(sweeps=[3, 99]), "no sweep 99", "0-16")
    raises_one_line(lambda: rec.to_dataset(sweeps=[3, 3]), "sweep 3 is selected twice")
    raises_one_line(lambda: rec.to_dataset(window=(0.5, 4.0)), "window", "3 s")
    raises_one_line(lambda: rec.to_dataset(window=(0.5,)), "window")
    raises_one_line(lambda: rec.to_dataset(ljp="14 pA"), "ljp")


def test_resampled_sine_equals_the_analytic_sine():
    dt, n, frequency = 1e-5, 40000, 37.0
    t = np.arange(n) * dt
    sine = lambda times: -0.065 + 0.01 * np.sin(2 * np.pi * frequency * times + 0.3)  # noqa: E731
    current = 1e-11 * np.sin(2 * np.pi * 11 * t)
    rec = Recording([Sweep(0, dt, sine(t), current)], "sine", "arrays")
    for new_dt, count in ((4e-5, 10000), (2.5e-5, 16000), (4e-6, 100000)):  # down 4, down 5/2, up 5/2
        dataset = rec.to_dataset(sweeps=[0], dt=new_dt)
        assert dataset.dt == new_dt and dataset.n_steps == count
        np.testing.assert_allclose(dataset.outputs["v"][0], sine(dataset.t), rtol=0, atol=1e-6)  # 0.01 %
        assert dataset.source["preprocessing"]["dt"] == {"recorded": [dt], "resampled_to": new_dt}
    raises_one_line(lambda: rec.to_dataset(sweeps=[0], dt=math.pi * 1e-5), "not a simple fraction")


def test_integer_downsample_of_a_step(recordings):
    rec = recordings["171116sh_0018.abf"]
    dataset = rec.to_dataset(sweeps=[16], dt="0.1 ms")
    command = rec.sweeps[16].current
    np.testing.assert_array_equal(dataset.inputs["I"][0], command[::2])  # a command is held, never filtered
    assert dataset.source["preprocessing"]["current_resampling"] == "zero-order hold"
    voltage = dataset.outputs["v"][0]
    assert voltage.size == 30000
    flat = slice(200, 1400)  # 20-140 ms: before the first step
    assert voltage[flat].mean() == pytest.approx(rec.sweeps[16].voltage[400:2800].mean(), abs=1e-6)
    recorded = recordings["igor"].to_dataset(sweeps=[0], dt="0.5 ms")  # a recorded (noisy) current is filtered
    assert recorded.source["preprocessing"]["current_resampling"] == "anti-aliasing filter"
    step_level = recordings["igor"].sweeps[0].current[3200:10400].mean()
    assert recorded.inputs["I"][0][1600:5200].mean() == pytest.approx(step_level, abs=0.5e-12)


def test_sweeps_of_different_lengths_and_steps():
    """Sweeps of different lengths are kept whole: the shorter one padded (voltage NaN, current held at its
    last value), each sweep's length in Dataset.lengths; a window keeps each sweep's part of it."""
    short, long = synthetic_sweep(1, n=18000, step=(0.5, 1.9)), synthetic_sweep(0, n=20000)
    rec = Recording([long, short], "short", "arrays")
    dataset = rec.to_dataset(sweeps=[0, 1])
    assert dataset.n_steps == 20000 and dataset.source["lengths"] == [20000, 18000]
    assert dataset.lengths.tolist() == [20000, 18000] and not dataset.full_length
    assert dataset.source["preprocessing"]["padded_to"] == 20000
    np.testing.assert_array_equal(dataset.outputs["v"][1, :18000], short.voltage)
    assert np.isnan(dataset.outputs["v"][1, 18000:]).all() and np.isfinite(dataset.outputs["v"][0]).all()
    np.testing.assert_array_equal(dataset.inputs["I"][1], np.r_[short.current, np.full(2000, short.current[-1])])
    assert short.current[-1] == 100e-12  # the step still on at the end: held, not dropped to 0
    windowed = rec.to_dataset(sweeps=[0, 1], window=("1.0 s", "1.9 s"))
    assert windowed.n_steps == 9000 and windowed.lengths.tolist() == [9000, 8000]
    np.testing.assert_array_equal(windowed.outputs["v"][1, :8000], short.voltage[10000:])
    raises_one_line(lambda: rec.to_dataset(sweeps=[0, 1], window=("1.85 s", "1.95 s")), "short",
                    "after the end of sweep 1")
    full = Recording([synthetic_sweep(0), synthetic_sweep(1)], "full", "arrays").to_dataset()
    assert full.lengths is None and full.source["preprocessing"]["padded_to"] is None
    rec = Recording([synthetic_sweep(0), synthetic_sweep(1, dt=5e-5, n=40000)], "mixed", "arrays")
    raises_one_line(lambda: rec.to_dataset(), "mixed", "give dt=")
    dataset = rec.to_dataset(dt=1e-4)
    assert dataset.n_steps == 20000 and dataset.source["preprocessing"]["dt"]["recorded"] == [5e-5, 1e-4]


# --- bad files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, keep", [("171116sh_0018.abf", 100000), ("190619B_0003.abf", 617216),
                                        ("18711001.abf", 3000)])
def test_truncated_abf(tmp_path, name, keep):
    truncated = tmp_path / f"cut_{name}"
    truncated.write_bytes((ABF / name).read_bytes()[:keep])
    raises_one_line(lambda: read_recording(truncated), truncated.name, "cannot read as an ABF file", "truncated")


def test_bad_paths_and_formats(tmp_path):
    raises_one_line(lambda: read_recording(tmp_path / "absent.abf"), "absent.abf", "file not found")
    raises_one_line(lambda: read_recording(str(tmp_path / "none_*.abf")), "none_*.abf", "no file matches")
    raises_one_line(lambda: read_recording(tmp_path), str(tmp_path), "not a file")
    raises_one_line(lambda: read_recording([]), "empty")
    (tmp_path / "x.xyz").write_bytes(b"\x01\x02 not a recording")
    raises_one_line(lambda: read_recording(tmp_path / "x.xyz"), "x.xyz", "unknown recording format '.xyz'", ".abf")
    (tmp_path / "traces.csv").write_text("1,2,3\n")
    raises_one_line(lambda: read_recording(tmp_path / "traces.csv"), "traces.csv", "load_dataset")
    (tmp_path / "cell.pkl").write_bytes(b"\x80\x04N.")
    raises_one_line(lambda: read_recording(tmp_path / "cell.pkl"), "cell.pkl", "pickle")
    raises_one_line(lambda: read_recording(tmp_path / "cell.pkl", format="neo"), "cell.pkl", "pickle")
    (tmp_path / "fake.nwb").write_text("not hdf5")
    raises_one_line(lambda: read_recording(tmp_path / "fake.nwb"), "fake.nwb", "cannot read as an NWB 2 file")
    (tmp_path / "fake.ibw").write_bytes(b"\x05")
    raises_one_line(lambda: read_recording(tmp_path / "fake.ibw", current=tmp_path / "fake.ibw"), "fake.ibw",
                    "Igor binary wave")
    raises_one_line(lambda: read_recording([ABF / "18711001.abf", V_WAVES[0]]), "different formats")
    raises_one_line(lambda: read_recording(ABF / "18711001.abf", current=I_WAVES[0]), "18711001.abf",
                    "current= is only for Igor")
    raises_one_line(lambda: read_recording(ABF / "18711001.abf", dt="fast"), "dt")
    raises_one_line(lambda: read_recording(ABF / "18711001.abf", format="wav"), "format = 'wav'")
    raises_one_line(lambda: Sweep(0, 1e-4, np.zeros(10), np.zeros(9), source="s.abf"), "s.abf", "10 samples")


def test_write_nwb_cell_reads_back_the_values_written(tmp_path):
    from neurofit.data.recordings.nwb_writer import write_nwb_cell

    current = np.zeros((2, 400))
    current[0, 100:300], current[1, 100:300] = -50e-12, 75e-12
    voltage = -0.07 + np.random.default_rng(0).normal(0, 1e-4, current.shape)
    write_nwb_cell(tmp_path / "cell.nwb", current, voltage, 1e-4)
    recording = read_recording(tmp_path / "cell.nwb")
    assert len(recording.sweeps) == 2
    for k, sweep in enumerate(recording.sweeps):
        assert sweep.dt == pytest.approx(1e-4, rel=1e-12)
        np.testing.assert_allclose(sweep.voltage, voltage[k], rtol=1e-12, atol=0)
        np.testing.assert_allclose(sweep.current, current[k], rtol=1e-12, atol=1e-24)
