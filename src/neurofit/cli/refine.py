"""``neurofit refine``: least-squares refinement of one fit → refined.json."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "refine one fit (fit.json from 'neurofit fit') by least squares with the exact Jacobian; write refined.json"


def register(subparsers) -> None:
    p = subparsers.add_parser("refine", help=HELP, description=HELP + " (parameters, MSE, ratio to the noise floor, "
                                                                       "evaluations, wall time).")
    add_study_arguments(p)
    p.add_argument("--fit", required=True, metavar="JSON", help="fit.json written by 'neurofit fit'")
    p.add_argument("--history", metavar="PARQUET", help="its history (default: the file fit.json names)")
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--output", required=True, metavar="JSON", help="where to write refined.json")
    p.add_argument("--noise-floor", type=float, metavar="MSE",
                   help="MSE of a perfect model on these data (SI units squared); default: fit.noise_floor")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.dataset import Dataset
    from ..data.files import atomic_write_json
    from ..workflow.fit_section import FitSection, history_path_of, read_fit, read_history, run_refine
    from ..workflow.provenance import write_manifest
    from ..workflow.study import ConfigError

    if args.noise_floor is not None and not args.noise_floor > 0:
        raise ConfigError(f"--noise-floor {args.noise_floor}: must be a positive number")
    with stopwatch() as elapsed:
        study = load_study(args)
        plan = FitSection(study)
        fit_doc = read_fit(args.fit)
        history_file = args.history or history_path_of(fit_doc)
        history = read_history(history_file)
        dataset = Dataset.load_npz(args.data) if args.data else study.dataset()
        doc = run_refine(plan, dataset, fit_doc, history, noise_floor=args.noise_floor, log=say)
        atomic_write_json(args.output, doc)
    inputs = [args.fit, str(history_file)] + config_inputs(args) + \
        ([args.data] if args.data else study.source_files)
    write_manifest(args.output, study=study.name, config=study.section, seeds={"fit": fit_doc["seed"]}, inputs=inputs,
                   backend=plan.settings["backend"], dtype=plan.settings["dtype"], wall_time=elapsed(),
                   extra={"optimizer": doc["optimizer"], "mse": doc["mse"], "ratio_to_floor": doc["ratio_to_floor"]})
    say(f"refined -> {args.output}")
    return 0
