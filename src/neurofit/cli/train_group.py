"""``neurofit train-group``: the amortized posterior of one infer stage for one group of a batch study's sheet.

A stage with ``amortize: group`` trains here once per sheet group (results/<study>/groups/<group>/<stage>/):
posterior.pt, training.npz and protocol.npz, and group.json (the cells that share the group's protocol, the
refused ones with their reasons, the noise used). Each cell's ``fit-cell`` job then only conditions on it. A
group without a usable cell is written as group.json with status ``failed`` and the command succeeds, so
that its cells fail with that reason and the other groups go on."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "train the amortized posterior of an infer stage for one group of a batch study's cells"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-group", help=HELP,
        description=HELP + " (amortize: group); writes group.json and, beside it, posterior.pt, training.npz and "
                           "protocol.npz.")
    add_study_arguments(p)
    p.add_argument("--stage", required=True, metavar="NAME", help="the infer stage (amortize: group)")
    p.add_argument("--group", required=True, metavar="NAME", help="the group's folder name (its sheet label)")
    p.add_argument("--cell-files", nargs="*", default=[], metavar="JSON",
                   help="the group's cells, as 'neurofit prepare-cell' wrote them (sheet order)")
    p.add_argument("--output", required=True, metavar="JSON", help="where to write group.json")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..data.files import atomic_write_json
    from ..errors import ConfigError
    from ..workflow.batch import BatchStudy
    from ..workflow.cell_stage import train_group
    from ..workflow.group_posterior import GROUP_FILES
    from ..workflow.provenance import write_manifest
    from ..workflow.sheet import Cell

    with stopwatch() as elapsed:
        batch = BatchStudy(load_study(args))
        if not batch.amortized(args.stage):
            raise ConfigError(f"--stage {args.stage}: not a stage with amortize: group")
        cells = []
        for path in args.cell_files:
            try:
                cells.append(Cell.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), path))
            except ValueError as err:
                raise ConfigError(f"{path}: not valid JSON ({err})") from None
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        doc = {"study": batch.study.name, **train_group(batch, args.stage, args.group, cells, output.parent, log=say)}
        atomic_write_json(output, doc)
    recordings = [f for cell in cells for f in [*cell.files, *cell.current_files] if Path(f).is_file()]
    common = dict(study=batch.study.name, config=batch.study.section, seeds={"infer": batch.stage(args.stage)["infer"]["seed"]},
                  inputs=config_inputs(args) + list(args.cell_files) + recordings, wall_time=elapsed(),
                  extra={"status": doc["status"], "reason": doc["reason"]})
    for name in GROUP_FILES if doc["status"] == "ok" else ():
        write_manifest(output.parent / name, **common)
    write_manifest(output, **common)
    say(f"group {args.group}, stage {args.stage}: {doc['status']}{' (' + doc['reason'] + ')' if doc['reason'] else ''}"
        f"; {len(doc['cells'])} cells share its posterior -> {output}")
    return 0
