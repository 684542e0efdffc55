"""`neurofit audit` trusts nothing in the folder it audits, and has no blind spots.

Class 2 (the re-run): a manifest's command is parsed by neurofit's own parser and rebuilt; another program,
`audit` itself, an unknown subcommand or option, and a path outside the audited folder are refused before
anything runs; a re-run that would never end is stopped at --timeout with all its processes; SIGTERM or
SIGINT to the audit leave no process and no temporary folder.
Class 8 (the checks): deleted outputs, an empty folder, a result rewritten together with its manifest and an
edited manifest command are all failing findings.

The results are built in-process (`neurofit prepare` and `simulate`, a few seconds), not by Snakemake: the
study's fit section asks for 10**9 rounds, and fit/DE_1/fit.json is a stand-in whose manifest records the
`neurofit fit` command that would compute it (forever: the wall-time bait).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from neurofit.cli.auditor import PATH_OPTIONS, RERUNNABLE, VALUE_OPTIONS, _subparsers, command_parser
from neurofit.cli.main import main
from neurofit.workflow.provenance import manifest_path, write_manifest
from tiny_workflow import STUDY, tiny_config

BASE = f"results/{STUDY}"
FIT = f"{BASE}/fit/DE_1/fit.json"
FIT_COMMAND = ["neurofit", "fit", "--config", f"{BASE}/study.yaml", "--study", STUDY, "--optimizer", "DE", "--seed",
               "1", "--data", f"{BASE}/data.npz", "--output", FIT, "--history", f"{BASE}/fit/DE_1/history.parquet"]
SIMULATE = ["neurofit", "simulate", "--config", f"{BASE}/study.yaml", "--study", STUDY, "--data", f"{BASE}/data.npz"]
KINDS = ("changed", "missing", "no-manifest", "stale", "rerun-mismatch", "rerun-failed", "rerun-refused", "note", "ok")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A working directory with results/tiny: study.yaml, data.npz, simulate/traces.npz (made by neurofit) and
    fit/DE_1/fit.json (a stand-in; its manifest records a fit of 10**9 rounds)."""
    work = tmp_path_factory.mktemp("built")
    (work / "config.yaml").write_text(yaml.safe_dump(tiny_config(n_rounds=10**9)))
    previous = os.getcwd()
    os.chdir(work)
    try:
        assert main(["prepare", "--config", "config.yaml", "--study", STUDY, "--output-config", f"{BASE}/study.yaml",
                     "--output-data", f"{BASE}/data.npz"]) == 0
        assert main([*SIMULATE[1:], "--output", f"{BASE}/simulate/traces.npz"]) == 0
        Path(FIT).parent.mkdir(parents=True)
        Path(FIT).write_text("{}")
        write_manifest(FIT, command=FIT_COMMAND, study=STUDY, inputs=[f"{BASE}/study.yaml", f"{BASE}/data.npz"])
    finally:
        os.chdir(previous)
    return work


@pytest.fixture
def work(built, tmp_path, monkeypatch):
    """A copy of the built working directory (the current directory), with temporary folders in tmp/."""
    copy = tmp_path / "work"
    shutil.copytree(built, copy, symlinks=True)
    monkeypatch.chdir(copy)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return copy


