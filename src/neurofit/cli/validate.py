"""``neurofit validate``: the best fit of a study scored on its held-out sweeps -> validation.json + figure."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = ("score the best fit of a study on its fitted and held-out sweeps (validation section): spike counts, gamma, "
        "latency and ISI errors, voltage RMSE")


def register(subparsers) -> None:
    p = subparsers.add_parser("validate", help=HELP, description=HELP + "; write validation.json and a figure.")
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="the fitted sweeps, as 'neurofit prepare' wrote them (default: "
                                                  "read the recording)")
    p.add_argument("--fits", required=True, nargs="+", metavar="JSON", help="fit.json files of 'neurofit fit'")
    p.add_argument("--refined", nargs="*", default=[], metavar="JSON", help="refined.json files of 'neurofit refine'")
    p.add_argument("--output", required=True, metavar="JSON", help="where to write validation.json")
    p.add_argument("--figure", metavar="PNG", help="where to draw the model over the fitted and held-out sweeps")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.dataset import Dataset
    from ..data.files import atomic_write_json
    from ..workflow.fit_section import read_fit, read_refined
    from ..workflow.provenance import write_manifest
    from ..workflow.validation import heldout_settings, validate_study

    with stopwatch() as elapsed:
        study = load_study(args)
        heldout_settings(study)  # a one-line error before any work
        dataset = Dataset.load_npz(args.data) if args.data else None
        doc, figure = validate_study(study, [read_fit(f) for f in args.fits], [read_refined(f) for f in args.refined],
                                     dataset)
        atomic_write_json(args.output, doc)
        if args.figure:
            from ..plots import save_figure

            save_figure(figure, args.figure, dpi=study.section["figures"]["dpi"])
    inputs = [*args.fits, *args.refined, *config_inputs(args), *([args.data] if args.data else []), *study.data_files]
    common = dict(study=study.name, config=study.section, inputs=inputs, wall_time=elapsed(),
                  extra={"heldout": doc["heldout"], "heldout_count_error": doc["heldout_count_error"]})
    write_manifest(args.output, **common)
    if args.figure:
        write_manifest(args.figure, **common)
    counts = "" if doc["heldout_count_error"] is None else f", spike-count error {doc['heldout_count_error']:.3g}"
    rmse = "" if doc["heldout_rmse"] is None else f"RMSE {doc['heldout_rmse'] * 1e3:.3g} mV"
    say(f"{len(doc['heldout'])} held-out sweep(s): {rmse}{counts} -> {args.output}")
    return 0
