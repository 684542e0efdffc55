"""Batch studies (neurofit.workflow.batch, cell_stage, population): stages over the cells of a sample sheet.

The workflow-level behaviour (failure isolation, re-running only a new cell, local vs SLURM) is in
test_batch_workflow.py; here the pieces: the checks of a batch study (one line naming the key), what a stage
takes from an earlier one, the sweeps a (cell, stage) fits and holds out, the status of every kind of cell,
the population table, and passive fits of the shared real cells against their input resistance measured
directly with pyabf.
"""
import copy
import math
from pathlib import Path

import numpy as np
import pyabf
import pytest
import yaml

from neurofit import read_recording
from neurofit.errors import ConfigError
from neurofit.workflow.batch import BatchStudy, row_fingerprint
from neurofit.workflow.cell_stage import run_cell_stage
from neurofit.workflow.population import population_table, read_result, table_bytes
from neurofit.workflow.sheet import Cell, read_sheet
from neurofit.workflow.study import Study

ROOT = Path(__file__).resolve().parents[1]
REC = ROOT / "data" / "recordings"
EXAMPLE = ROOT / "config" / "examples" / "cells" / "config.yaml"


def example_section(**changes) -> dict:
    """The example's study section with its sheet made absolute and ``changes`` applied (key -> value)."""
    section = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["studies"]["cells_example"])
    section["sheet"] = str(ROOT / section["sheet"])
    section.update(changes)
    return section


def batch(section: dict | None = None) -> BatchStudy:
    return BatchStudy(Study.from_config({"studies": {"cells": section or example_section()}}, "cells"))


def quick(section: dict) -> dict:
    """Fewer candidates and rounds in every stage (the tests check statuses and hand-offs, not accuracy)."""
    for stage in section["stages"]:
        stage["fit"].update(n_samples=8, n_rounds=3)
        stage["fit"]["refine"] = {"enabled": False}
    return section


def cell(tmp_path, name="c1", files=(REC / "abf" / "171116sh_0018.abf",), **fields) -> Cell:
    values = dict(cell=name, files=[str(f) for f in files], current_files=[], sweeps=None, heldout=[], group="",
                  ljp=None, exclude="", metadata={}, line=2)
    values.update(fields)
    return Cell(**values)


# --- the checks of a batch study -----------------------------------------------------------------------------

def stage_change(index, **changes):
    section = example_section()
    section["stages"][index].update(changes)
    return section


@pytest.mark.parametrize("section, message", [
    (example_section(model={"builtin": "passive"}),
     "studies.cells.model: a batch study (sheet) gives its model in each of its stages"),
    (example_section(data={"dt": "0.1 ms", "recording": {"path": "x.abf"}}),
     "studies.cells.data.recording.path: comes from the sample sheet in a batch study (column file)"),
    (example_section(data={"dt": "0.1 ms", "recording": {"ljp": "14 mV"}}),
     "studies.cells.data.recording.ljp: comes from the sample sheet in a batch study (column ljp)"),
    (stage_change(1, name="passive"), "studies.cells.stages.1.name: 'passive' names two stages"),
    (stage_change(1, **{"from": {"stage": "adex", "fixed": ["C"]}}),
     "studies.cells.stages.1.from.stage: 'adex' is not an earlier stage (earlier: passive)"),
    (stage_change(0, **{"from": {"stage": "adex"}}),
     "studies.cells.stages.0.from.stage: 'adex' is not an earlier stage (earlier: none - this is the first stage)"),
    (stage_change(1, **{"from": {"stage": "passive", "fixed": ["tau_w"]}}),
     "studies.cells.stages.1.from.fixed: tau_w is not a parameter of stage 'passive'"),
    (stage_change(1, **{"from": {"stage": "passive", "fixed": ["gL"]}}),
     "studies.cells.stages.1.from.fixed: gL is not a parameter of this stage's model"),
    (stage_change(1, **{"from": {"stage": "passive", "centred": {"gl": 0.5}}}),
     "studies.cells.stages.1.from.centred.gl = 0.5: a factor must be above 1"),
    (stage_change(1, **{"from": {"stage": "passive", "centred": {"El": "5 nS"}}}),
     "studies.cells.stages.1.from.centred.El = '5 nS': has units of siemens, expected volt"),
    (stage_change(1, **{"from": {"stage": "passive", "fixed": ["C"], "centred": {"C": 2}}}),
     "studies.cells.stages.1.from: C is both fixed and centred"),
    (stage_change(1, **{"from": {"stage": "passive", "centred": {"El": 2}}}),
     "is not positive; a factor cannot centre the search on it"),
    (stage_change(0, fit={"bounds": {"gl": ["1 nS", "10 nS"], "Cm": ["1 pF", "2 pF"]}}),
     "studies.cells.stages.0.fit.bounds.Cm: not a parameter of the model"),
])
def test_a_batch_study_is_checked_before_any_cell_with_one_line(section, message):
    with pytest.raises(ConfigError) as err:
        batch(section)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_schema_wants_stages_with_a_sheet_and_no_sheet_keys_outside_it():
    section = example_section()
    del section["stages"]
    with pytest.raises(ConfigError, match=r"studies\.cells\.stages: missing \(required with sheet\)"):
        batch(section)
    one = {"model": {"builtin": "passive"}, "data": {"dt": "0.1 ms", "recording": {}}}
    with pytest.raises(ConfigError, match=r"studies\.one\.data\.recording\.path: missing \(required\)"):
        Study.from_config({"studies": {"one": one}}, "one")


