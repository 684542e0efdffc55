"""Amortized inference per sheet group in batch studies (``amortize: group``): one training per group, each
cell conditioned on the group's posterior.

The cells: synthetic passive membranes (``models.get("passive")``, gl, El, C drawn from the prior with a seeded
generator) recorded as NWB files under one protocol - two 100 ms steps of -0.15 and +0.15 nA after a 50 ms
baseline, 0.2 s at 0.1 ms - with white noise of SD 2 mV (the set-up whose amortized posterior is calibrated in
tests/test_amortized.py; quality control's noise limit raised to 3 mV for it). Sheet group A holds five such
cells and one recorded with +-0.1 nA steps (another protocol); group B holds one cell alone. The API test
trains group A and conditions each cell on it; the workflow test runs the same sheet through Snakemake.
"""
import json

import numpy as np
import pytest
import torch

from helpers import job_counts, raises_one_line
from neurofit import models, simulate
from neurofit.cli.main import main
from neurofit.data.recordings.nwb_writer import write_nwb_cell
from neurofit.workflow.batch import UNGROUPED, BatchStudy, group_folder
from neurofit.workflow.cell_stage import run_cell_stage, train_group
from neurofit.workflow.study import Study
from tiny_workflow import make_workdir, run_snakemake

torch.set_num_threads(1)

DT, N_STEPS, SD = 1e-4, 2000, 2e-3
NAMES = ["gl", "El", "C"]
BOUNDS = {"gl": [5e-9, 50e-9], "El": [-80e-3, -60e-3], "C": [50e-12, 300e-12]}
GROUP_A = [f"a{k}" for k in range(5)]


def protocol(amplitude: float) -> np.ndarray:
    current = np.zeros((2, N_STEPS))
    current[0, 500:1500], current[1, 500:1500] = -amplitude, amplitude
    return current


def write_cells(folder) -> dict:
    """The sheet's NWB files in ``folder`` and the sheet (cells.tsv); returns cell -> true (gl, El, C)."""
    rng = np.random.default_rng(5)
    cells = {**{c: (0.15e-9, "A") for c in GROUP_A}, "odd": (0.1e-9, "A"), "solo": (0.15e-9, "B")}
    truth, rows = {}, ["cell\tfile\tgroup"]
    for cell, (amplitude, group) in cells.items():
        theta = {p: rng.uniform(*BOUNDS[p]) for p in NAMES}
        current = protocol(amplitude)
        v = simulate(models.get("passive"), theta, {"I": current}, DT, init={"v": "El"}, record="v",
                     method="exponential_euler").traces["v"][0]
        write_nwb_cell(folder / f"{cell}.nwb", current, v + SD * rng.standard_normal(v.shape), DT, cell)
        truth[cell] = theta
        rows.append(f"{cell}\t{cell}.nwb\t{group}")
    (folder / "cells.tsv").write_text("\n".join(rows) + "\n")
    return truth


def section(sheet, n_samples: int = 1000) -> dict:
    return {"sheet": str(sheet), "data": {"dt": "0.1 ms", "recording": {"qc": {"max_noise_rms": "3 mV"}}},
            "stages": [{"name": "passive", "model": {"builtin": "passive"}, "amortize": "group",
                        "infer": {"bounds": {"gl": ["5 nS", "50 nS"], "El": ["-80 mV", "-60 mV"],
                                             "C": ["50 pF", "300 pF"]},
                                  "features": {"v": ["v_max", "v_mean", "v_std", "resting_potential",
                                                     "voltage_deflection"]},
                                  "n_samples": n_samples, "num_posterior_samples": 1000, "seed": 0}}]}


def batch_of(doc: dict) -> BatchStudy:
    return BatchStudy(Study.from_config({"studies": {"grp": doc}}, "grp"))


