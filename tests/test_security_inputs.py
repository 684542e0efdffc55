"""Hostile or mistaken inputs: each is ONE line naming the file or config key, never a traceback or a
MemoryError - recordings in the wrong unit, damaged or forged .npy/.npz files, sizes that cannot fit in
memory, bad YAML, a full disk, and settings that only a job would have tripped over (caught by `snakemake -n`).
"""
import errno
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import run_cli, snakemake, write_yaml
from neurofit import models
from neurofit.data.dataset import DataError, Dataset, load_array, load_dataset
from neurofit.data.files import (
    DiskFullError,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    read_npy,
    read_npz,
)
from neurofit.workflow.fit_section import TRIAL_POPULATION, FitSection
from neurofit.workflow.infer_section import check_infer_section
from neurofit.workflow.study import ConfigError, Study, load_yaml, read_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "brian2modelfitting"
INPUT_CSV, OUTPUT_CSV = DATA / "input_traces_hh.csv", DATA / "output_traces_hh.csv"
HH_BOUNDS = {"gl": ["2 pS", "200 nS", "log"], "g_na": ["200 nS", "0.4 mS", "log"], "g_kd": ["200 nS", "200 uS", "log"]}


def one_line(func, *fragments, error=ValueError) -> str:
    """Call func; it must raise ``error`` whose message is one line holding every fragment."""
    with pytest.raises(error) as info:
        func()
    message = str(info.value)
    assert message.strip() and "\n" not in message, repr(message)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def hh_study(**sections) -> dict:
    """A config document with study 'hh': hh_traub on the tutorial's recordings, plus ``sections``."""
    study = {"model": {"builtin": "hh_traub"},
             "data": {"dt": "0.01 ms", "inputs": {"I": {"path": str(INPUT_CSV), "unit": "amp"}},
                      "outputs": {"v": {"path": str(OUTPUT_CSV), "unit": "mV"}}}}
    study.update(sections)
    return {"studies": {"hh": study}}


def inference_study(**infer) -> dict:
    """A config document with study 'sbi': hh_inferencer on 200 ms of synthetic data, and an infer section."""
    section = {"bounds": {"g_Na": ["1 uS", "100 uS"], "g_K": ["0.1 uS", "10 uS"]},
               "features": {"v": ["v_max", "v_mean"]}, "n_samples": 100}
    section.update(infer)
    return {"studies": {"sbi": {
        "model": {"builtin": "hh_inferencer"}, "ground_truth": {"g_Na": "32 uS", "g_K": "1 uS"},
        "data": {"dt": "0.1 ms", "synthetic": {"duration": "200 ms", "record": ["v"],
                                               "inputs": {"I": {"kind": "steps", "amplitudes": ["0.5 nA"],
                                                                "start": "50 ms", "stop": "150 ms"}}}},
        "infer": section}}}


def study_of(doc: dict) -> Study:
    return Study.from_config(doc, next(iter(doc["studies"])))


def checked(doc: dict) -> None:
    """The Snakefile's checks of one study: the study with its model, then its fit and infer sections."""
    study = study_of(doc)
    model = study.model()
    study.check(model)
    if study.section.get("fit") is not None:
        FitSection(study, model)
    if study.section.get("infer") is not None:
        check_infer_section(study, model)


# --- 5. units of recordings against the model ---------------------------------------------------------

@pytest.mark.parametrize("role, name, unit, fragments", [
    ("inputs", "I", "mV", ("studies.hh.data.inputs.I", "input_traces_hh.csv", "unit 'mV' is a voltage",
                           "the model's input I is a current (amp)")),
    ("outputs", "v", "nA", ("studies.hh.data.outputs.v", "output_traces_hh.csv", "unit 'nA' is a current",
                            "the model's variable v is a voltage (volt)")),
    ("inputs", "I", "s", ("studies.hh.data.inputs.I", "input_traces_hh.csv", "unit 's' is a time (second)",
                          "input I is a current")),
], ids=["input in mV", "output in nA", "input in seconds"])
def test_units_of_recordings_are_checked_against_the_model(role, name, unit, fragments):
    doc = hh_study()
    doc["studies"]["hh"]["data"][role][name]["unit"] = unit
    one_line(lambda: checked(doc), *fragments, error=ConfigError)
    # ... and where the package reads the recordings with the model at hand
    data = doc["studies"]["hh"]["data"]
    model = models.get("hh_traub")
    one_line(lambda: load_dataset(data["inputs"], data["outputs"], data["dt"], model=model),
             f"{role} '{name}'", Path(data[role][name]["path"]).name, f"unit '{unit}'", error=DataError)
    load_dataset(data["inputs"], data["outputs"], data["dt"])  # without a model: read as given


