"""Batch studies through the Snakemake workflow (tests/batch_workflow.py: the example's two stages, made quick).

- one cell's problem (unreadable or missing file, no sweep passing quality control, excluded in the sheet) is
  that cell's status in the population table; the other cells are fitted, and Snakemake succeeds;
- adding, removing or editing a row of the sheet runs only that cell's jobs (and the table);
- two working directories give the same bytes;
- a malformed sheet stops Snakemake before any job with one line naming the sheet and its line.
"""
import json
import math
import os
import time

import pytest

from batch_workflow import (
    ABF,
    batch_config,
    jobs_by_rule,
    make_batch_workdir,
    planned_jobs,
    read_table,
    result_jsons,
    result_stamps,
    row,
    study_results,
    table_lines,
    write_sheet,
)
from neurofit.units import parse_quantity
from tiny_workflow import make_workdir, run_snakemake

STAGES = ("passive", "adex")
GOOD = ("171116sh_0018", "190619B_0003")


def _sheet_rows(folder):
    """The failure-isolation sheet: two good cells (one named relative to the sheet), an unreadable file, a
    missing one, a recording failing quality control on every sweep, and an excluded row."""
    garbled = folder / "garbled.abf"
    garbled.write_text("this is a text file, not an Axon Binary File\n")
    return [
        row("171116sh_0018", os.path.relpath(ABF / "171116sh_0018.abf", folder), heldout="3,12",
            group="regular_spiking", species="mouse"),
        row("190619B_0003", ABF / "190619B_0003.abf", heldout="1,6", group="unknown", species="rat"),
        row("garbled", "garbled.abf", group="unknown", species="mouse"),
        row("missing", "nowhere/missing.abf", group="unknown"),
        row("2020_03_02_0000", ABF / "2020_03_02_0000.abf", group="unknown", species="rat"),
        row("drifted", ABF / "18711001.abf", group="adapting", exclude="pipette drift", species="mouse"),
    ]


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """The failure-isolation sheet run once with `snakemake --cores 2` (shared; do not modify)."""
    folder = tmp_path_factory.mktemp("batch")
    rows = _sheet_rows(folder)
    work = make_batch_workdir(folder, rows)
    started = time.monotonic()
    status, out = run_snakemake(work, "--cores", "2")
    print(f"batch run: {time.monotonic() - started:.1f} s")
    return {"folder": folder, "work": work, "rows": rows, "status": status, "out": out}


def _bounds(stage: str) -> dict:
    """parameter -> (low, high) in SI, from the stage's fit bounds."""
    stages = batch_config("cells.tsv")["studies"]["cells"]["stages"]
    bounds = next(s for s in stages if s["name"] == stage)["fit"]["bounds"]
    return {p: tuple(parse_quantity(b)[0] for b in bound[:2]) for p, bound in bounds.items()}


def _stage_columns(table_row: dict) -> dict:
    return {k: v for k, v in table_row.items() if k.split(".", 1)[0] in STAGES and "." in k}


