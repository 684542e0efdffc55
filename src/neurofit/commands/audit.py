"""``neurofit audit``: check a study's results against their manifests and re-run one of them."""
from __future__ import annotations

import sys

HELP = "check every result of a study against its manifest (checksums, inputs) and re-run one to the same numbers"

DESCRIPTION = """Check every result of a study against its manifest and re-run one to the same numbers.

Prints one line per finding, `<kind>: <file>: <what>`: changed (sha256 differs from the manifest), missing
(a manifest without its file), no-manifest, stale (an input changed since the result was made),
rerun-mismatch, rerun-failed. `note:` lines do not fail the audit; `ok:` lines confirm a re-run output.
logs/, benchmarks/, fit checkpoints and report.html are not results. The re-run runs the manifest's command
line again in a temporary folder, on the same inputs (checked against their checksums), and compares arrays
and JSON numbers exactly, ignoring run times. Exit status 0 if nothing fails, 1 otherwise."""


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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..audit import audit

    def log(message):
        print(f"neurofit: {message}", file=sys.stderr, flush=True)

    findings = audit(args.folder, rerun_name=args.rerun, keep=args.keep, log=log)
    for finding in findings:
        print(finding, flush=True)
    failed = [f for f in findings if f.fails]
    checked = sum(1 for f in findings if f.kind == "ok")
    rerun = f"; re-run: {checked} output(s) identical" if args.rerun else ""
    print(f"audit {args.folder}: {len(failed)} finding(s){rerun} -> {'FAIL' if failed else 'OK'}", flush=True)
    return 1 if failed else 0