def test_unit_1_means_numbers_already_in_si_and_fits_any_variable():
    doc = hh_study()
    doc["studies"]["hh"]["data"]["inputs"]["I"]["unit"] = "1"
    checked(doc)


def test_prepare_fails_on_a_wrong_unit_with_one_line_and_writes_nothing(tmp_path, capsys):
    doc = hh_study()
    doc["studies"]["hh"]["data"]["outputs"]["v"]["unit"] = "nA"
    config = write_yaml(tmp_path / "config.yaml", doc)
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "hh", "--output-config",
                             tmp_path / "study.yaml", "--output-data", tmp_path / "data.npz")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "studies.hh.data.outputs.v (" in err and "unit 'nA' is a current" in err
    assert not (tmp_path / "data.npz").exists()


# --- 6. damaged and forged .npy / .npz files ----------------------------------------------------------

def npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(npy_header((10**12,)) + b"\0" * 80)
    one_line(lambda: read_npy(path), "x.npy: header claims 8 TB", "the file has 80 bytes", "truncated or damaged",
             error=DataError)
    one_line(lambda: load_array(path), "x.npy: header claims 8 TB", error=DataError)


def test_npz_member_claiming_terabytes_is_refused(tmp_path):
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("v.npy", npy_header((1000, 10**9)) + b"\0" * 64)
    one_line(lambda: read_npz(path), "forged.npz: array 'v': header claims 8 TB", "64 bytes", error=DataError)
    one_line(lambda: load_array(path), "forged.npz: array 'v': header claims 8 TB", error=DataError)


