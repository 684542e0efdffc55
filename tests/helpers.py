"""Small helpers shared by the CLI and workflow tests: write a config, run the CLI, run Snakemake."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

from neurofit.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def write_yaml(path, doc):
    """Write ``doc`` as YAML to ``path``; returns the path."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(capsys, *argv):
    """Run ``neurofit ARGV`` in-process → (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def snakemake(*args, cwd=ROOT, timeout=600):
    """Run the workflow's Snakefile with ``args`` in ``cwd`` → (exit status, stdout + stderr)."""
    proc = subprocess.run([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def job_counts(log: str) -> dict:
    """rule -> number of jobs, from the job-stats table Snakemake prints (its column width varies)."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^([A-Za-z_]\w*)\s+(\d+)$", log, re.MULTILINE)}
