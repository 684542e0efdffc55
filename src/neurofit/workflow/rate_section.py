"""A study's ``rate`` section → the rate-model study of ``neurofit.analysis.rate_study``, in chunks.

The workflow runs ``neurofit rate-chunk`` once per chunk of the bifurcation map, then ``neurofit
rate-study``, which gathers the chunks and writes every figure and ``rate_study.json``. The commands
are thin; the work is here::

    study = Study.load("rate_model", path="config/config.yaml")
    settings = RateSection(study).settings     # checked section (one-line ConfigError naming the key)
    write_chunk(study, 0, 2, "rate/bifurcation/chunk_0.npz")
    write_chunk(study, 1, 2, "rate/bifurcation/chunk_1.npz")
    run_rate_study(study, "rate", ["rate/bifurcation/chunk_0.npz", "rate/bifurcation/chunk_1.npz"])

The schema fills in every default - the only place they are written down: ``analysis.rate_study`` takes
every key from here - and checks types and ranges; ``RateSection`` adds what a schema cannot say: ordered
ranges, no more chunks than grid points, a step inside its trace, bounds with low < high and, when asked, a
known optimizer. Units are the tutorial's (ms, arbitrary rate units).
"""
from __future__ import annotations

from pathlib import Path

from .section import Section, in_schema_order
from .study import SCHEMA, ConfigError, Study

#: Files ``run_rate_study`` writes into its output folder (figures first, then the summary).
FIGURES = ("fi_curve.png", "drdt.png", "trajectories.png", "ou_run.png", "bifurcation_map.png", "fit_traces.png")
SUMMARY = "rate_study.json"
OUTPUTS = (*FIGURES, SUMMARY)


class RateSection(Section):
    """The checked ``rate`` section of a study: ``settings`` is the config of ``rate_study.rate_study``, every
    key given (defaults from the schema), in the schema's order (rate_study.json records it whole).
    ``check_optimizer`` also checks fit.method against nevergrad's registry (imports nevergrad, ~2 s)."""

    NAME = "rate"

    def __init__(self, study: Study, check_optimizer: bool = False):
        super().__init__(study)
        self.settings = in_schema_order(self.settings, SCHEMA["$defs"]["rate"], SCHEMA)
        self._check(check_optimizer)

    def _ordered(self, key: str, low: str, high: str, strict: bool = True) -> None:
        lo, hi = self.settings[key][low], self.settings[key][high]
        if lo > hi or (strict and lo == hi):
            raise ConfigError(f"{self.where(key, high)}: {hi:g} must be {'>' if strict else '>='} "
                              f"{key}.{low} ({lo:g})")

    def _check(self, check_optimizer: bool) -> None:
        section = self.settings
        self._ordered("fi_curve", "x_min", "x_max")
        self._ordered("bifurcation", "w_min", "w_max", strict=False)
        self._ordered("bifurcation", "I_min", "I_max", strict=False)
        b = section["bifurcation"]
        if b["n_chunks"] > b["n_w"] * b["n_I"]:
            raise ConfigError(f"{self.where('bifurcation', 'n_chunks')}: {b['n_chunks']} chunks for a "
                              f"{b['n_w']} x {b['n_I']} grid; at most n_w x n_I = {b['n_w'] * b['n_I']}")
        for key in ("trajectories", "ou"):
            if section[key]["dt"] >= section[key]["T"]:
                raise ConfigError(f"{self.where(key, 'dt')}: {section[key]['dt']:g} ms must be below "
                                  f"{key}.T ({section[key]['T']:g} ms)")
        fit = section["fit"]
        if not fit["enabled"]:
            return
        if fit["dt"] >= fit["T"]:
            raise ConfigError(f"{self.where('fit', 'dt')}: {fit['dt']:g} ms must be below fit.T ({fit['T']:g} ms)")
        if not fit["step_start"] < fit["step_stop"] <= fit["T"]:
            raise ConfigError(f"{self.where('fit', 'step_stop')}: {fit['step_stop']:g} ms must be after "
                              f"fit.step_start ({fit['step_start']:g} ms) and at most fit.T ({fit['T']:g} ms)")
        for name, bound in fit["bounds"].items():
            lo, hi = bound[0], bound[1]
            if not lo < hi:
                raise ConfigError(f"{self.where('fit', 'bounds', name)}: {list(bound)}: low must be < high")
            if len(bound) == 3 and bound[2] == "log" and lo <= 0:
                raise ConfigError(f"{self.where('fit', 'bounds', name)}: {list(bound)}: a log-scale range "
                                  f"needs low > 0")
        if check_optimizer:
            from nevergrad.optimization import registry
            if fit["method"] not in registry:
                raise ConfigError(f"{self.where('fit', 'method')}: '{fit['method']}' is not a nevergrad "
                                  f"optimizer (e.g. DE, CMA, PSO, NGOpt, OnePlusOne)")


