"""The workflow on a real (one-node, local) SLURM cluster through profiles/slurm: the same numbers as locally.

`../shared/tools/start_local_slurm.sh` installs Debian's slurmctld/slurmd/munge when missing (apt-get, so
it needs root) and starts them (~20 s); the test stops them again with `stop_local_slurm.sh` (unless the
cluster was already up before the test), also when the test fails. Without root, apt-get or the script,
the test is skipped with the reason. CI (`.ci/run` -> `make test`) runs it.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from batch_workflow import ABF, make_batch_workdir, result_jsons, row, study_results, write_sheet
from neurofit.workflow.provenance import read_manifest
from tiny_workflow import INFER_OUTPUTS, ROOT, STUDY, make_workdir, numeric_differences, results, run_snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TOOLS = (ROOT / ".." / "shared" / "tools").resolve()
START, STOP = TOOLS / "start_local_slurm.sh", TOOLS / "stop_local_slurm.sh"
BASE = Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/local_slurm"))
CONF = BASE / "etc" / "slurm.conf"
# prepare -> fit -> refine (and simulate beside the fit): 3 dependent steps
TARGETS = [f"results/{STUDY}/simulate/traces.npz", f"results/{STUDY}/fit/DE_1/refined.json",
           f"results/{STUDY}/infer/samples.parquet"]
COMPARED = ("study.yaml", "data.npz", "simulate/traces.npz", "fit/DE_1/fit.json", "fit/DE_1/history.parquet",
            "fit/DE_1/refined.json", *INFER_OUTPUTS)


def _cluster_up(env) -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in proc.stdout.split())


@pytest.fixture(scope="module")
def local_slurm():
    if not START.is_file():
        pytest.skip(f"{START} not found (the shared tools are not beside this repository)")
    if os.geteuid() != 0:
        pytest.skip(f"{START.name} runs the Slurm daemons as root and may apt-get install them: needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed and there is no apt-get to install it (Debian packages)")
    env = dict(os.environ, SLURM_CONF=str(CONF))
    was_up = _cluster_up(env)
    try:
        started = time.monotonic()
        proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            pytest.skip(f"{START.name} could not bring up a cluster here (exit {proc.returncode}): {tail}")
        print(f"local SLURM up in {time.monotonic() - started:.1f} s")
        yield env
    finally:
        if not was_up:
            subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120, env=env)


def test_slurm_profile_gives_the_numbers_of_a_local_run(local_slurm, tiny_reference, tmp_path):
    work = make_workdir(tmp_path)
    started = time.monotonic()
    # profiles/slurm as a user runs it (squeue polling; a job here takes ~12 s from sbatch to its end, so each
    # dependent step costs one 20 s status interval: a shorter first check would only add a longer second one)
    status, out = run_snakemake(work, "--workflow-profile", ROOT / "profiles" / "slurm", *TARGETS,
                                timeout=900, env=local_slurm)
    elapsed = time.monotonic() - started
    assert status == 0, out
    assert "has been submitted with SLURM jobid" in out, out
    print(f"SLURM run: {elapsed:.1f} s")
    study = results(work)
    # every job really ran inside a SLURM job (the manifest records the host's SLURM_JOB_ID)
    for name in COMPARED:
        assert read_manifest(study / name)["host"]["slurm_job_id"], name
    assert numeric_differences(results(tiny_reference), study, names=COMPARED) == {}


def _node_cpus(env) -> int:
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True, timeout=20, env=env)
    assert proc.returncode == 0, proc.stderr
    return min(int(n) for n in proc.stdout.split())


def test_slurm_profile_runs_a_batch_study_with_grouped_cells_as_locally(local_slurm, tmp_path):
    """A 3-cell batch study (tests/batch_workflow.py: two fitted cells and one failing quality control) through
    profiles/slurm gives the bytes of a local run; its fit_cell jobs (group "cells", group-components cells=5)
    ran in one sbatch job. --cores caps what one job asks for at the node's CPUs: a group job asks for the sum
    of its parallel cells' threads (here 3), more than this node has, and would pend forever (PartitionConfig);
    with the cap Snakemake runs the cells in series inside the job."""
    sheet = write_sheet(tmp_path / "cells.tsv", [
        row("171116sh_0018", ABF / "171116sh_0018.abf", heldout="3,12", group="regular_spiking", species="mouse"),
        row("190619B_0003", ABF / "190619B_0003.abf", heldout="1,6", group="unknown", species="rat"),
        row("2020_03_02_0000", ABF / "2020_03_02_0000.abf", group="unknown")])
    local = make_batch_workdir(tmp_path / "local", None, sheet=sheet)
    status, out = run_snakemake(local, "--cores", "2")
    assert status == 0, out
    work = make_batch_workdir(tmp_path / "slurm", None, sheet=sheet)
    started = time.monotonic()
    status, out = run_snakemake(work, "--workflow-profile", ROOT / "profiles" / "slurm", "--cores", _node_cpus(local_slurm),
                                timeout=900, env=local_slurm)
    print(f"SLURM batch run: {time.monotonic() - started:.1f} s")
    assert status == 0, out
    assert "has been submitted with SLURM jobid" in out, out
    table = study_results(work) / "population" / "cells.csv"
    assert table.read_bytes() == (study_results(local) / "population" / "cells.csv").read_bytes()
    results = result_jsons(work)
    assert results == result_jsons(local) and len(results) == 3 * 2
    # every result was written inside a SLURM job; all six fit_cell jobs inside the same one (the group)
    jobs = {name: read_manifest(study_results(work) / "cells" / name / "result.json")["host"]["slurm_job_id"]
            for name in results}
    assert all(jobs.values()) and len(set(jobs.values())) == 1, jobs
    assert read_manifest(table)["host"]["slurm_job_id"] not in (None, *jobs.values())