# --- what a stage takes from an earlier one ------------------------------------------------------------------

PASSIVE_RESULT = {"status": "ok", "parameters": {"C": 1.5e-10, "gl": 7.5e-9, "El": -0.0605}}


def test_fixed_values_are_the_earlier_stages_exactly_and_centred_bounds_surround_them(tmp_path):
    section = example_section()
    section["stages"][1]["from"] = {"stage": "passive", "fixed": ["C", "El"], "centred": {"gl": 2}}
    study = batch(section).cell_study(cell(tmp_path), "adex", [6, 8], {"passive": PASSIVE_RESULT})
    fit = study.section["fit"]
    assert fit["fixed"] == {"C": 1.5e-10, "El": -0.0605}
    assert fit["bounds"]["gl"] == [pytest.approx(3.75e-9), pytest.approx(1.5e-8), "log"]
    section["stages"][1]["from"] = {"stage": "passive", "fixed": ["C", "gl"], "centred": {"El": "4 mV"}}
    fit = batch(section).cell_study(cell(tmp_path), "adex", [6], {"passive": PASSIVE_RESULT}).section["fit"]
    assert fit["bounds"]["El"] == [pytest.approx(-0.0645), pytest.approx(-0.0565)] and "El" not in fit["fixed"]
    assert study.section["data"]["recording"]["sweeps"] == [6, 8]


def test_a_stage_without_its_earlier_result_says_so(tmp_path):
    with pytest.raises(ConfigError, match="stage adex: stage passive has no result to take parameters from"):
        batch().cell_study(cell(tmp_path), "adex", [6], {"passive": {"status": "failed"}})


# --- the sweeps of a (cell, stage) ---------------------------------------------------------------------------

def test_fitted_and_heldout_sweeps_follow_the_stage_selector_and_the_sheet(tmp_path):
    recording = read_recording(REC / "abf" / "171116sh_0018.abf")
    plan = batch()
    from neurofit.data.recordings.selection import select_sweeps

    passive = select_sweeps(recording, plan.stage("passive")["sweeps"])
    spiking = select_sweeps(recording, "suprathreshold")
    assert passive and spiking and spiking[-1] not in passive  # the strongest step is not a passive sweep
    both = [i for i in passive if i in spiking]  # spiking sweeps cut before their first spike
    assert both
    fitted, heldout = plan.split_sweeps(cell(tmp_path, heldout=[passive[1], spiking[-1]]), "passive", recording)
    assert heldout == [passive[1]] and fitted == [i for i in passive if i != passive[1]]
    fitted, heldout = plan.split_sweeps(cell(tmp_path, heldout=[passive[1], spiking[-1]]), "adex", recording)
    assert heldout == [spiking[-1]] and fitted == spiking[:-1]
    narrowed = cell(tmp_path, sweeps=[passive[0], spiking[-1]])
    assert plan.split_sweeps(narrowed, "passive", recording) == ([passive[0]], [])
    assert plan.split_sweeps(narrowed, "adex", recording) == ([spiking[-1]], [])
    with pytest.raises(ConfigError, match="stage adex: no sweep of cell c1 left to fit"):
        plan.split_sweeps(cell(tmp_path, sweeps=[passive[0]]), "adex", recording)


