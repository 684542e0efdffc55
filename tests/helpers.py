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


def expected_step(command, dt: float):
    """The documented main-step rule applied to an exact command waveform, read from its edges: the longest
    constant epoch away from the first (holding) level, at least 1 ms, the later one of epochs within 1 % of
    the longest. Returns (start s, stop s, amplitude in the command's units relative to holding) or None."""
    import numpy as np

    edges = np.flatnonzero(np.diff(command) != 0) + 1
    bounds = np.concatenate([[0], edges, [command.size]])
    epochs = [(a, b, command[a]) for a, b in zip(bounds[:-1], bounds[1:])
              if command[a] != command[0] and (b - a) * dt >= 1e-3]
    if not epochs:
        return None
    longest = max(b - a for a, b, _ in epochs)
    a, b, level = [e for e in epochs if e[1] - e[0] >= 0.99 * longest][-1]
    return a * dt, b * dt, level - command[0]


def raises_one_line(func, *fragments, error=None) -> str:
    """Call func, expect ``error`` (default: the recordings' RecordingError) whose message is one line holding
    every fragment; returns the message."""
    import pytest

    from neurofit.data.recordings.errors import RecordingError

    with pytest.raises(error or RecordingError) as info:
        func()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message, (fragment, message)
    return message

