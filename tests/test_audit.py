"""`neurofit audit`: results against their manifests, and one result re-run to the same numbers."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from neurofit.cli.auditor import AuditError, compare_files, select_job
from neurofit.cli.main import main
from neurofit.data.files import atomic_save_npz, sha256_file
from neurofit.workflow.provenance import read_manifest
from tiny_workflow import STUDY, results


def audit_cli(capsys, *argv):
    status = main(["audit", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- on workflow results ------------------------------------------------------------------------------

@pytest.mark.slow
def test_manifests_record_what_a_rerun_needs(tiny_reference):
    record = read_manifest(results(tiny_reference) / "fit" / "DE_1" / "fit.json")
    assert record["command"][:2] == ["neurofit", "fit"] and "--seed" in record["command"]
    assert record["cwd"] == str(tiny_reference) and record["seeds"] == {"fit": 1}
    assert record["config"]["fit"]["n_rounds"] == 20
    assert set(record["inputs"]) == {f"results/{STUDY}/study.yaml", f"results/{STUDY}/data.npz"}
    assert all(len(sha) == 64 for sha in record["inputs"].values())
    # the chain: each input's manifest, as it was when the fit was made
    assert record["input_manifests"] == {name: sha256_file(tiny_reference / f"{name}.manifest.json")
                                         for name in record["inputs"]}


@pytest.mark.slow
def test_audit_passes_on_a_fresh_run_and_reruns_the_cheapest_result(tiny_reference, capsys, monkeypatch):
    monkeypatch.chdir(tiny_reference)
    before = snapshot(tiny_reference / "results")
    status, lines, err = audit_cli(capsys, f"results/{STUDY}", "--rerun")
    assert status == 0, lines
    # the cheapest computing job of this study is the simulation (prepare and summarize do not count)
    assert lines[0] == f"ok: results/{STUDY}/simulate/traces.npz: " + lines[0].split(": ", 2)[2]
    assert "identical numbers" in lines[0] and lines[-1].endswith("-> OK") and len(lines) == 2, lines
    assert "re-running neurofit simulate" in err
    assert snapshot(tiny_reference / "results") == before  # the re-run wrote nothing into the results


@pytest.mark.slow
def test_audit_fails_on_an_edited_result_and_names_each_problem(tiny_reference, tmp_path, capsys, monkeypatch):
    # a reviewer's copy of the results (another folder: the manifests' paths are found relative to it)
    copy = tmp_path / "review"
    shutil.copytree(tiny_reference / "results", copy / "results")
    monkeypatch.chdir(copy)
    study = copy / "results" / STUDY
    status, lines, _ = audit_cli(capsys, study)
    assert status == 0, lines

    refined = study / "fit" / "DE_1" / "refined.json"
    doc = json.loads(refined.read_text())
    doc["mse"] *= 1 + 1e-12  # one number, changed in the last digits
    refined.write_text(json.dumps(doc, indent=2))
    (study / "notes.txt").write_text("a file nobody made")
    (study / "simulate" / "traces.npz").unlink()
    (study / "logs" / "extra.log").write_text("logs are not results")
    (study / "fit" / "DE_1" / "checkpoint.json").write_bytes(b"state of an unfinished fit: not a result")

    status, lines, _ = audit_cli(capsys, study, "--rerun", "fit/DE_1/refined.json")
    assert status == 1
    findings = [line.split(": ", 2) for line in lines[:-1]]
    kinds = {(kind, path) for kind, path, _ in findings}
    base = f"results/{STUDY}"
    assert kinds == {("no-manifest", f"{base}/notes.txt"), ("changed", f"{base}/fit/DE_1/refined.json"),
                     ("missing", f"{base}/simulate/traces.npz"), ("stale", f"{base}/summary/fits.csv"),
                     ("rerun-mismatch", f"{base}/fit/DE_1/refined.json")}, lines
    mismatch = [message for kind, _, message in findings if kind == "rerun-mismatch"]
    assert len(mismatch) == 1 and mismatch[0].startswith(f"mse: {doc['mse']!r} vs re-run "), mismatch
    assert lines[-1].endswith("-> FAIL") and "5 finding(s)" in lines[-1]


@pytest.mark.slow
def test_rerun_by_name_and_unknown_names(tiny_reference):
    study = results(tiny_reference)
    assert select_job(study, "DE_1").subcommand == "fit"
    assert select_job(study, "fit/DE_1/history.parquet").subcommand == "fit"
    assert select_job(study, "simulate").subcommand == "simulate"
    assert select_job(study, "summary/fits.csv").subcommand == "summarize"
    with pytest.raises(AuditError, match=r"--rerun XY_9: no result of that name under .* \(fits: DE_1; or 'cheapest'"):
        select_job(study, "XY_9")


def test_audit_of_a_missing_folder_is_a_user_error(tmp_path, capsys):
    status, lines, err = audit_cli(capsys, tmp_path / "nothing")
    assert status == 2 and "no such folder" in err and lines == []


def test_a_command_run_in_process_records_its_own_command_line(tmp_path, capsys, monkeypatch):
    """`cli.main([...])` inside another program (here pytest) records `neurofit <its arguments>`."""
    import yaml

    from tiny_workflow import tiny_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config()))
    argv = ["simulate", "--config", "c.yaml", "--study", STUDY, "--output", "out/sim.npz"]
    assert main(argv) == 0
    capsys.readouterr()
    record = read_manifest(tmp_path / "out" / "sim.npz")
    assert record["command"] == ["neurofit", *argv] and record["cwd"] == str(tmp_path)
    # ... which the audit can run again (config and data checked against their checksums)
    status, lines, _ = audit_cli(capsys, "out", "--rerun", "sim.npz")
    assert status == 0 and lines[0].startswith("ok: out/sim.npz: re-run of `neurofit simulate`"), lines


# --- comparing numbers ----------------------------------------------------------------------------------

def test_compare_json_ignores_run_times_only(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"x": [1.5, float("nan")], "wall_time_s": 1.0, "resumed_from_round": 0, "n": 3}))
    b.write_text(json.dumps({"x": [1.5, float("nan")], "wall_time_s": 9.0, "resumed_from_round": 4, "n": 3}))
    assert compare_files(a, b) == []
    b.write_text(json.dumps({"x": [1.5000000000000002, float("nan")], "wall_time_s": 1.0, "resumed_from_round": 0,
                             "n": 3}))
    assert compare_files(a, b) == ["x[0]: 1.5 vs re-run 1.5000000000000002"]
    b.write_text(json.dumps({"x": [1.5, float("nan")], "wall_time_s": 1.0, "resumed_from_round": 0, "n": 3.0}))
    assert compare_files(a, b) == ["n: 3 vs re-run 3.0"]


def test_compare_arrays_and_tables_exactly(tmp_path):
    x = np.linspace(0, 1, 50)
    atomic_save_npz(tmp_path / "a.npz", {"x": x, "y": np.array([np.nan, 1.0])})
    atomic_save_npz(tmp_path / "b.npz", {"x": x.copy(), "y": np.array([np.nan, 1.0])})
    assert compare_files(tmp_path / "a.npz", tmp_path / "b.npz") == []
    atomic_save_npz(tmp_path / "b.npz", {"x": x + np.where(np.arange(50) == 7, 1e-15, 0), "y": np.array([np.nan, 1.0])})
    assert compare_files(tmp_path / "a.npz", tmp_path / "b.npz") == [
        "x: 1 of 50 values differ (largest difference 9.99e-16)"]
    atomic_save_npz(tmp_path / "b.npz", {"x": x.astype(np.float32), "y": np.array([np.nan, 1.0])})
    assert compare_files(tmp_path / "a.npz", tmp_path / "b.npz") == [
        "x: dtype/shape float64[50] vs re-run float32[50]"]

    frame = pd.DataFrame({"p": x, "name": ["a"] * 50, "fit_wall_time_s": x})
    frame.to_parquet(tmp_path / "a.parquet")
    frame.assign(fit_wall_time_s=x + 1).to_parquet(tmp_path / "b.parquet")
    assert compare_files(tmp_path / "a.parquet", tmp_path / "b.parquet") == []
    frame.assign(p=x * (1 + 1e-16) + 1e-17).to_csv(tmp_path / "b.csv", index=False)
    frame.to_csv(tmp_path / "a.csv", index=False)
    assert compare_files(tmp_path / "a.csv", tmp_path / "b.csv")[0].startswith("column p: ")
