"""``neurofit plot-fit``: figures of a study's fits (convergence, parameters, traces)."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say

HELP = "plot a study's fits: best error vs evaluations, fitted parameters vs ground truth, refined traces"
KINDS = ("convergence", "parameters", "traces", "pareto")  # = workflow.fit_figures.KINDS (not imported: --help stays fast)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot-fit", help=HELP,
        description=HELP + " (one process for all three: the workflow's figures of a study's fits).")
    add_study_arguments(p)
    p.add_argument("--fits", required=True, nargs="+", metavar="JSON", help="fit.json files of 'neurofit fit'")
    p.add_argument("--refined", nargs="*", default=[], metavar="JSON", help="refined.json files of 'neurofit refine'")
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (traces; default: the "
                                                  "recordings named in the config)")
    p.add_argument("--convergence", metavar="FILE",
                   help="figure of the best error so far vs evaluations, one colour per optimizer and one line style "
                        "per seed (stars: after refine)")
    p.add_argument("--parameters", metavar="FILE",
                   help="figure of every run's parameters after fit and refine (deviation from ground_truth in %% "
                        "when the study gives it)")
    p.add_argument("--traces", metavar="FILE", help="figure of the best run's model traces over the recorded ones")
    p.add_argument("--pareto", metavar="FILE", help="multi-objective fits: figure of the best run's Pareto front")
    p.add_argument("--dpi", type=int, help="resolution (default: config figures.dpi)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..workflow.fit_figures import write_fit_figures
    from ..workflow.fit_section import FitSection
    from ..workflow.provenance import write_manifest
    from ..workflow.study import ConfigError

    outputs = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind)}
    if not outputs:
        raise ConfigError("plot-fit: give at least one of --convergence, --parameters, --traces, --pareto (figure "
                          "files)")
    for kind, path in outputs.items():
        if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ConfigError(f"--{kind} {path}: use a .png, .svg or .pdf file name")
    study = load_study(args)
    written = write_fit_figures(FitSection(study), args.fits, args.refined, outputs, data=args.data, dpi=args.dpi)
    for kind, figure in zip(outputs, written):
        write_manifest(figure.path, study=study.name, config=study.section,
                       inputs=[*figure.inputs, *config_inputs(args)], wall_time=figure.wall_time)
        say(f"figure ({kind}) -> {figure.path}")
    return 0
