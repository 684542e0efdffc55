"""Figures for the rate model (tutorial units: ms, arbitrary rate units).

Each function draws on `ax` if given, else on a new `matplotlib.figure.Figure` (no pyplot, so no
GUI backend and no global state; `fig.savefig` renders with Agg), and returns the Figure.
"""
import numpy as np
from matplotlib.figure import Figure

from .rate import TAU, THETA, A, drdt, euler_rate, fi_curve, fixed_points


def _axes(ax):
    if ax is None:
        return Figure(figsize=(6, 4), layout="constrained").add_subplot()
    return ax


def _mark_fixed_points(ax, fps):
    """Scatter fixed points on dr/dt = 0: filled = stable, open = unstable."""
    for stable, face, label in ((True, "k", "stable"), (False, "none", "unstable")):
        r = np.array([fp.r for fp in fps if fp.stable == stable])
        ax.scatter(r, np.zeros_like(r), s=80, facecolors=face,
                   edgecolors="k", zorder=3, label=label)


def plot_fi_curve(x_values, a=A, theta=THETA, ax=None):
    """F-I curve F(x) over the inputs x_values."""
    ax = _axes(ax)
    ax.plot(x_values, fi_curve(x_values, a, theta), "k")
    ax.set(xlabel="x (a.u.)", ylabel="F(x)", title=f"F-I curve (a={a:g}, θ={theta:g})")
    return ax.figure


def plot_drdt(w, I_ext, a=A, theta=THETA, tau=TAU, r_values=None, ax=None):
    """dr/dt against r with the fixed points marked (filled = stable, open = unstable)."""
    ax = _axes(ax)
    r = np.linspace(0.0, 1.0, 1000) if r_values is None else np.asarray(r_values, dtype=float)
    ax.plot(r, drdt(r, w, I_ext, a, theta, tau), "k")
    ax.axhline(0.0, color="k", ls="--", lw=0.8)
    _mark_fixed_points(ax, fixed_points(w, I_ext, a, theta, tau))
    ax.set(xlabel="r (a.u.)", ylabel="dr/dt (1/ms)", title=f"w={w:g}, $I_{{ext}}$={I_ext:g}")
    ax.legend(loc="best")
    return ax.figure


def plot_trajectories(w, I_ext, r_inits, a=A, theta=THETA, tau=TAU, dt=0.1, T=20.0, ax=None):
    """Euler trajectories r(t) from each initial rate, fixed points as dotted lines."""
    ax = _axes(ax)
    t = np.arange(0, T, dt)
    for r0 in r_inits:
        ax.plot(t, euler_rate(r0, w, I_ext, a, theta, tau, dt, T), "b", alpha=0.6)
    for fp in fixed_points(w, I_ext, a, theta, tau):
        ax.axhline(fp.r, color="k" if fp.stable else "r", ls=":", lw=1)
    ax.set(xlabel="t (ms)", ylabel="r(t) (a.u.)", title=f"w={w:g}, $I_{{ext}}$={I_ext:g}")
    return ax.figure


def plot_ou_run(t, r_trace, fps, ax=None):
    """A noise-driven rate trace with the stable states (solid) and unstable ones (dotted)."""
    ax = _axes(ax)
    ax.plot(t, r_trace, "b", lw=0.8, alpha=0.8)
    for fp in fps:
        ax.axhline(fp.r, color="k" if fp.stable else "r", ls="-" if fp.stable else ":", lw=1.2)
    ax.set(xlabel="t (ms)", ylabel="r(t) (a.u.)", title="OU-driven rate")
    return ax.figure


def _edges(values):
    """First and last pixel edges of an evenly spaced axis, half a step beyond the values."""
    half = (values[-1] - values[0]) / (2 * (values.size - 1)) if values.size > 1 else 0.5
    return values[0] - half, values[-1] + half


def plot_bifurcation_map(bmap, quantity="n_stable", ax=None):
    """Image of bmap[quantity] ("n_stable" or "n_fixed_points") over an evenly spaced (w, I_ext) grid."""
    ax = _axes(ax)
    image = ax.imshow(bmap[quantity].T, origin="lower", aspect="auto", interpolation="nearest",
                      extent=(*_edges(bmap["w"]), *_edges(bmap["I_ext"])), cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label=quantity.replace("_", " "))
    ax.set(xlabel="w (a.u.)", ylabel="$I_{ext}$ (a.u.)")
    return ax.figure
