"""Figures of results: simulated traces over recorded data, saved atomically.

Every function builds a ``matplotlib.figure.Figure`` (no pyplot: no GUI backend, no global
state; ``savefig`` renders with Agg) and returns it; ``save_figure`` writes it atomically.
Values come in SI and are shown in the units people read (mV, nA, ms).
"""
from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from .data.files import atomic_write_bytes

# SI unit name (as in Dataset.units) → (display unit, factor from SI)
DISPLAY = {"volt": ("mV", 1e3), "amp": ("nA", 1e9), "second": ("ms", 1e3), "siemens": ("nS", 1e9),
           "farad": ("pF", 1e12), "Hz": ("Hz", 1.0), "1": ("", 1.0)}
DATA_COLOR = "0.55"
MODEL_COLORS = ("C3", "C0", "C2", "C1", "C4", "C5")


def display_unit(si_unit: str | None) -> tuple[str, float]:
    """(label, factor) to show a quantity given in ``si_unit``; unknown units are shown as SI."""
    return DISPLAY.get(si_unit or "", (si_unit or "", 1.0))


_SYMBOLS = {"volt": "V", "amp": "A", "second": "s", "siemens": "S", "farad": "F", "ohm": "ohm", "Hz": "Hz"}
_PREFIXES = ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"))


def format_quantity(value: float, si_unit: str | None) -> str:
    """An SI value with an SI prefix that keeps the number readable: 2e-05 siemens → '20 uS'."""
    value = float(value)
    symbol = _SYMBOLS.get(si_unit or "")
    if symbol is None or not np.isfinite(value):
        return f"{value:.4g} {'' if si_unit in (None, '1') else si_unit}".rstrip()
    if value == 0:
        return f"0 {symbol}"
    scale, prefix = _prefix(value)
    return f"{value / scale:.4g} {prefix}{symbol}"


def _prefix(value: float) -> tuple[float, str]:
    return next(((f, p) for f, p in reversed(_PREFIXES) if abs(value) >= f * 0.9995), _PREFIXES[0])


def unit_for(values, si_unit: str | None) -> tuple[str, float]:
    """(label, factor) showing SI ``values`` with the SI prefix that suits their median magnitude
    (e.g. siemens around 3e-5 → ('uS', 1e6)); units without a symbol stay SI."""
    symbol = _SYMBOLS.get(si_unit or "")
    typical = float(np.median(np.abs(np.asarray(values, dtype=float))))
    if symbol is None or not np.isfinite(typical) or typical == 0:
        return ("" if si_unit in (None, "1") else si_unit), 1.0
    scale, prefix = _prefix(typical)
    return prefix + symbol, 1.0 / scale


def plot_traces(t, model: dict, data: dict | None = None, inputs: dict | None = None, units: dict | None = None,
                max_traces: int = 10, title: str | None = None, set_labels=None) -> Figure:
    """Simulated traces over recorded ones, one panel per trace.

    t: (n_steps,) s. model: var → (n_sets, n_traces, n_steps) (or (n_traces, n_steps)) simulated,
    SI. data: var → (n_traces, n_steps) recorded, SI (drawn in grey under the model; residual mean
    and SD are printed per panel). inputs: name → (n_traces, n_steps), drawn as a thin trace
    in a strip under each panel's data. units: var → SI unit name ("volt", "amp").
    """
    units = units or {}
    data = data or {}
    inputs = inputs or {}
    model = {k: (np.asarray(v)[None] if np.ndim(v) == 2 else np.asarray(v)) for k, v in model.items()}
    variables = list(model) or list(data)
    if not variables:
        raise ValueError("plot_traces: nothing to plot (no model or data traces)")
    n_traces = (model[variables[0]] if variables[0] in model else np.asarray(data[variables[0]])[None]).shape[1]
    shown = min(n_traces, max_traces)
    t_label, t_factor = display_unit("second")
    tt = np.asarray(t) * t_factor
    rows = shown * len(variables)
    fig = Figure(figsize=(8, 1.6 + 1.55 * rows), layout="constrained")
    heights = [3, 1] * rows if inputs else [1] * rows
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    axes, k = [], 0
    for j in range(shown):
        for var in variables:
            ax = fig.add_subplot(grid[k, 0], sharex=axes[0] if axes else None)
            axes.append(ax)
            k += 1
            label, factor = display_unit(units.get(var, "volt" if var == "v" else None))
            text = []
            if var in data:
                recorded = np.asarray(data[var])[j] * factor
                ax.plot(tt[:recorded.size], recorded, color=DATA_COLOR, lw=0.8, label="data")
            if var in model:
                sets = model[var]
                for i in range(sets.shape[0]):
                    name = set_labels[i] if set_labels is not None else ("model" if sets.shape[0] == 1 else f"set {i}")
                    ax.plot(tt[:sets.shape[2]], sets[i, j] * factor, color=MODEL_COLORS[i % len(MODEL_COLORS)],
                            lw=1.1, alpha=0.9, label=name)
                if var in data:
                    n = min(sets.shape[2], np.asarray(data[var]).shape[1])
                    res = (np.asarray(data[var])[j, :n] - sets[0, j, :n]) * factor
                    if np.all(np.isfinite(res)):
                        text.append(f"residual {res.mean():+.2f} ± {res.std():.2f} {label}")
                    else:
                        text.append("simulation diverged (NaN/inf)")
            ax.set_ylabel(f"{var} ({label})" if label else var)
            ax.set_title(f"trace {j}" + (f"   ({'; '.join(text)})" if text else ""), fontsize=9, loc="left")
            if j == 0 and var == variables[0]:
                ax.legend(loc="upper right", fontsize=8, frameon=False)
            if inputs:
                ax_in = fig.add_subplot(grid[k, 0], sharex=axes[0])
                k += 1
                for name, arr in inputs.items():
                    in_label, in_factor = display_unit(units.get(name, "amp" if name.startswith("I") else None))
                    ax_in.plot(tt[:np.asarray(arr).shape[1]], np.asarray(arr)[j] * in_factor, color="k", lw=0.8)
                    ax_in.set_ylabel(f"{name} ({in_label})" if in_label else name, fontsize=8)
                ax_in.tick_params(labelsize=7)
                axes.append(ax_in)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel(f"t ({t_label})")
    if title:
        fig.suptitle(title, fontsize=11)
    if shown < n_traces:
        fig.text(0.99, 0.002, f"{shown} of {n_traces} traces shown", ha="right", va="bottom", fontsize=8)
    return fig