# --- failure isolation -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_each_cell_problem_is_its_status_and_the_others_are_fitted(batch_run):
    work, folder = batch_run["work"], batch_run["folder"]
    assert batch_run["status"] == 0, batch_run["out"]
    table = read_table(work)
    # one row per sheet row, in sheet order, with the sheet's group and metadata
    assert [r["cell"] for r in table] == [r["cell"] for r in batch_run["rows"]]
    assert [r["group"] for r in table] == [r["group"] for r in batch_run["rows"]]
    assert [r["species"] for r in table] == [r["species"] for r in batch_run["rows"]]
    by_cell = {r["cell"]: r for r in table}
    assert {c: r["status"] for c, r in by_cell.items()} == {
        "171116sh_0018": "ok", "190619B_0003": "ok", "garbled": "failed", "missing": "failed",
        "2020_03_02_0000": "qc_failed", "drifted": "excluded"}

    # the reasons name the problem
    garbled = by_cell["garbled"]["reason"]
    assert garbled.startswith("stage passive: ") and str(folder / "garbled.abf") in garbled, garbled
    assert "cannot read" in garbled, garbled
    missing = by_cell["missing"]["reason"]
    assert missing.startswith("stage passive: nowhere/missing.abf: file not found (sheet line ") and \
        "column file; paths are relative to the sheet)" in missing, missing  # the same in any working directory
    assert "quality control" in by_cell["2020_03_02_0000"]["reason"]
    assert "pipette drift" in by_cell["drifted"]["reason"]
    assert by_cell["2020_03_02_0000"]["n_sweeps"] == "0"

    # fitted cells: every parameter (free ones and those taken from stage 1) finite, in its stage's bounds, and
    # in the table as in the result document; stage 2 took stage 1's C, gl, El exactly
    docs = {name: json.loads(data) for name, data in result_jsons(work).items()}
    for cell in GOOD:
        r = by_cell[cell]
        assert r["reason"] == "" and int(r["n_sweeps"]) > 0, r
        for stage in STAGES:
            doc, bounds = docs[f"{cell}/{stage}"], _bounds(stage)
            assert doc["status"] == "ok" and int(r[f"{stage}.n_fitted"]) == doc["n_fitted"] > 0, r
            assert set(doc["parameters"]) == set(bounds) | ({"C", "gl", "El"} if stage == "adex" else set())
            for p, value in doc["parameters"].items():
                low, high = bounds[p] if p in bounds else _bounds("passive")[p]
                assert math.isfinite(value) and low <= value <= high, (cell, stage, p, value)
                assert float(r[f"{stage}.{p}"]) == pytest.approx(value, rel=1e-9), (cell, stage, p)
            assert float(r[f"{stage}.train_error"]) >= 0 and float(r[f"{stage}.heldout_rmse"]) > 0, r
        assert float(r["passive.gl"]) > 0 and float(r["passive.C"]) > 0
        # the coincidence factor of the held-out spikes: 1 for identical trains, about 0 (possibly below) for chance
        assert math.isfinite(float(r["adex.heldout_gamma"])) and float(r["adex.heldout_gamma"]) <= 1, r
        passive, adex = docs[f"{cell}/passive"], docs[f"{cell}/adex"]
        for p in ("C", "gl", "El"):
            assert adex["parameters"][p] == passive["parameters"][p] == adex["fixed"][p], (cell, p)
            assert p not in adex["free"] and r[f"adex.{p}"] == r[f"passive.{p}"], (cell, p)

    # cells that were not fitted: every stage column empty, and a result + figure for every (cell, stage)
    for cell in ("garbled", "missing", "2020_03_02_0000", "drifted"):
        assert set(_stage_columns(by_cell[cell]).values()) == {""}, by_cell[cell]
    for cell in by_cell:
        for stage in STAGES:
            folder_ = study_results(work) / "cells" / cell / stage
            assert (folder_ / "result.json").is_file() and (folder_ / "traces.png").stat().st_size > 0, (cell, stage)
    assert (study_results(work) / "population" / "parameters.png").stat().st_size > 0


# --- two working directories, the same bytes ---------------------------------------------------------------

@pytest.mark.slow
def test_two_working_directories_give_the_same_bytes(batch_run, tmp_path):
    """A second run of the same config and sheet in another working directory writes the same result.json files
    and cells.csv, byte for byte (the missing file's reason names it relative to the sheet, not the folder)."""
    assert batch_run["status"] == 0, batch_run["out"]
    first = batch_run["work"]
    # the same sheet (its paths, relative to it, resolve to the same files), another working directory
    second = make_batch_workdir(tmp_path, None, sheet=batch_run["folder"] / "cells.tsv")
    status, out = run_snakemake(second, "--cores", "2")
    assert status == 0, out
    a, b = result_jsons(first), result_jsons(second)
    assert sorted(a) == sorted(b) and len(a) == 2 * len(batch_run["rows"])
    for name in a:
        assert a[name] == b[name], name
    assert table_lines(first) == table_lines(second)


@pytest.mark.slow
def test_a_missing_file_reason_names_no_working_directory(batch_run):
    assert batch_run["status"] == 0, batch_run["out"]
    reason = {r["cell"]: r["reason"] for r in read_table(batch_run["work"])}["missing"]
    assert str(batch_run["work"]) not in reason, reason


# --- adding, removing, editing a row -----------------------------------------------------------------------

