"""``neurofit fit-cell``: one stage of one cell of a batch study -> result.json (a status for every cell).

A problem of this cell (unreadable file, every sweep failing quality control, nothing to fit) is written as
the result's status and reason and the command succeeds, so that the batch goes on and the population table
lists the cell; only the command's own misuse (a missing config, an unknown stage) fails it."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "fit one stage of one cell of a batch study; write result.json (status, parameters, errors) and a figure"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit-cell", help=HELP,
        description=HELP + ". Every optimizer and seed of the stage's fit section runs in turn (checkpointed after "
                           "every round, in fit/<label>_<seed>/ beside the result), then refine; the best run's "
                           "parameters are validated on the cell's held-out sweeps.")
    add_study_arguments(p)
    p.add_argument("--cell-file", required=True, metavar="JSON", help="the cell, as 'neurofit prepare-cell' wrote it")
    p.add_argument("--stage", required=True, metavar="NAME", help="the stage to fit (a name under the study's stages)")
    p.add_argument("--previous", nargs="*", default=[], metavar="JSON",
                   help="result.json of the cell's earlier stages (the stage before this one at least)")
    p.add_argument("--group-posterior", nargs="*", default=[], metavar="JSON",
                   help="for a stage with amortize: group, the group's group.json ('neurofit train-group'; its "
                        "posterior.pt, training.npz and protocol.npz beside it)")
    p.add_argument("--output", required=True, metavar="JSON", help="where to write result.json")
    p.add_argument("--figure", metavar="PNG", help="where to draw the stage's traces (or the cell's status)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..data.files import atomic_write_json
    from ..errors import ConfigError
    from ..workflow.batch import BatchStudy
    from ..workflow.cell_stage import run_cell_stage, stage_figure
    from ..workflow.group_posterior import GROUP_FILES
    from ..workflow.population import read_result
    from ..workflow.provenance import write_manifest
    from ..workflow.sheet import Cell

    with stopwatch() as elapsed:
        batch = BatchStudy(load_study(args))
        batch.stage(args.stage)  # a one-line error for an unknown stage
        try:
            cell = Cell.from_dict(json.loads(Path(args.cell_file).read_text(encoding="utf-8")), args.cell_file)
        except ValueError as err:
            raise ConfigError(f"{args.cell_file}: not valid JSON ({err})") from None
        previous = {}
        for path in args.previous:
            doc = read_result(path)
            previous[doc["stage"]] = doc
        group, group_files = None, []
        for path in args.group_posterior:
            group = (json.loads(Path(path).read_text(encoding="utf-8")), Path(path).parent)
            group_files = [path, *(str(Path(path).parent / name) for name in GROUP_FILES
                                   if (Path(path).parent / name).is_file())]
        output = Path(args.output)
        run = run_cell_stage(batch, cell, args.stage, output.parent, previous, log=say, group=group)
        atomic_write_json(output, run.doc)
        if args.figure:
            from ..plots import save_figure

            save_figure(stage_figure(run), args.figure, dpi=batch.study.section["figures"]["dpi"])
    inputs = config_inputs(args) + [args.cell_file, *args.previous, *group_files] + \
        [f for f in [*cell.files, *cell.current_files] if Path(f).is_file()]
    extra = {"status": run.doc["status"], "reason": run.doc["reason"]}
    common = dict(study=batch.study.name, config=batch.study.section, inputs=inputs, wall_time=elapsed(), extra=extra)
    write_manifest(output, **common)
    if args.figure:
        write_manifest(args.figure, **common)
    say(f"cell {cell.cell}, stage {args.stage}: {run.doc['status']}"
        f"{' (' + run.doc['reason'] + ')' if run.doc['reason'] else ''} -> {output}")
    return 0
