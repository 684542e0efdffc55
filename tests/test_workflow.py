"""The Snakemake workflow: schema in step with the package, dry run, a full run, bad configs."""
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import job_counts, snakemake
from neurofit import models
from neurofit.codegen.integrators import METHODS
from neurofit.data.dataset import Dataset
from neurofit.data.files import load_simulation
from neurofit.inference import inferencer as inference
from neurofit.workflow.provenance import check_manifest, read_manifest
from neurofit.workflow.study import SCHEMA_PATH, Study, validate_config

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def absolute_data_paths(config):
    """The config with its data paths and sample sheets made absolute (they are relative to the repository root)."""
    config = yaml.safe_load(yaml.safe_dump(config))
    for study in config["studies"].values():
        if study.get("sheet"):  # the sheet's own paths are relative to the sheet
            study["sheet"] = str((ROOT / study["sheet"]).resolve())
        for role in ("inputs", "outputs"):
            for spec in study.get("data", {}).get(role, {}).values():  # rate and reduction studies have none
                spec["path"] = str((ROOT / spec["path"]).resolve())
    return config


def workdir_with(tmp_path, config):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


# --- the schema and the package agree -------------------------------------------------------------

def _types(prop):
    if "$ref" in prop:  # a JSON pointer into the schema, e.g. #/$defs/study/properties/model
        node = SCHEMA
        for key in prop["$ref"].removeprefix("#/").split("/"):
            node = node[key]
        prop = node
    t = prop["type"]
    return {t} if isinstance(t, str) else set(t)


#: Keys required by a condition (the study's if/else: a recording's path unless the study has a sheet).
CONDITIONALLY_REQUIRED = {"schema.$defs.study.properties.data.properties.recording.path"}


def test_every_schema_key_has_type_default_and_description():
    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path}: additionalProperties must be false"
                for key, prop in node["properties"].items():
                    assert "description" in prop, f"{path}.{key}: no description"
                    assert "type" in prop or "$ref" in prop, f"{path}.{key}: no type"
                    optional_section = _types(prop) == {"object"} and key not in node.get("required", [])
                    # a key whose presence requires others (sheet needs stages) cannot have a default
                    optional_section = optional_section or key in node.get("dependentRequired", {}) or \
                        f"{path}.{key}" in CONDITIONALLY_REQUIRED
                    assert "default" in prop or key in node.get("required", []) or optional_section or \
                        "additionalProperties" in prop, f"{path}.{key}: no default"
            for key, value in node.items():
                if key not in ("if", "else"):  # a condition's and its other branch's properties declare no keys
                    walk(value, f"{path}.{key}")
    walk(SCHEMA, "schema")


def test_one_schema_for_the_workflow_and_the_package():
    """The schema exists once, in the package; workflow/schemas/ only links to it."""
    assert SCHEMA_PATH.parent == ROOT / "src" / "neurofit" / "workflow" / "schemas"
    assert (ROOT / "workflow/schemas/config.schema.yaml").resolve() == SCHEMA_PATH.resolve()
    assert [p.name for p in (ROOT / "workflow/schemas").iterdir()] == ["config.schema.yaml"]
    assert (ROOT / "workflow/schemas/config.schema.yaml").is_symlink()
    assert '"workflow/schemas/*.yaml"' in (ROOT / "pyproject.toml").read_text()  # shipped with the package
    assert "SCHEMA_PATH" in (ROOT / "Snakefile").read_text()


def test_package_and_snakemake_fill_the_same_defaults():
    from snakemake.utils import validate

    by_snakemake = yaml.safe_load(yaml.safe_dump(DEFAULT_CONFIG))
    validate(by_snakemake, str(SCHEMA_PATH))
    assert validate_config(DEFAULT_CONFIG) == by_snakemake
    study = Study.from_config(DEFAULT_CONFIG, "hh_tutorial")
    assert study.section == by_snakemake["studies"]["hh_tutorial"]
    assert study.section["fit"]["refine"]["n_starts"] == 8 and study.section["figures"]["dpi"] == 120


def test_schema_enums_match_the_package():
    study = SCHEMA["$defs"]["study"]
    model = study["properties"]["model"]["properties"]
    assert model["builtin"]["enum"] == [None, *models.SPECS]
    assert study["properties"]["simulate"]["properties"]["method"]["enum"] == [None, *METHODS]
    assert study["properties"]["fit"]["properties"]["method"]["enum"] == [None, *METHODS]
    assert SCHEMA["$defs"]["infer"]["properties"]["method"]["enum"] == list(inference.METHODS)


# --- snakemake runs ---------------------------------------------------------------------------------

def shell_commands(log: str) -> list:
    """(rule, shell command) of every job of a `snakemake -n -p` log (not the target rule, which has none)."""
    found, rule = [], None
    for line in log.splitlines():
        line = line.strip()  # jobs of a group (fit_cell: group "cells") are listed indented
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1][:-1]
        elif line.startswith("Shell command: ") and rule is not None and line != "Shell command: None":
            found.append((rule, line[len("Shell command: "):]))
            rule = None
    return found


