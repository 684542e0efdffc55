"""The one error type of the recording readers, and the helpers that keep its message on one line."""
from __future__ import annotations

from ...errors import NeurofitError


class RecordingError(NeurofitError):
    """A recording that cannot be read, or a request on a recording that cannot be met.

    The message is one line: it names the file (or the sweep) and says what would be valid.
    """


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def library_failure(path, what: str, error: BaseException) -> RecordingError:
    """A ``RecordingError`` for an exception raised by a format library while reading ``path``.

    path: the file being read; what: the format expected, e.g. "an ABF file";
    error: the library's exception (its type and message are kept, on one line).
    """
    detail = one_line(error) or "no detail"
    return RecordingError(f"{path}: cannot read as {what} ({type(error).__name__}: {detail}); "
                          f"the file may be truncated or of another format")
