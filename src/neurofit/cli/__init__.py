"""The ``neurofit`` command: ``main`` parses the subcommand; one module per subcommand here."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