def figure_bytes(fig: Figure, format: str = "png", dpi: int = 120) -> bytes:
    buffer = _io.BytesIO()
    # no version or date stamps: the same figure gives the same bytes
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(format)
    fig.savefig(buffer, format=format, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def save_figure(fig: Figure, path, dpi: int = 120) -> Path:
    """Render ``fig`` (format from the file suffix: png, svg, pdf) and write it atomically."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write_bytes(path, figure_bytes(fig, fmt, dpi))


# --- fits -------------------------------------------------------------------------------------------------

LINESTYLES = ("-", "--", ":", "-.")


def display_scale(values, si_unit: str | None) -> tuple[str, float]:
    """``unit_for`` of the finite non-zero ``values`` (None allowed; e.g. siemens around 2e-5 → 'uS')."""
    finite = np.abs(np.asarray([v for v in np.ravel(values) if v is not None and np.isfinite(v)], dtype=float))
    finite = finite[finite > 0]
    return unit_for(finite if finite.size else [0.0], si_unit)  # ignoring None, NaN/inf and zeros


def plot_fit_convergence(runs: list, noise_floor: float | None = None, title: str | None = None,
                         error_label: str = "error", error_unit: str | None = None) -> Figure:
    """Best error so far vs number of evaluations: one colour per optimizer, one line style per seed.

    runs: dicts with ``label``, ``seed``, ``errors`` (every evaluation's error, in order) and optionally
    ``refined`` (error after refinement: a star just right of the run's last evaluation, joined to it by
    a thin line; the stars of different runs are spread a little so that equal errors stay visible).
    """
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    labels = list(dict.fromkeys(r["label"] for r in runs))
    seeds = list(dict.fromkeys(r["seed"] for r in runs))
    n_max = max((len(r["errors"]) for r in runs), default=1)
    for i, r in enumerate(runs):
        errors = np.asarray(r["errors"], dtype=float)
        best = np.minimum.accumulate(np.where(np.isfinite(errors), errors, np.inf))
        x = np.arange(1, best.size + 1)
        color = MODEL_COLORS[labels.index(r["label"]) % len(MODEL_COLORS)]
        style = LINESTYLES[seeds.index(r["seed"]) % len(LINESTYLES)]
        shown = np.isfinite(best)
        ax.plot(x[shown], best[shown], color=color, ls=style, lw=1.4, label=f"{r['label']}, seed {r['seed']}")
        if r.get("refined") is not None and np.isfinite(r["refined"]) and shown.any():
            x_star = x[-1] + n_max * (0.03 + 0.025 * i)
            ax.plot([x[-1], x_star], [best[-1], r["refined"]], color=color, ls=style, lw=0.8, alpha=0.7)
            ax.plot([x_star], [r["refined"]], marker="*", ms=11, color=color, ls="none", mec="k", mew=0.5)
    if noise_floor:
        ax.axhline(noise_floor, color="0.3", ls=(0, (4, 3)), lw=1)
        ax.annotate("noise floor", (0.01, noise_floor), xycoords=("axes fraction", "data"), ha="left",
                    va="bottom", fontsize=8, color="0.3")
    if any(r.get("refined") is not None for r in runs):
        ax.plot([], [], marker="*", ms=10, color="0.5", mec="k", mew=0.5, ls="none", label="after refine")
    ax.set_yscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best {error_label} so far" + (f" ({error_unit})" if error_unit else ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncols=2 if len(runs) > 4 else 1)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_fit_parameters(table, parameters: list, units: dict | None = None, truth: dict | None = None,
                        title: str | None = None) -> Figure:
    """Fitted parameters of every run, one panel per parameter.

    table: rows with ``optimizer``, ``seed``, ``<p>_fit`` and ``<p>_refined`` (SI; refined may be
    missing). With ``truth[p]`` the panel shows the deviation from the truth in % (symmetric log scale,
    linear within ±1 %); without, the values in readable units.
    """
    units, truth = units or {}, truth or {}
    rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    n = len(parameters)
    fig = Figure(figsize=(max(4.0, 2.6 * n + 1.0), 3.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    labels = list(dict.fromkeys(r["optimizer"] for r in rows))
    ticks = [f"{r['optimizer']}\nseed {r['seed']}" for r in rows]
    x = np.arange(len(rows))
    for ax, p in zip(axes, parameters):
        t = truth.get(p)
        fit = np.array([r[f"{p}_fit"] for r in rows], dtype=float)
        refined = np.array([np.nan if r.get(f"{p}_refined") is None else r[f"{p}_refined"] for r in rows], dtype=float)
        if t:
            to_y, ylabel = (lambda v, t=t: 100.0 * (v - t) / t), "deviation from truth (%)"
            ax.axhline(0.0, color="k", lw=1)
            ax.axhspan(-2.0, 2.0, color="0.9", zorder=0, label="within 2 %")
            ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
            values = np.abs(np.concatenate([to_y(fit), to_y(refined)]))
            top = max(2.0, float(np.nanmax(values)) if np.isfinite(values).any() else 2.0)
            steps = [v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1e4, 1e5) if v <= top * 1.5]
            ax.set_yticks(sorted({0.0, *steps, *(-v for v in steps)}))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.set_ylim(-top * 1.6, top * 1.6)
            head = f"{p} (truth {format_quantity(t, units.get(p))})"
        else:
            label, factor = display_scale(np.concatenate([fit, refined]), units.get(p))
            to_y, ylabel = (lambda v, f=factor: v * f), f"{p} ({label})" if label else p
            head = p
        colors = [MODEL_COLORS[labels.index(r["optimizer"]) % len(MODEL_COLORS)] for r in rows]
        ax.scatter(x, to_y(fit), facecolors="none", edgecolors=colors, s=42, label="after fit", zorder=3)
        if np.isfinite(refined).any():
            ax.scatter(x, to_y(refined), c=colors, s=26, label="after refine", zorder=4)
        ax.set_xticks(x, ticks, fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(head, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --- recordings -------------------------------------------------------------------------------------------

FAILED_QC_COLOR = "0.6"


def _recording_label(path) -> str:
    """File name(s) of a recording's ``path`` (a path or a list of paths) for a title."""
    names = [Path(str(p)).name for p in path] if isinstance(path, (list, tuple)) else [Path(str(path)).name]
    if len(names) <= 2:
        return ", ".join(names)
    return f"{names[0]} ... {names[-1]} ({len(names)} files)"


def plot_sweeps(recording, colormap: str = "viridis") -> Figure:
    """Voltage (top, mV) and injected current (bottom, pA) of every sweep of a recording against time (s).

    recording: a ``Recording`` (its ``sweeps``: index, dt (s), voltage (V), current (A), protocol,
    passed_qc). Line k of each panel is sweep k, drawn in its own colour of ``colormap`` (a colour bar
    gives the sweep number); a sweep failing quality control is drawn dashed in grey (grey in the bar too).
    The title names the file(s) and the protocol(s).
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    sweeps = list(recording.sweeps)
    if not sweeps:
        raise ValueError("plot_sweeps: the recording holds no sweep")
    fig = Figure(figsize=(9, 6.2), layout="constrained")
    ax_v, ax_i = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    cmap = colormaps[colormap]
    indices = [sweep.index for sweep in sweeps]
    colors = cmap(np.linspace(0.0, 0.9, len(sweeps))) if len(sweeps) > 1 else [cmap(0.0)]
    failed = 0
    for sweep, color in zip(sweeps, colors):
        t = np.arange(sweep.voltage.size) * sweep.dt
        passed = sweep.passed_qc
        failed += not passed
        style = dict(color=color, ls="-", lw=0.8, alpha=0.9) if passed else \
            dict(color=FAILED_QC_COLOR, ls="--", lw=0.7, alpha=0.8)
        ax_v.plot(t, sweep.voltage * 1e3, label=f"sweep {sweep.index}", **style)
        ax_i.plot(t, sweep.current * 1e12, label=f"sweep {sweep.index}", **style)
    ax_v.set_ylabel("membrane potential (mV)")
    ax_i.set_ylabel("injected current (pA)")
    ax_i.set_xlabel("time (s)")
    for ax in (ax_v, ax_i):
        ax.grid(True, alpha=0.25)
    if len(sweeps) > 1:
        bounds = np.arange(len(sweeps) + 1) - 0.5
        shown = [color if sweep.passed_qc else FAILED_QC_COLOR for sweep, color in zip(sweeps, colors)]
        mappable = ScalarMappable(BoundaryNorm(bounds, len(sweeps)), ListedColormap(shown))
        bar = fig.colorbar(mappable, ax=[ax_v, ax_i], label="sweep", pad=0.01, aspect=40)
        ticks = np.arange(0, len(sweeps), -(-len(sweeps) // 10))  # at most 10 labelled sweeps
        bar.set_ticks(ticks, labels=[str(indices[k]) for k in ticks])
    else:
        ax_v.set_title(f"sweep {indices[0]}", fontsize=9, loc="left")
    if failed:
        ax_v.legend(handles=[Line2D([], [], color=FAILED_QC_COLOR, ls="--", lw=0.9,
                                    label=f"failed QC ({failed} of {len(sweeps)})")],
                    loc="upper right", fontsize=8, frameon=False)
    protocols = list(dict.fromkeys(s.protocol for s in sweeps if s.protocol))
    title = _recording_label(recording.path)
    if protocols:
        title += "  —  protocol " + ", ".join(f"'{p}'" for p in protocols)
    fig.suptitle(title, fontsize=10)
    return fig


# --- multi-objective fits ---------------------------------------------------------------------------------

def plot_pareto_front(result, objectives=None, log: bool = False, zoom: bool = True, title: str | None = None) -> Figure:
    """Two objectives of a Pareto fit: every evaluated candidate, the front highlighted, the compromise starred.

    result: a ``neurofit.fitting.multiobjective.ParetoResult`` (read through its ``objectives``, ``F``,
    ``on_front``, ``hall_of_fame_index`` and ``compromise_index``); objectives: the two objective names on the
    x and y axes (None: the first two); log: log-scale axes (for errors spanning decades; values <= 0 are
    left out then); zoom: on linear axes, show the front's extent plus half of it again (candidates far
    beyond it are counted in the legend but lie outside); title: the figure's title (None: none). With more
    than two objectives, the front is the non-dominated set over all of them, so some of its points may look
    dominated in this projection.
    Returns the Figure. Raises ValueError for an objective name the result does not have.
    """
    names = list(result.objectives)
    a, b = (names[:2] if objectives is None else list(objectives))
    for name in (a, b):
        if name not in names:
            raise ValueError(f"objective '{name}' is not one of the fit's ({', '.join(names)})")
    F = np.asarray(result.F, dtype=float)
    x, y = F[:, names.index(a)], F[:, names.index(b)]
    shown = np.isfinite(x) & np.isfinite(y) & ((x > 0) & (y > 0) if log else True)
    front = np.asarray(result.on_front, dtype=bool) & shown
    fig = Figure(figsize=(5.8, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x[shown & ~front], y[shown & ~front], s=9, color=DATA_COLOR, alpha=0.5, lw=0,
               label=f"evaluated ({int(shown.sum())})")
    order = np.flatnonzero(front)[np.argsort(x[front], kind="stable")]
    if len(names) == 2 and order.size:
        ax.plot(x[order], y[order], color=MODEL_COLORS[0], lw=1, alpha=0.6, drawstyle="steps-post")
    ax.scatter(x[front], y[front], s=18, color=MODEL_COLORS[0], zorder=3, label=f"Pareto front ({int(front.sum())})")
    fame = [int(i) for i in np.asarray(result.hall_of_fame_index, dtype=int) if shown[int(i)]]
    if fame:
        ax.scatter(x[fame], y[fame], s=60, facecolors="none", edgecolors=MODEL_COLORS[2], lw=1.1, zorder=4,
                   label=f"hall of fame ({len(fame)})")
    c = result.compromise_index
    if c is not None and shown[c]:
        ax.plot([x[c]], [y[c]], marker="*", ms=16, color=MODEL_COLORS[3], mec="k", mew=0.6, ls="none", zorder=5,
                label="compromise")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    elif zoom and front.any():
        for values, set_limits in ((x[front], ax.set_xlim), (y[front], ax.set_ylim)):
            low, high = float(values.min()), float(values.max())
            span = (high - low) or abs(high) or 1.0
            set_limits(low - 0.08 * span, high + 0.5 * span)
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