@pytest.mark.slow
def test_one_training_per_group_serves_its_cells(tmp_path):
    truth = write_cells(tmp_path)
    batch = batch_of(section(tmp_path / "cells.tsv"))
    groups = batch.groups(batch.cells())
    assert {g: [c.cell for c in cells] for g, cells in groups.items()} == {"A": [*GROUP_A, "odd"], "B": ["solo"]}
    folder = tmp_path / "groups" / "A" / "passive"
    folder.mkdir(parents=True)
    doc = train_group(batch, "passive", "A", groups["A"], folder)
    assert doc["status"] == "ok", doc
    assert doc["cells"] == GROUP_A and doc["reference_cell"] == "a0"
    assert "another protocol" in doc["refused"]["odd"] and "reference cell a0" in doc["refused"]["odd"]
    # the noise pooled from the five cells' baselines: within 20 % of the 2 mV added
    assert doc["noise_pooled"] == ["v"] and abs(doc["noise"]["v"] / SD - 1) < 0.2, doc["noise"]
    assert doc["n_simulations"] == 1000 and doc["param_names"] == NAMES
    inside, cells = 0, {c.cell: c for c in batch.cells()}
    for name in GROUP_A:
        run = run_cell_stage(batch, cells[name], "passive", tmp_path / name, group=(doc, folder))
        result = run.doc
        assert result["status"] == "ok", result["reason"]
        assert result["amortized"] == {"group": "A", "reference_cell": "a0", "n_cells": 5}
        assert result["misspecified"] is False and result["n_simulations"] == 1000
        assert result["noise"]["v"]["sd"] == doc["noise"]["v"] and result["noise"]["v"]["pooled"] is True
        assert abs(result["noise"]["v"]["cell_sd"] / SD - 1) < 0.3  # the cell's own baseline estimate
        inside += sum(q["q05"] <= truth[name][p] <= q["q95"] for p, q in result["quantiles"].items())
        assert (tmp_path / name / "infer" / "samples.parquet").is_file()
        check = json.loads((tmp_path / name / "infer" / "predictive_check.json").read_text())
        assert check["n_outside"] == result["predictive_outside"] <= 1
    # 15 central 90 % intervals (5 cells x 3 parameters): 13.5 expected; <= 10 has probability 1.3 %
    assert inside >= 11, inside
    odd = run_cell_stage(batch, cells["odd"], "passive", tmp_path / "odd", group=(doc, folder)).doc
    assert odd["status"] == "failed" and "another protocol" in odd["reason"] and "sweep 1" in odd["reason"]
    # the same cell conditioned again gives the same numbers (seeded draws)
    again = run_cell_stage(batch, cells["a1"], "passive", tmp_path / "again", group=(doc, folder)).doc
    first = json.loads(json.dumps(run_cell_stage(batch, cells["a1"], "passive", tmp_path / "a1",
                                                 group=(doc, folder)).doc))
    assert json.loads(json.dumps(again)) == first


def test_amortize_group_needs_one_round_no_from_and_folder_labels(tmp_path):
    (tmp_path / "cells.tsv").write_text("cell\tfile\tgroup\nc1\tc1.nwb\tL2/3\nc2\tc2.nwb\t\n")
    doc = section(tmp_path / "cells.tsv")
    doc["stages"][0]["infer"]["n_rounds"] = 2
    raises_one_line(lambda: batch_of(doc), "stages.0.infer.n_rounds", "amortized", error=ValueError)
    doc = section(tmp_path / "cells.tsv")
    fit = {"bounds": {"gl": ["5 nS", "50 nS"], "El": ["-80 mV", "-60 mV"], "C": ["50 pF", "300 pF"]}}
    doc["stages"].insert(0, {"name": "fit", "model": {"builtin": "passive"}, "fit": fit})
    doc["stages"][1]["from"] = {"stage": "fit", "fixed": ["gl"]}
    raises_one_line(lambda: batch_of(doc), "stages.1.amortize", "from", error=ValueError)
    fit_stage = {"name": "f", "model": {"builtin": "passive"}, "amortize": "group", "fit": fit}
    raises_one_line(lambda: batch_of({**section(tmp_path / "cells.tsv"), "stages": [fit_stage]}),
                    "stages.0.amortize", "needs an infer section", error=ValueError)
    batch = batch_of(section(tmp_path / "cells.tsv"))
    cells = batch.cells()
    raises_one_line(lambda: batch.groups(cells), "line 2, column group", "'L2/3'", error=ValueError)
    assert group_folder(cells[1], batch.sheet) == UNGROUPED


@pytest.mark.slow
def test_the_workflow_trains_once_per_group(tmp_path, capsys, monkeypatch):
    write_cells(tmp_path)
    work = make_workdir(tmp_path, {"studies": {"grp": section(tmp_path / "cells.tsv", n_samples=500)}})
    status, log = run_snakemake(work, "--cores", "2")
    assert status == 0, log[-3000:]
    counts = job_counts(log)
    assert counts["train_group"] == 2 and counts["fit_cell"] == 7, counts
    results = work / "results" / "grp"
    groups = {g: json.loads((results / "groups" / g / "passive" / "group.json").read_text()) for g in ("A", "B")}
    assert groups["A"]["cells"] == GROUP_A and groups["B"]["cells"] == ["solo"]
    table = (results / "population" / "cells.csv").read_text().splitlines()
    header, rows = table[0].split(","), {line.split(",")[0]: line for line in table[1:]}
    assert "passive.gl.q05" in header and "passive.misspecified" in header
    assert ",failed," in rows["odd"] and "another protocol" in rows["odd"]
    assert all(",ok," in rows[c] for c in [*GROUP_A, "solo"])
    status, log = run_snakemake(work, "--cores", "2", "--dry-run")
    assert status == 0 and "Nothing to be done" in log, log[-2000:]
    # the audit re-runs group B's training from its manifest and finds the same numbers
    monkeypatch.chdir(work)
    status = main(["audit", "results/grp", "--rerun", "groups/B/passive/group.json"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and "identical numbers" in lines[0] and lines[-1].endswith("-> OK"), lines