def test_truncated_npy_and_npz(tmp_path):
    np.save(tmp_path / "whole.npy", np.arange(100.0))
    whole = (tmp_path / "whole.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-8])
    one_line(lambda: load_array(tmp_path / "cut.npy"), "cut.npy: header claims 800 B", "792 bytes",
             "truncated or damaged", error=DataError)
    (tmp_path / "stub.npy").write_bytes(whole[:30])
    one_line(lambda: load_array(tmp_path / "stub.npy"), "stub.npy: truncated or damaged", error=DataError)

    Dataset(inputs={"I": np.zeros((2, 50))}, outputs={"v": np.ones((2, 50))}, dt=1e-4).save_npz(tmp_path / "data.npz")
    whole = (tmp_path / "data.npz").read_bytes()
    (tmp_path / "data.npz").write_bytes(whole[: len(whole) // 2])
    one_line(lambda: Dataset.load_npz(tmp_path / "data.npz"), "data.npz: truncated or damaged", error=DataError)


def test_corrupted_npz_member_is_damaged_not_a_traceback(tmp_path):
    atomic_save_npz(tmp_path / "sim.npz", {"v": np.linspace(0, 1, 500)})
    data = bytearray((tmp_path / "sim.npz").read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the array's bytes: the zip's CRC no longer matches
    (tmp_path / "sim.npz").write_bytes(bytes(data))
    one_line(lambda: read_npz(tmp_path / "sim.npz"), "sim.npz: array 'v': truncated or damaged", error=DataError)


def test_pickled_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", v=np.array([1.0, {"payload": 1}], dtype=object))
    one_line(lambda: load_array(tmp_path / "objects.npz"), "objects.npz: array 'v': holds Python objects",
             "refused", error=DataError)
    one_line(lambda: read_npz(tmp_path / "objects.npz"), "refused", error=DataError)
    np.save(tmp_path / "objects.npy", np.array([None]), allow_pickle=True)
    one_line(lambda: read_npy(tmp_path / "objects.npy"), "objects.npy: holds Python objects", error=DataError)


def test_prepare_on_a_forged_recording_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "rec.npz", I=np.zeros((5, 1497)))
    whole = (tmp_path / "rec.npz").read_bytes()
    (tmp_path / "rec.npz").write_bytes(whole[:-100])
    doc = hh_study()
    doc["studies"]["hh"]["data"]["inputs"]["I"] = {"path": str(tmp_path / "rec.npz"), "unit": "nA"}
    config = write_yaml(tmp_path / "config.yaml", doc)
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "hh", "--output-config",
                             tmp_path / "study.yaml", "--output-data", tmp_path / "data.npz")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{tmp_path / 'rec.npz'}: truncated or damaged" in err, err


def test_checked_readers_give_numpy_arrays_back_exactly(tmp_path):
    arrays = {"a": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "b": np.arange(5, dtype=np.int32),
              "meta": np.array("text"), "empty": np.zeros((0, 3))}
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    back = read_npz(tmp_path / "c.npz")
    assert list(back) == list(arrays)
    for key, array in arrays.items():
        assert back[key].dtype == array.dtype
        np.testing.assert_array_equal(back[key], array)
    np.save(tmp_path / "f.npy", arrays["a"])
    loaded = read_npy(tmp_path / "f.npy")
    np.testing.assert_array_equal(loaded, arrays["a"])
    loaded[0, 0] = 1.0  # writable, like np.load's


# --- 7. sizes from the config against the memory available -------------------------------------------

def test_huge_fit_n_samples_fails_at_config_time():
    doc = hh_study(fit={"bounds": HH_BOUNDS, "n_samples": 10**12})
    message = one_line(lambda: checked(doc), "studies.hh.fit.n_samples:", "1000000000000 candidates",
                       "of memory, more than the", "available", error=ConfigError)
    assert "TB" in message


def test_fit_n_samples_times_the_data_fails_in_prepare_before_allocating(tmp_path, capsys):
    # 10**7 candidates pass the check without data (320 MB), not x 5 traces x 1497 steps (1.2 TB)
    doc = hh_study(fit={"bounds": HH_BOUNDS, "n_samples": 10**7})
    checked(doc)
    config = write_yaml(tmp_path / "config.yaml", doc)
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "hh", "--output-config",
                             tmp_path / "study.yaml", "--output-data", tmp_path / "data.npz")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "studies.hh.fit.n_samples: 10000000 candidates x 5 traces x 1497 steps" in err and "TB" in err, err


@pytest.mark.parametrize("infer, fragments", [
    ({"n_samples": 10**13}, ("studies.sbi.infer.n_samples:", "10000000000000 simulations", "of memory")),
    ({"sbc_simulations": 10**10}, ("studies.sbi.infer.sbc_simulations:", "10000000000 tests", "of memory")),
    ({"n_samples": 10**9, "n_chunks": 10**9}, ("studies.sbi.infer.n_chunks:", "1000000000 chunk jobs",
                                              "of memory")),
    ({"n_samples": 10, "n_chunks": 20}, ("studies.sbi.infer.n_chunks: 20 chunks for 10 simulations",)),
], ids=["n_samples", "sbc_simulations", "n_chunks", "more chunks than simulations"])
def test_huge_infer_sizes_fail_at_config_time(infer, fragments):
    one_line(lambda: checked(inference_study(**infer)), *fragments, error=ConfigError)


@pytest.mark.parametrize("duration, dt", [("1e9 s", "0.1 ms"), ("1000 s", "1e-10 s")])
def test_synthetic_duration_over_dt_giving_1e13_steps_fails_before_generating(duration, dt):
    doc = inference_study()
    data = doc["studies"]["sbi"]["data"]
    data["synthetic"]["duration"], data["dt"] = duration, dt
    one_line(lambda: checked(doc), "studies.sbi.data.synthetic.duration:", "1e+13 steps", "of memory",
             error=ConfigError)
    one_line(lambda: study_of(doc).dataset(), "studies.sbi.data.synthetic.duration:", "1e+13 steps",
             error=ConfigError)


def test_prepare_checks_optimizers_on_a_tiny_population(tmp_path, monkeypatch):
    """The fit check asks each optimizer for TRIAL_POPULATION candidates, not n_samples."""
    from neurofit.fitting import optimizers
    asked = []
    original = optimizers.NevergradOptimizer.ask
    monkeypatch.setattr(optimizers.NevergradOptimizer, "ask",
                        lambda self, n_samples: asked.append(n_samples) or original(self, n_samples))
    study = study_of(hh_study(fit={"bounds": HH_BOUNDS, "n_samples": 10_000,
                                   "optimizers": [{"name": "DE"}, {"name": "CMA"}]}))
    FitSection(study).check(study.dataset())
    assert asked == [TRIAL_POPULATION, TRIAL_POPULATION]


# --- 9a. YAML: syntax errors and duplicate keys --------------------------------------------------------

def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("studies:\n  hh:\n    model: {builtin: hh_traub\n    data: {}\n")
    one_line(lambda: read_config(path), "broken.yaml line 4: not valid YAML", error=ConfigError)
    status, _, err = run_cli(capsys, "prepare", "--config", path, "--study", "hh", "--output-config",
                             tmp_path / "s.yaml", "--output-data", tmp_path / "d.npz")
    assert status == 2 and err.count("\n") == 1 and "broken.yaml line 4" in err, err


@pytest.mark.parametrize("text, fragments", [
    ("studies:\n  hh: {}\nrun: [hh]\nstudies:\n  other: {}\n",
     ("config.yaml line 4: duplicate key 'studies' (first given on line 1)",)),
    ("studies:\n  hh:\n    fit: {n_samples: 10}\n    model: {builtin: hh_traub}\n    fit: {n_rounds: 3}\n",
     ("config.yaml line 5: duplicate key 'fit' (first given on line 3)",)),
    ("studies: {hh: {model: {builtin: lif, builtin: hh_traub}}}\n",
     ("config.yaml line 1: duplicate key 'builtin'",)),
], ids=["top level", "nested", "flow mapping"])
def test_duplicate_yaml_keys_are_errors(tmp_path, text, fragments):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    one_line(lambda: read_config(path), *fragments, error=ConfigError)


def test_shipped_yaml_files_have_no_duplicate_keys():
    from neurofit.workflow.study import SCHEMA_PATH
    for path in [SCHEMA_PATH, *sorted((ROOT / "config").rglob("*.yaml"))]:
        load_yaml(path.read_text(encoding="utf-8"), str(path))


def test_yaml_merge_keys_may_still_be_overridden():
    doc = load_yaml("base: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  a: 3\n", "config.yaml")
    assert doc["derived"] == {"a": 3, "b": 2}


# --- 9b. a full disk ------------------------------------------------------------------------------------

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [
    lambda path: atomic_write_bytes(path, b"x" * 1000),
    lambda path: atomic_write_json(path, {"a": 1}),
    lambda path: atomic_save_npz(path, {"v": np.zeros(10)}),
], ids=["bytes", "json", "npz"])
def test_disk_full_names_the_target_and_leaves_no_temp_file(tmp_path, monkeypatch, write):
    target = tmp_path / "results" / "out.file"
    target.parent.mkdir()
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "write", _disk_full)
    message = one_line(lambda: write(target), str(target), "no space left on the device", error=DiskFullError)
    assert message.startswith(f"{target}: ")
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["out.file"]


