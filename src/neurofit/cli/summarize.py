"""``neurofit summarize``: one table (CSV) of every fit of a study, refined or not."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "tabulate fits (fit.json, refined.json): errors after fit and refine, evaluations, wall times, parameters"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summarize", help=HELP,
        description=HELP + " and, when the study gives ground_truth, the relative error of each final value. "
                           "One row per (optimizer, seed); values in SI units.")
    add_study_arguments(p)
    p.add_argument("--fits", required=True, nargs="+", metavar="JSON", help="fit.json files of 'neurofit fit'")
    p.add_argument("--refined", nargs="*", default=[], metavar="JSON",
                   help="refined.json files of 'neurofit refine' (matched to the fits by optimizer and seed)")
    p.add_argument("--output", required=True, metavar="CSV", help="where to write the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.files import atomic_write_text
    from ..workflow.fit_section import FitSection, read_fit, read_refined, summarize
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        study = load_study(args)
        plan = FitSection(study)
        fits = [read_fit(f) for f in args.fits]
        refined = [read_refined(f) for f in args.refined]
        table = summarize(fits, refined, plan.ground_truth)
        atomic_write_text(args.output, table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    write_manifest(args.output, study=study.name, config=study.section, inputs=[*args.fits, *args.refined,
                                                                                *config_inputs(args)],
                   wall_time=elapsed(), extra={"rows": len(table)})
    say(f"{len(table)} fit(s) -> {args.output}")
    return 0
