"""`neurofit fit` / `refine` / `summarize` / `plot-fit` and the fit stage of the workflow."""
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import job_counts, run_cli, snakemake, write_yaml
from neurofit import models
from neurofit.cli.main import main
from neurofit.fitting.fitters import TraceFitter
from neurofit.fitting.metrics import MSEMetric
from neurofit.fitting.optimizers import NevergradOptimizer
from neurofit.workflow.fit_section import FitSection, read_fit, run_names
from neurofit.workflow.provenance import check_manifest, read_manifest
from neurofit.workflow.study import ConfigError, Study

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "brian2modelfitting"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
NOISE_FLOOR = 9.95e-7  # V²: MSE of the ground truth against the recordings (data README)
TRUTH = {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}
BOUNDS = {"gl": ["2 pS", "200 nS", "log"], "g_na": ["200 nS", "0.4 mS", "log"], "g_kd": ["200 nS", "200 uS", "log"]}
SI_BOUNDS = {"gl": [2e-12, 200e-9, "log"], "g_na": [200e-9, 0.4e-3, "log"], "g_kd": [200e-9, 200e-6, "log"]}


def hh_study(**fit):
    """The HH tutorial study with a fit section (data paths absolute)."""
    section = {"bounds": dict(BOUNDS), "init": {"v": "-65 mV"}, "optimizers": [{"name": "DE"}], "seeds": [1],
               "n_samples": 100, "n_rounds": 10, "noise_floor": NOISE_FLOOR}
    section.update(fit)
    return {"studies": {"hh": {
        "model": {"builtin": "hh_traub"},
        "data": {"dt": "0.01 ms", "inputs": {"I": {"path": str(DATA / "input_traces_hh.csv"), "unit": "amp"}},
                 "outputs": {"v": {"path": str(DATA / "output_traces_hh.csv"), "unit": "mV"}}},
        "ground_truth": {"gl": "10 nS", "g_na": "20 uS", "g_kd": "6 uS"},
        "fit": section,
    }}}


def numbers(doc):
    """A fit.json without what differs between runs (wall time, whether it resumed, its own path)."""
    return {k: v for k, v in doc.items() if k not in ("wall_time_s", "resumed_from_round", "_path")}


# --- the commands give the fitter's numbers ---------------------------------------------------------

@pytest.fixture(scope="module")
def tutorial_fit(tmp_path_factory):
    """CLI fit + refine of the tutorial (DE, seed 1, 100 x 10) and the same fit made directly."""
    work = tmp_path_factory.mktemp("fit")
    config = write_yaml(work / "config.yaml", hh_study())
    run = work / "DE_1"
    assert main(list(map(str, ["fit", "--config", config, "--study", "hh", "--optimizer", "DE", "--seed", "1",
                               "--output", run / "fit.json"]))) == 0
    assert main(list(map(str, ["refine", "--config", config, "--study", "hh", "--fit", run / "fit.json",
                               "--output", run / "refined.json"]))) == 0

    dataset = Study.load("hh", path=config).dataset()
    spec = models.SPECS["hh_traub"]
    fitter = TraceFitter(models.get("hh_traub"), {"I": dataset.inputs["I"]}, {"v": dataset.outputs["v"]}, dataset.dt,
                         n_samples=100, method="exponential_euler", param_init={**spec.init, "v": -65e-3}, seed=1)
    best, error = fitter.fit(NevergradOptimizer("DE", seed=1), MSEMetric(), n_rounds=10, callback=None, **SI_BOUNDS)
    refined, result = fitter.refine(n_starts=8)
    return {"work": work, "run": run, "config": config, "fitter": fitter, "best": best, "error": error,
            "history": fitter.results(format="dataframe"), "refined": refined, "result": result}