def test_disk_full_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    config = write_yaml(tmp_path / "config.yaml", hh_study())
    monkeypatch.setattr(os, "fsync", _disk_full)
    status, _, err = run_cli(capsys, "prepare", "--config", config, "--study", "hh", "--output-config",
                             tmp_path / "out" / "study.yaml", "--output-data", tmp_path / "out" / "data.npz")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{tmp_path / 'out' / 'study.yaml'}: no space left on the device" in err
    assert os.listdir(tmp_path / "out") == []


# --- 9c. settings a job would trip over fail in the config check (and so in `snakemake -n`) --------------

@pytest.mark.parametrize("doc, fragments", [
    (hh_study(fit={"bounds": HH_BOUNDS, "optimizers": [{"name": "DEE"}]}),
     ("studies.hh.fit.optimizers.0.name: unknown nevergrad method 'DEE'", "did you mean DE")),
    (hh_study(fit={"bounds": HH_BOUNDS, "optimizers": [{"name": "GPP", "library": "skopt"}]}),
     ("studies.hh.fit.optimizers.0.name: unknown skopt method 'GPP' (valid: GP, RF, ET, GBRT)",)),
    (hh_study(fit={"bounds": HH_BOUNDS, "optimizers": [{"name": "GP"}]}),
     ("unknown nevergrad method 'GP'", "library: skopt")),
    (hh_study(fit={"bounds": HH_BOUNDS, "metric": {"name": "feature", "stim_times": ["5 ms", "10 ms"],
                                                   "features": ["Spikecount", "spike_cont"]}}),
     ("studies.hh.fit.metric.features.1: unknown eFEL feature 'spike_cont'",)),
    (inference_study(features={"v": ["v_max", "v_maxx"]}),
     ("studies.sbi.infer.features.v: unknown feature 'v_maxx'", "did you mean v_max")),
    (inference_study(features={"spikes": ["AP_amplitude"]}, spike_threshold="0 mV"),
     ("studies.sbi.infer.features.spikes: unknown feature 'AP_amplitude'",)),
    (hh_study(fit={"bounds": HH_BOUNDS, "init": {"v": "-65 mV", "m": "alpha_m/(alpha_m + beta_m)"}}),
     ("studies.hh.fit.init.m: initial value 'alpha_m/(alpha_m + beta_m)': unknown identifier 'alpha_m'",)),
    (hh_study(simulate={"params": {}, "init": {"v": "El + (3 *"}}),
     ("studies.hh.simulate.init.v: 'El + (3 *' is neither a quantity", "syntax error")),
    (hh_study(fit={"bounds": HH_BOUNDS, "init": {"v": "El * 2 / ms"}}),
     ("studies.hh.fit.init.v: the expression 'El * 2 / ms' has units of volt/second, but v is in volt",)),
], ids=["nevergrad name", "skopt name", "skopt name without library", "eFEL feature of a fit", "library feature",
        "eFEL feature as spike feature", "init identifier", "init syntax", "init units"])
