"""`neurofit reduce` / `plot-reduction` and the model-reduction stage of the workflow (HH → AdEx)."""
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import job_counts, run_cli, snakemake, write_yaml
from neurofit import models
from neurofit.cli.main import main
from neurofit.fitting.metrics import GammaFactor
from neurofit.reduction.optneuron import Experiment, OptNeuron, SpikeTrainLoss
from neurofit.workflow.provenance import check_manifest, read_manifest
from neurofit.workflow.reduction_section import FILES, ReductionSection
from neurofit.workflow.study import Study, validate_config

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TRAIN, HELDOUT = ["0.4 nA", "1.2 nA"], ["0.8 nA"]
BOUNDS = {"C": ["50 pF", "500 pF"], "gl": ["2 nS", "50 nS"], "El": ["-80 mV", "-55 mV"], "VT": ["-60 mV", "-40 mV"],
          "DeltaT": ["0.5 mV", "5 mV"], "a": ["0 nS", "20 nS"], "tau_w": ["10 ms", "300 ms"], "b": ["0 nA", "0.2 nA"]}

# A tiny HH -> AdEx reduction: two 40 ms steps, 120 evaluations; Vr fixed, everything else free.
TINY = {
    "target": {"builtin": "hh_traub", "threshold": "v > -20*mV", "refractory": "v > -20*mV",
               "init": {"v": "-65 mV"}, "method": "euler"},
    "model": {"builtin": "adex", "init": {"v": "-65 mV", "w": 0}, "method": "euler"},
    "protocol": {"train_amplitudes": TRAIN, "heldout_amplitudes": HELDOUT, "dt": "0.01 ms",
                 "duration": "40 ms", "start": "5 ms"},
    "variables_bounds": {**BOUNDS, "Vr": "-70 mV"},
    "max_evals": 120,
    "n_samples": 20,
    "seed": 3,
}


def config(section=None, name="tiny"):
    return {"studies": {name: {"reduction": copy.deepcopy(section or TINY)}}}


def protocol(amplitudes, init):
    return Experiment.steps("I", amplitudes, dt="0.01 ms", duration="40 ms", start="5 ms", stop="40 ms",
                            record=("v",), spikes=True, init=init, method="euler")


