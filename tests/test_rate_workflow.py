"""`neurofit rate-chunk` / `rate-study` and the rate stage of the workflow (the Neuromatch tutorial as a study)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import job_counts, run_cli, snakemake, write_yaml
from neurofit.analysis import rate, rate_study
from neurofit.cli.main import main
from neurofit.workflow.provenance import check_manifest, read_manifest
from neurofit.workflow.rate_section import OUTPUTS, RateSection
from neurofit.workflow.study import Study, validate_config

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# A tiny rate study: the tutorial's model and (w, I_ext), a 5 x 4 map in 2 chunks, a short OU run, a small fit.
TINY = {
    "w": 5.0, "I_ext": 0.5,
    "fi_curve": {"n": 21},
    "trajectories": {"r_inits": [0.0, 0.4, 0.5, 1.0]},
    "ou": {"T": 200.0},
    "bifurcation": {"w_min": 0.0, "w_max": 8.0, "n_w": 5, "I_min": -1.0, "I_max": 2.0, "n_I": 4, "n_chunks": 2},
    "fit": {"n_samples": 10, "n_rounds": 4, "refine": False, "backend": "numpy"},
}


def config(**rate_section):
    return {"studies": {"tiny": {"description": "tiny rate study", "rate": rate_section}}}


def test_schema_defaults_are_the_package_defaults():
    section = validate_config(config())["studies"]["tiny"]
    assert RateSection(Study.from_config(config(), "tiny")).settings == section["rate"]  # the schema's, nothing added
    assert not hasattr(rate_study, "DEFAULT_CONFIG") and not hasattr(rate_study, "DEFAULT_FIT_BOUNDS")
    assert "model" not in section and "data" not in section  # a rate study needs neither
    partial = validate_config(config(fit={"bounds": {"w": [1.0, 9.0]}}))["studies"]["tiny"]["rate"]
    assert partial["fit"]["bounds"] == {**section["rate"]["fit"]["bounds"], "w": [1.0, 9.0]}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The commands on the tiny study: two chunks, then the study gathering them."""
    work = tmp_path_factory.mktemp("rate")
    path = write_yaml(work / "config.yaml", config(**TINY))
    chunks = [work / "chunks" / f"chunk_{i}.npz" for i in range(2)]
    for i, chunk in enumerate(chunks):
        assert main(list(map(str, ["rate-chunk", "--config", path, "--study", "tiny", "--chunk", i,
                                   "--output", chunk]))) == 0
    out = work / "rate"
    assert main(list(map(str, ["rate-study", "--config", path, "--study", "tiny", "--chunks", *chunks,
                               "--output-dir", out]))) == 0
    return {"work": work, "config": path, "chunks": chunks, "out": out,
            "summary": json.loads((out / "rate_study.json").read_text())}


