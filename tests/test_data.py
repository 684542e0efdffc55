"""Dataset, readers and validation messages (neurofit.data.dataset)."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurofit.data.dataset import DataError, Dataset, load_array, load_dataset

SHARED = Path(__file__).resolve().parents[1] / "data" / "brian2modelfitting"
INPUT_CSV = SHARED / "input_traces_hh.csv"
OUTPUT_CSV = SHARED / "output_traces_hh.csv"


def hh_dataset() -> Dataset:
    return load_dataset(inputs={"I": {"path": INPUT_CSV, "unit": "amp"}},
                        outputs={"v": {"path": OUTPUT_CSV, "unit": "mV"}}, dt="0.01 ms")


def small_dataset(**overrides) -> Dataset:
    fields = dict(inputs={"I": np.arange(12.0).reshape(3, 4) * 1e-9},
                  outputs={"v": np.linspace(-0.07, 0.02, 12).reshape(3, 4)}, dt=1e-4,
                  spikes={"spikes": [np.array([1e-4, 2.5e-4]), np.array([]), np.array([4e-4])]},
                  units={"I": "amp", "v": "volt"}, source={"inputs": {"I": "i.csv"}, "outputs": {"v": "v.csv"}})
    fields.update(overrides)
    return Dataset(**fields)


def raises_one_line(func, *fragments) -> str:
    """Call func, expect DataError whose message is one line containing every fragment."""
    with pytest.raises(DataError) as info:
        func()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- the shared brian2modelfitting recordings -------------------------------------------------

def test_hh_csvs_load_to_si():
    ds = hh_dataset()
    assert (ds.n_traces, ds.n_steps) == (5, 1497)
    assert ds.dt == pytest.approx(1e-5, rel=1e-12)
    assert ds.duration == pytest.approx(14.97e-3, rel=1e-12)
    assert ds.t[[0, 1, -1]] == pytest.approx([0.0, 1e-5, 1496e-5], rel=1e-12)
    current = ds.inputs["I"]
    on = np.zeros(1497, dtype=bool)
    on[499:998] = True
    np.testing.assert_array_equal(current[0], np.where(on, 10e-9, 0.0))
    for row, amplitude in ((1, 2e-9), (3, 50e-9), (4, 0.2e-9)):
        np.testing.assert_allclose(current[row], np.where(on, amplitude, 0.0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(current[2], np.where(np.arange(1497) <= 997, 2e-9, 0.0), rtol=1e-12, atol=0)
    v = ds.outputs["v"]
    assert v.min() == pytest.approx(-0.0874, abs=1e-4)
    assert v.max() == pytest.approx(0.0556, abs=1e-4)
    assert -0.0687 - 1e-4 < v[4].min() and v[4].max() < -0.0571 + 1e-4  # row 4 stays subthreshold
    assert ds.units == {"I": "amp", "v": "volt"}
    assert ds.source == {"inputs": {"I": str(INPUT_CSV)}, "outputs": {"v": str(OUTPUT_CSV)}}


def test_load_array_matches_pandas_reading_of_tutorial():
    expected = pd.read_csv(OUTPUT_CSV, index_col=0).to_numpy()
    np.testing.assert_array_equal(load_array(OUTPUT_CSV), expected)
    np.testing.assert_array_equal(load_array(OUTPUT_CSV, scale=1e-3), expected * 1e-3)


# --- readers ------------------------------------------------------------------------------------

def test_plain_numeric_csv_and_single_column(tmp_path):
    data = np.array([[1.5, 2.0, -3.0], [4.0, 5.0, 6.25]])
    np.savetxt(tmp_path / "plain.csv", data, delimiter=",")
    np.testing.assert_array_equal(load_array(tmp_path / "plain.csv"), data)
    np.savetxt(tmp_path / "column.csv", data[0], delimiter=",")  # a 1-D array is saved as a column
    np.testing.assert_array_equal(load_array(tmp_path / "column.csv"), data[:1])
    (tmp_path / "named.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")  # a header of names: every column is data
    np.testing.assert_array_equal(load_array(tmp_path / "named.csv"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "trailing.csv").write_text("1,2,\n3,4,\n")  # never read as a header row
    raises_one_line(lambda: load_array(tmp_path / "trailing.csv"), "trailing.csv: row 0, column 2 is NaN")


def test_pandas_csv_round_trip(tmp_path):
    data = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    pd.DataFrame(data).to_csv(tmp_path / "frame.csv")
    np.testing.assert_array_equal(load_array(tmp_path / "frame.csv"), data)


def test_npy_and_npz(tmp_path):
    trace = np.linspace(0, 1, 7)
    np.save(tmp_path / "one.npy", trace)
    np.testing.assert_array_equal(load_array(tmp_path / "one.npy", scale=2.0), 2.0 * trace[None, :])
    np.savez(tmp_path / "single.npz", x=np.ones((2, 3), dtype=np.float32))
    loaded = load_array(tmp_path / "single.npz")
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, np.ones((2, 3)))
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3)), b=np.full((2, 3), 7.0))
    np.testing.assert_array_equal(load_array(tmp_path / "two.npz", name="b"), np.full((2, 3), 7.0))


def test_load_dataset_from_npz_with_keys(tmp_path):
    np.savez(tmp_path / "rec.npz", I=np.full((2, 5), 3.0), v=np.full((2, 5), -65.0))
    ds = load_dataset({"I": {"path": tmp_path / "rec.npz", "unit": "nA", "key": "I"}},
                      {"v": {"path": tmp_path / "rec.npz", "unit": "mV", "key": "v"}}, dt=2e-5)
    assert ds.inputs["I"][0, 0] == pytest.approx(3e-9, rel=1e-12)
    assert ds.outputs["v"][1, 4] == pytest.approx(-0.065, rel=1e-12)
    assert ds.dt == 2e-5


# --- npz round trip -----------------------------------------------------------------------------

def test_npz_round_trip(tmp_path):
    ds = small_dataset()
    ds.save_npz(tmp_path / "data.npz")
    back = Dataset.load_npz(tmp_path / "data.npz")
    assert back.dt == ds.dt
    assert back.units == ds.units and back.source == ds.source
    for role in ("inputs", "outputs"):
        assert getattr(back, role).keys() == getattr(ds, role).keys()
        for name, array in getattr(ds, role).items():
            np.testing.assert_array_equal(getattr(back, role)[name], array)
    assert len(back.spikes["spikes"]) == 3
    for got, want in zip(back.spikes["spikes"], ds.spikes["spikes"]):
        np.testing.assert_array_equal(got, want)
    assert os.listdir(tmp_path) == ["data.npz"]  # no temp file left behind


def test_hh_npz_round_trip_is_exact(tmp_path):
    ds = hh_dataset()
    ds.save_npz(tmp_path / "hh.npz")
    back = Dataset.load_npz(tmp_path / "hh.npz")
    np.testing.assert_array_equal(back.outputs["v"], ds.outputs["v"])
    np.testing.assert_array_equal(back.inputs["I"], ds.inputs["I"])
    assert back.dt == ds.dt and back.spikes is None


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "data.npz"
    small_dataset().save_npz(target)
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)  # fails once the temporary file is written
    with pytest.raises(OSError):
        small_dataset(dt=2e-4).save_npz(target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["data.npz"]


# --- every user mistake: DataError, one line, names the file / key ------------------------------

def test_missing_file_and_unknown_format(tmp_path):
    raises_one_line(lambda: load_array(tmp_path / "missing.csv"), "missing.csv: file not found")
    (tmp_path / "file.txt").write_text("1,2\n")
    raises_one_line(lambda: load_array(tmp_path / "file.txt"),
                    "file.txt: unknown format '.txt' (valid: .csv, .npy, .npz)")
    (tmp_path / "folder.csv").mkdir()
    raises_one_line(lambda: load_array(tmp_path / "folder.csv"), "folder.csv: not a file")


def test_csv_nan_bad_cell_empty_and_ragged(tmp_path):
    data = np.zeros((5, 20))
    data[3, 17] = np.nan
    pd.DataFrame(data).to_csv(tmp_path / "input_traces.csv")
    raises_one_line(lambda: load_array(tmp_path / "input_traces.csv"),
                    "input_traces.csv: row 3, column 17 is NaN; recordings must be finite numbers")
    (tmp_path / "text.csv").write_text("1,2,3\n4,abc,6\n")
    raises_one_line(lambda: load_array(tmp_path / "text.csv"), "text.csv: row 1, column 1 is 'abc', not a number")
    (tmp_path / "inf.csv").write_text("1,2,3\n4,5,inf\n")
    raises_one_line(lambda: load_array(tmp_path / "inf.csv"), "inf.csv: row 1, column 2 is inf")
    (tmp_path / "empty.csv").write_text("\n\n")
    raises_one_line(lambda: load_array(tmp_path / "empty.csv"), "empty.csv: file is empty")
    (tmp_path / "ragged.csv").write_text("1,2\n3,4,5\n")
    raises_one_line(lambda: load_array(tmp_path / "ragged.csv"), "ragged.csv: cannot read as CSV")
    (tmp_path / "header_only.csv").write_text(",0,1,2\n")
    raises_one_line(lambda: load_array(tmp_path / "header_only.csv"), "header_only.csv", "no samples")


def test_npz_and_npy_mistakes(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3), b=np.ones(3))
    raises_one_line(lambda: load_array(tmp_path / "x.npz", name="v"), "x.npz: no array named 'v' (arrays: a, b)")
    raises_one_line(lambda: load_array(tmp_path / "x.npz"), "x.npz: holds 2 arrays (a, b)")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    raises_one_line(lambda: load_array(tmp_path / "cube.npy"), "cube.npy has shape (2, 3, 4)")
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    raises_one_line(lambda: load_array(tmp_path / "words.npy"), "words.npy has dtype <U1")
    np.save(tmp_path / "objects.npy", np.array([1, None], dtype=object), allow_pickle=True)
    raises_one_line(lambda: load_array(tmp_path / "objects.npy"), "objects.npy: holds Python objects", "refused")
    np.savez(tmp_path / "nan.npz", v=np.array([[0.0, np.nan]]))
    raises_one_line(lambda: load_array(tmp_path / "nan.npz"), "nan.npz: array 'v': row 0, column 1 is NaN")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    raises_one_line(lambda: load_array(tmp_path / "junk.npz"), "junk.npz: cannot read as .npz (not a zip archive")
    np.save(tmp_path / "ok.npy", np.zeros(3))
    raises_one_line(lambda: load_array(tmp_path / "ok.npy", name="v"), "ok.npy: array name 'v' given")


def test_shape_mismatch_names_keys_and_files(tmp_path):
    pd.DataFrame(np.zeros((4, 1497))).to_csv(tmp_path / "out4.csv")
    message = raises_one_line(
        lambda: load_dataset({"I": {"path": INPUT_CSV, "unit": "amp"}},
                             {"v": {"path": tmp_path / "out4.csv", "unit": "mV"}}, dt="0.01 ms"),
        "outputs 'v'", "out4.csv", "has shape (4, 1497) but inputs 'I'", "has (5, 1497)",
        "every recording needs one row per trace and the same number of samples")
    assert "input_traces_hh.csv" in message


def test_dt_mistakes():
    inputs = {"I": {"path": INPUT_CSV, "unit": "amp"}}
    raises_one_line(lambda: load_dataset(inputs, {}, dt="-0.01 ms"), "dt = -0.01 ms must be positive")
    raises_one_line(lambda: load_dataset(inputs, {}, dt="0 ms"), "dt = 0 ms must be positive")
    raises_one_line(lambda: load_dataset(inputs, {}, dt="0.01 mV"), "dt", "expected second")
    raises_one_line(lambda: load_dataset(inputs, {}, dt="0.01 parsecs"), "dt = '0.01 parsecs'")
    raises_one_line(lambda: load_dataset(inputs, {}, dt=float("inf")), "dt = inf s must be a finite time step")
    raises_one_line(lambda: small_dataset(dt=-1e-4), "dt = -0.0001 s must be positive")
    raises_one_line(lambda: small_dataset(dt=float("nan")), "dt = nan s must be a finite")
    raises_one_line(lambda: small_dataset(dt="0.1 ms"), "dt = '0.1 ms' must be a number of seconds")


def test_spec_mistakes():
    raises_one_line(lambda: load_dataset({"I": {"path": INPUT_CSV}}, {}, dt=1e-5), "inputs 'I': missing 'unit'")
    raises_one_line(lambda: load_dataset({"I": {"unit": "nA"}}, {}, dt=1e-5), "inputs 'I': missing 'path'")
    raises_one_line(lambda: load_dataset({"I": {"path": INPUT_CSV, "unit": "nA", "scale": 2}}, {}, dt=1e-5),
                    "inputs 'I': unknown field(s) scale (valid: path, unit, key)")
    raises_one_line(lambda: load_dataset({"I": {"path": INPUT_CSV, "unit": "nAmps"}}, {}, dt=1e-5),
                    "inputs 'I'", "input_traces_hh.csv", "unknown unit 'nAmps'")
    raises_one_line(lambda: load_dataset({"I": str(INPUT_CSV)}, {}, dt=1e-5), "inputs 'I': expected a mapping")
    raises_one_line(lambda: load_dataset({}, {"v": {"path": OUTPUT_CSV, "unit": "mV"}}, dt=1e-5), "no inputs")


def test_dataset_validation_mistakes():
    raises_one_line(lambda: small_dataset(inputs={"I": np.zeros(4)}), "inputs 'I' (i.csv) has shape (4,)", "2-D")
    nan = np.zeros((3, 4))
    nan[2, 1] = np.inf
    raises_one_line(lambda: small_dataset(outputs={"v": nan}), "outputs 'v' (v.csv): row 2, column 1 is inf")
    raises_one_line(lambda: small_dataset(inputs={"I": [["a", "b"]]}), "inputs 'I' (i.csv) is not numeric")
    raises_one_line(lambda: small_dataset(inputs={"I": np.zeros((0, 4))}), "inputs 'I' (i.csv) holds no samples")


def test_spike_mistakes():
    ok = [np.array([1e-4]), np.array([]), np.array([2e-4])]
    assert small_dataset(spikes={"spikes": ok}).spikes["spikes"][1].size == 0
    raises_one_line(lambda: small_dataset(spikes={"spikes": ok[:2]}), "spikes 'spikes' has 2 spike trains", "3 traces")
    raises_one_line(lambda: small_dataset(spikes={"spikes": [np.array([2e-4, 1e-4]), [], []]}),
                    "spikes 'spikes': trace 0 is not sorted")
    raises_one_line(lambda: small_dataset(spikes={"spikes": [[], [5e-4], []]}),
                    "spikes 'spikes': trace 1 has spike times outside [0, 0.0004] s")
    raises_one_line(lambda: small_dataset(spikes={"spikes": [[], [], [-1e-5]]}), "trace 2 has spike times outside")
    raises_one_line(lambda: small_dataset(spikes={"spikes": [[np.nan], [], []]}), "trace 0 has non-finite")
    raises_one_line(lambda: small_dataset(spikes={"spikes": 3.0}), "spikes 'spikes' must be a list")


def test_load_npz_mistakes(tmp_path):
    raises_one_line(lambda: Dataset.load_npz(tmp_path / "none.npz"), "none.npz: file not found")
    np.savez(tmp_path / "plain.npz", v=np.zeros(3))
    raises_one_line(lambda: Dataset.load_npz(tmp_path / "plain.npz"), "plain.npz: not a neurofit dataset")