HH = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV")
HH_PARAMS = {k: np.array([v]) for k, v in models.SPECS["hh_traub"].defaults.items()}
HH_INIT = {**models.SPECS["hh_traub"].init, "v": -65e-3}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`neurofit reduce` and `plot-reduction` on the tiny study, and the same reduction made directly."""
    work = tmp_path_factory.mktemp("reduction")
    path = write_yaml(work / "config.yaml", config())
    out = work / "reduction"
    assert main(list(map(str, ["reduce", "--config", path, "--study", "tiny", "--output-dir", out]))) == 0
    figures = {kind: work / "figures" / f"reduction_{kind}.png" for kind in ("loss", "train", "heldout")}
    assert main(list(map(str, ["plot-reduction", "--config", path, "--study", "tiny", "--results", out,
                               *[a for kind, f in figures.items() for a in (f"--{kind}", f)]]))) == 0

    target = protocol(TRAIN, HH_INIT).run(HH, HH_PARAMS)[0]
    opt = OptNeuron(protocol(TRAIN, {"v": -65e-3, "w": 0.0}), SpikeTrainLoss(), {**BOUNDS, "Vr": "-70 mV"},
                    models.get("adex"), results_soll=target, seed=3)
    direct = opt.run(max_evals=120, n_samples=20)
    return {"work": work, "config": path, "out": out, "figures": figures, "target": target, "direct": direct,
            "summary": json.loads((out / "reduction.json").read_text()),
            "heldout": json.loads((out / "heldout.json").read_text())}


def test_reduce_command_gives_the_optneuron_numbers(tiny_run):
    summary, direct = tiny_run["summary"], tiny_run["direct"]
    assert summary["best_params"] == direct.best_params and summary["loss"] == direct.loss
    assert summary["parts"] == direct.parts and summary["n_evaluations"] == 120
    assert summary["free"] == list(BOUNDS) and summary["bounds"]["Vr"] == pytest.approx(-70e-3, rel=1e-12)
    assert summary["target"] == "hh_traub" and summary["model"] == "adex" and summary["method"] == "CMA"
    with np.load(tiny_run["out"] / "reduction.npz") as arrays:
        np.testing.assert_array_equal(arrays["loss"], [h["loss"] for h in direct.history])
        np.testing.assert_array_equal(arrays["target/0/v"], tiny_run["target"].recordings[0]["v"])
        np.testing.assert_array_equal(arrays["fitted/0/v"], direct.results.recordings[0]["v"])
    train = summary["train"]
    assert train["target_counts"] == [len(s) for s in tiny_run["target"].spikes[0]]
    assert train["fitted_counts"] == [len(s) for s in direct.results.spikes[0]]
    for name in FILES:
        assert check_manifest(tiny_run["out"] / name) is None, name
    assert read_manifest(tiny_run["out"] / "reduction.json")["seeds"] == {"reduction": 3}


def test_heldout_counts_and_gamma_factor(tiny_run):
    params = {k: np.array([v]) for k, v in tiny_run["direct"].best_params.items()}
    hh = protocol(HELDOUT, HH_INIT).run(HH, HH_PARAMS)[0]
    adex = protocol(HELDOUT, {"v": -65e-3, "w": 0.0}).run(models.get("adex"), params)[0]
    held = tiny_run["heldout"]["heldout"]
    assert held["amplitudes"] == pytest.approx([0.8e-9], rel=1e-12)
    assert held["target_counts"] == [len(hh.spikes[0][0])] and held["fitted_counts"] == [len(adex.spikes[0][0])]
    gamma = 1 - GammaFactor(delta=2e-3, time=0.04, rate_correction=False).calc([adex.spikes[0]], hh.spikes[0],
                                                                                1e-5)[0]
    assert held["gamma"] == [pytest.approx(gamma, abs=1e-12)] and held["target_counts"][0] >= 2
    with np.load(tiny_run["out"] / "heldout.npz") as arrays:
        np.testing.assert_array_equal(arrays["target/0/v"], hh.recordings[0]["v"])
        np.testing.assert_array_equal(arrays["fitted/0/v"], adex.recordings[0]["v"])


def test_plot_reduction_writes_three_figures(tiny_run):
    for path in tiny_run["figures"].values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        assert check_manifest(path) is None


def test_recorded_target_gives_the_target_models_numbers(tiny_run, tmp_path, capsys, monkeypatch):
    """The target model's voltages written to files (mV) and used as data: the same reduction."""
    monkeypatch.chdir(tmp_path)
    np.save("train_mV.npy", tiny_run["target"].recordings[0]["v"] * 1e3)
    held = protocol(HELDOUT, HH_INIT).run(HH, HH_PARAMS)[0]
    np.save("heldout_mV.npy", held.recordings[0]["v"] * 1e3)
    section = copy.deepcopy(TINY)
    section["target"] = {"data": {"train": {"path": "train_mV.npy", "unit": "mV"},
                                  "heldout": {"path": "heldout_mV.npy", "unit": "mV"}, "spike_threshold": "-20 mV"}}
    write_yaml(tmp_path / "data.yaml", config(section))
    status, _, err = run_cli(capsys, "reduce", "--config", "data.yaml", "--study", "tiny", "--output-dir", "out")
    assert status == 0, err
    summary = json.loads((tmp_path / "out" / "reduction.json").read_text())
    assert summary["target"] == "data"
    assert summary["train"]["target_counts"] == tiny_run["summary"]["train"]["target_counts"]
    heldout = json.loads((tmp_path / "out" / "heldout.json").read_text())["heldout"]
    assert heldout["target_counts"] == tiny_run["heldout"]["heldout"]["target_counts"]
    # a recorded spike is the first sample above the threshold: one step after the simulator's spike time
    with np.load(tmp_path / "out" / "reduction.npz") as arrays:
        for j, train in enumerate(tiny_run["target"].spikes[0]):
            np.testing.assert_allclose(arrays[f"target/0/spikes/{j}"], train + 1e-5, rtol=0, atol=1e-12)
        np.testing.assert_allclose(arrays["target/0/v"], tiny_run["target"].recordings[0]["v"], rtol=1e-12)
    print("data target: loss", summary["loss"], "model target: loss", tiny_run["summary"]["loss"])
    assert summary["loss"] < 1.5 * tiny_run["summary"]["loss"] and summary["train"]["max_abs_count_error"] <= 1
    assert set(read_manifest(tmp_path / "out" / "reduction.json")["inputs"]) == {
        "data.yaml", "train_mV.npy", "heldout_mV.npy"}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(max_eval=10), "studies.tiny.reduction.max_eval: unknown key (valid keys: target, model,"),
    (lambda s: s["target"].update(data={"train": {"path": "x.npy", "unit": "mV"}, "spike_threshold": 0}),
     "studies.tiny.reduction.target: give exactly one of builtin (a target model) and data"),
    (lambda s: s["target"].pop("builtin"), "studies.tiny.reduction.target: give exactly one of builtin"),
    (lambda s: s["variables_bounds"].update(g_na=[1, 2]), "studies.tiny.reduction.variables_bounds.g_na: not a "
                                                            "parameter of the model"),
    (lambda s: s["variables_bounds"].update(C=["500 pF", "50 pF"]),
     "studies.tiny.reduction.variables_bounds.C = [500 pF, 50 pF] (SI [5e-10, 5e-11]): need finite low < high"),
    (lambda s: s["variables_bounds"].update(C=["50 pF", "5 mV"]), "studies.tiny.reduction.variables_bounds.C"),
    (lambda s: s["variables_bounds"].update(C={"lo": 1}), "studies.tiny.reduction.variables_bounds.C: {'lo': 1} is "
                                                          "not valid (expected [low, high]"),
    (lambda s: s["model"].update(builtin="adx"), "studies.tiny.reduction.model.builtin: 'adx' is not valid"),
    (lambda s: s["model"]["init"].update(u=0), "studies.tiny.reduction.model.init.u: not a state variable"),
    (lambda s: s["target"].update(params={"g_k": "6 uS"}), "studies.tiny.reduction.target.params.g_k: not a "
                                                           "parameter of the model"),
    (lambda s: s["target"].update(threshold=None, refractory=None),
     "studies.tiny.reduction.target.threshold: the target model 'hh_traub' has no spike condition"),
    (lambda s: s["protocol"].update(start="50 ms"), "studies.tiny.reduction.protocol.stop: need 0 <= start < stop"),
    (lambda s: s["protocol"].update(input="I_ext"), "studies.tiny.reduction.protocol.input: 'I_ext' is not an input"),
    (lambda s: s.update(method="NoSuchOptimizer"), "studies.tiny.reduction.method: 'NoSuchOptimizer' is not a "
                                                   "nevergrad optimizer"),
    (lambda s: s["target"].update(builtin=None, threshold=None, refractory=None, init={}, method=None,
                                  data={"train": {"path": "missing.npy", "unit": "mV"}, "spike_threshold": "0 mV"}),
     "studies.tiny.reduction.target.data.heldout: missing (required for protocol.heldout_amplitudes)"),
    (lambda s: (s["protocol"].update(heldout_amplitudes=[]),
                s["target"].update(builtin=None, threshold=None, refractory=None, init={}, method=None,
                                   data={"train": {"path": "missing.npy", "unit": "mV"}, "spike_threshold": "0 mV"})),
     "studies.tiny.reduction.target.data.train.path: missing.npy: file not found"),
], ids=["unknown key", "both targets", "no target", "unknown parameter", "lo > hi", "wrong unit", "bad bound",
        "unknown model", "unknown state", "unknown target parameter", "no threshold", "step after end",
        "unknown input", "unknown optimizer", "heldout data missing", "missing file"])
