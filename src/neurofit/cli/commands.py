"""Subcommands of the ``neurofit`` command, one module each.

A module here defines ``register(subparsers)``, which adds its parser(s) and sets
``func=run`` (a function taking the parsed arguments and returning an exit status or None).
Modules import heavy dependencies inside ``run`` so that ``neurofit --help`` stays fast.
Add a new step of the workflow (fit, refine, infer, audit, ...) by adding a module and its
name to ``MODULES``.
"""
MODULES = ("prepare", "simulate", "figures", "fit", "refine", "summarize", "fit_figures", "audit", "rate_chunk",
           "rate_study", "reduce", "plot_reduction", "infer", "inspect", "prepare_cell", "fit_cell", "train_group",
           "population", "validate")
