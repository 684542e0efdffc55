"""The `neurofit` command: simulate / prepare / plot-traces, manifests, one-line user errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import neurofit
from helpers import run_cli, write_yaml
from neurofit import models
from neurofit.cli.main import main
from neurofit.data.files import atomic_save_npz, load_simulation, sha256_file
from neurofit.workflow.provenance import check_manifest, manifest_path, read_manifest

DT = 1e-4
CURRENTS = np.array([0.15e-9, 0.3e-9, 0.5e-9])  # below, above and well above the LIF rheobase (0.2 nA)


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """A tiny LIF study (3 traces x 800 steps, two parameter sets) in tmp_path, which becomes the cwd."""
    monkeypatch.chdir(tmp_path)
    steps = np.zeros((3, 800))
    steps[:, 100:700] = CURRENTS[:, None] * 1e9
    np.savetxt("current_nA.csv", steps, delimiter=",")
    config = {"studies": {"tiny": {
        "model": {"builtin": "lif"},
        "data": {"dt": "0.1 ms", "inputs": {"I": {"path": "current_nA.csv", "unit": "nA"}}},
        "simulate": {"params": {"gl": ["10 nS", "12 nS"], "C": "150 pF"}, "backend": "numpy"},
    }}}
    write_yaml(tmp_path / "config.yaml", config)
    return tmp_path, config


def test_simulate_writes_the_traces_of_a_direct_simulate_call(tiny, capsys):
    tmp_path, _ = tiny
    status, out, err = run_cli(capsys, "simulate", "--config", "config.yaml", "--study", "tiny",
                               "--output", "out/sim.npz")
    assert status == 0, err
    assert "2 parameter set(s) x 3 trace(s) x 800 steps" in out

    spec = models.SPECS["lif"]
    params = dict(spec.defaults, gl=["10 nS", "12 nS"], C="150 pF")
    inputs = np.loadtxt("current_nA.csv", delimiter=",") * 1e-9
    direct = neurofit.simulate(models.get("lif"), params, {"I": inputs}, DT, init=spec.init, method=spec.method,
                               spikes=True, backend="numpy")
    sim = load_simulation("out/sim.npz")
    np.testing.assert_array_equal(sim.traces["v"], direct.traces["v"])
    assert sim.traces["v"].shape == (2, 3, 800)
    np.testing.assert_array_equal(sim.invalid, direct.invalid)
    np.testing.assert_allclose(sim.t, np.arange(800) * DT)
    np.testing.assert_allclose(sim.params["gl"], [10e-9, 12e-9], rtol=1e-15)
    counts = [[len(s) for s in row] for row in sim.spikes]
    assert counts == [[len(s) for s in row] for row in direct.spikes]
    assert counts[0][0] == 0 and counts[0][2] > counts[0][1] > 0  # no spike below rheobase, more with more current
    for row_file, row_direct in zip(sim.spikes, direct.spikes):
        for a, b in zip(row_file, row_direct):
            np.testing.assert_array_equal(a, b)
    assert sim.meta["method"] == spec.method and sim.meta["backend"] == "numpy"


def test_simulate_writes_a_manifest_that_matches_the_output(tiny, capsys):
    status, _, err = run_cli(capsys, "simulate", "--config", "config.yaml", "--study", "tiny", "--output", "sim.npz")
    assert status == 0, err
    manifest = read_manifest("sim.npz")
    assert manifest["study"] == "tiny"
    assert manifest["config"]["simulate"]["params"]["C"] == "150 pF"
    assert manifest["config"]["simulate"]["seed"] == 0  # defaults are filled in
    assert manifest["seeds"] == {"simulate": 0}
    assert set(manifest["inputs"]) == {"config.yaml", "current_nA.csv"}
    assert manifest["inputs"] == {name: sha256_file(name) for name in ("config.yaml", "current_nA.csv")}
    assert manifest["backend"] == "numpy" and manifest["dtype"] == "float64"
    assert manifest["versions"]["neurofit"] == neurofit.__version__ and manifest["versions"]["numpy"] == np.__version__
    assert manifest["wall_time_s"] >= 0 and manifest["host"]["hostname"]
    assert check_manifest("sim.npz") is None
    with open("sim.npz", "ab") as f:
        f.write(b"\0")
    assert "differs" in check_manifest("sim.npz")


def test_same_config_gives_byte_identical_output(tiny, capsys):
    for name in ("a.npz", "b.npz"):
        assert run_cli(capsys, "simulate", "--config", "config.yaml", "--study", "tiny", "--output", name)[0] == 0
    assert Path("a.npz").read_bytes() == Path("b.npz").read_bytes()


def test_prepare_then_simulate_and_plot(tiny, capsys):
    tmp_path, config = tiny
    config["studies"]["tiny"]["description"] = "a tiny LIF study"
    write_yaml(tmp_path / "config.yaml", config)
    status, _, err = run_cli(capsys, "prepare", "--config", "config.yaml", "--study", "tiny",
                             "--output-config", "r/study.yaml", "--output-data", "r/data.npz")
    assert status == 0, err
    frozen = yaml.safe_load(Path("r/study.yaml").read_text())
    assert frozen["studies"]["tiny"]["simulate"]["dtype"] == "float64"  # defaults filled in
    assert "description" not in frozen["studies"]["tiny"]  # free text: no job reads it
    for out in ("r/study.yaml", "r/data.npz"):
        assert check_manifest(out) is None
        assert set(read_manifest(out)["inputs"]) == {"config.yaml", "current_nA.csv"}
    status, _, err = run_cli(capsys, "simulate", "--config", "r/study.yaml", "--study", "tiny", "--data", "r/data.npz",
                             "--output", "r/sim.npz")
    assert status == 0, err
    direct = run_cli(capsys, "simulate", "--config", "config.yaml", "--study", "tiny", "--output", "r/direct.npz")
    assert direct[0] == 0
    np.testing.assert_array_equal(load_simulation("r/sim.npz").traces["v"], load_simulation("r/direct.npz").traces["v"])
    status, out, err = run_cli(capsys, "plot-traces", "--simulation", "r/sim.npz", "--data", "r/data.npz",
                               "--config", "r/study.yaml", "--study", "tiny", "--output", "r/traces.png")
    assert status == 0, err
    assert Path("r/traces.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert check_manifest("r/traces.png") is None
    assert set(read_manifest("r/traces.png")["inputs"]) == {"r/sim.npz", "r/data.npz", "r/study.yaml"}


def test_several_config_files_are_merged_in_order(tiny, capsys):
    """--config A B: B's keys override A's at every depth (as Snakemake merges --configfile files); the
    manifest names both; the description is not frozen, so it changes nothing."""
    tmp_path, config = tiny
    write_yaml(tmp_path / "more.yaml", {"studies": {"tiny": {"description": "another text",
                                                             "simulate": {"params": {"C": "100 pF"}}}}})
    status, _, err = run_cli(capsys, "prepare", "--config", "config.yaml", "more.yaml", "--study", "tiny",
                             "--output-config", "m/study.yaml", "--output-data", "m/data.npz")
    assert status == 0, err
    section = yaml.safe_load(Path("m/study.yaml").read_text())["studies"]["tiny"]
    assert section["simulate"]["params"] == {"gl": ["10 nS", "12 nS"], "C": "100 pF"}
    assert "description" not in section
    assert set(read_manifest("m/study.yaml")["inputs"]) == {"config.yaml", "more.yaml", "current_nA.csv"}
    status, _, err = run_cli(capsys, "simulate", "--config", "m/study.yaml", "--study", "tiny", "--output", "m/s.npz")
    assert status == 0, err
    np.testing.assert_allclose(load_simulation("m/s.npz").params["C"], [100e-12], rtol=1e-15)


def test_prepare_a_study_without_data(tmp_path, capsys, monkeypatch):
    """A rate study has no model and no data: prepare writes only the frozen config (no --output-data)."""
    monkeypatch.chdir(tmp_path)
    write_yaml(tmp_path / "rate.yaml", {"studies": {"r": {"description": "text", "rate": {"w": 4.0}}}})
    status, out, err = run_cli(capsys, "prepare", "--config", "rate.yaml", "--study", "r", "--output-config",
                               "r/study.yaml")
    assert status == 0, err
    assert "-> r/study.yaml" in out and sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "study.yaml", "study.yaml.manifest.json"]
    section = yaml.safe_load(Path("r/study.yaml").read_text())["studies"]["r"]
    assert section["rate"]["w"] == 4.0 and "description" not in section and check_manifest("r/study.yaml") is None
    status, _, err = run_cli(capsys, "prepare", "--config", "rate.yaml", "--study", "r", "--output-config",
                             "s/study.yaml", "--output-data", "s/data.npz")
    assert status == 2 and "no model and no data: --output-data is not for it" in err, err
    assert not (tmp_path / "s").exists()


def test_prepare_of_a_study_with_data_needs_output_data(tiny, capsys):
    status, _, err = run_cli(capsys, "prepare", "--config", "config.yaml", "--study", "tiny", "--output-config",
                             "n/study.yaml")
    assert status == 2 and "study 'tiny' has a model and data: give --output-data NPZ" in err, err
    assert not Path("n").exists()


def test_config_as_json_text(tiny, capsys):
    """--config-json TEXT: the config document as text, for scripts (the workflow passes files)."""
    _, config = tiny
    status, _, err = run_cli(capsys, "simulate", "--config-json", json.dumps(config), "--study", "tiny",
                             "--output", "j.npz")
    assert status == 0, err
    assert read_manifest("j.npz")["inputs"] == {"current_nA.csv": sha256_file("current_nA.csv")}


def _broken(config, change):
    config = json.loads(json.dumps(config))
    change(config["studies"]["tiny"])
    return config


BAD_CONFIGS = {
    "unknown key": (lambda s: s["simulate"].update(metod="euler"), "studies.tiny.simulate.metod: unknown key"),
    "wrong type": (lambda s: s["simulate"].update(seed="one"), "studies.tiny.simulate.seed"),
    "unknown builtin": (lambda s: s["model"].update(builtin="lif2"), "studies.tiny.model.builtin: 'lif2' is not valid"),
    "unknown parameter": (lambda s: s["simulate"]["params"].update(g_x=1.0), "studies.tiny.simulate.params.g_x"),
    "dimension": (lambda s: s["simulate"]["params"].update(C="150 mV"), "has units of volt, expected farad"),
    "unknown unit": (lambda s: s["data"]["inputs"]["I"].update(unit="nAmp"), "unknown unit 'nAmp'"),
    "missing file": (lambda s: s["data"]["inputs"]["I"].update(path="nope.csv"),
                     "studies.tiny.data.inputs.I.path: nope.csv: file not found"),
    "bad equations": (lambda s: s["model"].update(builtin=None, equations="dv/dt = (El - v)/tau : volt"),
                      "unknown identifier 'El'"),
    "bad init": (lambda s: s["simulate"].update(init={"w": 0}), "studies.tiny.simulate.init.w: not a state variable"),
    "missing section": (lambda s: s.pop("data"), "studies.tiny.data: missing"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_user_mistakes_print_one_line_and_exit_2(tiny, capsys, case):
    tmp_path, config = tiny
    change, fragment = BAD_CONFIGS[case]
    write_yaml(tmp_path / "bad.yaml", _broken(config, change))
    status, out, err = run_cli(capsys, "simulate", "--config", "bad.yaml", "--study", "tiny", "--output", "o.npz")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("neurofit: error: ") and fragment in lines[0], lines[0]
    assert not Path("o.npz").exists()


def test_other_file_mistakes(tiny, capsys):
    cases = [
        (["simulate", "--config", "missing.yaml", "--study", "tiny", "--output", "o.npz"], "missing.yaml"),
        (["simulate", "--config", "config.yaml", "--study", "other", "--output", "o.npz"], "no study 'other'"),
        (["plot-traces", "--simulation", "none.npz", "--output", "f.png"], "none.npz: file not found"),
        (["simulate", "--config", "config.yaml", "--study", "tiny", "--data", "config.yaml", "--output", "o.npz"],
         "config.yaml"),
    ]
    Path("broken.yaml").write_text("studies:\n  tiny: [1\n")
    cases.append((["simulate", "--config", "broken.yaml", "--study", "tiny", "--output", "o.npz"], "not valid YAML"))
    for argv, fragment in cases:
        status, _, err = run_cli(capsys, *argv)
        assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, (argv, err)


def test_installed_command_exit_status_and_no_traceback(tiny):
    tmp_path, config = tiny
    write_yaml(tmp_path / "bad.yaml", _broken(config, BAD_CONFIGS["unknown key"][0]))
    proc = subprocess.run([sys.executable, "-m", "neurofit", "simulate", "--config", "bad.yaml", "--study", "tiny",
                           "--output", "o.npz"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("neurofit: error: studies.tiny.simulate.metod: unknown key (valid keys: params, "
                                   "init, method, backend, dtype, record, spikes, seed, threads)")
    command = Path(sys.executable).parent / "neurofit"
    if command.exists():
        proc = subprocess.run([str(command), "--help"], capture_output=True, text=True)
        assert proc.returncode == 0
        for sub in ("prepare", "simulate", "plot-traces"):
            assert sub in proc.stdout


def test_debug_shows_the_traceback(tiny, capsys):
    tmp_path, config = tiny
    write_yaml(tmp_path / "bad.yaml", _broken(config, BAD_CONFIGS["unknown key"][0]))
    with pytest.raises(ValueError, match="metod"):
        main(["--debug", "simulate", "--config", "bad.yaml", "--study", "tiny", "--output", "o.npz"])


def test_atomic_npz_is_deterministic_and_leaves_no_temp_files(tmp_path):
    arrays = {"b": np.arange(5.0), "a": np.eye(2, dtype=np.float32)}
    atomic_save_npz(tmp_path / "x.npz", arrays)
    first = (tmp_path / "x.npz").read_bytes()
    atomic_save_npz(tmp_path / "x.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "x.npz").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]
    with np.load(tmp_path / "x.npz") as f:
        np.testing.assert_array_equal(f["b"], arrays["b"])
        assert f["a"].dtype == np.float32


def test_manifest_path_and_missing_manifest(tmp_path):
    out = tmp_path / "r.npz"
    out.write_bytes(b"x")
    assert manifest_path(out) == Path(f"{out}.manifest.json")
    assert "no manifest" in check_manifest(out)
