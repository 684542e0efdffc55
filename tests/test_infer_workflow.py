"""`neurofit simulate --chunk` / `infer` / `calibrate` and the inference stage of the workflow.

Subject: a noisy rate model (tau dr/dt = -r + F(I_ext)), a and theta inferred from three step responses
with NPE (MDN); small sizes so that every command runs in seconds on one torch thread.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import job_counts, run_cli, snakemake, write_yaml
from neurofit import Model, simulate
from neurofit.cli.main import main
from neurofit.data.stimuli import steps
from neurofit.workflow.infer_section import (
    CALIBRATION_FILES,
    INFERENCE_FILES,
    InferSection,
    gather_training_chunks,
    inferencer_from_config,
    read_chunk_meta,
)
from neurofit.workflow.provenance import check_manifest, read_manifest
from neurofit.workflow.study import ConfigError, Study, read_config

RATE_EQS = """
dr/dt = (-r + 1/(1 + exp(-a*(I_ext - theta))) - 1/(1 + exp(a*theta)))/tau + sigma*xi*tau**-0.5 : 1
a : 1 (constant)
theta : 1 (constant)
"""
TRUTH = {"a": 1.2, "theta": 2.8}
N_SAMPLES = 240


def rate_config(folder, **infer) -> dict:
    """A study 'rate' on recordings written into ``folder`` (three steps, the truth, seed 123)."""
    current = steps(400, 0.5e-3, [1.0, 2.0, 4.0], "20 ms", "200 ms")
    model = Model(RATE_EQS, namespace={"tau": "10 ms", "sigma": 0.05})
    result = simulate(model, TRUTH, {"I_ext": current}, 0.5e-3, init={"r": 0.0}, record="r", method="euler", seed=123)
    np.save(folder / "input.npy", current)
    np.save(folder / "output.npy", result.traces["r"][0])
    section = {"bounds": {"a": [0.5, 2.0], "theta": [1.0, 4.0]}, "features": {"r": ["v_mean", "v_std"]},
               "window": ["40 ms", "200 ms"], "noise": {"r": 0.01}, "n_samples": N_SAMPLES, "n_chunks": 3,
               "density_estimator": "mdn", "batch_size": 50, "num_posterior_samples": 400, "seed": 7}
    section.update(infer)
    return {"studies": {"rate": {
        "ground_truth": TRUTH,
        "model": {"equations": RATE_EQS, "namespace": {"tau": "10 ms", "sigma": 0.05}, "inputs": ["I_ext"]},
        "data": {"dt": "0.5 ms", "inputs": {"I_ext": {"path": str(folder / "input.npy"), "unit": "1"}},
                 "outputs": {"r": {"path": str(folder / "output.npy"), "unit": "1"}}},
        "simulate": {"params": TRUTH, "init": {"r": 0}, "method": "euler"},
        "infer": section}}}


def cli(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """Three chunks (written out of order), then infer and calibrate on them, through the CLI."""
    work = tmp_path_factory.mktemp("infer")
    config = write_yaml(work / "config.yaml", rate_config(work, sbc_simulations=40))
    chunks = [work / "chunks" / f"chunk_{i}.npz" for i in range(3)]
    for i in (2, 0, 1):
        assert cli("simulate", "--config", config, "--study", "rate", "--chunk", i,
                       "--output", chunks[i]) == 0
    out = work / "infer"
    assert cli("infer", "--config", config, "--study", "rate", "--chunks", *chunks[::-1],
                   "--output-dir", out) == 0
    assert cli("calibrate", "--config", config, "--study", "rate", "--posterior",
                   out / "posterior.pt", "--output-dir", out) == 0
    return {"work": work, "config": config, "chunks": chunks, "out": out}


def test_cli_chunks_equal_one_unchunked_run(commands):
    study = Study.load("rate", path=commands["config"])
    inferencer, infer, _ = inferencer_from_config(study)
    theta = inferencer.generate_training_data(N_SAMPLES)
    x = inferencer.extract_summary_statistics(theta)
    gathered = gather_training_chunks(commands["chunks"][::-1])
    np.testing.assert_array_equal(gathered[0], theta)  # bit for bit: same seed, same draws, same simulations
    np.testing.assert_array_equal(gathered[1], x)
    metas = [read_chunk_meta(path) for path in commands["chunks"]]
    assert [(m["start"], m["stop"]) for m in metas] == [(0, 80), (80, 160), (160, 240)]
    for path in commands["chunks"]:
        assert check_manifest(path) is None
        manifest = read_manifest(path)
        assert manifest["seeds"] == {"infer": 7} and manifest["dtype"] == "float64"
        assert manifest["backend"] in ("c", "numpy")  # what backend "auto" resolved to


def test_other_chunk_counts_gather_to_the_same_arrays(commands, capsys, tmp_path):
    two = [tmp_path / f"chunk_{i}.npz" for i in range(2)]
    for i, path in enumerate(two):
        status, out, _ = run_cli(capsys, "simulate", "--config", commands["config"], "--study", "rate",
                                 "--chunk", i, "--of", 2, "--output", path)
        assert status == 0 and f"chunk {i} of 2" in out
    for a, b in zip(gather_training_chunks(two), gather_training_chunks(commands["chunks"])):
        np.testing.assert_array_equal(a, b)


def test_infer_writes_posterior_samples_and_figures(commands):
    out = commands["out"]
    for name in INFERENCE_FILES + CALIBRATION_FILES:
        assert check_manifest(out / name) is None, name
    samples = pd.read_parquet(out / "samples.parquet")
    assert list(samples.columns) == ["a", "theta"] and len(samples) == 400
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_simulations"] == N_SAMPLES and summary["n_invalid"] == 0 and summary["method"] == "NPE"
    for name in ("a", "theta"):
        assert summary["parameters"][name]["median"] == pytest.approx(samples[name].median(), rel=1e-12)
        # 240 simulations: a wide posterior, but the truth lies inside its 5-95 % interval
        assert summary["parameters"][name]["q05"] < TRUTH[name] < summary["parameters"][name]["q95"]
    table = pd.read_csv(out / "posterior.csv")
    assert list(table["parameter"]) == ["a", "theta"] and table["truth_in_90"].all()
    np.testing.assert_allclose(table["truth"], [TRUTH["a"], TRUTH["theta"]])
    np.testing.assert_allclose(table["q05"], [summary["parameters"][p]["q05"] for p in ("a", "theta")], rtol=1e-5)
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["n_tests"] == 40 and calibration["levels"][-1] == 0.95
    assert min(calibration["coverage"]["a"][-1], calibration["coverage"]["theta"][-1]) >= 0.8
    manifest = read_manifest(out / "samples.parquet")
    assert set(map(str, commands["chunks"])) <= set(manifest["inputs"])
    for name in ("pairplot.png", "predictive.png", "sbc_ranks.png", "coverage.png", "predictive_check.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_infer_reports_the_noise_the_misspecification_check_and_the_predictive_check(commands):
    out = commands["out"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise"] == {"r": {"sd": 0.01, "estimated": False}}
    check = summary["misspecification"]
    assert check["verdict"] == "pass" and check["p_value"] >= 0.01 and check["alpha"] == 0.01
    assert check["n_reference"] == check["n_calibration"] == N_SAMPLES // 2
    assert len(check["furthest"]) == 5 and set(check["z"]) == set(check["z_conditional"])
    predictive = json.loads((out / "predictive_check.json").read_text())
    assert predictive["n_simulations"] == 100 and predictive["seed"] == 7 + 2 and predictive["level"] == 0.9
    assert list(predictive["features"]) == ["r[0].v_mean", "r[0].v_std", "r[1].v_mean", "r[1].v_std",
                                            "r[2].v_mean", "r[2].v_std"]
    for feature in predictive["features"].values():
        assert feature["low"] <= feature["median"] <= feature["high"] and 0 <= feature["p_value"] <= 1
        assert feature["inside"] == (feature["low"] <= feature["observed"] <= feature["high"])
    assert predictive["min_p_value"] > 0.01  # the data come from the model: nothing extreme
    assert read_manifest(out / "predictive_check.json")["seeds"] == {"infer": 7, "predictive": 9}


def test_noise_auto_is_the_default_for_recordings_not_for_synthetic_data(tmp_path):
    config = rate_config(tmp_path, noise=None)  # null: the schema's default
    study = Study.from_config(config, "rate")
    assert study.section["infer"]["noise"] is None and InferSection(study).noise() == "auto"
    inferencer, _, _ = inferencer_from_config(study)
    sd = inferencer.noise_estimate["r"]
    assert inferencer.noise == {"r": sd} and 0 < sd < 0.05
    del config["studies"]["rate"]["infer"]["noise"]
    assert InferSection(Study.from_config(config, "rate")).noise() == "auto"
    config["studies"]["rate"]["infer"]["noise"] = {"r": "auto"}
    assert inferencer_from_config(Study.from_config(config, "rate"))[0].noise == {"r": sd}
    config["studies"]["rate"]["infer"]["noise"] = "automatic"
    with pytest.raises(ConfigError, match="noise"):
        Study.from_config(config, "rate")
    doc, _ = read_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    hh = doc["studies"]["hh_inference"]
    assert "synthetic" in hh["data"] and hh["infer"]["noise"] == {"v": "0.2 mV"}  # given: the default study keeps it
    del hh["infer"]["noise"]
    assert InferSection(Study.from_config(doc, "hh_inference")).noise() == {}  # synthetic data: no noise by default
    hh["infer"]["noise"] = "auto"
    inferencer, _, _ = inferencer_from_config(Study.from_config(doc, "hh_inference"))
    assert inferencer.noise_estimate["v"] == pytest.approx(0.2e-3, rel=0.1)  # data.synthetic.noise: 0.2 mV


def test_chunks_remember_the_noise_estimated_from_the_recordings(tmp_path, capsys):
    config = write_yaml(tmp_path / "config.yaml", rate_config(tmp_path, noise="auto", n_chunks=1))
    chunk = tmp_path / "chunk_0.npz"
    status, _, err = run_cli(capsys, "simulate", "--config", config, "--study", "rate", "--chunk", 0, "--output", chunk)
    assert status == 0, err
    study = Study.load("rate", path=config)
    inferencer, _, _ = inferencer_from_config(study)
    gather_training_chunks([chunk], study, inferencer.input, inferencer.noise_estimate)  # the same estimate
    with pytest.raises(ValueError, match="simulated for other settings"):
        gather_training_chunks([chunk], study, inferencer.input, {"r": 2 * inferencer.noise_estimate["r"]})


def test_same_chunks_and_seed_give_byte_identical_results(commands, capsys, tmp_path):
    status, _, _ = run_cli(capsys, "infer", "--config", commands["config"], "--study", "rate", "--chunks",
                           *commands["chunks"], "--output-dir", tmp_path, "--threads", 1)
    assert status == 0
    for name in INFERENCE_FILES:
        assert (tmp_path / name).read_bytes() == (commands["out"] / name).read_bytes(), name


def test_multi_round_inference_in_the_infer_job(commands, capsys, tmp_path):
    """n_rounds 2: the chunks are round 1; round 2 draws 240 parameter sets from that posterior in the job."""
    config = write_yaml(tmp_path / "config.yaml", rate_config(commands["work"], n_rounds=2))
    status, _, err = run_cli(capsys, "infer", "--config", config, "--study", "rate", "--chunks", *commands["chunks"],
                             "--output-dir", tmp_path / "out")
    assert status == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rounds = summary["rounds"]
    assert [(r["n_simulations"], r["n_invalid"]) for r in rounds] == [(240, 0)] * 2 and summary["n_simulations"] == 480
    assert all(r["epochs"] > 0 and np.isfinite(r["best_validation_loss"]) for r in rounds)
    one_round = json.loads((commands["out"] / "summary.json").read_text())["parameters"]
    for name in ("a", "theta"):
        stats = summary["parameters"][name]
        assert stats["q05"] < TRUTH[name] < stats["q95"], name
        # the second round, trained on draws near the data, narrows the 90 % interval
        assert stats["q95"] - stats["q05"] < one_round[name]["q95"] - one_round[name]["q05"], name
    bad = write_yaml(tmp_path / "bad.yaml", rate_config(commands["work"], n_rounds=2, sbc_simulations=10))
    status, _, err = run_cli(capsys, "calibrate", "--config", bad, "--study", "rate", "--posterior",
                             tmp_path / "out" / "posterior.pt", "--output-dir", tmp_path / "out")
    assert status == 2 and "infer.sbc_simulations: calibration needs an amortized posterior (n_rounds 1)" in err


def test_command_errors_are_one_line(commands, capsys, tmp_path):
    config, chunks = commands["config"], commands["chunks"]
    base = ["--config", config, "--study", "rate"]
    cases = [
        (["simulate", *base, "--chunk", 3, "--output", tmp_path / "c.npz"],
         "chunk = 3 of n_chunks = 3: need n_chunks >= 1 and 0 <= chunk < n_chunks"),
        (["simulate", *base, "--of", 2, "--output", tmp_path / "c.npz"], "--of needs --chunk"),
        (["infer", *base, "--chunks", *chunks[:2], "--output-dir", tmp_path],
         r"need each of 0 .. 2 once (missing [2])"),
        (["infer", *base, "--chunks", config, "--output-dir", tmp_path], "not a training chunk"),
        (["infer", *base, "--chunks", tmp_path / "none.npz", "--output-dir", tmp_path],
         "none.npz: No such file or directory"),
    ]
    for argv, message in cases:
        status, _, err = run_cli(capsys, *argv)
        assert status == 2 and err.startswith("neurofit: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    other = write_yaml(tmp_path / "other.yaml", rate_config(tmp_path, seed=8))
    status, _, err = run_cli(capsys, "infer", "--config", other, "--study", "rate", "--chunks", *chunks,
                             "--output-dir", tmp_path)
    assert status == 2 and "simulated for other settings than study 'rate' has now" in err, err
    no_infer = rate_config(tmp_path)
    del no_infer["studies"]["rate"]["infer"]
    path = write_yaml(tmp_path / "no_infer.yaml", no_infer)
    status, _, err = run_cli(capsys, "simulate", "--config", path, "--study", "rate", "--chunk", 0,
                             "--output", tmp_path / "c.npz")
    assert status == 2 and "studies.rate.infer: study 'rate' has no 'infer' section" in err
    assert not list(tmp_path.glob("c.npz*"))


@pytest.mark.slow
def test_workflow_runs_the_inference_stage(tmp_path):
    config = write_yaml(tmp_path / "config.yaml", rate_config(tmp_path, n_chunks=2, sbc_simulations=20))
    status, log = snakemake("--configfile", config, "--cores", 2, "--dry-run", cwd=tmp_path)
    assert status == 0, log
    jobs = job_counts(log)
    assert {k: jobs.get(k) for k in ("prepare", "simulate", "simulate_training", "infer", "calibrate")} == \
           {"prepare": 1, "simulate": 1, "simulate_training": 2, "infer": 1, "calibrate": 1}, log
    status, log = snakemake("--configfile", config, "--cores", 2, cwd=tmp_path, timeout=900)
    assert status == 0, log
    out = tmp_path / "results" / "rate" / "infer"
    for name in INFERENCE_FILES + CALIBRATION_FILES:
        assert check_manifest(out / name) is None, name
    study = Study.load("rate", path=config)
    inferencer, _, _ = inferencer_from_config(study)
    theta, _ = gather_training_chunks(sorted((out / "chunks").glob("chunk_*.npz")))
    np.testing.assert_array_equal(theta, inferencer.generate_training_data(N_SAMPLES))
    status, log = snakemake("--configfile", config, "--cores", 2, "--dry-run", cwd=tmp_path)
    assert status == 0 and "Nothing to be done" in log, log
