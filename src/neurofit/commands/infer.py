"""``neurofit infer``: gather a study's training-data chunks, train, write the posterior and its figures."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "simulation-based inference for a study's 'infer' section from its training-data chunks"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer", help=HELP,
        description=HELP + " (written by 'neurofit simulate --chunk I --of N'): train (NPE, NLE or NRE), then write "
                           "posterior.pt, samples.parquet (SI units), summary.json, pairplot.png and predictive.png into the "
                           "output folder ('neurofit calibrate' checks the posterior).")
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--chunks", required=True, nargs="+", metavar="NPZ", help="every training-data chunk, any order")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the posterior, samples, figures")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: the study's infer.threads)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import Dataset
    from ..inference_study import run_inference
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
        written = run_inference(study, args.chunks, args.output_dir, dataset=dataset)
    inputs = config_inputs(args) + list(args.chunks) + ([args.data] if args.data else study.data_files)
    for path in written.values():
        write_manifest(path, study=study.name, config=study.section, seeds={"infer": infer["seed"]}, inputs=inputs,
                       wall_time=elapsed(), extra={"method": infer["method"], "threads": infer["threads"]})
    say(f"study '{study.name}': {infer['method']} from {len(args.chunks)} chunk(s) in {elapsed():.1f} s "
        f"-> {args.output_dir}")
    return 0
