"""Fixtures shared by several test modules."""
import pytest


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    """The tiny study (tests/tiny_workflow.py) run once, uninterrupted, with `snakemake --cores 2`:
    the reference numbers of the determinism, kill-and-resume, audit and SLURM tests. Do not modify it."""
    from tiny_workflow import make_workdir, run_snakemake

    work = make_workdir(tmp_path_factory.mktemp("tiny_reference"))
    status, out = run_snakemake(work, "--cores", "2")
    assert status == 0, out
    return work
