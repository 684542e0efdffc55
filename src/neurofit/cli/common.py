"""Arguments and helpers shared by the subcommands."""
from __future__ import annotations

import time
from contextlib import contextmanager


def add_study_arguments(parser, required: bool = True) -> None:
    """--config FILE | --config-json TEXT, and --study NAME."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--config", metavar="FILE",
                       help="config file (YAML) with a 'studies' mapping; data paths in it are relative to the "
                            "working directory")
    group.add_argument("--config-json", metavar="JSON",
                       help="the config document as JSON text instead of a file (what the workflow passes)")
    parser.add_argument("--study", required=required, metavar="NAME", help="name of the study under 'studies'")


def load_study(args):
    from ..workflow.study import Study
    return Study.load(args.study, path=args.config, text=args.config_json)


def config_inputs(args) -> list:
    """Files the command read its config from (for the manifest's checksums)."""
    return [args.config] if getattr(args, "config", None) else []


@contextmanager
def stopwatch():
    """``with stopwatch() as elapsed: ...; elapsed()`` → seconds since the block started."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def say(message: str) -> None:
    print(f"neurofit: {message}", flush=True)
