"""``neurofit calibrate``: simulation-based calibration of a study's posterior (rank histograms, coverage)."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "check a study's posterior by simulation-based calibration (infer.sbc_simulations test simulations)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help=HELP,
        description=HELP + ": draw parameter sets from the prior, simulate them, and rank each truth among posterior "
                           "samples given its simulation; write sbc_ranks.png, coverage.png (expected coverage of "
                           "central intervals vs nominal level) and calibration.json into the output folder.")
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--posterior", required=True, metavar="PT", help="posterior.pt written by 'neurofit infer'")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the figures and calibration.json")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: the study's infer.threads)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import Dataset
    from ..inference_study import run_calibration
    from ..provenance import write_manifest
    from ..study import ConfigError

    with stopwatch() as elapsed:
        study = load_study(args)
        infer = study.section.get("infer")
        if infer is None:
            raise ConfigError(f"{study.where('infer')}: missing (the settings of simulation-based inference)")
        if args.threads is not None:
            infer["threads"] = args.threads
        dataset = Dataset.load_npz(args.data) if args.data else None
        written = run_calibration(study, args.posterior, args.output_dir, dataset=dataset)
    inputs = config_inputs(args) + [args.posterior] + ([args.data] if args.data else study.data_files)
    for path in written.values():
        write_manifest(path, study=study.name, config=study.section, seeds={"calibration": infer["seed"] + 1},
                       inputs=inputs, wall_time=elapsed(), extra={"n_tests": infer["sbc_simulations"]})
    say(f"study '{study.name}': calibration on {infer['sbc_simulations']} test simulations in {elapsed():.1f} s "
        f"-> {args.output_dir}")
    return 0