def test_bad_reduction_config_prints_one_line_and_exits_2(tmp_path, capsys, change, message):
    section = copy.deepcopy(TINY)
    change(section)
    write_yaml(tmp_path / "config.yaml", config(section))
    status, _, err = run_cli(capsys, "reduce", "--config", tmp_path / "config.yaml", "--study", "tiny",
                         "--output-dir", tmp_path / "out")
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out" / "reduction.json").exists()


def test_unnamed_parameters_keep_the_builtins_values():
    section = copy.deepcopy(TINY)
    section["variables_bounds"] = {"C": ["50 pF", "500 pF"], "Vr": "El + 0.002", "b": 0.05e-9}
    plan = ReductionSection(Study.from_config(config(section), "tiny"))
    spec = models.SPECS["adex"].defaults
    assert plan.bounds["C"] == pytest.approx([50e-12, 500e-12], rel=1e-12) and list(plan.space.free) == ["C"]
    assert plan.bounds["Vr"] == "El + 0.002" and plan.bounds["b"] == 0.05e-9
    assert all(plan.bounds[p] == spec[p] for p in ("gl", "El", "VT", "DeltaT", "a", "tau_w"))
    assert validate_config(config(section))["studies"]["tiny"]["reduction"]["loss"]["delta"] == "2 ms"


def test_dry_run_of_the_default_config_lists_the_reduction_jobs():
    status, out = snakemake("-n", "--forceall", "--nolock", "--cores", "2")
    assert status == 0, out
    assert job_counts(out)["reduce"] == 1 and job_counts(out)["plot_reduction"] == 1, out
    for name in FILES:
        assert f"results/hh_to_adex/reduction/{name}" in out
    for kind in ("loss", "train", "heldout"):
        assert f"results/hh_to_adex/figures/reduction_{kind}.png" in out


def test_bad_reduction_config_fails_before_any_job(tmp_path):
    section = copy.deepcopy(TINY)
    section["variables_bounds"]["tau_x"] = [1, 2]
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config(section))
    status, out = snakemake("--cores", "1", cwd=tmp_path)
    assert status != 0 and "config: studies.tiny.reduction.variables_bounds.tau_x: not a parameter" in out, out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_full_run_of_a_tiny_reduction_study(tmp_path, tiny_run):
    (tmp_path / "config").mkdir()
    write_yaml(tmp_path / "config" / "config.yaml", config())
    status, out = snakemake("--cores", "2", cwd=tmp_path)
    assert status == 0, out
    study = tmp_path / "results" / "tiny"
    summary = json.loads((study / "reduction" / "reduction.json").read_text())
    assert summary["best_params"] == tiny_run["summary"]["best_params"] and summary["loss"] == tiny_run["direct"].loss
    outputs = [f"reduction/{name}" for name in FILES] + [f"figures/reduction_{k}.png" for k in ("loss", "train",
                                                                                                 "heldout")]
    for output in outputs:
        assert check_manifest(study / output) is None, output
    for rule in ("reduce", "plot_reduction"):
        assert (study / "logs" / f"{rule}.log").is_file() and (study / "benchmarks" / f"{rule}.tsv").is_file()
    status, out = snakemake("--cores", "2", cwd=tmp_path)
    assert status == 0 and "Nothing to be done" in out, out