def test_dry_run_of_the_default_config():
    status, out = snakemake("-n", "-p", "--forceall", "--nolock", "--cores", "2")
    assert status == 0, out
    rules = ("prepare", "prepare_config", "simulate", "plot_traces", "fit", "refine", "summarize", "plot_fit",
             "rate_chunk", "rate_study", "reduce", "plot_reduction", "simulate_training", "infer", "calibrate",
             "prepare_cell", "fit_cell", "population")
    for rule in rules:
        assert f"rule {rule}:" in out, out
    assert "results/hh_tutorial/figures/traces.png" in out
    for i in range(2):  # the default SBI study's training data: 2 chunk jobs
        assert f"results/hh_inference/infer/chunks/chunk_{i}.npz" in out
    for cell in ("171116sh_0018", "190619B_0003"):  # the batch study: two cells of its sheet, two stages each
        for stage in ("passive", "adex"):
            assert f"results/cells_two/cells/{cell}/{stage}/result.json" in out
    assert "results/cells_two/population/cells.csv" in out

    # every rule is named after the subcommand it runs ('-' -> '_'), a second rule of one subcommand with a suffix
    commands = shell_commands(out)
    assert {rule for rule, _ in commands} == set(rules), commands
    for rule, command in commands:
        subcommand = command.split()[1].replace("-", "_")
        assert command.startswith("neurofit ") and (rule == subcommand or rule.startswith(subcommand + "_")), \
            (rule, command)
    # one hand-off: prepare reads the config file, every other job the frozen study; no study as text
    assert '{"studies"' not in out and "--config-json" not in out
    for rule, command in commands:
        study = command.split("--study ")[1].split()[0]
        # only prepare reads the config files; every later job (prepare_cell too) reads the frozen study
        config = "config/config.yaml" if rule in ("prepare", "prepare_config") else f"results/{study}/study.yaml"
        assert f" --config {config} --study {study} " in command, (rule, command)


def test_studies_sharing_settings_through_yaml_anchors_expand_into_their_own_jobs(tmp_path):
    """Two recordings, one protocol: the second study takes the first's settings (a YAML merge key) and
    overrides its data; Snakemake plans a job set for each."""
    data = ROOT / "data" / "brian2modelfitting"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(textwrap.dedent(f"""
        studies:
          cell_1: &cell
            model: {{builtin: hh_traub}}
            data:
              dt: 0.01 ms
              inputs: {{I: {{path: {data / "input_traces_hh.csv"}, unit: amp}}}}
              outputs: {{v: {{path: {data / "output_traces_hh.csv"}, unit: mV}}}}
            fit: {{bounds: {{gl: [2 pS, 200 nS, log], g_na: [200 nS, 0.4 mS, log], g_kd: [200 nS, 200 uS, log]}},
                  seeds: [1, 2]}}
          cell_2:
            <<: *cell
            data:
              dt: 0.01 ms
              inputs: {{I: {{path: {data / "input_traces_hh.csv"}, unit: amp, key: null}}}}
              outputs: {{v: {{path: {data / "output_traces_hh.csv"}, unit: mV}}}}
        """))
    status, out = snakemake("-n", "--cores", "2", cwd=tmp_path)
    assert status == 0, out
    assert job_counts(out)["prepare"] == 2 and job_counts(out)["fit"] == 4, out
    for study in ("cell_1", "cell_2"):
        assert f"results/{study}/fit/DE_2/fit.json" in out


