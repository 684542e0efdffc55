"""Arguments and helpers shared by the subcommands."""
from __future__ import annotations

import time
from contextlib import contextmanager


def add_study_arguments(parser, required: bool = True) -> None:
    """--config FILE [FILE ...] | --config-json TEXT, and --study NAME."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--config", metavar="FILE", nargs="+",
                       help="config file(s) (YAML) with a 'studies' mapping - in the workflow, results/<study>/"
                            "study.yaml written by 'neurofit prepare'; several are merged in order, later keys "
                            "overriding earlier ones (as Snakemake merges --configfile files); data paths in "
                            "them are relative to the working directory")
    group.add_argument("--config-json", metavar="JSON",
                       help="the config document as JSON text instead of a file (for scripts; the workflow "
                            "passes files)")
    parser.add_argument("--study", required=required, metavar="NAME", help="name of the study under 'studies'")


def load_study(args):
    """The study ``args.study`` of the config file(s) ``args.config`` (merged in order) or ``args.config_json``."""
    from ..workflow.study import Study, read_config

    if not args.config or len(args.config) == 1:
        return Study.load(args.study, path=args.config[0] if args.config else None, text=args.config_json)
    from ..workflow.snakefile import merge_config

    doc = {}
    for path in args.config:
        merge_config(doc, read_config(path)[0])
    return Study.from_config(doc, args.study, " + ".join(args.config))


def config_inputs(args) -> list:
    """Files the command read its config from (for the manifest's checksums)."""
    return list(args.config or ()) if getattr(args, "config", None) else []


@contextmanager
def stopwatch():
    """``with stopwatch() as elapsed: ...; elapsed()`` → seconds since the block started."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def say(message: str) -> None:
    print(f"neurofit: {message}", flush=True)
