"""Provenance: a small JSON manifest next to every result.

``write_manifest("results/s/traces.npz", ...)`` writes ``results/s/traces.npz.manifest.json``
(atomically) with what is needed to audit and re-run the result: the command, the study's config
section, seeds, package versions, git commit and dirty flag, checksums of inputs and of the
output, host, backend, dtype and wall time. ``check_manifest`` compares an output with its
manifest.

Manifests form a chain: besides each input's sha256 (``inputs``), a manifest records the sha256 of
each input's own manifest file (``input_manifests``; None for an input without one, such as a config
file or a recording). A result rewritten together with its manifest, or a manifest edited alone, then
no longer matches what the results made from it recorded (``neurofit audit`` reports them stale).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from ..data.files import atomic_write_json, sha256_file

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "neurofit.manifest"
MANIFEST_VERSION = 1
PACKAGES = ("neurofit", "numpy", "scipy", "sympy", "pandas", "matplotlib", "torch", "sbi", "nevergrad",
            "scikit-optimize", "efel", "snakemake")


_INVOCATION: list | None = None  # the arguments of the running ``neurofit`` command (set by cli.main)


def set_invocation(args) -> None:
    """Record the arguments the ``neurofit`` command runs with (``cli.main`` calls this), so that a
    manifest's ``command`` is ``["neurofit", *args]`` even when the command runs inside another
    program (``cli.main([...])`` in a test or a script): the line ``neurofit audit --rerun`` runs again."""
    global _INVOCATION
    _INVOCATION = None if args is None else [str(a) for a in args]


def invocation() -> list:
    """The command line of the running neurofit command, as recorded in manifests."""
    if _INVOCATION is not None:
        return ["neurofit", *_INVOCATION]
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def manifest_path(output) -> Path:
    """The manifest that belongs to ``output``: ``<output>.manifest.json``."""
    return Path(f"{output}{MANIFEST_SUFFIX}")


def package_versions(names=PACKAGES) -> dict:
    """Installed versions (from package metadata, without importing the packages); None if absent."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(path=".") -> dict | None:
    """{"commit": sha, "dirty": bool} of the git work tree holding ``path``, or None outside one.

    Uses ``git --no-optional-locks`` so that parallel jobs never take the index lock.
    """
    def run(*args):
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=path, capture_output=True, text=True,
                              timeout=20)
    try:
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        status = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def checksums(paths) -> dict:
    """path → sha256 of every existing file in ``paths`` (None for a missing one)."""
    return {str(p): (sha256_file(p) if Path(p).is_file() else None) for p in paths or ()}


def manifest_checksums(paths) -> dict:
    """path → sha256 of the manifest of every file in ``paths`` (None for a file without a manifest)."""
    return {str(p): (sha256_file(manifest_path(p)) if manifest_path(p).is_file() else None) for p in paths or ()}


def write_manifest(output, *, command=None, study: str | None = None, config: dict | None = None,
                   seeds: dict | None = None, inputs=(), backend: str | None = None, dtype: str | None = None,
                   wall_time: float | None = None, extra: dict | None = None) -> Path:
    """Write ``<output>.manifest.json`` describing the (already written) file ``output``.

    ``inputs`` are the files the output was made from (paths as given on the command line): the manifest
    records the sha256 of each (``inputs``) and of each one's manifest (``input_manifests``)."""
    output = Path(output)
    inputs = list(inputs or ())
    record = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "output": str(output),
        "sha256": sha256_file(output),
        "size": output.stat().st_size,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else invocation(),
        "cwd": os.getcwd(),
        "study": study,
        "config": config,
        "seeds": seeds or {},
        "inputs": checksums(inputs),
        "input_manifests": manifest_checksums(inputs),
        "backend": backend,
        "dtype": dtype,
        "wall_time_s": None if wall_time is None else round(float(wall_time), 6),
        "versions": package_versions(),
        "git": git_state(Path(__file__).resolve().parent),
        "host": host_info(),
    }
    if extra:
        record["extra"] = extra
    return atomic_write_json(manifest_path(output), record)


def read_manifest(output) -> dict:
    import json
    with open(manifest_path(output), encoding="utf-8") as f:
        return json.load(f)


def check_manifest(output) -> str | None:
    """None if ``output`` matches its manifest, else one line saying what differs."""
    output = Path(output)
    if not manifest_path(output).is_file():
        return f"{output}: no manifest ({manifest_path(output).name})"
    if not output.is_file():
        return f"{output}: file missing (its manifest exists)"
    expected = read_manifest(output).get("sha256")
    actual = sha256_file(output)
    if expected != actual:
        return f"{output}: checksum {actual[:12]}… differs from the manifest's {str(expected)[:12]}…"
    return None
