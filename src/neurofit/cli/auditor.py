"""Audit a study's results: every output against its manifest, and one result re-run to the same numbers.

``neurofit audit results/STUDY [--rerun NAME|cheapest]`` (the command is in ``commands/audit.py``)::

    findings = check_outputs("results/hh")          # checksums, missing files, missing manifests, stale inputs
    findings += rerun("results/hh", "DE_1")         # re-run one job in a temporary folder, compare numbers

Each finding is one line, ``<kind>: <path>: <what>``. Kinds that fail an audit:

- ``changed``      the file's sha256 differs from the one in its manifest (edited or overwritten since), or a
                   manifest that cannot be read or records a command ``neurofit audit --rerun`` would refuse
- ``missing``      a manifest whose file is gone, or a folder without any manifest (nothing to audit)
- ``no-manifest``  a result file without a manifest
- ``stale``        an input a result was made from (per its manifest) has changed or is gone since, or the
                   input's own manifest has (manifests record the sha256 of their inputs' manifests: a result
                   rewritten together with its manifest shows in every result made from it)
- ``rerun-mismatch`` / ``rerun-failed``  the re-run gave other numbers, or could not run (or ran out of time)
- ``rerun-refused`` the manifest's command is not one the audit runs (see below)

and ``note:`` lines that do not (an input outside the study that cannot be found here, a re-run with
other package versions than the manifest's).

What is not a result, and so needs no manifest: Snakemake's ``logs/`` and ``benchmarks/`` folders (run
times and messages, different on every run), a fit's ``checkpoint.json`` and ``checkpoint.fingerprint.json``
(resumable state of an unfinished fit, removed once its results are written), hidden temporary files of an
interrupted atomic write (``.NAME.XXXX.tmp``), and ``report.html`` (Snakemake's report, rebuilt from the
results by ``snakemake --report``).

The re-run trusts nothing in the folder. A manifest records the command line (``neurofit <command> ...``),
the working directory and the sha256 of every input. The command is parsed by neurofit's own argument
parser (``command_parser``) and rebuilt from the parsed options: the subcommand must be one of
``RERUNNABLE`` (never ``audit``), every option must be known, and every path (``PATH_OPTIONS``, relative or
absolute, ``--opt=value`` too, after resolving ``..`` and symlinks) must be one of the manifest's inputs, a
folder holding them, or lie inside the audited folder; otherwise the finding is ``rerun-refused`` and
nothing runs. ``rerun`` copies each input into a mirror of the file system in a temporary folder, at its
recorded path, and checks the copy against its checksum; runs the rebuilt command there (no shell, every
path moved into the mirror, the working directory not on the module path, in a process group of its own,
stopped with all its children after ``timeout`` seconds or when the audit gets SIGTERM, SIGINT or SIGHUP;
the temporary folder is removed in every case unless ``keep``); and compares every output that the re-run
writes with the original: arrays exactly (NPZ, NPY, Parquet, CSV; NaN equals NaN), JSON and YAML numbers
exactly, ignoring run times (keys and columns named ``*wall_time*``, ``created``, ``resumed_from_round``).
Other files must be equal byte for byte, but figures (PNG, SVG, PDF) that differ only give a note: they hold
no numbers to compare.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.files import sha256_file
from ..errors import NeurofitError
from ..workflow.provenance import MANIFEST_SUFFIX, manifest_path, package_versions

#: Folders of a study that hold no results (Snakemake's logs and benchmarks).
IGNORED_DIRS = ("logs", "benchmarks")
#: Files that are not results: a fit's resumable state, Snakemake's HTML report.
IGNORED_FILES = ("checkpoint.json", "checkpoint.fingerprint.json", "report.html")
#: JSON keys / table columns that differ between runs of the same command (times), not compared.
TIME_KEYS = ("created", "resumed_from_round")
#: Commands the cheapest re-run skips: they gather or draw other results, or only load data.
NOT_CHEAPEST = ("prepare", "summarize")
#: Drawings: a re-run that differs only in their bytes (a date in SVG/PDF metadata, another renderer) is a note.
FIGURES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
FAILING = ("changed", "missing", "no-manifest", "stale", "rerun-mismatch", "rerun-failed", "rerun-refused")
#: Subcommands a re-run may run: the steps of a study (never ``audit`` itself, nor anything added later
#: without being listed here).
RERUNNABLE = ("prepare", "simulate", "fit", "refine", "summarize", "infer", "calibrate", "rate-chunk",
              "rate-study", "reduce", "plot-traces", "plot-fit", "plot-reduction", "prepare-cell", "fit-cell", "train-group",
              "population", "validate")
#: Options (argparse destinations) of those subcommands that name a file or folder: checked, then moved into
#: the re-run's temporary folder.
PATH_OPTIONS = ("config", "data", "output", "output_config", "output_data", "output_dir", "simulation", "fit",
                "fits", "refined", "history", "checkpoint", "chunks", "posterior", "results", "convergence",
                "parameters", "traces", "loss", "train", "heldout", "cell_file", "previous", "figure", "pareto",
                "cell_files", "group_posterior")
#: Options that name no file (names, numbers, switches, the config as JSON text): passed on as parsed. An
#: option in neither list makes the command refused.
VALUE_OPTIONS = ("config_json", "study", "optimizer", "seed", "threads", "backend", "dtype", "chunk", "of",
                 "dpi", "max_traces", "title", "noise_floor", "no_checkpoint", "cell", "stage", "group")
#: Seconds a re-run may take before it is stopped (``neurofit audit --timeout``).
DEFAULT_TIMEOUT = 3600.0
#: The re-run's program (``python -c``): neurofit's command line, with neither the working directory (where
#: the copied inputs are) nor anything but the folder of this neurofit package added to the module path.
_CHILD = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')] + [sys.argv[1]]; "
          "from neurofit.cli.main import main; sys.exit(main(sys.argv[2:]))")


class AuditError(NeurofitError):
    """The audit cannot start (no such folder, no result of that name): one line for the user."""


class CommandRefused(ValueError):
    """A manifest's command that the audit does not run (one line naming the argument)."""


