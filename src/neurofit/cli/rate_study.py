"""``neurofit rate-study``: the rate-model study of a config's ``rate`` section → figures + rate_study.json."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "run the rate-model study of a study's 'rate' section; write its figures and rate_study.json"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rate-study", help=HELP,
        description=HELP + " into --output-dir: fi_curve.png, drdt.png, trajectories.png, ou_run.png, "
                           "bifurcation_map.png, fit_traces.png, rate_study.json (fixed points and eigenvalues, "
                           "trajectories, OU transitions, bifurcation map, fit).")
    add_study_arguments(p)
    p.add_argument("--chunks", nargs="*", default=[], metavar="NPZ",
                   help="bifurcation-map chunks of 'neurofit rate-chunk' to gather (every chunk once); none: "
                        "compute the map here")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder of the figures and rate_study.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..workflow.provenance import write_manifest
    from ..workflow.rate_section import OUTPUTS, SUMMARY, run_rate_study

    out = Path(args.output_dir)
    with stopwatch() as elapsed:
        study = load_study(args)
        summary = run_rate_study(study, out, args.chunks)
    settings = study.section["rate"]
    seeds = {"ou": settings["ou"]["seed"], "fit": settings["fit"]["seed"]}
    inputs = config_inputs(args) + list(args.chunks)
    fps = [round(fp["r"], 3) for fp in summary["fixed_points"]]
    for name in OUTPUTS:
        extra = {"fixed_points": fps} if name == SUMMARY else None
        write_manifest(out / name, study=study.name, config=study.section, seeds=seeds, inputs=inputs,
                       backend=settings["trajectories"]["backend"], wall_time=elapsed(), extra=extra)
    fit = summary.get("fit")
    fitted = ", ".join(f"{k} = {v:.4g}" for k, v in fit["params"].items()) if fit else "off"
    say(f"rate study '{study.name}': fixed points {fps}; {summary['bifurcation']['n_bistable_points']} bistable "
        f"grid points; fit: {fitted} ({elapsed():.2f} s) -> {out}")
    return 0
