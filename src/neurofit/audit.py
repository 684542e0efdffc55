"""Audit a study's results: every output against its manifest, and one result re-run to the same numbers.

``neurofit audit results/STUDY [--rerun NAME|cheapest]`` (the command is in ``commands/audit.py``)::

    findings = check_outputs("results/hh")          # checksums, missing files, missing manifests, stale inputs
    findings += rerun("results/hh", "DE_1")         # re-run one job in a temporary folder, compare numbers

Each finding is one line, ``<kind>: <path>: <what>``. Kinds that fail an audit:

- ``changed``      the file's sha256 differs from the one in its manifest (edited or overwritten since)
- ``missing``      a manifest whose file is gone
- ``no-manifest``  a result file without a manifest
- ``stale``        an input a result was made from (per its manifest) has changed since
- ``rerun-mismatch`` / ``rerun-failed``  the re-run gave other numbers, or could not run

and ``note:`` lines that do not (an input outside the study that cannot be found here, a re-run with
other package versions than the manifest's).

What is not a result, and so needs no manifest: Snakemake's ``logs/`` and ``benchmarks/`` folders (run
times and messages, different on every run), a fit's ``checkpoint.pkl`` and ``checkpoint.pkl.json``
(resumable state of an unfinished fit, removed once its results are written), hidden temporary files of an
interrupted atomic write (``.NAME.XXXX.tmp``), and ``report.html`` (Snakemake's report, rebuilt from the
results by ``snakemake --report``).

The re-run: a manifest records the command line (``neurofit <command> ...``), the working directory and
the sha256 of every input. ``rerun`` checks each input against its checksum, mirrors the working directory
in a temporary folder with the inputs linked at the same (relative or absolute) paths, runs the same
command there, and compares every output that the re-run writes with the original: arrays exactly (NPZ,
NPY, Parquet, CSV; NaN equals NaN), JSON and YAML numbers exactly, ignoring run times (keys and columns
named ``*wall_time*``, ``created``, ``resumed_from_round``). Other files must be equal byte for byte, but
figures (PNG, SVG, PDF) that differ only give a note: they hold no numbers to compare.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import sha256_file
from .provenance import MANIFEST_SUFFIX, manifest_path, package_versions

#: Folders of a study that hold no results (Snakemake's logs and benchmarks).
IGNORED_DIRS = ("logs", "benchmarks")
#: Files that are not results: a fit's resumable state, Snakemake's HTML report.
IGNORED_FILES = ("checkpoint.pkl", "checkpoint.pkl.json", "report.html")
#: JSON keys / table columns that differ between runs of the same command (times), not compared.
TIME_KEYS = ("created", "resumed_from_round")
#: Commands the cheapest re-run skips: they gather or draw other results, or only load data.
NOT_CHEAPEST = ("prepare", "summarize")
#: Drawings: a re-run that differs only in their bytes (a date in SVG/PDF metadata, another renderer) is a note.
FIGURES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
FAILING = ("changed", "missing", "no-manifest", "stale", "rerun-mismatch", "rerun-failed")


class AuditError(ValueError):
    """The audit cannot start (no such folder, no result of that name): one line for the user."""


@dataclass
class Finding:
    kind: str
    path: str
    message: str

    @property
    def fails(self) -> bool:
        return self.kind in FAILING

    def __str__(self) -> str:
        return f"{self.kind}: {_show(self.path)}: {self.message}"


def _show(path) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# --- which files are results ---------------------------------------------------------------------------

def _ignored(path: Path, top: Path) -> bool:
    rel = path.relative_to(top).parts
    name = path.name
    return (any(part in IGNORED_DIRS for part in rel[:-1]) or name in IGNORED_FILES
            or (name.startswith(".") and name.endswith(".tmp")))


def result_files(top) -> list[Path]:
    """Every file under ``top`` that is a result (manifests and ignored files excluded), sorted."""
    top = Path(top)
    return sorted(p for p in top.rglob("*") if p.is_file() and not p.name.endswith(MANIFEST_SUFFIX)
                  and not _ignored(p, top))


def manifest_files(top) -> list[Path]:
    top = Path(top)
    return sorted(p for p in top.rglob(f"*{MANIFEST_SUFFIX}") if p.is_file() and not _ignored(p, top))


def output_of(manifest: Path) -> Path:
    return manifest.with_name(manifest.name[: -len(MANIFEST_SUFFIX)])


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# --- where the files a manifest names are now ------------------------------------------------------------

class Locator:
    """Maps the paths a manifest recorded (relative to its ``cwd``, or absolute) to where they are now.

    Results may have moved since (a copied ``results/`` folder, another machine): the recorded output path
    and the manifest's actual location share a tail (``results/hh/fit/DE_1/fit.json``); the part before it
    is the recorded working directory then, and its replacement now."""

    def __init__(self, manifest_file: Path, record: dict):
        self.cwd = Path(record.get("cwd") or os.getcwd())
        recorded = Path(os.path.normpath(self.cwd / str(record.get("output", ""))))
        actual = output_of(manifest_file).resolve()
        r, a = recorded.parts, actual.parts
        n = 0
        while n < min(len(r), len(a)) and r[len(r) - 1 - n] == a[len(a) - 1 - n]:
            n += 1
        self.old_prefix = Path(*r[: len(r) - n]) if n < len(r) else Path(r[0])
        self.new_prefix = Path(*a[: len(a) - n]) if n < len(a) else Path(a[0])

    def recorded(self, path) -> Path:
        """The absolute path as recorded (relative paths start from the manifest's cwd)."""
        return Path(os.path.normpath(self.cwd / str(path)))

    def here(self, path) -> Path:
        """Where a recorded path is now."""
        p = self.recorded(path)
        try:
            return self.new_prefix / p.relative_to(self.old_prefix)
        except ValueError:
            return p


# --- checksums --------------------------------------------------------------------------------------------

_SHA_MEMO: dict = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in one audit (many manifests share inputs)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def check_outputs(top) -> list[Finding]:
    """Findings of every result under ``top`` against its manifest, and of every manifest's inputs."""
    top = Path(top)
    findings = []
    for path in result_files(top):
        manifest = manifest_path(path)
        if not manifest.is_file():
            findings.append(Finding("no-manifest", str(path), f"a result without a manifest ({manifest.name})"))
    for manifest in manifest_files(top):
        output = output_of(manifest)
        record = _read_json(manifest)
        if record is None or "sha256" not in record:
            findings.append(Finding("changed", str(manifest), "not a readable neurofit manifest"))
            continue
        if not output.is_file():
            findings.append(Finding("missing", str(output), "its manifest exists but the file does not"))
            continue
        actual = _sha256(output)
        if actual != record["sha256"]:
            findings.append(Finding("changed", str(output), f"sha256 {actual[:12]}... differs from its manifest's "
                                                            f"{str(record['sha256'])[:12]}..."))
        findings.extend(_check_inputs(manifest, record, top))
    return findings


def _check_inputs(manifest: Path, record: dict, top: Path) -> list[Finding]:
    where = Locator(manifest, record)
    output = output_of(manifest)
    findings = []
    for name, expected in (record.get("inputs") or {}).items():
        if expected is None:
            continue
        path = where.here(name)
        if not path.is_file():
            inside = _is_under(path, top.resolve())
            findings.append(Finding("stale" if inside else "note", str(output),
                                    f"input {name} not found{'' if inside else ' here (not checked)'}"))
        elif _sha256(path) != expected:
            findings.append(Finding("stale", str(output), f"input {name} has changed since this result was made "
                                                          f"(sha256 {expected[:12]}... in the manifest)"))
    return findings


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


# --- choosing a result to re-run -----------------------------------------------------------------------------

@dataclass
class Job:
    """One command that wrote one or more outputs (each with a manifest recording the same command)."""

    command: list
    manifests: list  # of Path
    wall_time: float | None

    @property
    def subcommand(self) -> str:
        return self.command[1] if len(self.command) > 1 else ""

    @property
    def outputs(self) -> list[Path]:
        return [output_of(m) for m in self.manifests]


def jobs(top) -> list[Job]:
    """The commands that wrote the results under ``top`` (grouped by command line), in path order."""
    found: dict[tuple, Job] = {}
    for manifest in manifest_files(top):
        record = _read_json(manifest)
        command = (record or {}).get("command")
        if not command or not isinstance(command, list):
            continue
        key = (record.get("cwd"), *map(str, command))
        job = found.setdefault(key, Job([str(c) for c in command], [], None))
        job.manifests.append(manifest)
        wall = record.get("wall_time_s")
        if wall is not None:
            job.wall_time = max(job.wall_time or 0.0, float(wall))
    return list(found.values())


def select_job(top, name: str) -> Job:
    """The job to re-run: ``cheapest`` (least wall time among those that compute: not prepare, summarize
    or a figure), a fit's folder name (``DE_1``), a path under ``top`` (``simulate/traces.npz``), or a
    folder or file name that identifies one job."""
    top = Path(top)
    all_jobs = jobs(top)
    if not all_jobs:
        raise AuditError(f"{top}: no manifest that records a command; nothing to re-run")
    if name == "cheapest":
        computing = [j for j in all_jobs if j.subcommand not in NOT_CHEAPEST and not j.subcommand.startswith("plot")]
        pool = computing or all_jobs
        return min(pool, key=lambda j: math.inf if j.wall_time is None else j.wall_time)
    by_output = {o.resolve(): j for j in all_jobs for o in j.outputs}
    for candidate in (top / name, top / "fit" / name / "fit.json"):
        if candidate.resolve() in by_output:
            return by_output[candidate.resolve()]
    matches = []
    for job in all_jobs:
        rels = [o.relative_to(top) for o in job.outputs]
        if any(name in r.parts or name == r.stem for r in rels):
            matches.append(job)
    if len(matches) == 1:
        return matches[0]
    fits = sorted({m.parent.name for m in (top / "fit").glob(f"*/fit.json{MANIFEST_SUFFIX}")}) \
        if (top / "fit").is_dir() else []
    choices = f"fits: {', '.join(fits)}; " if fits else ""
    if matches:
        listed = ", ".join(str(j.outputs[0].relative_to(top)) for j in matches[:6])
        raise AuditError(f"--rerun {name}: names {len(matches)} results ({listed}); give the output's path under {top}")
    raise AuditError(f"--rerun {name}: no result of that name under {top} ({choices}or 'cheapest', or an output's "
                     f"path such as {all_jobs[0].outputs[0].relative_to(top)})")


# --- re-running one job ---------------------------------------------------------------------------------------

def _mirror(tmp: Path, path: Path) -> Path:
    """Where the absolute path ``path`` lives inside the re-run's mirror of the file system."""
    return tmp / "fs" / Path(*path.parts[1:])


def rerun(top, name: str = "cheapest", keep: bool = False, log=None) -> list[Finding]:
    """Re-run the job ``name`` (see ``select_job``) in a temporary folder and compare its outputs."""
    top = Path(top)
    job = select_job(top, name)
    first = job.manifests[0]
    record = _read_json(first)
    label = " ".join(job.command[:2])
    what = str(job.outputs[0])
    if job.command[0] not in ("neurofit", "__main__.py") or len(job.command) < 2:
        return [Finding("rerun-failed", what, f"the manifest's command is not a neurofit command: {job.command[:3]}")]
    where = Locator(first, record)
    findings = []
    tmp = Path(tempfile.mkdtemp(prefix="neurofit-audit-"))
    try:
        # the inputs, checked against their checksums, linked at their recorded paths inside the mirror
        inputs = {}
        for manifest in job.manifests:
            inputs.update((_read_json(manifest) or {}).get("inputs") or {})
        for recorded, expected in inputs.items():
            source = where.here(recorded)
            if expected is None:
                continue
            if not source.is_file():
                return findings + [Finding("rerun-failed", what, f"input {recorded} not found (looked at {source})")]
            if _sha256(source) != expected:
                return findings + [Finding("rerun-failed", what, f"input {recorded} differs from the checksum in "
                                                                 f"the manifest; cannot re-run with the same inputs")]
            target = _mirror(tmp, where.recorded(recorded))
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(source.resolve(), target)
        cwd = _mirror(tmp, where.cwd)
        cwd.mkdir(parents=True, exist_ok=True)
        args = [_rewrite(a, tmp) for a in job.command[1:]]
        versions = record.get("versions") or {}
        now = package_versions()
        differ = sorted(k for k in versions if k in now and versions[k] != now[k])
        if differ:
            findings.append(Finding("note", what, "re-run with other package versions than the manifest's: " +
                                    ", ".join(f"{k} {versions[k]} -> {now[k]}" for k in differ[:5])))
        if log:
            log(f"re-running {label} (recorded wall time {job.wall_time or 0:.2f} s) for {what}")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "neurofit", *args], cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return findings + [Finding("rerun-failed", what, f"`{label} ...` exited with status {proc.returncode}: "
                                                             f"{lines[-1] if lines else 'no message'}")]
        # every output the re-run wrote (each has its manifest) against the original
        produced = sorted(p for p in (tmp / "fs").rglob(f"*{MANIFEST_SUFFIX}") if not p.is_symlink())
        if not produced:
            return findings + [Finding("rerun-failed", what, f"`{label} ...` wrote no output with a manifest")]
        for manifest in produced:
            new = output_of(manifest)
            original = where.here(Path("/") / new.relative_to(tmp / "fs"))
            if not original.is_file():
                findings.append(Finding("rerun-mismatch", str(original), "the re-run wrote this output; the "
                                                                         "original does not exist"))
                continue
            differences = compare_files(original, new)
            if differences and original.suffix.lower() in FIGURES:
                findings.append(Finding("note", str(original), "figure differs from the re-run's in its bytes "
                                                               "(figures are not compared as numbers)"))
            elif differences:
                findings.extend(Finding("rerun-mismatch", str(original), d) for d in differences[:5])
            else:
                same = "the same bytes" if original.suffix.lower() in FIGURES else "identical numbers"
                findings.append(Finding("ok", str(original), f"re-run of `{label}` ({wall:.1f} s) gave {same}"))
        return findings
    finally:
        if keep:
            if log:
                log(f"re-run kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _rewrite(arg: str, tmp: Path) -> str:
    """An absolute path on the command line moves into the mirror (``--opt=/abs`` too); the rest stays."""
    if arg.startswith("/"):
        return str(_mirror(tmp, Path(os.path.normpath(arg))))
    if arg.startswith("--") and "=/" in arg:
        option, value = arg.split("=", 1)
        return f"{option}={_mirror(tmp, Path(os.path.normpath(value)))}"
    return arg


# --- comparing numbers ---------------------------------------------------------------------------------------

def _is_time_key(key) -> bool:
    return isinstance(key, str) and ("wall_time" in key or key in TIME_KEYS)


def compare_files(a, b) -> list[str]:
    """Differences between the numbers of two result files of the same kind ([] if identical).

    NPZ / NPY: same keys, dtypes, shapes and values (NaN equals NaN); Parquet / CSV / TSV: same columns and
    values; JSON / YAML: same structure and numbers. Run times are not compared (see ``TIME_KEYS``).
    Other files: the same bytes."""
    a, b = Path(a), Path(b)
    suffix = a.suffix.lower()
    try:
        if suffix == ".npz":
            return _compare_npz(a, b)
        if suffix == ".npy":
            return _compare_arrays("array", np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))
        if suffix in (".parquet", ".csv", ".tsv"):
            return _compare_tables(a, b, suffix)
        if suffix == ".json":
            return _compare_docs(json.loads(a.read_text(encoding="utf-8")), json.loads(b.read_text(encoding="utf-8")))
        if suffix in (".yaml", ".yml"):
            import yaml
            return _compare_docs(yaml.safe_load(a.read_text(encoding="utf-8")),
                                 yaml.safe_load(b.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        return [f"cannot read for comparison ({' '.join(str(err).split())[:200]})"]
    if a.read_bytes() == b.read_bytes():
        return []
    return [f"bytes differ ({a.stat().st_size} vs {b.stat().st_size} bytes)"]


def _compare_npz(a: Path, b: Path) -> list[str]:
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        if sorted(x.files) != sorted(y.files):
            return [f"keys differ: {sorted(set(x.files) ^ set(y.files))[:5]}"]
        out = []
        for key in sorted(x.files):
            u, v = x[key], y[key]
            if u.dtype.kind == "U" and v.dtype.kind == "U" and u.shape == () and v.shape == ():
                try:
                    out += [f"{key}: {d}" for d in _compare_docs(json.loads(str(u)), json.loads(str(v)))]
                    continue
                except ValueError:
                    pass
            out += _compare_arrays(key, u, v)
        return out


def _compare_arrays(key: str, u, v) -> list[str]:
    if u.dtype != v.dtype or u.shape != v.shape:
        return [f"{key}: dtype/shape {u.dtype}{list(u.shape)} vs re-run {v.dtype}{list(v.shape)}"]
    equal = np.array_equal(u, v, equal_nan=u.dtype.kind in "fc")
    if equal:
        return []
    if u.dtype.kind in "fc":
        diff = np.abs(u.astype(complex if u.dtype.kind == "c" else float) - v)
        n = int(np.count_nonzero(~((u == v) | (np.isnan(u) & np.isnan(v)))))
        return [f"{key}: {n} of {u.size} values differ (largest difference {np.nanmax(diff):.3g})"]
    return [f"{key}: values differ"]


def _compare_tables(a: Path, b: Path, suffix: str) -> list[str]:
    import pandas as pd
    if suffix == ".parquet":
        x, y = pd.read_parquet(a), pd.read_parquet(b)
    else:
        sep = "\t" if suffix == ".tsv" else ","
        x, y = pd.read_csv(a, sep=sep), pd.read_csv(b, sep=sep)
    if list(x.columns) != list(y.columns) or len(x) != len(y):
        return [f"columns or rows differ: {list(x.columns)[:6]} x {len(x)} vs re-run {list(y.columns)[:6]} x {len(y)}"]
    out = []
    for column in x.columns:
        if _is_time_key(column):
            continue
        u, v = x[column].to_numpy(), y[column].to_numpy()
        if u.dtype.kind in "fiub" and v.dtype.kind in "fiub":
            out += _compare_arrays(f"column {column}", u, v)
        elif not all((p == q) or (_isnan(p) and _isnan(q)) for p, q in zip(u.tolist(), v.tolist())):
            out.append(f"column {column}: values differ")
    return out


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _compare_docs(x, y, path: str = "") -> list[str]:
    where = path or "(top)"
    if isinstance(x, dict) and isinstance(y, dict):
        out = []
        keys = [k for k in x if not _is_time_key(k)]
        other = [k for k in y if not _is_time_key(k)]
        if sorted(map(str, keys)) != sorted(map(str, other)):
            return [f"{where}: keys differ ({sorted(set(map(str, keys)) ^ set(map(str, other)))[:5]})"]
        for k in keys:
            out += _compare_docs(x[k], y[k], f"{path}.{k}" if path else str(k))
        return out
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return [f"{where}: {len(x)} items vs re-run {len(y)}"]
        out = []
        for i, (p, q) in enumerate(zip(x, y)):
            out += _compare_docs(p, q, f"{path}[{i}]")
        return out
    if x == y and type(x) is type(y):
        return []
    if _isnan(x) and _isnan(y):
        return []
    return [f"{where}: {x!r} vs re-run {y!r}"]


# --- the whole audit -------------------------------------------------------------------------------------------

def audit(top, rerun_name: str | None = None, keep: bool = False, log=None) -> list[Finding]:
    """``check_outputs`` and, if ``rerun_name`` is given, ``rerun``: every finding, in that order."""
    top = Path(top)
    if not top.is_dir():
        raise AuditError(f"{top}: no such folder (give a study's results folder, e.g. results/hh_tutorial)")
    _SHA_MEMO.clear()  # files may have changed since an earlier audit in this process
    findings = check_outputs(top)
    if rerun_name:
        findings += rerun(top, rerun_name, keep=keep, log=log)
    return findings