def test_a_row_fingerprint_changes_with_its_row_only(tmp_path):
    a, b = cell(tmp_path), cell(tmp_path, group="FS")
    assert row_fingerprint(a) == row_fingerprint(cell(tmp_path)) != row_fingerprint(b)
    assert Cell.from_dict(a.as_dict()) == a
    shown = a.as_dict(relative_to=ROOT)
    assert shown["files"] == ["data/recordings/abf/171116sh_0018.abf"]


# --- every kind of cell gets a status ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_batch():
    return batch(quick(example_section()))


def test_an_excluded_cell_is_not_read(quick_batch, tmp_path):
    run = run_cell_stage(quick_batch, cell(tmp_path, files=[tmp_path / "absent.abf"], exclude="seal lost"),
                         "passive", tmp_path)
    assert (run.doc["status"], run.doc["reason"]) == ("excluded", "seal lost")


def test_unreadable_and_missing_files_fail_their_cell_with_the_file_named(quick_batch, tmp_path):
    bad = tmp_path / "broken.abf"
    bad.write_text("not an ABF file\n")
    run = run_cell_stage(quick_batch, cell(tmp_path, files=[bad]), "passive", tmp_path)
    assert run.doc["status"] == "failed" and str(bad) in run.doc["reason"] and "\n" not in run.doc["reason"]
    run = run_cell_stage(quick_batch, cell(tmp_path, files=[tmp_path / "absent.abf"]), "passive", tmp_path)
    assert run.doc["status"] == "failed" and "absent.abf: file not found" in run.doc["reason"]


def test_a_recording_failing_quality_control_is_qc_failed(quick_batch, tmp_path):
    path = REC / "abf" / "2020_03_02_0000.abf"
    run = run_cell_stage(quick_batch, cell(tmp_path, files=[path]), "passive", tmp_path)
    n = pyabf.ABF(str(path), loadData=False).sweepCount
    assert run.doc["status"] == "qc_failed" and run.doc["n_sweeps"] == 0
    assert run.doc["reason"].startswith(f"no sweep passes quality control ({n} sweeps; e.g. sweep 0: ")


def test_a_later_stage_carries_an_earlier_failure(quick_batch, tmp_path):
    earlier = {"passive": {"stage": "passive", "status": "qc_failed", "reason": "no sweep passes", "n_sweeps": 0}}
    run = run_cell_stage(quick_batch, cell(tmp_path), "adex", tmp_path, earlier)
    assert (run.doc["status"], run.doc["reason"]) == ("qc_failed", "stage passive: no sweep passes")


def test_a_bug_fails_its_cell_with_its_type_named(quick_batch, tmp_path, monkeypatch):
    import neurofit.workflow.cell_stage as cell_stage

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cell_stage, "run_fit", broken)
    lines = []
    run = run_cell_stage(quick_batch, cell(tmp_path), "passive", tmp_path, log=lines.append)
    assert run.doc["status"] == "failed"
    assert run.doc["reason"] == "internal error (ZeroDivisionError: boom); see the job's log"
    assert any("Traceback" in line for line in lines)