@pytest.mark.slow
def test_full_run_of_the_default_study(tmp_path):
    work = workdir_with(tmp_path, absolute_data_paths(DEFAULT_CONFIG))
    status, out = snakemake("--cores", "2", cwd=work)
    assert status == 0, out
    study = work / "results" / "hh_tutorial"
    figure = study / "figures" / "traces.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    for output in ("study.yaml", "data.npz", "simulate/traces.npz", "figures/traces.png"):
        assert check_manifest(study / output) is None, output
    for rule in ("prepare", "simulate", "plot_traces"):
        assert (study / "logs" / f"{rule}.log").exists() and (study / "benchmarks" / f"{rule}.tsv").exists()
    manifest = read_manifest(study / "simulate" / "traces.npz")
    assert manifest["config"]["simulate"]["params"]["g_na"] == "20 uS" and manifest["dtype"] == "float64"

    # the model at the ground truth reproduces the recordings up to their ~1 mV noise
    sim = load_simulation(study / "simulate" / "traces.npz")
    data = Dataset.load_npz(study / "data.npz")
    residual = (data.outputs["v"] - sim.traces["v"][0]) * 1e3
    assert np.all(np.abs(residual.mean(axis=1)) < 0.1) and np.all(residual.std(axis=1) <= 1.05)

    # the fit stage: 2 optimizers x 2 seeds, each refined to the noise floor (the tutorial's bar)
    table = pd.read_csv(study / "summary" / "fits.csv")
    assert sorted(zip(table["optimizer"], table["seed"])) == [("CMA", 1), ("CMA", 2), ("DE", 1), ("DE", 2)]
    assert (table["refined_ratio_to_floor"] <= 1.01).all() and (table["n_evaluations"] == 1000).all()
    for p in ("gl", "g_na", "g_kd"):
        assert (table[f"{p}_rel_error"].abs() < 0.02).all(), p
    for output in ("summary/fits.csv", "figures/fit_convergence.png", "figures/fit_parameters.png",
                   "figures/fit_traces.png", "fit/DE_1/fit.json", "fit/CMA_2/refined.json"):
        assert check_manifest(study / output) is None, output

    # the SBI stage: the manual's toy case, posterior around the ground truth, calibrated
    infer = work / "results" / "hh_inference" / "infer"
    summary = json.loads((infer / "summary.json").read_text())
    assert summary["n_simulations"] == 2000 and summary["n_invalid"] == 0
    for p, truth in (("g_Na", 32e-6), ("g_K", 1e-6)):
        stats = summary["parameters"][p]
        assert stats["mean"] == pytest.approx(truth, rel=0.1) and stats["q05"] < truth < stats["q95"], p
    calibration = json.loads((infer / "calibration.json").read_text())
    level = calibration["levels"].index(0.9)
    for p in ("g_Na", "g_K"):  # 100 tests: nominal 0.9 within binomial noise (SD 0.03) and NPE's small bias
        assert 0.8 <= calibration["coverage"][p][level] <= 1.0, p
    for name in ("posterior.pt", "samples.parquet", "pairplot.png", "predictive.png", "coverage.png",
                 "sbc_ranks.png", "chunks/chunk_1.npz"):
        assert check_manifest(infer / name) is None, name

    status, out = snakemake("--cores", "2", cwd=work)  # complete: nothing is recomputed
    assert status == 0 and "Nothing to be done" in out, out
    # ... not even after the descriptions changed: study.yaml, which every job reads, leaves them out
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    for name, section in config["studies"].items():
        section["description"] = f"{name}, described again"
        assert "description" not in yaml.safe_load((work / "results" / name / "study.yaml").read_text())["studies"][name]
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    status, out = snakemake("--cores", "2", "--dry-run", cwd=work)
    assert status == 0 and "Nothing to be done" in out, out


def _broken_default(change, study="hh_tutorial"):
    config = absolute_data_paths(DEFAULT_CONFIG)
    change(config["studies"][study])
    return config


@pytest.mark.parametrize("change, message, study", [
    (lambda s: s["simulate"].update(metod="euler"),
     "config: studies.hh_tutorial.simulate.metod: unknown key (valid keys: params, init, method,", "hh_tutorial"),
    (lambda s: s["simulate"].update(seed="one"), "config: studies.hh_tutorial.simulate.seed: 'one' is not of type",
     "hh_tutorial"),
    (lambda s: s.setdefault("figures", {}).update(dpi=2.5),
     "config: studies.hh_tutorial.figures.dpi: 2.5 is not of type", "hh_tutorial"),
    (lambda s: s["model"].update(builtin="hh_trub"), "config: studies.hh_tutorial.model.builtin: 'hh_trub' is not",
     "hh_tutorial"),
    (lambda s: s["model"].update(equations="dv/dt = -v/ms : volt"),
     "config: studies.hh_tutorial.model: give exactly one of builtin, equations, equations_file", "hh_tutorial"),
    (lambda s: s["data"]["inputs"]["I"].update(path="/nonexistent/input.csv"), "/nonexistent/input.csv",
     "hh_tutorial"),
    (lambda s: s["fit"]["bounds"].update(g_kd=["200 uS", "200 nS"]),
     "config: studies.hh_tutorial.fit.bounds.g_kd = [200 uS, 200 nS] (SI [0.0002, 2e-07]): need finite low < high",
     "hh_tutorial"),
    (lambda s: s["infer"]["bounds"].update(g_Na=["100 uS", "1 uS"]),
     "config: studies.hh_inference.infer.bounds.g_Na = [100 uS, 1 uS] (SI [0.0001, 1e-06]): need finite low < high",
     "hh_inference"),
    (lambda s: s["infer"].update(n_sample=10),
     "config: studies.hh_inference.infer.n_sample: unknown key (valid keys: bounds, features,", "hh_inference"),
    (lambda s: s["infer"]["bounds"].update(g_Kd=["1 uS", "2 uS"]),
     "config: studies.hh_inference.infer.bounds.g_Kd: not a parameter of the model (parameters: g_Na, g_K)",
     "hh_inference"),
    (lambda s: s["data"]["synthetic"].pop("duration"),
     "config: studies.hh_inference.data.synthetic.duration: missing (required)", "hh_inference"),
], ids=["unknown key", "wrong type", "float for integer", "bad enum", "two models", "missing file", "fit lo > hi",
        "prior lo > hi", "unknown infer key", "unknown prior parameter", "synthetic data without duration"])
def test_bad_config_fails_before_any_job(tmp_path, change, message, study):
    work = workdir_with(tmp_path, _broken_default(change, study))
    status, out = snakemake("--cores", "1", cwd=work)
    assert status != 0
    assert message in out, out
    assert "Finished jobid" not in out and not (work / "results").exists(), out
