"""``neurofit population``: the population table of a batch study (cells.csv) and its parameter figure."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "gather the cells of a batch study: one row per cell (status, reason, parameters per stage, errors)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "population", help=HELP,
        description=HELP + "; and a figure of every stage's parameters by group.")
    add_study_arguments(p)
    p.add_argument("--results", required=True, nargs="+", metavar="JSON",
                   help="result.json of every (cell, stage), as 'neurofit fit-cell' wrote them")
    p.add_argument("--output", required=True, metavar="CSV", help="where to write the table")
    p.add_argument("--figure", metavar="PNG", help="where to draw the parameters by group")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..workflow.batch import BatchStudy
    from ..workflow.population import (
        parameter_units,
        parameters_figure,
        population_table,
        read_result,
        write_table,
    )
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        batch = BatchStudy(load_study(args))
        results = [read_result(path) for path in args.results]
        table = population_table(results, batch.names, batch.compare_groups())
        write_table(table, args.output)
        if args.figure:
            from ..plots import save_figure

            fig = parameters_figure(table, batch.names, parameter_units(results), title=batch.study.name)
            save_figure(fig, args.figure, dpi=batch.study.section["figures"]["dpi"])
    counts = table["status"].value_counts().to_dict()
    common = dict(study=batch.study.name, config=batch.study.section, inputs=[*args.results, *config_inputs(args)],
                  wall_time=elapsed(), extra={"cells": len(table), "status": counts})
    write_manifest(args.output, **common)
    if args.figure:
        write_manifest(args.figure, **common)
    say(f"{len(table)} cell(s) ({', '.join(f'{n} {s}' for s, n in counts.items())}) -> {args.output}")
    return 0