def test_cli_fit_writes_the_fitters_numbers(tutorial_fit):
    doc = json.loads((tutorial_fit["run"] / "fit.json").read_text())
    assert doc["best_params"] == tutorial_fit["best"] and doc["best_error"] == tutorial_fit["error"]
    assert doc["n_evaluations"] == 1000 and doc["rounds_done"] == 10 and doc["resumed_from_round"] == 0
    assert doc["optimizer"]["label"] == "DE" and doc["seed"] == 1 and doc["log_scale"] == ["g_kd", "g_na", "gl"]
    assert doc["bounds"]["gl"] == pytest.approx([2e-12, 200e-9], rel=1e-12)
    assert doc["units"]["gl"] == "siemens" and doc["outputs"] == ["v"]
    per_round = tutorial_fit["history"].groupby("round")["error"].min().cummin().tolist()
    assert doc["best_error_per_round"] == per_round and per_round[-1] == doc["best_error"]
    assert doc["wall_time_s"] > 0

    history = pd.read_parquet(tutorial_fit["run"] / "history.parquet")
    assert list(history.columns) == ["evaluation", "round", "g_na", "g_kd", "gl", "error"]
    direct = tutorial_fit["history"]
    for column in ("g_na", "g_kd", "gl", "error"):
        np.testing.assert_array_equal(history[column].to_numpy(), direct[column].to_numpy())
    np.testing.assert_array_equal(history["round"].to_numpy(), np.repeat(np.arange(10), 100))

    for name in ("fit.json", "history.parquet"):
        assert check_manifest(tutorial_fit["run"] / name) is None
    manifest = read_manifest(tutorial_fit["run"] / "fit.json")
    assert manifest["seeds"] == {"fit": 1} and manifest["config"]["fit"]["n_rounds"] == 10
    # the checkpoint served its purpose: gone once the results are written
    assert sorted(p.name for p in tutorial_fit["run"].iterdir()) == [
        "fit.json", "fit.json.manifest.json", "history.parquet", "history.parquet.manifest.json",
        "refined.json", "refined.json.manifest.json"]


def test_cli_refine_writes_the_fitters_numbers_at_the_noise_floor(tutorial_fit):
    doc = json.loads((tutorial_fit["run"] / "refined.json").read_text())
    for p, value in tutorial_fit["refined"].items():
        assert doc["params"][p] == pytest.approx(value, rel=1e-12)
        assert doc["params"][p] == pytest.approx(TRUTH[p], rel=0.02)  # the bar: within 2 % of the truth
    assert doc["cost"] == pytest.approx(float(np.mean(tutorial_fit["result"].fun ** 2)), rel=1e-12)
    assert doc["mse"] == pytest.approx(doc["cost"], rel=1e-9)  # MSEMetric() without normalization: cost = MSE
    assert doc["mse"] <= 1.01 * NOISE_FLOOR
    assert doc["ratio_to_floor"] == pytest.approx(doc["mse"] / NOISE_FLOOR) and doc["noise_floor"] == NOISE_FLOOR
    assert doc["mse_fit"] == pytest.approx(tutorial_fit["error"], rel=1e-9) and doc["mse"] < doc["mse_fit"]
    assert doc["nfev"] == tutorial_fit["result"].nfev and doc["wall_time_s"] > 0
    assert check_manifest(tutorial_fit["run"] / "refined.json") is None


def test_noise_floor_from_the_command_line(tutorial_fit, capsys):
    run = tutorial_fit["run"]
    status, out, err = run_cli(capsys, "refine", "--config", tutorial_fit["config"], "--study", "hh", "--fit",
                           run / "fit.json", "--output", run.parent / "r2.json", "--noise-floor", 2 * NOISE_FLOOR)
    assert status == 0, err
    doc = json.loads((run.parent / "r2.json").read_text())
    assert doc["noise_floor"] == 2 * NOISE_FLOOR and doc["ratio_to_floor"] == pytest.approx(doc["mse"] / (2 * NOISE_FLOOR))


def test_summarize_and_plot_fit(tutorial_fit, capsys):
    run, config, work = tutorial_fit["run"], tutorial_fit["config"], tutorial_fit["work"]
    status, out, err = run_cli(capsys, "summarize", "--config", config, "--study", "hh", "--fits", run / "fit.json",
                           "--refined", run / "refined.json", "--output", work / "fits.csv")
    assert status == 0, err
    table = pd.read_csv(work / "fits.csv")
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["optimizer"], row["seed"], row["n_evaluations"]) == ("DE", 1, 1000)
    assert row["fit_error"] == pytest.approx(tutorial_fit["error"], rel=1e-9)
    assert row["refined_ratio_to_floor"] <= 1.01
    for p, truth in TRUTH.items():
        assert row[f"{p}_truth"] == pytest.approx(truth)
        assert row[f"{p}_rel_error"] == pytest.approx(row[f"{p}_refined"] / truth - 1, abs=1e-9)
        assert abs(row[f"{p}_rel_error"]) < 0.02
    kinds = ("convergence", "parameters", "traces")
    status, out, err = run_cli(capsys, "plot-fit", "--config", config, "--study", "hh", "--fits", run / "fit.json",
                           "--refined", run / "refined.json",
                           *(a for kind in kinds for a in (f"--{kind}", work / f"fit_{kind}.png")))
    assert status == 0, err
    for kind in kinds:
        figure = work / f"fit_{kind}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and check_manifest(figure) is None


