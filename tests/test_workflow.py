"""The Snakemake workflow: schema in step with the package, dry run, a full run, bad configs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurofit import models
from neurofit.data import Dataset
from neurofit.integrators import METHODS
from neurofit.io import load_simulation
from neurofit.provenance import check_manifest, read_manifest
from neurofit.study import REQUIRED, SECTIONS, STUDY_KEYS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def snakemake(*args, cwd=ROOT, timeout=300):
    proc = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def absolute_data_paths(config):
    """The config with its data paths made absolute (they are relative to the repository root)."""
    config = yaml.safe_load(yaml.safe_dump(config))
    for study in config["studies"].values():
        for role in ("inputs", "outputs"):
            for spec in study["data"].get(role, {}).values():
                spec["path"] = str((ROOT / spec["path"]).resolve())
    return config


def workdir_with(tmp_path, config):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


# --- the schema and the package agree -------------------------------------------------------------

def _types(prop):
    if "$ref" in prop:
        prop = SCHEMA["$defs"][prop["$ref"].split("/")[-1]]
    t = prop["type"]
    return {t} if isinstance(t, str) else set(t)


def test_every_schema_key_has_type_default_and_description():
    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path}: additionalProperties must be false"
                for key, prop in node["properties"].items():
                    assert "description" in prop, f"{path}.{key}: no description"
                    assert "type" in prop or "$ref" in prop, f"{path}.{key}: no type"
                    optional_section = _types(prop) == {"object"} and key not in node.get("required", [])
                    assert "default" in prop or key in node.get("required", []) or optional_section or \
                        "additionalProperties" in prop, f"{path}.{key}: no default"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
    walk(SCHEMA, "schema")


def test_schema_sections_match_the_package():
    study = SCHEMA["$defs"]["study"]
    assert list(study["properties"]) == list(STUDY_KEYS)
    for name, spec in SECTIONS.items():
        props = study["properties"][name]["properties"]
        required = set(study["properties"][name].get("required", []))
        assert list(props) == list(spec), name
        for key, (types, default) in spec.items():
            assert _types(props[key]) == set(types), f"{name}.{key}"
            if default is REQUIRED:
                assert key in required and "default" not in props[key], f"{name}.{key}"
            else:
                assert props[key]["default"] == default, f"{name}.{key}"
    model = study["properties"]["model"]["properties"]
    assert model["builtin"]["enum"] == [None, *models.SPECS]
    assert study["properties"]["simulate"]["properties"]["method"]["enum"] == [None, *METHODS]


# --- snakemake runs ---------------------------------------------------------------------------------

def test_dry_run_of_the_default_config():
    status, out = snakemake("-n", "--forceall", "--nolock", "--cores", "2")
    assert status == 0, out
    for rule in ("prepare", "simulate", "plot_traces"):
        assert f"rule {rule}:" in out, out
    assert "results/hh_tutorial/figures/traces.png" in out


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

    status, out = snakemake("--cores", "2", cwd=work)  # complete: nothing is recomputed
    assert status == 0 and "Nothing to be done" in out, out


def _broken_default(change):
    config = absolute_data_paths(DEFAULT_CONFIG)
    change(config["studies"]["hh_tutorial"])
    return config


@pytest.mark.parametrize("change, message", [
    (lambda s: s["simulate"].update(metod="euler"),
     "config: studies.hh_tutorial.simulate.metod: unknown key (valid keys: params, init, method,"),
    (lambda s: s["simulate"].update(seed="one"), "config: studies.hh_tutorial.simulate.seed: 'one' is not of type"),
    (lambda s: s.setdefault("figures", {}).update(dpi=2.5), "config: studies.hh_tutorial.figures.dpi: 2.5 is not of type"),
    (lambda s: s["model"].update(builtin="hh_trub"), "config: studies.hh_tutorial.model.builtin: 'hh_trub' is not"),
    (lambda s: s["model"].update(equations="dv/dt = -v/ms : volt"),
     "config: studies.hh_tutorial.model: give exactly one of builtin, equations, equations_file"),
    (lambda s: s["data"]["inputs"]["I"].update(path="/nonexistent/input.csv"), "/nonexistent/input.csv"),
], ids=["unknown key", "wrong type", "float for integer", "bad enum", "two models", "missing file"])
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    work = workdir_with(tmp_path, _broken_default(change))
    status, out = snakemake("--cores", "1", cwd=work)
    assert status != 0
    assert message in out, out
    assert "Finished jobid" not in out and not (work / "results").exists(), out
