"""``neurofit infer`` (gather a study's training-data chunks, train, write the posterior and its figures)
and ``neurofit calibrate`` (simulation-based calibration of that posterior)."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP_INFER = "simulation-based inference for a study's 'infer' section from its training-data chunks"
HELP_CALIBRATE = "check a study's posterior by simulation-based calibration (infer.sbc_simulations test simulations)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer", help=HELP_INFER,
        description=HELP_INFER + " (written by 'neurofit simulate --chunk I --of N'): train (NPE, NLE or NRE), "
                                 "then write posterior.pt, samples.parquet (SI units), summary.json (with the noise "
                                 "used and the misspecification check: are the data's features among the "
                                 "simulations'?), pairplot.png, predictive.png, and the posterior predictive check of "
                                 "the features (predictive_check.json, predictive_check.png) into the output folder "
                                 "('neurofit calibrate' checks the posterior).")
    _add_arguments(p)
    p.add_argument("--chunks", required=True, nargs="+", metavar="NPZ", help="every training-data chunk, any order")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the posterior, samples, figures")
    p.set_defaults(func=run_infer)
    p = subparsers.add_parser(
        "calibrate", help=HELP_CALIBRATE,
        description=HELP_CALIBRATE + ": draw parameter sets from the prior, simulate them, and rank each truth "
                                     "among posterior samples given its simulation; write sbc_ranks.png, coverage.png "
                                     "(expected coverage of central intervals vs nominal level) and calibration.json.")
    _add_arguments(p)
    p.add_argument("--posterior", required=True, metavar="PT", help="posterior.pt written by 'neurofit infer'")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the figures and calibration.json")
    p.set_defaults(func=run_calibrate)


def _add_arguments(p) -> None:
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: the study's infer.threads)")


def _run(args, step, inputs: list, seeds: dict, extra) -> tuple:
    """Load the study (its infer section, --threads applied) and the dataset, call ``step(study, dataset)``
    → {name: path}, and write a manifest next to every file it wrote; returns (study, infer, seconds)."""
    from ..data.dataset import Dataset
    from ..workflow.infer_section import InferSection
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        study = load_study(args)
        infer = InferSection.settings_of(study)
        if args.threads is not None:
            infer["threads"] = args.threads
        dataset = Dataset.load_npz(args.data) if args.data else None
        written = step(study, dataset)
    inputs = config_inputs(args) + inputs + ([args.data] if args.data else study.data_files)
    for path in written.values():
        write_manifest(path, study=study.name, config=study.section, seeds=seeds(infer), inputs=inputs,
                       wall_time=elapsed(), extra=extra(infer))
    return study, infer, elapsed()


def run_infer(args) -> int:
    import json
    from pathlib import Path

    from ..workflow.infer_section import PREDICTIVE_SEED_OFFSET, run_inference

    study, infer, seconds = _run(args, lambda study, data: run_inference(study, args.chunks, args.output_dir, data),
                                 list(args.chunks), lambda infer: {"infer": infer["seed"],
                                                                   "predictive": infer["seed"] + PREDICTIVE_SEED_OFFSET},
                                 lambda infer: {"method": infer["method"], "threads": infer["threads"]})
    check = json.loads((Path(args.output_dir) / "summary.json").read_text(encoding="utf-8"))["misspecification"]
    verdict = "" if check is None else f"; misspecification check: {check['verdict']} (p = {check['p_value']:.3g})"
    say(f"study '{study.name}': {infer['method']} from {len(args.chunks)} chunk(s) in {seconds:.1f} s "
        f"-> {args.output_dir}{verdict}")
    return 0


def run_calibrate(args) -> int:
    from ..workflow.infer_section import CALIBRATION_SEED_OFFSET, run_calibration

    study, infer, seconds = _run(
        args, lambda study, data: run_calibration(study, args.posterior, args.output_dir, data), [args.posterior],
        lambda infer: {"calibration": infer["seed"] + CALIBRATION_SEED_OFFSET},
        lambda infer: {"n_tests": infer["sbc_simulations"]})
    say(f"study '{study.name}': calibration on {infer['sbc_simulations']} test simulations in {seconds:.1f} s "
        f"-> {args.output_dir}")
    return 0