# --- a killed fit resumes with the same numbers -------------------------------------------------------

@pytest.mark.slow
def test_killed_fit_resumes_and_ends_with_the_uninterrupted_numbers(tmp_path):
    config = write_yaml(tmp_path / "config.yaml", hh_study(n_samples=40, n_rounds=30))
    command = [sys.executable, "-m", "neurofit", "fit", "--config", str(config), "--study", "hh", "--optimizer", "DE",
               "--seed", "3"]
    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint.json"
    proc = subprocess.Popen(command + ["--output", str(killed / "fit.json")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert checkpoint.exists(), "no checkpoint appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "fit.json").exists() and not (killed / "history.parquet").exists()
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]  # atomic writes: no half files

    resumed = subprocess.run(command + ["--output", str(killed / "fit.json")], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint" in resumed.stdout
    assert main(command[3:] + ["--output", str(tmp_path / "fresh" / "fit.json")]) == 0  # uninterrupted

    a, b = read_fit(killed / "fit.json"), read_fit(tmp_path / "fresh" / "fit.json")
    assert 0 < a["resumed_from_round"] < 30 and b["resumed_from_round"] == 0
    assert numbers(a) == numbers(b)
    assert (killed / "history.parquet").read_bytes() == (tmp_path / "fresh" / "history.parquet").read_bytes()
    assert not checkpoint.exists()


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    from neurofit.workflow.fit_section import prepare_checkpoint
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_bytes(b"state of another fit")
    assert prepare_checkpoint(checkpoint, "abc") is False and not checkpoint.exists()
    checkpoint.write_bytes(b"state")
    assert prepare_checkpoint(checkpoint, "abc") is True and checkpoint.exists()
    assert prepare_checkpoint(checkpoint, "other") is False and not checkpoint.exists()


# --- config mistakes: one line naming the key, exit status 2 -------------------------------------------

BAD_FITS = {
    "unknown parameter": (lambda f: f["bounds"].update(g_x=[1, 2]), "studies.hh.fit.bounds.g_x: not a parameter of the model"),
    "low > high": (lambda f: f["bounds"].update(gl=["200 nS", "2 pS"]),
                   "studies.hh.fit.bounds.gl = [200 nS, 2 pS] (SI [2e-07, 2e-12]): need finite low < high"),
    "log with low 0": (lambda f: f["bounds"].update(gl=[0, "200 nS", "log"]),
                       "studies.hh.fit.bounds.gl = [0, 200 nS] (SI [0, 2e-07]): a log-scale range needs low > 0"),
    "bound dimension": (lambda f: f["bounds"].update(gl=["2 pS", "200 mV"]), "has units of volt, expected siemens"),
    "bad scale": (lambda f: f["bounds"].update(gl=[1e-12, 1e-7, "lg"]), "studies.hh.fit.bounds.gl.2: 'lg' is not valid"),
    "missing bounds": (lambda f: f["bounds"].pop("g_kd"), "studies.hh.fit.bounds: no bounds for g_kd"),
    "unknown optimizer": (lambda f: f["optimizers"][0].update(name="DX"),
                          "studies.hh.fit.optimizers.0.name: unknown nevergrad method 'DX'"),
    "unknown skopt method": (lambda f: f.update(optimizers=[{"name": "DE"}, {"name": "XX", "library": "skopt"}]),
                             "studies.hh.fit.optimizers.1.name: unknown skopt method 'XX'"),
    "unknown library": (lambda f: f["optimizers"][0].update(library="scipy"),
                        "studies.hh.fit.optimizers.0.library: 'scipy' is not valid (valid: nevergrad, skopt)"),
    "skopt option for nevergrad": (lambda f: f["optimizers"][0].update(n_initial_points=5),
                                   "studies.hh.fit.optimizers.0.n_initial_points: only for library skopt"),
    "duplicate label": (lambda f: f["optimizers"].append({"name": "DE"}),
                        "studies.hh.fit.optimizers.1.label: 'DE' is also the label of optimizers.0"),
    "unknown key": (lambda f: f.update(n_round=3), "studies.hh.fit.n_round: unknown key (valid keys: kind, bounds,"),
    "wrong metric": (lambda f: f.update(metric={"name": "gamma", "delta": "2 ms"}),
                     "studies.hh.fit.metric.name: metric 'gamma' does not work with kind 'trace'"),
    "key of another metric": (lambda f: f.update(metric={"delta": "2 ms"}),
                              "studies.hh.fit.metric.delta: only for metric gamma or spikes (this fit uses mse)"),
    "fixed and fitted": (lambda f: f.update(fixed={"gl": "10 nS"}), "studies.hh.fit.fixed.gl: also has bounds"),
    "no seeds": (lambda f: f.update(seeds=[]), "studies.hh.fit.seeds: [] should be non-empty"),
}


@pytest.mark.parametrize("case", list(BAD_FITS))
def test_bad_fit_config_prints_one_line_and_exits_2(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    config = hh_study()
    change, fragment = BAD_FITS[case]
    change(config["studies"]["hh"]["fit"])
    write_yaml(tmp_path / "bad.yaml", config)
    optimizer = config["studies"]["hh"]["fit"]["optimizers"][-1]["name"]
    status, out, err = run_cli(capsys, "fit", "--config", "bad.yaml", "--study", "hh", "--optimizer", optimizer,
                           "--seed", "1", "--output", "r/fit.json")
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurofit: error: ") and fragment in lines[0], err
    assert not Path("r/fit.json").exists()


def test_unknown_optimizer_label_on_the_command_line(tmp_path, capsys):
    write_yaml(tmp_path / "c.yaml", hh_study())
    status, out, err = run_cli(capsys, "fit", "--config", tmp_path / "c.yaml", "--study", "hh", "--optimizer", "CMA",
                           "--seed", "1", "--output", tmp_path / "fit.json")
    assert status == 2 and err.strip() == ("neurofit: error: studies.hh.fit.optimizers: no optimizer labelled 'CMA' "
                                           "(labels: DE)")


def test_fit_plan_fixed_parameters_defaults_and_runs():
    config = hh_study(optimizers=[{"name": "DE"}, {"name": "GP", "library": "skopt", "label": "gp"}], seeds=[3, 1])
    study_section = config["studies"]["hh"]
    study_section["model"]["free"] = ["Cm"]
    study_section["fit"]["fixed"] = {"Cm": "200 pF"}
    plan = FitSection(Study.from_config(config, "hh"))
    assert plan.parameters == ["g_na", "g_kd", "gl"] and plan.fixed == {"Cm": pytest.approx(200e-12)}
    assert plan.runs == [("DE", 3), ("DE", 1), ("gp", 3), ("gp", 1)] == run_names(plan.section)
    assert plan.metric_settings == {"name": "mse", "t_start": 0, "normalization": 1}
    assert plan.refine == {"enabled": True, "calc_gradient": True, "n_starts": 8, "max_nfev": None, "profile": False}
    assert plan.ground_truth == pytest.approx(TRUTH) and plan.units["g_na"] == "siemens"
    assert plan.init["v"] == pytest.approx(-65e-3) and plan.method == "exponential_euler"
    assert plan.section["kind"] == "trace" and plan.section["backend"] == "auto"  # schema defaults filled in
    study_section["fit"]["fixed"] = {}
    with pytest.raises(ConfigError, match=r"studies\.hh\.fit\.bounds: no bounds for Cm; give Cm: \[low, high\] "
                                          r"or hold it fixed under fit\.fixed"):
        FitSection(Study.from_config(config, "hh"))


def test_spike_fit_plan():
    config = hh_study(kind="spike", spike_threshold="-20 mV", metric={"delta": "1 ms"})
    with pytest.raises(ConfigError, match=r"studies\.hh\.model\.threshold: a spike fit needs the model's spike"):
        FitSection(Study.from_config(config, "hh"))
    config["studies"]["hh"]["model"].update(threshold="v > -20*mV", refractory="v > -20*mV")
    study = Study.from_config(config, "hh")
    plan = FitSection(study)
    assert plan.metric_settings["name"] == "gamma" and plan.refine["enabled"] is False
    dataset = study.dataset()
    trains = plan.spike_trains(dataset)
    assert [len(t) for t in trains] == [3, 1, 2, 4, 0]  # action potentials per recorded trace (data README)
    assert plan.metric(dataset).time == pytest.approx(dataset.duration)
    config["studies"]["hh"]["fit"]["refine"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"studies\.hh\.fit\.refine\.enabled: spike fits cannot be refined"):
        FitSection(Study.from_config(config, "hh"))


# --- the workflow -------------------------------------------------------------------------------------

def test_dry_run_of_the_default_config_lists_the_fit_jobs():
    status, out = snakemake("-n", "--forceall", "--nolock", "--cores", "2")
    assert status == 0, out
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["studies"]["hh_tutorial"]["fit"]
    assert len(default["optimizers"]) == 2 and len(default["seeds"]) == 2
    for label in ("DE", "CMA"):
        for seed in default["seeds"]:
            for name in ("fit.json", "history.parquet", "refined.json"):
                assert f"results/hh_tutorial/fit/{label}_{seed}/{name}" in out, out
    jobs = job_counts(out)
    assert {rule: jobs.get(rule) for rule in ("fit", "refine", "summarize", "plot_fit")} == \
        {"fit": 4, "refine": 4, "summarize": 1, "plot_fit": 1}, out
    for path in ("results/hh_tutorial/summary/fits.csv", "results/hh_tutorial/figures/fit_convergence.png",
                 "results/hh_tutorial/figures/fit_parameters.png", "results/hh_tutorial/figures/fit_traces.png"):
        assert path in out


def test_bad_fit_config_fails_before_any_job(tmp_path):
    config = hh_study()
    config["studies"]["hh"]["fit"]["bounds"]["gl"] = ["200 nS", "2 pS"]
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config)
    status, out = snakemake("--cores", "1", cwd=tmp_path)
    assert status != 0 and "config: studies.hh.fit.bounds.gl = [200 nS, 2 pS] (SI [2e-07, 2e-12])" in out, out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_full_run_of_a_tiny_fit_study(tmp_path):
    config = hh_study(n_samples=30, n_rounds=3, refine={"n_starts": 2}, fixed={"Cm": "200 pF"})
    config["studies"]["hh"]["model"]["free"] = ["Cm"]
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config)
    status, out = snakemake("--cores", "2", cwd=tmp_path)
    assert status == 0, out
    study = tmp_path / "results" / "hh"
    fit = read_fit(study / "fit" / "DE_1" / "fit.json")
    assert fit["n_evaluations"] == 90 and fit["fixed"] == {"Cm": pytest.approx(200e-12)}
    refined = json.loads((study / "fit" / "DE_1" / "refined.json").read_text())
    assert refined["mse"] <= refined["mse_fit"] and math.isfinite(refined["ratio_to_floor"])
    table = pd.read_csv(study / "summary" / "fits.csv")
    assert table[["optimizer", "seed", "n_evaluations"]].values.tolist() == [["DE", 1, 90]]
    assert table["refined_mse"].iloc[0] == pytest.approx(refined["mse"])
    outputs = ["fit/DE_1/fit.json", "fit/DE_1/history.parquet", "fit/DE_1/refined.json", "summary/fits.csv",
               *(f"figures/fit_{kind}.png" for kind in ("convergence", "parameters", "traces"))]
    for output in outputs:
        assert check_manifest(study / output) is None, output
    for log in ("fit/DE_1", "refine/DE_1", "summarize", "plot_fit"):
        assert (study / "logs" / f"{log}.log").exists() and (study / "benchmarks" / f"{log}.tsv").exists()
    assert not (study / "fit" / "DE_1" / "checkpoint.json").exists()
    status, out = snakemake("--cores", "2", cwd=tmp_path)  # complete: nothing is recomputed
    assert status == 0 and "Nothing to be done" in out, out


def test_every_metric_key_of_the_schema_belongs_to_a_metric():
    from neurofit.workflow.fit_section import METRIC_DEFAULTS, METRIC_KEYS
    from neurofit.workflow.study import SCHEMA
    metric = SCHEMA["$defs"]["study"]["properties"]["fit"]["properties"]["metric"]["properties"]
    assert set(metric) - {"name"} == {k for keys in METRIC_KEYS.values() for k in keys} == set(METRIC_DEFAULTS)
    assert set(metric["name"]["enum"]) - {None} == set(METRIC_KEYS)
