"""Lazy re-exports for package ``__init__`` modules: names load on first use so imports stay fast."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, names: dict):
    """A module ``__getattr__`` resolving ``names`` (public name -> submodule relative to ``package``).

    package: the importing package's ``__name__``; names: e.g. ``{"TraceFitter": "fitters"}``.
    Returns the function to assign to the package's ``__getattr__``; it raises AttributeError for
    other names.
    """

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
