"""``neurofit plot-traces``: simulated traces over the recorded ones, one panel per trace."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say

HELP = "plot simulated traces (from 'neurofit simulate') over recorded data; write a PNG/SVG/PDF"


def register(subparsers) -> None:
    p = subparsers.add_parser("plot-traces", help=HELP, description=HELP + ".")
    p.add_argument("--simulation", required=True, metavar="NPZ", help="output of 'neurofit simulate'")
    p.add_argument("--data", metavar="NPZ", help="dataset from 'neurofit prepare' (default: the recordings named "
                                                  "in the config; none: plot the model alone)")
    p.add_argument("--output", required=True, metavar="FILE", help="figure file (.png, .svg or .pdf)")
    add_study_arguments(p, required=False)
    p.add_argument("--dpi", type=int, help="resolution (default: config figures.dpi, else 120)")
    p.add_argument("--max-traces", type=int, metavar="N", help="plot at most N traces (default: config, else 10)")
    p.add_argument("--title", help="figure title (default: study and model)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..workflow.provenance import write_manifest
    from ..workflow.simulate_figures import write_traces_figure
    from ..workflow.study import ConfigError

    if (args.config or args.config_json) and not args.study:
        raise ConfigError("--study NAME is needed with --config/--config-json")
    if args.study and not (args.config or args.config_json):
        raise ConfigError("--study needs --config FILE or --config-json TEXT")
    if Path(args.output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"--output {args.output}: use a .png, .svg or .pdf file name")
    study = load_study(args) if args.study else None
    figure = write_traces_figure(study, args.simulation, args.output, data=args.data, dpi=args.dpi,
                                 max_traces=args.max_traces, title=args.title)
    write_manifest(figure.path, study=study.name if study else None, config=study.section if study else None,
                   inputs=[*figure.inputs, *config_inputs(args)], wall_time=figure.wall_time)
    say(f"figure -> {figure.path}")
    return 0