def audit_cli(capsys, *argv):
    """Exit status and the stdout lines of `neurofit audit ARGV`; every line is one finding or the summary."""
    status = main(["audit", *map(str, argv)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("audit ") and all(line.split(": ", 1)[0] in KINDS for line in lines[:-1]), lines
    return status, lines


def set_command(output, command):
    path = manifest_path(output)
    record = json.loads(path.read_text())
    record["command"] = command
    path.write_text(json.dumps(record, indent=2))


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def session_members(sid: int) -> list[int]:
    """Processes of the session ``sid`` (field 6 of /proc/PID/stat)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def files_outside(root: Path, tree: Path) -> list[Path]:
    """Files under ``root`` that are not under ``tree`` (the copy of the working directory)."""
    return [p for p in root.rglob("*") if p.is_file() and tree not in p.parents]


# --- class 2: the re-run runs only a neurofit step, inside the folder ----------------------------------------

def test_every_option_of_a_rerunnable_command_is_classified():
    """Each option of the commands a re-run may run is a path (checked) or a value; `audit` is not one."""
    subcommands = _subparsers(command_parser())
    assert "audit" not in RERUNNABLE and set(RERUNNABLE) <= set(subcommands)
    for name in RERUNNABLE:
        dests = {a.dest for a in subcommands[name]._actions} - {"help"}
        assert dests <= set(PATH_OPTIONS) | set(VALUE_OPTIONS), (name, dests - set(PATH_OPTIONS) - set(VALUE_OPTIONS))


@pytest.mark.parametrize("command, refusal", [
    (["neurofit", "audit", BASE, "--rerun"], "`neurofit audit` is not a command the audit runs"),
    (["neurofit", "shell", "-c", "touch escape.json"], "invalid choice: 'shell'"),
    (["python", "-c", "open('../../escape.json', 'w')"], "not a neurofit command line"),
    ([*SIMULATE, "--output", "../../escape.json"], "argument --output ../../escape.json: outside "),
    ([*SIMULATE, "--out", "../../escape.json"], "argument --output ../../escape.json: outside "),
    ([*SIMULATE, "--output", "../../escape.json\nok: results/tiny/simulate/traces.npz: forged"],
     "argument --output ../../escape.json ok: results/tiny/simulate/traces.npz: forged: outside "),
    ([*SIMULATE, "--output", f"{BASE}/simulate/traces.npz", "--help"], "asks for a message and an exit"),
])
def test_a_tampered_command_is_refused_and_runs_nothing(work, tmp_path, capsys, command, refusal):
    set_command(f"{BASE}/simulate/traces.npz", command)
    status, lines = audit_cli(capsys, BASE, "--rerun", "simulate/traces.npz")
    assert status == 1
    manifest = f"{BASE}/simulate/traces.npz.manifest.json"
    refused = [line for line in lines if line.startswith(f"rerun-refused: {manifest}: not re-run: ")]
    assert len(refused) == 1 and refusal in refused[0], lines
    # the same command, found without a re-run
    assert any(line.startswith(f"changed: {manifest}: records a command neurofit would not re-run: ") and refusal in line
               for line in lines), lines
    assert not any(line.startswith("ok:") for line in lines)
    assert files_outside(tmp_path, work) == []  # no escape.json, and no temporary folder left


@pytest.mark.parametrize("escape", ["absolute", "relative", "symlinked folder", "symlinked output"])
def test_a_path_outside_the_folder_is_refused(work, tmp_path, capsys, escape):
    outside = tmp_path / "outside"
    outside.mkdir()
    if escape == "absolute":
        set_command(f"{BASE}/simulate/traces.npz", [*SIMULATE, f"--output={outside / 'escape.npz'}"])
        shown = f"argument --output {outside / 'escape.npz'}: outside "
    elif escape == "relative":
        set_command(f"{BASE}/simulate/traces.npz", [*SIMULATE, "--output", f"{BASE}/../../../outside/escape.npz"])
        shown = f"argument --output {BASE}/../../../outside/escape.npz: outside "
    elif escape == "symlinked folder":
        os.symlink(outside, f"{BASE}/link")
        set_command(f"{BASE}/simulate/traces.npz", [*SIMULATE, "--output", f"{BASE}/link/escape.npz"])
        shown = f"argument --output {BASE}/link/escape.npz: leads out of "
    else:
        os.replace(f"{BASE}/simulate/traces.npz", outside / "traces.npz")
        os.symlink(outside / "traces.npz", f"{BASE}/simulate/traces.npz")
        shown = f"argument --output {BASE}/simulate/traces.npz: leads out of "
    before = sorted(outside.iterdir())
    status, lines = audit_cli(capsys, BASE, "--rerun", "simulate/traces.npz")
    assert status == 1
    refused = [line for line in lines if line.startswith("rerun-refused: ")]
    assert len(refused) == 1 and shown in refused[0], lines
    assert sorted(outside.iterdir()) == before
    assert files_outside(tmp_path, work) == before  # nothing but what was there, no temporary folder


def test_a_rerun_that_would_never_end_is_stopped_with_all_its_processes(work, tmp_path, capsys):
    start = time.monotonic()
    status, lines = audit_cli(capsys, BASE, "--rerun", "DE_1", "--timeout", "4")
    assert status == 1 and time.monotonic() - start < 60
    assert lines[:-1] == [f"rerun-failed: {FIT}: `neurofit fit ...` did not finish within 4 s (--timeout); stopped "
                          f"with its child processes"], lines
    assert processes_mentioning(str(tmp_path / "tmp")) == []
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)])
def test_a_signal_to_the_audit_leaves_no_process_and_no_temporary_folder(work, tmp_path, signum, status):
    temporary = tmp_path / "tmp"
    env = {**os.environ, "TMPDIR": str(temporary)}
    audit = subprocess.Popen([sys.executable, "-m", "neurofit", "audit", BASE, "--rerun", "DE_1"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (children := processes_mentioning(str(temporary))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children, "the re-run did not start"
        sid = int((Path("/proc") / str(children[0]) / "stat").read_text().rsplit(")", 1)[1].split()[3])
        assert sid != os.getsid(0) and sid == children[0]  # the re-run leads a session of its own
        time.sleep(1.0)
        audit.send_signal(signum)
        out, err = audit.communicate(timeout=30)
    finally:
        if audit.poll() is None:
            audit.kill()
            audit.wait()
    assert audit.returncode == status, (out, err)
    deadline = time.monotonic() + 10
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_members(sid) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(sid, 0)
    assert list(temporary.iterdir()) == []


# --- class 8: no blind spots ---------------------------------------------------------------------------------

def test_a_fresh_folder_passes(work, capsys):
    status, lines = audit_cli(capsys, BASE)
    assert status == 0 and len(lines) == 1, lines


def test_deleted_outputs_fail(work, capsys):
    os.remove(f"{BASE}/simulate/traces.npz")  # its manifest stays
    os.remove(f"{BASE}/data.npz")  # an input of the others, deleted with its manifest
    os.remove(f"{BASE}/data.npz.manifest.json")
    status, lines = audit_cli(capsys, BASE)
    assert status == 1
    assert sorted(lines[:-1]) == sorted([
        f"missing: {BASE}/simulate/traces.npz: its manifest exists but the file does not",
        f"stale: {FIT}: input {BASE}/data.npz not found"]), lines


@pytest.mark.parametrize("content", ["nothing", "logs only"])
def test_a_folder_without_manifests_fails(tmp_path, capsys, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    if content == "logs only":
        (tmp_path / "empty" / "logs").mkdir()
        (tmp_path / "empty" / "logs" / "fit.log").write_text("logs are not results")
    status, lines = audit_cli(capsys, "empty")
    assert status == 1 and lines[:-1] == ["missing: empty: no manifest in this folder: no result to audit"], lines


def test_a_result_rewritten_with_its_manifest_fails_downstream(work, capsys):
    import numpy as np

    with np.load(f"{BASE}/data.npz") as arrays:
        forged = {key: arrays[key] for key in arrays.files}
    key = next(k for k, v in forged.items() if v.dtype.kind == "f")
    forged[key] = forged[key] * 1.01
    np.savez(f"{BASE}/data.npz", **forged)
    record = json.loads(manifest_path(f"{BASE}/data.npz").read_text())
    write_manifest(f"{BASE}/data.npz", command=record["command"], study=STUDY, inputs=list(record["inputs"]))
    status, lines = audit_cli(capsys, BASE)
    assert status == 1
    for result in (f"{BASE}/simulate/traces.npz", FIT):
        assert f"stale: {result}: the manifest of input {BASE}/data.npz has changed since this result was made " \
               f"(re-made, or rewritten)" in lines, lines
        assert any(line.startswith(f"stale: {result}: input {BASE}/data.npz has changed") for line in lines), lines
    assert not any(f": {BASE}/data.npz: " in line for line in lines)  # the forgery itself is consistent


def test_an_edited_manifest_command_fails(work, capsys):
    # upstream: a valid command, another study; shows in every result made from study.yaml
    record = json.loads(manifest_path(f"{BASE}/study.yaml").read_text())
    set_command(f"{BASE}/study.yaml", [c if c != STUDY else "other" for c in record["command"]])
    # a result nothing is made from: a command that is not a neurofit step
    set_command(FIT, ["neurofit", "audit", BASE])
    status, lines = audit_cli(capsys, BASE)
    assert status == 1
    for result in (f"{BASE}/simulate/traces.npz", FIT):
        assert f"stale: {result}: the manifest of input {BASE}/study.yaml has changed since this result was made " \
               f"(re-made, or rewritten)" in lines, lines
    assert f"changed: {FIT}.manifest.json: records a command neurofit would not re-run: `neurofit audit` is not a " \
           f"command the audit runs (only {', '.join(RERUNNABLE)})" in lines, lines