def test_stage_two_fits_with_stage_ones_values_fixed_and_validates_on_heldout_spikes(quick_batch, tmp_path):
    c = cell(tmp_path, heldout=[3, 12])
    first = run_cell_stage(quick_batch, c, "passive", tmp_path / "passive")
    assert first.doc["status"] == "ok" and 3 in first.doc["heldout"] and 12 not in first.doc["heldout"]
    second = run_cell_stage(quick_batch, c, "adex", tmp_path / "adex", {"passive": first.doc})
    doc = second.doc
    assert doc["status"] == "ok" and doc["heldout"] == [12]
    assert doc["fixed"] == first.doc["parameters"]  # C, gl, El: the same floats
    assert {p: doc["parameters"][p] for p in ("C", "gl", "El")} == first.doc["parameters"]
    assert set(doc["free"]) == {"VT", "DeltaT", "a", "tau_w", "b", "Vr"}
    # held-out validation of a spiking model: every number present and in its range
    assert doc["heldout_rmse"] > 0 and doc["heldout_count_error"] >= 0 and -1 <= doc["heldout_gamma"] <= 1
    recorded = pyabf.ABF(str(REC / "abf" / "171116sh_0018.abf"))
    recorded.setSweep(12)
    assert np.max(recorded.sweepY) > 0  # sweep 12 spikes: a held-out spike count is meaningful
    assert (tmp_path / "adex" / "fit" / "DE_1" / "fit.json").is_file()


# --- the population table ------------------------------------------------------------------------------------

def result(cell_id, stage, status="ok", **fields):
    doc = {"format": "neurofit.cell_stage", "version": 1, "study": "s", "cell": cell_id, "stage": stage,
           "group": "RS", "metadata": {"age": "P21"}, "status": status, "reason": fields.pop("reason", ""),
           "n_sweeps": 12}
    if status == "ok":
        doc.update(n_fitted=5, parameters={"gl": 5e-9, "C": 1e-10}, train_error=1e-6, train_rmse=1e-3,
                   train_count_error=None, train_gamma=None, heldout_rmse=2e-3, heldout_count_error=None,
                   heldout_gamma=None)
    doc.update(fields)
    return doc


def test_the_population_table_has_a_row_per_cell_and_the_first_failing_stage_decides():
    docs = [result("a", "passive"), result("a", "adex", parameters={"VT": -0.05}),
            result("b", "passive", "qc_failed", reason="no sweep passes quality control"),
            result("b", "adex", "qc_failed", reason="stage passive: no sweep passes quality control"),
            result("c", "passive", "excluded", reason="seal"), result("c", "adex", "excluded", reason="seal"),
            result("d", "passive"), result("d", "adex", "failed", reason="no sweep of cell d left to fit")]
    table = population_table(docs, ["passive", "adex"])
    assert list(table["cell"]) == ["a", "b", "c", "d"]
    assert list(table["status"]) == ["ok", "qc_failed", "excluded", "failed"]
    assert list(table["reason"]) == ["", "stage passive: no sweep passes quality control",
                                     "excluded in the sheet: seal", "stage adex: no sweep of cell d left to fit"]
    assert list(table.columns[:6]) == ["cell", "group", "status", "reason", "n_sweeps", "age"]
    assert {"passive.gl", "passive.C", "passive.train_error", "passive.heldout_gamma", "adex.VT",
            "adex.n_fitted"} <= set(table.columns)
    assert table.loc[0, "passive.gl"] == 5e-9 and math.isnan(table.loc[1, "passive.gl"])
    assert table.loc[3, "passive.gl"] == 5e-9 and math.isnan(table.loc[3, "adex.VT"])  # stage 1 kept
    text = table_bytes(table).decode()
    assert text.splitlines()[1].startswith("a,RS,ok,,12,P21,5,5e-09,1e-10,1e-06,0.001,,,,0.002,,,")
    assert table_bytes(population_table(list(reversed(docs[:2])) + docs[2:], ["passive", "adex"])) == \
        table_bytes(table)  # the order of the result files does not matter within a cell


def test_a_missing_stage_result_and_a_foreign_file_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="cell a: no result of stage adex"):
        population_table([result("a", "passive")], ["passive", "adex"])
    path = tmp_path / "result.json"
    path.write_text('{"format": "neurofit.fit"}')
    with pytest.raises(ConfigError, match="not a cell-stage result"):
        read_result(path)


# --- real cells: the passive stage against the input resistance measured directly ----------------------------

