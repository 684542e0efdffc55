"""Helpers for the Snakemake workflow (imported by the Snakefile and workflow/rules/*.smk)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn


def put_command_on_path(python: str = sys.executable) -> bool:
    """Put the folder of ``python`` (holding the ``neurofit`` command of its environment) first on PATH.

    Rules call ``neurofit``; with this, ``.venv/bin/snakemake`` works without activating .venv (as
    ``make run`` does), and jobs use the neurofit of the Python that runs Snakemake. A rule's conda
    environment (``--sdm conda``) is activated inside the job and still comes first.
    Returns True if PATH changed.
    """
    folder = str(Path(python).parent)
    path = os.environ.get("PATH", "")
    if not (Path(folder) / "neurofit").exists() or path.split(os.pathsep)[0] == folder:
        return False
    os.environ["PATH"] = folder + (os.pathsep + path if path else "")
    return True


def config_error(message: str) -> NoReturn:
    """Stop Snakemake while it reads the Snakefile: ``message`` (one line, e.g. "config: studies.x.fit.n_samples:
    ...") is printed on stderr and Snakemake exits with status 1 - no traceback, no job started. (A
    WorkflowError would be logged on stdout with the Snakefile's file and line around it.)"""
    raise SystemExit(" ".join(str(message).split()))