def test_settings_a_job_would_trip_over_fail_in_the_config_check(doc, fragments):
    one_line(lambda: checked(doc), *fragments, error=ConfigError)


def test_valid_init_expressions_and_efel_features_pass():
    checked(hh_study(fit={"bounds": HH_BOUNDS, "init": {"v": "El + 5*mV"},
                          "metric": {"name": "feature", "stim_times": ["5 ms", "10 ms"],
                                     "features": ["Spikecount"], "weights": {"Spikecount": 2}}}))
    checked(inference_study(features={"v": ["v_max", "AP_amplitude", "efel:voltage_base"]}))


def dry_run(tmp_path, doc_or_text):
    (tmp_path / "config").mkdir(exist_ok=True)
    text = doc_or_text if isinstance(doc_or_text, str) else yaml.safe_dump(doc_or_text, sort_keys=False)
    (tmp_path / "config" / "config.yaml").write_text(text)
    return snakemake("-n", "--cores", "1", "--workflow-profile", "none", cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("doc, message", [
    (hh_study(fit={"bounds": HH_BOUNDS, "optimizers": [{"name": "DEE"}]}),
     "config: studies.hh.fit.optimizers.0.name: unknown nevergrad method 'DEE'"),
    (inference_study(features={"v": ["v_maxx"]}), "config: studies.sbi.infer.features.v: unknown feature 'v_maxx'"),
    (hh_study(fit={"bounds": HH_BOUNDS, "init": {"m": "1/(1 + beta_mm)"}}),
     "config: studies.hh.fit.init.m: initial value '1/(1 + beta_mm)': unknown identifier 'beta_mm'"),
    (hh_study(simulate={"params": {}}, data={"dt": "0.01 ms", "inputs": {"I": {"path": str(INPUT_CSV), "unit": "mV"}},
                                             "outputs": {}}),
     "config: studies.hh.data.inputs.I ("),
    (inference_study(n_samples=10**13), "config: studies.sbi.infer.n_samples: 10000000000000 simulations"),
    ("studies:\n  hh: {model: {builtin: hh_traub}}\nstudies: {}\n",
     "config/config.yaml line 3: duplicate key 'studies' (first given on line 1)"),
], ids=["optimizer", "feature", "init expression", "unit", "n_samples", "duplicate key"])
def test_dry_run_fails_with_one_line(tmp_path, doc, message):
    status, out = dry_run(tmp_path, doc)
    assert status != 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line in lines if message in line] == [lines[-1]], out  # the last line, and only it
    assert "Traceback" not in out and "Error in file" not in out, out
    assert not (tmp_path / "results").exists()
