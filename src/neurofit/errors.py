"""The one base of every user error: ``NeurofitError``.

Each layer raises its own subclass (``UnitError``, ``EquationError``, ``DataError``, ``FitError``,
``ConfigError``, ...) with a one-line message that names the file, key or equation line and says
what would be valid. The command line prints such errors as one line without a traceback; any other
exception is a bug and keeps its traceback. ``NeurofitError`` is a ``ValueError`` so that code
catching ``ValueError`` keeps working.
"""
from __future__ import annotations


class NeurofitError(ValueError):
    """A mistake in the user's input (model text, config, data file, arguments), not a bug."""


class ConfigError(NeurofitError):
    """A config key that cannot be used: the message starts with the file and the key path."""