@pytest.mark.slow
def test_adding_removing_and_editing_a_row_reruns_only_that_cell(tmp_path):
    rows = [row("171116sh_0018", ABF / "171116sh_0018.abf", heldout="3,12", group="regular_spiking", species="mouse"),
            row("190619B_0003", ABF / "190619B_0003.abf", heldout="1,6", group="unknown", species="rat")]
    work = make_batch_workdir(tmp_path, rows)
    sheet = tmp_path / "cells.tsv"
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    assert planned_jobs(work) == []
    before = result_stamps(work)
    assert len(before) == 2 * 3  # 2 cells: cell.json and 2 result.json each

    # adding a row: only the new cell's jobs, and the table
    new = row("18711001", ABF / "18711001.abf", heldout="8,20", group="adapting", species="mouse")
    write_sheet(sheet, rows + [new])
    assert jobs_by_rule(planned_jobs(work)) == {
        "prepare_cell": ["18711001"], "fit_cell": ["18711001/adex", "18711001/passive"], "population": [""],
        "all": [""]}
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    after = result_stamps(work)
    assert {k: v for k, v in after.items() if not k.startswith("18711001")} == before
    table = read_table(work)
    assert [r["cell"] for r in table] == ["171116sh_0018", "190619B_0003", "18711001"]
    assert table[-1]["status"] == "ok" and table[-1]["group"] == "adapting", table[-1]
    lines, fitted = table_lines(work), {r["cell"]: r for r in table}

    # removing a row: only the table is gathered again, without it; the other rows keep their bytes
    write_sheet(sheet, [rows[0], new])
    assert jobs_by_rule(planned_jobs(work)) == {"population": [""], "all": [""]}
    stamps = result_stamps(work)
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    assert result_stamps(work) == stamps
    assert table_lines(work) == {k: v for k, v in lines.items() if k != "190619B_0003"}

    # editing a row (its group): that cell's jobs only; its fit is the same, its group the new one
    edited = dict(new, group="fast_adapting")
    write_sheet(sheet, [rows[0], edited])
    assert jobs_by_rule(planned_jobs(work)) == {
        "prepare_cell": ["18711001"], "fit_cell": ["18711001/adex", "18711001/passive"], "population": [""],
        "all": [""]}
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    final = result_stamps(work)
    assert {k: v for k, v in final.items() if not k.startswith("18711001")} == \
        {k: v for k, v in stamps.items() if not k.startswith("18711001")}
    table = {r["cell"]: r for r in read_table(work)}
    assert list(table) == ["171116sh_0018", "18711001"]
    assert table["18711001"]["group"] == "fast_adapting"
    assert _stage_columns(table["18711001"]) == _stage_columns(fitted["18711001"])
    assert table_lines(work)["171116sh_0018"] == lines["171116sh_0018"]


# --- a malformed sheet -------------------------------------------------------------------------------------

def _good_rows():
    return [row("171116sh_0018", ABF / "171116sh_0018.abf"), row("190619B_0003", ABF / "190619B_0003.abf")]


def _stops_before_any_job(work, out):
    assert "Traceback" not in out and "Job stats" not in out and "rule " not in out, out
    assert not (work / "results").exists(), out


def test_a_duplicate_cell_id_stops_snakemake_with_one_line(tmp_path):
    rows = _good_rows() + [row("171116sh_0018", ABF / "18711001.abf")]
    work = make_batch_workdir(tmp_path, rows)
    sheet = tmp_path / "cells.tsv"
    status, out = run_snakemake(work, "-n", "--cores", "1")
    assert status != 0, out
    _stops_before_any_job(work, out)
    named = [line for line in out.splitlines() if str(sheet) in line]
    assert named == [f"config: {sheet} line 4: cell '171116sh_0018' is also on line 2"], out


def test_a_sheet_without_a_file_column_stops_snakemake_with_one_line(tmp_path):
    sheet = tmp_path / "cells.tsv"
    sheet.write_text("cell\tpath\tgroup\n171116sh_0018\t" + str(ABF / "171116sh_0018.abf") + "\tunknown\n")
    work = make_workdir(tmp_path, batch_config(sheet))
    status, out = run_snakemake(work, "-n", "--cores", "1")
    assert status != 0, out
    _stops_before_any_job(work, out)
    named = [line for line in out.splitlines() if str(sheet) in line]
    assert len(named) == 1 and named[0].startswith(f"config: {sheet}: no 'file' column"), out
    assert "columns: cell, path, group" in named[0], out