def direct_input_resistance(path: Path) -> list:
    """dV/dI of every non-spiking sweep with a current step, read with pyabf directly: the potential over the
    last 50 ms of the step minus the one before the first change of the command, over the same difference of
    the command current (Ohm)."""
    abf = pyabf.ABF(str(path))
    values = []
    for sweep in abf.sweepList:
        abf.setSweep(sweep)
        v, i, dt = abf.sweepY * 1e-3, abf.sweepC * 1e-12, 1 / abf.sampleRate
        if np.any((v[1:] >= 0) & (v[:-1] < 0)):
            continue  # spikes
        changes = np.flatnonzero(np.abs(np.diff(i)) > 1e-13)
        if changes.size == 0:
            continue
        start, n = changes[0] + 1, int(0.05 / dt)
        levels = np.split(np.arange(i.size), changes + 1)
        step = max(levels, key=lambda idx: (abs(i[idx[0]] - i[0]) > 1e-13) * idx.size)  # the longest step
        end = step[-1] + 1
        di = i[end - n:end].mean() - i[max(0, start - n):start].mean()
        if abs(di) < 1e-12:
            continue
        values.append((v[end - n:end].mean() - v[max(0, start - n):start].mean()) / di)
    return values


@pytest.mark.slow
@pytest.mark.parametrize("name", ["171116sh_0018", "18711001", "190619B_0003"])
def test_passive_input_resistance_of_real_cells_lies_within_the_direct_measurements(name, tmp_path):
    cells = {c.cell: c for c in read_sheet(ROOT / "config" / "examples" / "cells" / "cells.tsv")}
    run = run_cell_stage(batch(), cells[name], "passive", tmp_path)
    assert run.doc["status"] == "ok", run.doc["reason"]
    direct = direct_input_resistance(REC / "abf" / f"{name}.abf")
    assert len(direct) >= 3
    fitted = 1 / run.doc["parameters"]["gl"]
    assert min(direct) <= fitted <= max(direct), (fitted, direct)
    tau = run.doc["parameters"]["C"] / run.doc["parameters"]["gl"]
    assert 5e-3 < tau < 60e-3  # membrane time constant of a cortical neuron
    assert run.doc["train_rmse"] < 3e-3  # within 3 mV of every fitted sample


# --- an infer stage: a posterior per cell ---------------------------------------------------------------------

@pytest.mark.slow
def test_an_infer_stage_gives_each_cell_a_posterior_and_a_misspecification_verdict(tmp_path):
    section = yaml.safe_load((ROOT / "config" / "examples" / "cells" / "sbi.yaml").read_text())["studies"]["cells_sbi"]
    section["sheet"] = str(ROOT / section["sheet"])
    section["stages"][0]["infer"]["n_samples"] = 600
    plan = BatchStudy(Study.from_config({"studies": {"sbi": section}}, "sbi"))
    cells = {c.cell: c for c in read_sheet(section["sheet"])}
    run = run_cell_stage(plan, cells["190619B_0003"], "passive", tmp_path / "190619B_0003")
    doc = run.doc
    assert doc["status"] == "ok", doc["reason"]
    assert set(doc["quantiles"]) == {"gl", "El", "C"} and doc["metric"] == "posterior"
    for p, q in doc["quantiles"].items():
        assert q["q05"] < q["q50"] < q["q95"] and q["q05"] <= doc["parameters"][p] <= q["q95"], p
    assert isinstance(doc["misspecified"], bool) and 0 < doc["misspecification_p"] <= 1
    assert (tmp_path / "190619B_0003" / "infer" / "posterior.pt").is_file()
    assert doc["noise"]["v"]["estimated"] and 0 < doc["noise"]["v"]["sd"] < 1e-3  # from the cell's own baseline
    # the Igor cell has no hyperpolarising step: its stage fails with the reason, the table says so
    igor = run_cell_stage(plan, cells["B6"], "passive", tmp_path / "B6").doc
    assert igor["status"] == "failed" and "no sweep" in igor["reason"]
    table = population_table([doc, igor], ["passive"])
    assert {"passive.gl.q05", "passive.gl.q95", "passive.misspecified", "passive.misspecification_p"} <= \
        set(table.columns)
    assert table.loc[0, "passive.gl.q05"] == doc["quantiles"]["gl"]["q05"] and table.loc[1, "status"] == "failed"
