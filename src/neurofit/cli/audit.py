"""``neurofit audit``: check a study's results against their manifests and re-run one of them."""
from __future__ import annotations

import sys

from .auditor import DEFAULT_TIMEOUT

HELP = "check every result of a study against its manifest (checksums, inputs) and re-run one to the same numbers"

DESCRIPTION = """Check every result of a study against its manifest and re-run one to the same numbers.

Prints one line per finding, `<kind>: <file>: <what>`: changed (sha256 differs from the manifest, or a
manifest that is unreadable or records a command the re-run would refuse), missing (a manifest without its
file, or a folder without any manifest), no-manifest, stale (an input, or an input's manifest, changed or
gone since the result was made), rerun-mismatch, rerun-failed, rerun-refused. `note:` lines do not fail the
audit; `ok:` lines confirm a re-run output. logs/, benchmarks/, fit checkpoints and report.html are not
results.

The re-run trusts nothing in the folder: the manifest's command is parsed by neurofit's own parser and
rebuilt; only the steps of a study run (never `audit`), and every path on it must be one of the result's
inputs or lie inside RESULTS (symlinks resolved), else it is refused. It runs in a temporary folder (under
$TMPDIR), on copies of the inputs checked against their checksums, without a shell, in a process group of its
own that is killed after --timeout seconds or when the audit is interrupted (SIGTERM, SIGINT, SIGHUP); the
temporary folder is removed in every case (unless --keep and the re-run finished). Arrays and JSON numbers
are compared exactly, ignoring run times. Exit status 0 if nothing fails, 1 otherwise."""


def _seconds(text: str) -> float:
    """A positive number of seconds (the argument of --timeout)."""
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


def register(subparsers) -> None:
    import argparse
    p = subparsers.add_parser("audit", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="RESULTS", help="a study's results folder, e.g. results/hh_tutorial "
                                                     "(or results/ for every study)")
    p.add_argument("--rerun", metavar="NAME", nargs="?", const="cheapest",
                   help="re-run one result and compare its numbers: a fit's folder name (DE_1), an output's path "
                        "under RESULTS (simulate/traces.npz), or 'cheapest' (the computed result of least wall time; "
                        "the default when --rerun has no value)")
    p.add_argument("--keep", action="store_true", help="keep the re-run's temporary folder (its path is printed)")
    p.add_argument("--timeout", metavar="SECONDS", type=_seconds, default=DEFAULT_TIMEOUT,
                   help=f"stop the re-run (and every process it started) after this many seconds of wall time, a "
                        f"rerun-failed finding (default: {DEFAULT_TIMEOUT:g})")
    p.set_defaults(func=run)


def run(args) -> int:
    from .auditor import audit

    def log(message):
        print(f"neurofit: {message}", file=sys.stderr, flush=True)

    findings = audit(args.folder, rerun_name=args.rerun, keep=args.keep, log=log, timeout=args.timeout)
    for finding in findings:
        print(finding, flush=True)
    failed = [f for f in findings if f.fails]
    checked = sum(1 for f in findings if f.kind == "ok")
    rerun = f"; re-run: {checked} output(s) identical" if args.rerun else ""
    print(f"audit {args.folder}: {len(failed)} finding(s){rerun} -> {'FAIL' if failed else 'OK'}", flush=True)
    return 1 if failed else 0
