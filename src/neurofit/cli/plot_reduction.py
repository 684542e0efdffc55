"""``neurofit plot-reduction``: figures of a study's model reduction (loss, train and held-out traces)."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say

HELP = "plot a study's model reduction: loss per evaluation, target vs fitted on the train and held-out amplitudes"


def register(subparsers) -> None:
    p = subparsers.add_parser("plot-reduction", help=HELP, description=HELP + " (from the files of 'neurofit reduce').")
    add_study_arguments(p)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="folder written by 'neurofit reduce' (reduction.json/.npz, heldout.json/.npz)")
    p.add_argument("--loss", metavar="FILE", help="figure of the loss of every evaluation and the best so far")
    p.add_argument("--train", metavar="FILE", help="figure of target vs fitted traces on the train amplitudes")
    p.add_argument("--heldout", metavar="FILE", help="figure of target vs fitted traces on the held-out amplitudes")
    p.add_argument("--dpi", type=int, help="resolution (default: config figures.dpi)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..workflow.provenance import write_manifest
    from ..workflow.reduction_section import FIGURES, FILES, write_figures
    from ..workflow.study import ConfigError

    outputs = {kind: getattr(args, kind) for kind in FIGURES if getattr(args, kind)}
    if not outputs:
        raise ConfigError("plot-reduction: give at least one of --loss, --train, --heldout (figure files)")
    for kind, path in outputs.items():
        if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ConfigError(f"--{kind} {path}: use a .png, .svg or .pdf file name")
    results = Path(args.results)
    for name in FILES:
        if not (results / name).is_file():
            raise ConfigError(f"--results {results}: no {name} (run 'neurofit reduce' first)")
    study = load_study(args)
    for kind, figure in zip(outputs, write_figures(study, results, outputs, dpi=args.dpi)):
        write_manifest(figure.path, study=study.name, config=study.section,
                       inputs=[*figure.inputs, *config_inputs(args)], wall_time=figure.wall_time)
        say(f"figure ({kind}) -> {figure.path}")
    return 0
