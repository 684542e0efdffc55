"""``neurofit prepare-cell``: freeze one row of a batch study's sample sheet (results/<study>/cells/<cell>/cell.json).

The cell's jobs read this file, not the sheet: adding, removing or editing another row leaves it - and the
cell's results - untouched; the workflow runs this command again only when the cell's own row changes."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "freeze one cell (row) of a batch study's sample sheet as JSON, file paths resolved"


def register(subparsers) -> None:
    p = subparsers.add_parser("prepare-cell", help=HELP,
                              description=HELP + " (relative to the working directory when inside it).")
    add_study_arguments(p)
    p.add_argument("--cell", required=True, metavar="ID", help="the cell's id (the sheet's cell column)")
    p.add_argument("--output", required=True, metavar="JSON", help="where to write the cell")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from ..data.files import atomic_write_json
    from ..errors import ConfigError
    from ..workflow.batch import BatchStudy
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        batch = BatchStudy(load_study(args))
        cells = {cell.cell: cell for cell in batch.cells()}
        if args.cell not in cells:
            raise ConfigError(f"--cell {args.cell}: not a cell of {batch.sheet} (cells: {', '.join(cells)})")
        cell = cells[args.cell]
        atomic_write_json(args.output, {"format": "neurofit.cell", "study": batch.study.name,
                                        **cell.as_dict(relative_to=os.getcwd())})
    write_manifest(args.output, study=batch.study.name, config=batch.study.section,
                   inputs=config_inputs(args) + [str(batch.sheet)], wall_time=elapsed())
    say(f"cell {cell.cell} ({len(cell.files)} file(s)) -> {args.output}")
    return 0
