"""The ``neurofit`` command: one subcommand per step of a study (``neurofit <command> --help``).

User mistakes (a bad config key, a missing file, bad data, bad equations, bad units) print one
line ``neurofit: error: <message>`` on stderr and exit with status 2; ``--debug`` (or
NEUROFIT_DEBUG=1) shows the traceback instead. Anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import NeurofitError
from .commands import MODULES

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = argparse.ArgumentParser(
        prog="neurofit",
        description="Fit neuron models (Brian2-style equations) to recordings. Each command is one step of a "
                    "study defined in a config file; the Snakemake workflow chains them.")
    parser.add_argument("--version", action="version", version=f"neurofit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def is_user_error(err: BaseException) -> bool:
    """``NeurofitError`` (ConfigError, DataError, EquationError, UnitError, SimulationError, ...) and
    operating-system errors on files are the user's to fix; other exceptions are bugs."""
    return isinstance(err, (NeurofitError, OSError))


def one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or err}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    from ..workflow.provenance import set_invocation

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    set_invocation(argv)  # manifests record this command line (what `neurofit audit --rerun` runs again)
    debug = args.debug or os.environ.get("NEUROFIT_DEBUG", "") not in ("", "0")
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("neurofit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not is_user_error(err):
            raise
        print(f"neurofit: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        set_invocation(None)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