@dataclass
class Finding:
    """One line of an audit: ``kind`` (see the module's docstring), the file concerned, what was found."""

    kind: str
    path: str
    message: str

    @property
    def fails(self) -> bool:
        return self.kind in FAILING

    def __str__(self) -> str:
        return _one_line(f"{self.kind}: {_show(self.path)}: {self.message}")


def _one_line(text: str) -> str:
    """``text`` on one printable line (a manifest may hold newlines or control characters anywhere)."""
    text = " ".join(str(text).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shorten(text, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _read_manifest(path: Path) -> dict | None:
    """A manifest's record, or None if it is not one (unreadable, or a field of the wrong type)."""
    record = _read_json(path)
    if record is None:
        return None
    checks = {"sha256": lambda v: isinstance(v, str), "output": lambda v: isinstance(v, str),
              "cwd": lambda v: v is None or isinstance(v, str),
              "command": lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
              "inputs": lambda v: v is None or (isinstance(v, dict) and
                                                all(x is None or isinstance(x, str) for x in v.values())),
              "input_manifests": lambda v: v is None or (isinstance(v, dict) and
                                                         all(x is None or isinstance(x, str) for x in v.values())),
              "wall_time_s": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
    if "sha256" not in record or "output" not in record:
        return None
    return record if all(check(record.get(key)) for key, check in checks.items()) else None


# --- where the files a manifest names are now ------------------------------------------------------------

class Locator:
    """Maps the paths a manifest recorded (relative to its ``cwd``, or absolute) to where they are now.

    Results may have moved since (a copied ``results/`` folder, another machine): the recorded output path
    and the manifest's actual location share a tail (``results/hh/fit/DE_1/fit.json``); the part before it
    is the recorded working directory then, and its replacement now."""

    def __init__(self, manifest_file: Path, record: dict):
        self.cwd = Path(os.path.normpath(record.get("cwd") or os.getcwd()))
        recorded = Path(os.path.normpath(self.cwd / str(record.get("output", ""))))
        actual = Path(os.path.abspath(output_of(manifest_file)))
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
    """Findings of every result under ``top`` against its manifest, of every manifest's command (the checks of
    a re-run, see ``check_command``) and of every manifest's inputs and their manifests."""
    top = Path(top)
    findings = []
    for path in result_files(top):
        manifest = manifest_path(path)
        if not manifest.is_file():
            findings.append(Finding("no-manifest", str(path), f"a result without a manifest ({manifest.name})"))
    manifests = manifest_files(top)
    if not manifests:
        findings.append(Finding("missing", str(top), "no manifest in this folder: no result to audit"))
    for manifest in manifests:
        output = output_of(manifest)
        record = _read_manifest(manifest)
        if record is None:
            findings.append(Finding("changed", str(manifest), "not a readable neurofit manifest"))
            continue
        if not output.is_file():
            findings.append(Finding("missing", str(output), "its manifest exists but the file does not"))
            continue
        actual = _sha256(output)
        if actual != record["sha256"]:
            findings.append(Finding("changed", str(output), f"sha256 {actual[:12]}... differs from its manifest's "
                                                            f"{str(record['sha256'])[:12]}..."))
        where = Locator(manifest, record)
        try:
            check_command(record.get("command"), where, recorded_inputs(where, [record]), top)
        except CommandRefused as err:
            findings.append(Finding("changed", str(manifest), f"records a command neurofit would not re-run: {err}"))
        findings.extend(_check_inputs(manifest, record, top))
    return findings


def _check_inputs(manifest: Path, record: dict, top: Path) -> list[Finding]:
    where = Locator(manifest, record)
    output = output_of(manifest)
    upstream = record.get("input_manifests") or {}
    findings = []
    for name, expected in (record.get("inputs") or {}).items():
        if expected is None:
            continue
        path = where.here(name)
        if not path.is_file():
            inside = _is_under(path, top.resolve())
            findings.append(Finding("stale" if inside else "note", str(output),
                                    f"input {name} not found{'' if inside else ' here (not checked)'}"))
            continue
        if _sha256(path) != expected:
            findings.append(Finding("stale", str(output), f"input {name} has changed since this result was made "
                                                          f"(sha256 {expected[:12]}... in the manifest)"))
        recorded_manifest = upstream.get(name)
        if recorded_manifest is None:
            continue
        if not manifest_path(path).is_file():
            findings.append(Finding("stale", str(output), f"the manifest of input {name} is gone"))
        elif _sha256(manifest_path(path)) != recorded_manifest:
            findings.append(Finding("stale", str(output), f"the manifest of input {name} has changed since this "
                                                          f"result was made (re-made, or rewritten)"))
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
        record = _read_manifest(manifest)
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


# --- checking a recorded command -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def command_parser() -> argparse.ArgumentParser:
    """neurofit's own argument parser (``cli.build_parser``; nothing runs), raising ``CommandRefused`` where it
    would print a message and exit (a bad argument, ``--help``, ``--version``). Built once and shared."""
    from .main import build_parser
    parser = build_parser()

    def error(message):
        raise CommandRefused(_shorten(" ".join(str(message).split()), 160))

    def leave(status=0, message=None):
        raise CommandRefused(f"asks for a message and an exit (status {status}), not a computation")

    for each in (parser, *_subparsers(parser).values()):
        each.error, each.exit = error, leave
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    """Subcommand name → its parser."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def recorded_inputs(where: Locator, records) -> dict:
    """Recorded absolute path → (name in the manifest, sha256) of every input with a checksum in ``records``."""
    found = {}
    for record in records:
        for name, sha in (record.get("inputs") or {}).items():
            if sha:
                found[where.recorded(name)] = (str(name), str(sha))
    return found


def check_command(command, where: Locator, inputs, top) -> tuple[str, list]:
    """Parse and check a manifest's recorded ``command`` (``["neurofit", SUBCOMMAND, *options]``).

    Arguments: ``where`` locates the manifest's recorded paths now; ``inputs`` are the recorded absolute
    paths of its inputs (``recorded_inputs``); ``top`` is the audited folder. Returns the subcommand and its
    options as ``(option, value, is_path)`` (value: True for a switch, a list for several values). Raises
    ``CommandRefused`` (one line naming the argument) for a command that is not neurofit's, a subcommand not in
    ``RERUNNABLE``, an option that is neither in ``PATH_OPTIONS`` nor in ``VALUE_OPTIONS``, or a path that is
    not an input, a folder below the working directory holding inputs, or inside ``top`` (symlinks
    resolved)."""
    if not isinstance(command, list) or len(command) < 2 or str(command[0]) not in ("neurofit", "__main__.py"):
        raise CommandRefused(f"not a neurofit command line: {_shorten(command)}")
    if not where.cwd.is_absolute():
        raise CommandRefused(f"working directory {_shorten(where.cwd)}: not an absolute path")
    parser = command_parser()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        args = parser.parse_args([str(c) for c in command[1:]])
    if args.command not in RERUNNABLE:
        raise CommandRefused(f"`neurofit {args.command}` is not a command the audit runs "
                             f"(only {', '.join(RERUNNABLE)})")
    top_real = Path(top).resolve()
    top_abs = Path(os.path.abspath(top))
    options = []
    for action in _subparsers(parser)[args.command]._actions:
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._HelpAction) or value is None or value is False or value == action.default:
            continue
        option = max(action.option_strings, key=len) if action.option_strings else action.dest
        if action.dest in PATH_OPTIONS:
            for each in (value if isinstance(value, list) else [value]):
                _check_path(option, each, where, inputs, top_abs, top_real)
        elif action.dest not in VALUE_OPTIONS:
            raise CommandRefused(f"argument {option}: not an option the audit knows how to check")
        options.append((option, value, action.dest in PATH_OPTIONS))
    return args.command, options


def _check_path(option: str, value: str, where: Locator, inputs, top_abs: Path, top_real: Path) -> None:
    recorded = where.recorded(value)
    if recorded in inputs:
        return
    if where.cwd in recorded.parents and any(recorded in path.parents for path in inputs):
        return  # a folder below the working directory holding inputs (plot-reduction --results DIR)
    here = where.here(recorded)
    if _is_under(here, top_real):
        return
    shown = f"argument {option} {_shorten(value, 400)}"
    try:
        here.relative_to(top_abs)
    except ValueError:
        raise CommandRefused(f"{shown}: outside {top_abs} and not an input of the result") from None
    raise CommandRefused(f"{shown}: leads out of {top_abs} through a symlink")


# --- re-running one job ---------------------------------------------------------------------------------------

def _mirror(tmp: Path, path: Path) -> Path:
    """Where the absolute path ``path`` lives inside the re-run's mirror of the file system."""
    return tmp / "fs" / Path(*path.parts[1:])


class _Interrupts:
    """Inside ``with _Interrupts() as interrupts:`` (in the main thread) SIGTERM and SIGHUP raise SystemExit and
    SIGINT KeyboardInterrupt, so that ``finally`` blocks stop the re-run and remove its folder; inside
    ``with interrupts.deferred():`` they wait until the block ends (a folder or process is never created
    without being recorded, a clean-up never cut short)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __enter__(self):
        self.holding, self.pending, self.previous = False, None, {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.holding:
            self.pending = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum):
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def deferred(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending is not None:
                signum, self.pending = self.pending, None
                self._raise(signum)


def _stop(proc: subprocess.Popen) -> None:
    """Kill the re-run's process group (the command and every process it started) and reap the command."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def rerun(top, name: str = "cheapest", keep: bool = False, log=None, timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Re-run the job ``name`` (see ``select_job``) in a temporary folder and compare its outputs.

    ``keep``: leave the temporary folder (when the re-run was not interrupted); ``log``: a function taking one
    line of progress; ``timeout``: seconds (> 0) before the re-run is stopped (a ``rerun-failed`` finding)."""
    top = Path(top)
    job = select_job(top, name)
    first = job.manifests[0]
    record = _read_manifest(first)
    where = Locator(first, record)
    what = str(job.outputs[0])
    inputs = recorded_inputs(where, [_read_manifest(m) or {} for m in job.manifests])
    try:
        subcommand, options = check_command(job.command, where, inputs, top)
    except CommandRefused as err:
        return [Finding("rerun-refused", str(first), f"not re-run: {err}")]
    label = f"neurofit {subcommand}"
    findings = []
    versions = record.get("versions") or {}
    now = package_versions()
    differ = sorted(k for k in versions if k in now and versions[k] != now[k])
    if differ:
        findings.append(Finding("note", what, "re-run with other package versions than the manifest's: " +
                                ", ".join(f"{k} {versions[k]} -> {now[k]}" for k in differ[:5])))
    tmp = proc = None
    finished = False
    with _Interrupts() as interrupts:
        try:
            with interrupts.deferred():
                tmp = Path(tempfile.mkdtemp(prefix="neurofit-audit-"))
            problem = _build_mirror(tmp, where, inputs)
            if problem:
                return findings + [Finding("rerun-failed", what, problem)]
            argv = _rebuild(tmp, where, subcommand, options)
            if log:
                log(f"re-running {label} (recorded wall time {job.wall_time or 0:.2f} s) for {what}")
            start = time.perf_counter()
            with open(tmp / "rerun.log", "wb") as out, interrupts.deferred():
                proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(Path(__file__).resolve().parents[1]),
                                         *argv], cwd=_mirror(tmp, where.cwd), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            try:
                status = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return findings + [Finding("rerun-failed", what, f"`{label} ...` did not finish within {timeout:g} s "
                                                                 f"(--timeout); stopped with its child processes")]
            wall = time.perf_counter() - start
            if status != 0:
                lines = (tmp / "rerun.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
                return findings + [Finding("rerun-failed", what, f"`{label} ...` exited with status {status}: "
                                                                 f"{_shorten(lines[-1], 200) if lines else 'no message'}")]
            findings += _compare_outputs(tmp, where, inputs, what, label, wall)
            finished = True
            return findings
        finally:
            with interrupts.deferred():
                if proc is not None:
                    _stop(proc)
                if tmp is not None and keep and finished:
                    if log:
                        log(f"re-run kept in {tmp}")
                elif tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)


def _rebuild(tmp: Path, where: Locator, subcommand: str, options: list) -> list[str]:
    """The re-run's arguments from ``check_command``'s result: every path moved into the mirror (absolute), a
    single value joined to its option (``--opt=value``: a value cannot pass for an option)."""
    argv = [subcommand]
    for option, value, is_path in options:
        values = [str(_mirror(tmp, where.recorded(v))) if is_path else str(v)
                  for v in (value if isinstance(value, list) else [value])]
        if value is True:
            argv.append(option)
        elif isinstance(value, list):
            argv += [option, *values]
        else:
            argv.append(f"{option}={values[0]}")
    return argv


def _build_mirror(tmp: Path, where: Locator, inputs: dict) -> str | None:
    """Copy every input into the mirror at its recorded path and make the working directory there; None, or
    what went wrong (one line)."""
    try:
        _mirror(tmp, where.cwd).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot make the working directory in the re-run's folder ({err.strerror or err})"
    for recorded, (name, expected) in sorted(inputs.items()):
        source = where.here(recorded)
        if not source.is_file():
            return f"input {name} not found (looked at {source})"
        target = _mirror(tmp, recorded)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as err:
            return f"cannot copy input {name} into the re-run's folder ({err.strerror or err})"
        if sha256_file(target) != expected:
            return f"input {name} differs from the checksum in the manifest; cannot re-run with the same inputs"
    return None


def _compare_outputs(tmp: Path, where: Locator, inputs: dict, what: str, label: str, wall: float) -> list[Finding]:
    """Every output the re-run wrote (each has its manifest; a copied input is none) against the original."""
    copied = {_mirror(tmp, recorded) for recorded in inputs}
    produced = sorted(p for p in (tmp / "fs").rglob(f"*{MANIFEST_SUFFIX}") if p not in copied)
    if not produced:
        return [Finding("rerun-failed", what, f"`{label} ...` wrote no output with a manifest")]
    findings = []
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

def audit(top, rerun_name: str | None = None, keep: bool = False, log=None,
          timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """``check_outputs`` and, if ``rerun_name`` is given, ``rerun`` (``keep``, ``log``, ``timeout`` in seconds:
    see there): every finding, in that order."""
    top = Path(top)
    if not top.is_dir():
        raise AuditError(f"{top}: no such folder (give a study's results folder, e.g. results/hh_tutorial)")
    _SHA_MEMO.clear()  # files may have changed since an earlier audit in this process
    findings = check_outputs(top)
    if rerun_name:
        findings += rerun(top, rerun_name, keep=keep, log=log, timeout=timeout)
    return findings
