"""Reproducible and robust runs: the same config gives the same bytes; a killed workflow resumes without
recomputing finished jobs and ends with the numbers of an uninterrupted run; parallel jobs share the
compiled-kernel cache without colliding."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurofit.cli.auditor import audit, result_files
from neurofit.workflow.provenance import MANIFEST_SUFFIX
from tiny_workflow import NUMERIC_OUTPUTS, make_workdir, numeric_differences, results, run_snakemake, snakemake_command

# --- the same config and seeds, run twice -------------------------------------------------------------

@pytest.mark.slow
def test_same_config_and_seeds_give_byte_identical_numbers(tiny_reference, tmp_path):
    """A second, independent run (in another folder) writes the same numbers: NPZ, Parquet and YAML byte
    for byte, JSON and CSV in every number (only run times differ). (The kill-and-resume run below, on one
    core, and the SLURM run in test_slurm.py are compared with the same reference.)"""
    work = make_workdir(tmp_path)
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    # NUMERIC_OUTPUTS is every result of the study (audit.result_files: all but logs, benchmarks, manifests)
    assert {str(p.relative_to(results(work))) for p in result_files(results(work))} == set(NUMERIC_OUTPUTS)
    assert numeric_differences(results(tiny_reference), results(work)) == {}
    # the run times really are the only difference in the JSON results
    a = (results(tiny_reference) / "fit/DE_1/refined.json").read_text()
    b = (results(work) / "fit/DE_1/refined.json").read_text()
    strip = [line for line in a.splitlines() if "wall_time" not in line]
    assert strip == [line for line in b.splitlines() if "wall_time" not in line]


# --- kill -9 the whole workflow mid-fit, then resume ----------------------------------------------------

def _completed_outputs(folder: Path) -> dict:
    """output -> (mtime_ns, manifest text) of every result with a manifest, the fit's folder aside."""
    found = {}
    for manifest in folder.rglob(f"*{MANIFEST_SUFFIX}"):
        output = manifest.with_name(manifest.name[: -len(MANIFEST_SUFFIX)])
        if "fit" in output.relative_to(folder).parts[:1] or not output.is_file():
            continue
        found[str(output.relative_to(folder))] = (output.stat().st_mtime_ns, manifest.read_text())
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_killed_workflow_resumes_without_recomputing_and_ends_with_the_same_numbers(tiny_reference, tmp_path):
    work = make_workdir(tmp_path)
    study = results(work)
    checkpoint = study / "fit" / "DE_1" / "checkpoint.json"
    log = open(tmp_path / "first.log", "w")
    # one core: jobs run one at a time, so every job but the running fit has finished when we kill
    proc = subprocess.Popen(snakemake_command("--cores", "1"), cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert checkpoint.exists(), (tmp_path / "first.log").read_text()
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running job, as a crash or `scancel` would
    finally:
        proc.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(proc.pid), "a process of the killed workflow survived"
    assert not (study / "fit" / "DE_1" / "fit.json").exists(), "the fit finished before the kill; make it longer"
    assert not [p for p in study.rglob("*.tmp")], "a half-written file was left behind"
    done = _completed_outputs(study)
    assert {"study.yaml", "data.npz"} <= set(done), done  # prepare had finished

    status, out = run_snakemake(work, "--unlock")  # the killed Snakemake left its lock
    assert status == 0, out
    status, out = run_snakemake(work, "--cores", "1", "--rerun-incomplete")
    assert status == 0, out

    # finished jobs were not run again; the fit resumed from its checkpoint
    after = _completed_outputs(study)
    assert {name: after[name] for name in done} == done
    for rule in ("prepare", "simulate"):
        if f"{'data.npz' if rule == 'prepare' else 'simulate/traces.npz'}" in done:
            assert f"rule {rule}:" not in out, out
    assert "resuming from checkpoint" in (study / "logs" / "fit" / "DE_1.log").read_text()
    fit = (study / "fit" / "DE_1" / "fit.json").read_text()
    assert '"resumed_from_round": 0' not in fit
    assert not checkpoint.exists()

    # ... and every number equals the uninterrupted run's; the results pass the audit
    assert numeric_differences(results(tiny_reference), study) == {}
    assert [str(f) for f in audit(study) if f.fails] == []


# --- four processes compile the same new kernel into one fresh cache at once ----------------------------

CACHE_WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from neurofit import Model, simulate
    from neurofit.data.files import atomic_save_npz

    out, go = Path(sys.argv[1]), Path(sys.argv[2])
    model = Model("dv/dt = (El - v + R*I)/tau : volt\\nEl : volt (constant)\\nR : ohm (constant)\\n"
                  "tau : second (constant)")
    t = np.arange(2000) * 1e-4
    inputs = {"I": np.stack([1e-10 * np.sin(2 * np.pi * f * t) for f in (5.0, 13.0, 29.0)])}
    Path(f"{out}.ready").touch()
    while not go.exists():  # start compiling together
        time.sleep(0.001)
    result = simulate(model, {"El": -0.07, "R": np.linspace(1e8, 3e8, 7), "tau": 0.02}, inputs, 1e-4,
                      init={"v": -0.07}, record=("v",), backend="c", method="rk4")
    atomic_save_npz(out, {"v": result.traces["v"]})
""")


def test_parallel_processes_share_a_fresh_kernel_cache(tmp_path):
    from neurofit.codegen.c_backend import compiler_works
    if not compiler_works():
        pytest.skip("no working C compiler")
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    env = dict(os.environ, NEUROFIT_CACHE=str(cache))
    outs = [tmp_path / f"out{i}.npz" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", CACHE_WORKER, str(o), str(go)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in outs]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{o}.ready").exists() for o in outs) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        go.touch()
        reports = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_stdout, stderr) in zip(procs, reports):
        assert p.returncode == 0 and stderr.strip() == "", stderr
    first = np.load(outs[0])["v"]
    assert first.shape == (7, 3, 2000) and np.all(np.isfinite(first)) and first.std() > 1e-4
    for o in outs[1:]:
        np.testing.assert_array_equal(np.load(o)["v"], first)
    # one library per kernel (the model's float64 kernel and the compiler probe), no leftovers of the builds
    # (a library may have its checksum beside it)
    libraries = sorted(p.name for p in cache.iterdir())
    # the batch kernel (64 lanes) and the small-batch one (8 lanes): each built once, however many processes
    assert len([n for n in libraries if n.startswith("nf_float64_") and n.endswith(".so")]) == 2, libraries
    assert all(n.endswith((".so", ".so.sha256")) for n in libraries), libraries