def test_rate_study_command_writes_the_tutorials_numbers(tiny_run):
    summary = tiny_run["summary"]
    direct = rate.fixed_points(5.0, 0.5)
    assert summary["fixed_points"] == [{"r": fp.r, "eigenvalue": fp.eigenvalue, "stable": fp.stable,
                                        "residual": fp.residual} for fp in direct]
    assert [round(fp["r"], 3) for fp in summary["fixed_points"]] == [0.042, 0.447, 0.900]
    assert [round(fp["eigenvalue"], 3) for fp in summary["fixed_points"]] == [-0.583, 0.498, -0.626]
    # the same numbers as the package's rate_study called directly (unchunked map), key by key
    settings = RateSection(Study.from_config(config(**TINY), "tiny")).settings  # the defaults: the schema's
    direct_summary = rate_study.rate_study(settings, tiny_run["work"] / "direct")
    assert summary == json.loads(json.dumps(direct_summary))
    for name in OUTPUTS:
        assert check_manifest(tiny_run["out"] / name) is None, name
    assert (tiny_run["out"] / "bifurcation_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = read_manifest(tiny_run["out"] / "rate_study.json")
    assert manifest["seeds"] == {"ou": 2020, "fit": 1} and manifest["study"] == "tiny"
    assert set(manifest["inputs"]) == {str(tiny_run["config"]), *map(str, tiny_run["chunks"])}


def test_gathered_chunks_equal_the_unchunked_map(tiny_run):
    w, I_ext = np.linspace(0.0, 8.0, 5), np.linspace(-1.0, 2.0, 4)
    whole = rate.bifurcation_map(w, I_ext)
    summary = tiny_run["summary"]["bifurcation"]
    assert summary["n_stable"] == whole["n_stable"].tolist()
    assert summary["n_fixed_points"] == whole["n_fixed_points"].tolist()
    assert summary["w"] == w.tolist() and summary["I_ext"] == I_ext.tolist()
    with np.load(tiny_run["chunks"][1]) as chunk:  # chunk 1 of 2: the odd flat indices
        np.testing.assert_array_equal(chunk["index"], np.arange(1, 20, 2))
        np.testing.assert_array_equal(chunk["n_stable"], whole["n_stable"].ravel()[1::2])
    assert check_manifest(tiny_run["chunks"][0]) is None
    assert read_manifest(tiny_run["chunks"][0])["extra"] == {"chunk": 0, "n_chunks": 2}


def test_rate_study_without_chunks_or_fit(tmp_path, capsys):
    path = write_yaml(tmp_path / "config.yaml", config(**{**TINY, "fit": {"enabled": False}}))
    status, out, err = run_cli(capsys, "rate-study", "--config", path, "--study", "tiny", "--output-dir", tmp_path / "r")
    assert status == 0, err
    summary = json.loads((tmp_path / "r" / "rate_study.json").read_text())
    whole = rate.bifurcation_map(np.linspace(0.0, 8.0, 5), np.linspace(-1.0, 2.0, 4))
    assert "fit" not in summary and summary["bifurcation"]["n_bistable_points"] == np.sum(whole["n_stable"] == 2) == 4
    assert (tmp_path / "r" / "fit_traces.png").is_file()  # says that the fit is off (the workflow's fixed outputs)
    assert "fit: off" in out


@pytest.mark.parametrize("section, argv, message", [
    ({"ou": {"sigmaa": 1.0}}, [], "studies.tiny.rate.ou.sigmaa: unknown key (valid keys: w, I_mean, sigma"),
    ({"bifurcation": {"n_chunks": "two"}}, [], "studies.tiny.rate.bifurcation.n_chunks: 'two' is not of type"),
    ({"fi_curve": {"x_min": 5.0, "x_max": 1.0}}, [], "studies.tiny.rate.fi_curve.x_max: 1 must be > fi_curve.x_min"),
    ({"bifurcation": {"n_w": 2, "n_I": 2, "n_chunks": 5}}, [], "studies.tiny.rate.bifurcation.n_chunks: 5 chunks"),
    ({"fit": {"bounds": {"tau": [5.0, 1.0]}}}, [], "studies.tiny.rate.fit.bounds.tau: [5.0, 1.0]: low must be < high"),
    ({"fit": {"step_stop": 80.0}}, [], "studies.tiny.rate.fit.step_stop: 80 ms must be after"),
    ({}, ["--chunk", "2"], "--chunk 2: must be in 0..1"),
], ids=["unknown key", "wrong type", "x range", "too many chunks", "bound order", "step after T", "chunk index"])
def test_bad_rate_config_prints_one_line_and_exits_2(tmp_path, capsys, section, argv, message):
    bifurcation = {**TINY["bifurcation"], **section.pop("bifurcation", {})}
    path = write_yaml(tmp_path / "config.yaml", config(**{**TINY, **section, "bifurcation": bifurcation}))
    status, out, err = run_cli(capsys, "rate-chunk", "--config", path, "--study", "tiny",
                           *(argv or ["--chunk", "0"]), "--output", tmp_path / "c.npz")
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "c.npz").exists()


