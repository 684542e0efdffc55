"""`neurofit inspect`: the table of sweeps (against pyabf / igor2 directly), the CSV, the figure, bad files."""
import os
from pathlib import Path

import igor2.binarywave
import numpy as np
import pandas as pd
import pyabf
import pytest

from helpers import expected_step, run_cli
from neurofit.cli.inspect import COLUMNS, count_spikes
from neurofit.data.recordings import QCSettings, Sweep, read_recording
from neurofit.plots import plot_sweeps

REC = Path(__file__).resolve().parents[1] / "data" / "recordings"
ABF = REC / "abf"
ABF_FILES = ["171116sh_0018.abf", "18711001.abf", "190619B_0003.abf", "2020_03_02_0000.abf"]
V_WAVES = sorted((REC / "igor").glob("B6_Ch3_IDRest_*.ibw"))
I_WAVES = sorted((REC / "igor").glob("B6_Ch0_IDRest_*.ibw"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def inspect(capsys, tmp_path, *args):
    """Run `neurofit inspect ARGS --csv` → (stdout, the CSV as a DataFrame)."""
    csv = tmp_path / "sweeps.csv"
    status, out, err = run_cli(capsys, "inspect", *args, "--csv", csv)
    assert status == 0, err
    return out, pd.read_csv(csv, keep_default_na=False, na_values=[""])


def table_rows(out: str) -> list:
    """The printed table's data rows (after the summary line and the column names), split on blanks."""
    lines = out.splitlines()
    assert lines[1].split()[0] == "sweep"
    return [line.split() for line in lines[2:]]


def crossings_counted(voltage_mv: np.ndarray, dt: float) -> int:
    """Spikes the plain way: upward crossings of 0 mV, each at least 1 ms after the last one counted."""
    count, last = 0, -np.inf
    for k in range(1, voltage_mv.size):
        if voltage_mv[k - 1] < 0 <= voltage_mv[k] and (k - last) * dt >= 1e-3 - 1e-12:
            count, last = count + 1, k
    return count


# --- the table ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ABF_FILES)
def test_abf_table_equals_pyabf(capsys, tmp_path, name):
    out, table = inspect(capsys, tmp_path, ABF / name)
    abf = pyabf.ABF(str(ABF / name))
    dt = 1 / abf.dataRate
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == abf.sweepCount and table["sweep"].tolist() == list(range(abf.sweepCount))
    rows = table_rows(out)
    assert len(rows) == abf.sweepCount and [int(r[0]) for r in rows] == list(range(abf.sweepCount))
    assert out.splitlines()[0].startswith(f"{ABF / name}: abf, {abf.sweepCount} sweep(s)")
    assert (table["protocol"] == abf.protocol).all() and (table["file"] == name).all()
    assert table["dt_ms"].to_numpy() == pytest.approx(dt * 1e3, rel=1e-12)
    window = int(round(QCSettings().baseline_window / dt))
    for k in range(abf.sweepCount):
        abf.setSweep(k, channel=0)  # channel 0 (mV) is the voltage, the command of output 0 (pA) the current
        row = table.iloc[k]
        assert row["duration_s"] == pytest.approx(abf.sweepY.size * dt, rel=1e-12)
        assert row["holding_pA"] == pytest.approx(abf.sweepC[0], abs=1e-9)
        step = expected_step(abf.sweepC, dt)
        if step is None:
            assert np.isnan(row["step_amplitude_pA"]) and np.isnan(row["step_start_s"])
        else:
            assert row["step_start_s"] == pytest.approx(step[0], abs=1e-12)
            assert row["step_stop_s"] == pytest.approx(step[1], abs=1e-12)
            assert row["step_amplitude_pA"] == pytest.approx(step[2], rel=1e-9)
        departures = np.flatnonzero(abf.sweepC != abf.sweepC[0])  # the baseline: the 100 ms before the first
        baseline = abf.sweepY[max(0, departures[0] - window):departures[0]] if departures.size else \
            abf.sweepY[:window]  # ... or the first 100 ms of a sweep without a stimulus
        assert row["baseline_mV"] == pytest.approx(baseline.astype(float).mean(), abs=1e-9)
        assert row["spike_count"] == crossings_counted(abf.sweepY.astype(float), dt)


@pytest.mark.parametrize("name", ABF_FILES)
def test_qc_verdicts_and_baseline_agree_with_the_sweeps(capsys, tmp_path, name):
    _, table = inspect(capsys, tmp_path, ABF / name)
    settings = QCSettings()
    for sweep, (_, row) in zip(read_recording(ABF / name).sweeps, table.iterrows()):
        failed = [check for check, passed in sweep.qc.items() if not passed]
        assert (row["qc"] == "pass") == sweep.passed_qc
        assert row["qc"] == (", ".join(failed) if failed else "pass")
        # the baseline and noise shown are the ones the quality control judged
        assert (row["noise_rms_mV"] * 1e-3 <= settings.max_noise_rms) == sweep.qc["baseline_noise"]
        assert (settings.baseline_min <= row["baseline_mV"] * 1e-3 <= settings.baseline_max) == \
            sweep.qc["baseline_potential"]
    if name == "2020_03_02_0000.abf":  # the channel labelled mV that swings to +250: nothing passes
        assert not (table["qc"] == "pass").any()


def test_igor_pair_table(capsys, tmp_path):
    out, table = inspect(capsys, tmp_path, *V_WAVES, "--current", *I_WAVES)
    assert len(table) == len(V_WAVES) == 5 and table["sweep"].tolist() == list(range(5))
    rows = table_rows(out)
    assert len(rows) == 5 and [int(r[0]) for r in rows] == list(range(5))
    assert out.splitlines()[0].startswith("5 files: igor, 5 sweep(s)")
    rec = read_recording(V_WAVES, current=I_WAVES)
    for k, (v_path, i_path) in enumerate(zip(V_WAVES, I_WAVES)):
        row = table.iloc[k]
        assert row["file"] == f"{v_path.name} + {i_path.name}"
        wave = igor2.binarywave.load(str(i_path))["wave"]
        current = np.asarray(wave["wData"], dtype=float)  # pA, recorded: quantised in steps of 3.125 pA
        dt = float(wave["wave_header"]["sfA"][0])
        t = np.arange(current.size) * dt
        holding = np.median(current[t < 0.6])
        level = np.median(current[(t > 0.8) & (t < 2.6)])  # the 2 s IDRest step starts at 0.7 s
        assert row["dt_ms"] == pytest.approx(dt * 1e3)
        assert row["holding_pA"] == pytest.approx(holding, abs=3.2)
        assert row["step_amplitude_pA"] == pytest.approx(level - holding, abs=3.2)
        assert row["step_start_s"] == pytest.approx(0.7, abs=2 * dt)
        assert row["step_stop_s"] == pytest.approx(2.7, abs=2 * dt)
        assert (row["qc"] == "pass") == rec.sweeps[k].passed_qc
        voltage = np.asarray(igor2.binarywave.load(str(v_path))["wave"]["wData"], dtype=float)  # mV
        assert row["spike_count"] == crossings_counted(voltage, dt) > 0
    assert (np.diff(table["step_amplitude_pA"]) > 0).all()  # five increasing steps


def test_channel_and_dt_options(capsys, tmp_path):
    path = ABF / "190619B_0003.abf"  # two channels in mV: 'IN 0' and 'IN 2'
    abf = pyabf.ABF(str(path))
    by_index = inspect(capsys, tmp_path, path, "--channel", "1")[1]
    by_name = inspect(capsys, tmp_path, path, "--channel", "IN 2")[1]
    pd.testing.assert_frame_equal(by_index, by_name)
    abf.setSweep(9, channel=1)
    assert by_index.iloc[9]["spike_count"] == crossings_counted(abf.sweepY.astype(float), 1 / abf.dataRate)
    status, out, err = run_cli(capsys, "inspect", path, "--channel", "nope")
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "190619B_0003.abf" in err and "no channel named 'nope'" in err

    status, _, err = run_cli(capsys, "inspect", V_WAVES[0], "--current", I_WAVES[0], "--dt", "0.5 ms",
                             "--csv", tmp_path / "dt.csv")
    assert status == 0 and err.splitlines()[0] == (f"neurofit: warning: {V_WAVES[0]}: dt = 0.0005 s replaces the "
                                                   f"wave's sampling step 0.00025 s")
    table = pd.read_csv(tmp_path / "dt.csv")
    assert table["dt_ms"].tolist() == [0.5] and table["duration_s"].tolist() == pytest.approx([12000 * 0.5e-3])
    _, table = inspect(capsys, tmp_path, V_WAVES[0], "--current", I_WAVES[0], "--dt", "5e-4")
    assert table["dt_ms"].tolist() == [0.5]


def test_count_spikes_counts_a_noisy_upstroke_once():
    dt = 1e-4
    voltage = np.full(5000, -0.065)
    for start in (1000, 2000, 2012):  # 2012: 1.2 ms after 2000, a separate spike
        voltage[start:start + 5] = 0.03
    voltage[3000:3003], voltage[3004:3006] = 0.02, 0.02  # one spike crossing 0 mV twice within 0.4 ms
    voltage[3008] = 0.01  # ... and once more, 0.8 ms after the first crossing
    sweep = Sweep(0, dt, voltage, np.zeros(5000))
    assert count_spikes(sweep) == 4
    assert count_spikes(sweep, dead_time=0.0) == 6
    assert count_spikes(sweep, threshold=0.025) == 3


# --- the figure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["171116sh_0018.abf", "2020_03_02_0000.abf"])
def test_plot_sweeps_draws_every_sweep(name):
    rec = read_recording(ABF / name)
    abf = pyabf.ABF(str(ABF / name))
    fig = plot_sweeps(rec)
    ax_v, ax_i = fig.axes[:2]
    assert len(ax_v.lines) == len(ax_i.lines) == len(rec.sweeps) == abf.sweepCount
    for k, sweep in enumerate(rec.sweeps):
        t = np.arange(sweep.voltage.size) * sweep.dt
        line_v, line_i = ax_v.lines[k], ax_i.lines[k]
        np.testing.assert_array_equal(line_v.get_ydata(), sweep.voltage * 1e3)
        np.testing.assert_array_equal(line_i.get_ydata(), sweep.current * 1e12)
        np.testing.assert_array_equal(line_v.get_xdata(), t)
        np.testing.assert_array_equal(line_i.get_xdata(), t)
        abf.setSweep(k, channel=0)  # the plotted numbers are the file's mV and pA
        np.testing.assert_allclose(line_v.get_ydata(), abf.sweepY, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(line_i.get_ydata(), abf.sweepC, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(line_v.get_xdata(), abf.sweepX, rtol=1e-9, atol=1e-12)
        dashed = line_v.get_linestyle() == "--" and line_i.get_linestyle() == "--"
        assert dashed == (not sweep.passed_qc)
    if name == "2020_03_02_0000.abf":
        assert all(line.get_color() == "0.6" for line in ax_v.lines)  # every sweep fails QC: all grey
    else:
        assert len({str(line.get_color()) for line in ax_v.lines}) == len(rec.sweeps)  # one colour per sweep
    title = fig._suptitle.get_text()
    assert name in title and abf.protocol in title
    assert "mV" in ax_v.get_ylabel() and "pA" in ax_i.get_ylabel() and "(s)" in ax_i.get_xlabel()


def test_plot_sweeps_of_igor_waves():
    rec = read_recording(V_WAVES, current=I_WAVES)
    fig = plot_sweeps(rec)
    ax_v, ax_i = fig.axes[:2]
    for k, path in enumerate(V_WAVES):
        wave = igor2.binarywave.load(str(path))["wave"]
        np.testing.assert_allclose(ax_v.lines[k].get_ydata(), np.asarray(wave["wData"], dtype=float), rtol=1e-12)
        np.testing.assert_array_equal(ax_i.lines[k].get_ydata(), rec.sweeps[k].current * 1e12)
    assert V_WAVES[0].name in fig._suptitle.get_text() and "5 files" in fig._suptitle.get_text()


def test_cli_writes_png_and_csv_atomically(capsys, tmp_path):
    png, csv = tmp_path / "out" / "sweeps.png", tmp_path / "out" / "sweeps.csv"
    status, out, err = run_cli(capsys, "inspect", ABF / "18711001.abf", "--plot", png, "--csv", csv)
    assert status == 0, err
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
    assert sorted(os.listdir(png.parent)) == ["sweeps.csv", "sweeps.png"]  # no temporary files left
    table = pd.read_csv(csv)
    assert len(table) == 30 and "step_amplitude_pA" in table.columns and "baseline_mV" in table.columns
    assert len(table_rows(out)) == 30


# --- bad files ----------------------------------------------------------------------------------

def test_truncated_abf_is_one_line_naming_the_file(capsys, tmp_path):
    truncated = tmp_path / "cut_171116sh_0018.abf"
    truncated.write_bytes((ABF / "171116sh_0018.abf").read_bytes()[:100000])
    png = tmp_path / "never.png"
    status, out, err = run_cli(capsys, "inspect", truncated, "--plot", png)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("neurofit: error: ") and str(truncated) in err
    assert not png.exists()


@pytest.mark.parametrize("args, fragment", [
    (["absent.abf"], "file not found"),
    ([str(ABF / "18711001.abf"), "--current", str(I_WAVES[0])], "current= is only for Igor waves"),
])
def test_other_bad_inputs_are_one_line(capsys, tmp_path, args, fragment):
    args = [str(tmp_path / a) if a == "absent.abf" else a for a in args]
    status, out, err = run_cli(capsys, "inspect", *args)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1 and fragment in err