def rate_settings(study: Study, check_optimizer: bool = False) -> dict:
    """``RateSection(study, check_optimizer).settings``: the study's checked ``rate`` section."""
    return RateSection(study, check_optimizer).settings


def n_chunks(study: Study) -> int:
    """Number of bifurcation-map chunks (jobs) of the study."""
    return int(RateSection(study).settings["bifurcation"]["n_chunks"])


def write_chunk(study: Study, chunk: int, of: int | None, path) -> Path:
    """Chunk ``chunk`` of ``of`` (default: the section's n_chunks) of the bifurcation map → ``path`` (.npz)."""
    from ..analysis.rate_study import write_bifurcation_chunk

    section = RateSection(study)
    settings = section.settings
    b = settings["bifurcation"]
    of = b["n_chunks"] if of is None else int(of)
    if not 1 <= of <= b["n_w"] * b["n_I"]:
        raise ConfigError(f"--of {of}: the number of chunks must be in 1..{b['n_w'] * b['n_I']} "
                          f"(the {b['n_w']} x {b['n_I']} grid of {section.where('bifurcation')})")
    if not 0 <= int(chunk) < of:
        raise ConfigError(f"--chunk {chunk}: must be in 0..{of - 1} (--of {of})")
    return write_bifurcation_chunk(settings, int(chunk), of, path)


def run_rate_study(study: Study, out_dir, chunks=None) -> dict:
    """Every figure and ``rate_study.json`` of the study into ``out_dir``; ``chunks``: .npz files of
    ``write_chunk`` to gather (none: the map is computed here). Returns the summary.

    With fit.enabled false, fit_traces.png is a figure saying so (the workflow declares a fixed set of
    files)."""
    from ..analysis.rate_study import rate_study

    section = RateSection(study, check_optimizer=True)
    out = Path(out_dir)
    if chunks:
        _check_chunks(section, chunks)
    summary = rate_study(section.settings, out, bifurcation_chunks=list(chunks) if chunks else None)
    if not section.settings["fit"]["enabled"]:
        _no_fit_figure(out / "fit_traces.png", section)
    return summary


def _check_chunks(section: RateSection, chunks) -> None:
    """ConfigError unless ``chunks`` are every chunk of the section's grid, each once."""
    import numpy as np

    from ..analysis import rate
    from ..analysis.rate_study import _read_chunks, bifurcation_grid

    for path in chunks:
        if not Path(path).is_file():
            raise ConfigError(f"--chunks {path}: file not found")
    read = _read_chunks(chunks)
    w_grid, I_grid = bifurcation_grid(section.settings)
    for path, chunk in zip(chunks, read):
        if not (np.array_equal(chunk["w"], w_grid) and np.array_equal(chunk["I_ext"], I_grid)):
            raise ConfigError(f"--chunks {path}: computed on another (w, I_ext) grid than "
                              f"{section.where('bifurcation')}")
    try:
        rate.gather_bifurcation_chunks(read)
    except ValueError as err:
        raise ConfigError(f"--chunks: {err}") from None


def _no_fit_figure(path, section: RateSection) -> None:
    from matplotlib.figure import Figure

    from ..plots import save_figure

    fig = Figure(figsize=(6, 1.5), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, f"no fit: {section.where('fit', 'enabled')} is false", ha="center", va="center")
    save_figure(fig, path)