def test_unknown_optimizer_and_foreign_chunks_fail_the_study(tmp_path, capsys):
    path = write_yaml(tmp_path / "config.yaml", config(**{**TINY, "fit": {"method": "NoSuchOptimizer"}}))
    status, _, err = run_cli(capsys, "rate-study", "--config", path, "--study", "tiny", "--output-dir", tmp_path / "r")
    assert status == 2 and "studies.tiny.rate.fit.method: 'NoSuchOptimizer' is not a nevergrad optimizer" in err
    other = write_yaml(tmp_path / "other.yaml", config(**{**TINY, "bifurcation": {**TINY["bifurcation"], "n_w": 6}}))
    assert run_cli(capsys, "rate-chunk", "--config", other, "--study", "tiny", "--chunk", "0", "--of", "1",
               "--output", tmp_path / "c.npz")[0] == 0
    good = write_yaml(tmp_path / "good.yaml", config(**TINY))
    status, _, err = run_cli(capsys, "rate-study", "--config", good, "--study", "tiny", "--chunks", tmp_path / "c.npz",
                         "--output-dir", tmp_path / "r")
    assert status == 2 and "computed on another (w, I_ext) grid than studies.tiny.rate.bifurcation" in err, err
    assert not (tmp_path / "r" / "rate_study.json").exists()


@pytest.mark.parametrize("study, message", [
    ({"description": "nothing to do"}, "studies.s: give at least one of model (with data), rate, reduction"),
    ({"model": {"builtin": "lif"}, "rate": {}}, "studies.s.data: missing (required with model)"),
    ({"rate": {}, "simulate": {}}, "studies.s.model: missing (required with simulate)"),
])
def test_a_study_needs_model_and_data_together_or_a_rate_section(tmp_path, capsys, study, message):
    path = write_yaml(tmp_path / "config.yaml", {"studies": {"s": study}})
    status, _, err = run_cli(capsys, "rate-chunk", "--config", path, "--study", "s", "--chunk", "0",
                         "--output", tmp_path / "c.npz")
    assert status == 2 and message in err and err.count("\n") == 1, err


def test_rate_only_study_has_no_model_or_data():
    study = Study.from_config(config(**TINY), "tiny")
    assert study.data_files == [] and study.model_files == []
    with pytest.raises(ValueError, match=r"studies.tiny.model: study 'tiny' has no 'model' section"):
        study.model()


def test_dry_run_of_the_default_config_lists_the_rate_jobs():
    status, out = snakemake("-n", "--forceall", "--nolock", "--cores", "2")
    assert status == 0, out
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["studies"]["rate_model"]["rate"]
    n_chunks = default["bifurcation"]["n_chunks"]
    assert n_chunks == 2
    for i in range(n_chunks):
        assert f"results/rate_model/rate/bifurcation/chunk_{i}.npz" in out
    assert job_counts(out)["rate_chunk"] == n_chunks and job_counts(out)["rate_study"] == 1, out
    for name in OUTPUTS:
        assert f"results/rate_model/rate/{name}" in out


def test_bad_rate_config_fails_before_any_job(tmp_path):
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config(**{**TINY, "bifurcation": {"n_w": 2, "n_I": 2, "n_chunks": 9}}))
    status, out = snakemake("--cores", "1", cwd=tmp_path)
    assert status != 0 and "config: studies.tiny.rate.bifurcation.n_chunks: 9 chunks for a 2 x 2 grid" in out, out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_full_run_of_a_tiny_rate_study(tmp_path):
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config(**TINY))
    status, out = snakemake("--cores", "2", cwd=tmp_path)
    assert status == 0, out
    folder = tmp_path / "results" / "tiny" / "rate"
    summary = json.loads((folder / "rate_study.json").read_text())
    assert summary["bifurcation"]["n_stable"] == rate.bifurcation_map(np.linspace(0, 8, 5),
                                                                      np.linspace(-1, 2, 4))["n_stable"].tolist()
    assert [round(fp["r"], 3) for fp in summary["fixed_points"]] == [0.042, 0.447, 0.900]
    for name in (*OUTPUTS, "bifurcation/chunk_0.npz", "bifurcation/chunk_1.npz"):
        assert check_manifest(folder / name) is None, name
    for log in ("rate/chunk_0", "rate/chunk_1", "rate/study"):
        assert (tmp_path / "results" / "tiny" / "logs" / f"{log}.log").is_file()
        assert (tmp_path / "results" / "tiny" / "benchmarks" / f"{log}.tsv").is_file()
    status, out = snakemake("--cores", "2", cwd=tmp_path)
    assert status == 0 and "Nothing to be done" in out, out
