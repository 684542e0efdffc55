"""``neurofit fit``: one fit of a study (one optimizer, one seed) → fit.json + history.parquet."""
from __future__ import annotations

import sys
import warnings

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "fit a study's model with one optimizer and seed of its 'fit' section; write fit.json and history.parquet"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help=HELP,
        description=HELP + ". The evaluated candidates are checkpointed (JSON) after every round: run the same "
                           "command again after a kill and it resumes, ending with the numbers of an uninterrupted "
                           "run; a damaged checkpoint is discarded with a warning and the fit starts over.")
    add_study_arguments(p)
    p.add_argument("--optimizer", required=True, metavar="LABEL",
                   help="label (or name) of one of the study's fit.optimizers")
    p.add_argument("--seed", required=True, type=int, metavar="S", help="seed of the optimizer (and of model noise)")
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--output", required=True, metavar="JSON",
                   help="fit.json: best parameters and error, best error per round, evaluations, wall time")
    p.add_argument("--history", metavar="PARQUET", help="every evaluation (parameters, error, round); "
                                                         "default: history.parquet next to --output")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint to resume from and save to after every round "
                                                         "(default: checkpoint.json next to --output; removed once the "
                                                         "results are written)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not checkpoint")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..data.dataset import Dataset
    from ..workflow.fit_section import FitSection, discard_checkpoint, run_fit, write_fit
    from ..workflow.provenance import write_manifest

    output = Path(args.output)
    history = Path(args.history) if args.history else output.parent / "history.parquet"
    checkpoint = None if args.no_checkpoint else Path(args.checkpoint or output.parent / "checkpoint.json")
    with stopwatch() as elapsed:
        study = load_study(args)
        plan = FitSection(study)
        plan.optimizer(args.optimizer)  # a one-line error before reading data
        dataset = Dataset.load_npz(args.data) if args.data else study.dataset()
        with warnings.catch_warnings():  # e.g. a damaged checkpoint: one line in the job's log
            warnings.showwarning = _one_line_warning
            result = run_fit(plan, dataset, args.optimizer, args.seed, checkpoint=checkpoint, log=say)
        write_fit(result, output, history)
    doc = result.doc
    inputs = config_inputs(args) + ([args.data] if args.data else study.source_files)
    common = dict(study=study.name, config=study.section, seeds={"fit": args.seed}, inputs=inputs,
                  backend=plan.settings["backend"], dtype=plan.settings["dtype"], wall_time=elapsed())
    write_manifest(history, **common, extra={"optimizer": doc["optimizer"], "n_evaluations": doc["n_evaluations"]})
    write_manifest(output, **common, extra={"optimizer": doc["optimizer"], "best_error": doc["best_error"],
                                            "resumed_from_round": doc["resumed_from_round"]})
    if checkpoint is not None:
        discard_checkpoint(checkpoint)
    say(f"fit {doc['optimizer']['label']} seed {args.seed}: best error {doc['best_error']:.6g} after "
        f"{doc['n_evaluations']} evaluations ({doc['wall_time_s']:.2f} s) -> {output}")
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one line on stderr (the default adds the file, line number and source)."""
    print(f"neurofit: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
