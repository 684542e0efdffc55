"""Single excitatory population rate model (Neuromatch W2D4 tutorial 1).

    tau dr/dt = -r + F(w r + I_ext),  F(x) = 1/(1+exp(-a(x-theta))) - 1/(1+exp(a theta))

Units follow the tutorial, not SI: times (t, dt, T, tau) are in ms and rates, inputs and
weights in arbitrary units, all plain floats. Defaults are the tutorial's (a=1.2, theta=2.8,
tau=1 ms).
"""
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import expit

A, THETA, TAU = 1.2, 2.8, 1.0


def F(x, a, theta):
    """Sigmoid transfer function, shifted so that F(0) = 0."""
    return expit(a * (np.asarray(x, dtype=float) - theta)) - expit(-a * theta)


def dF(x, a, theta):
    """Analytic derivative dF/dx = a s (1 - s), s = 1/(1+exp(-a(x-theta)))."""
    s = expit(a * (np.asarray(x, dtype=float) - theta))
    return a * s * (1.0 - s)


def fi_curve(x_values, a, theta):
    """F-I curve: F evaluated on an array of inputs (arbitrary units)."""
    return F(np.asarray(x_values, dtype=float), a, theta)


def drdt(r, w, I_ext, a=A, theta=THETA, tau=TAU):
    """Right-hand side dr/dt = (-r + F(w r + I_ext)) / tau, per ms."""
    r = np.asarray(r, dtype=float)
    return (-r + F(w * r + I_ext, a, theta)) / tau


def closed_form_w0(t, r_init, I_ext, a=A, theta=THETA, tau=TAU):
    """Exact solution for w = 0: r(t) = F(I) + (r_init - F(I)) exp(-t/tau), t in ms."""
    f_inf = F(I_ext, a, theta)
    return f_inf + (r_init - f_inf) * np.exp(-np.asarray(t, dtype=float) / tau)


def n_steps(T, dt):
    """The tutorial's sample count for a run of T ms: len(np.arange(0, T, dt))."""
    return np.arange(0, T, dt).size


def euler_rate(r_init, w, I_ext, a=A, theta=THETA, tau=TAU, dt=0.1, T=None):
    """The tutorial's forward-Euler simulation (`simulate_single`), the reference for the simulator.

    r[k+1] = r[k] + dt/tau * (-r[k] + F(w r[k] + I_ext[k])), r[0] = r_init. A scalar I_ext needs
    T (ms) and gives len(np.arange(0, T, dt)) samples; an array I_ext sets the sample count.
    """
    if np.ndim(I_ext) == 0:
        if T is None:
            raise ValueError("euler_rate: a scalar I_ext needs the duration T (ms)")
        I_ext = np.full(n_steps(T, dt), float(I_ext))
    else:
        I_ext = np.asarray(I_ext, dtype=float)
        if T is not None and I_ext.size != n_steps(T, dt):
            raise ValueError(f"euler_rate: I_ext has {I_ext.size} samples, T={T}, dt={dt} "
                             f"needs {n_steps(T, dt)}")
    r = np.empty(I_ext.size)
    r[0] = r_init
    for k in range(I_ext.size - 1):
        r[k + 1] = r[k] + dt / tau * (-r[k] + F(w * r[k] + I_ext[k], a, theta))
    return r


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point r* with eigenvalue (-1 + w F'(w r* + I_ext))/tau (1/ms) and |dr/dt| residual."""

    r: float
    eigenvalue: float
    stable: bool
    residual: float


def fixed_points(w, I_ext, a=A, theta=THETA, tau=TAU, n_grid=2001, n_guesses=11,
                 tol=1e-9, merge_tol=1e-6):
    """All fixed points of the rate model, sorted by r.

    Any fixed point r* = F(w r* + I_ext) lies in the range of F, the open interval
    (-1/(1+exp(a theta)), 1 - 1/(1+exp(a theta))); dr/dt is > 0 at its lower end and < 0 at its
    upper end. Roots are bracketed by sign changes of dr/dt on an `n_grid` grid of that interval
    (brentq); tangencies (no sign change) are caught by scipy.optimize.root started from
    `n_guesses` evenly spaced points and from the grid's local minima of |dr/dt|. Candidates
    closer than `merge_tol` are merged; a point is kept only if |dr/dt| < `tol` (1/ms).
    stable is eigenvalue < 0; at a tangency (eigenvalue ~ 0, semi-stable) it follows the
    sign of the computed eigenvalue.
    """
    def g(r):
        return drdt(r, w, I_ext, a, theta, tau)

    lower = -float(expit(-a * theta))
    grid = np.linspace(lower, lower + 1.0, n_grid)
    values = g(grid)
    candidates = list(grid[values == 0.0])
    for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
        candidates.append(optimize.brentq(g, grid[i], grid[i + 1], xtol=1e-15))
    size = np.abs(values)
    local_minima = grid[1:-1][(size[1:-1] <= size[:-2]) & (size[1:-1] <= size[2:])]
    for guess in np.concatenate([np.linspace(grid[0], grid[-1], n_guesses), local_minima]):
        sol = optimize.root(g, guess, jac=lambda r: np.atleast_2d(
            (-1.0 + w * dF(w * r + I_ext, a, theta)) / tau))
        candidates.append(float(sol.x[0]))

    found = []
    for r in sorted(candidates):
        residual = abs(float(g(r)))
        if not np.isfinite(residual) or residual >= tol:
            continue
        if found and r - found[-1][0] < merge_tol:
            if residual < found[-1][1]:
                found[-1] = (r, residual)
            continue
        found.append((r, residual))
    points = []
    for r, residual in found:
        eig = float((-1.0 + w * dF(w * r + I_ext, a, theta)) / tau)
        points.append(FixedPoint(r=float(r), eigenvalue=eig, stable=bool(eig < 0),
                                 residual=residual))
    return points


def bifurcation_chunk(w_values, I_values, chunk, n_chunks, a=A, theta=THETA, tau=TAU):
    """Fixed-point counts for the (w, I_ext) grid points whose flat index % n_chunks == chunk.

    Strided rather than contiguous so chunks get similar mixes of cheap and costly points.
    Returns a dict of arrays ("index", "n_fixed_points", "n_stable", "w", "I_ext") that
    `gather_bifurcation_chunks` reassembles.
    """
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"bifurcation_chunk: chunk must be in [0, {n_chunks}), got {chunk}")
    w_values = np.asarray(w_values, dtype=float)
    I_values = np.asarray(I_values, dtype=float)
    index = np.arange(chunk, w_values.size * I_values.size, n_chunks)
    n_fixed = np.empty(index.size, dtype=int)
    n_stable = np.empty(index.size, dtype=int)
    for k, (i, j) in enumerate(zip(*np.unravel_index(index, (w_values.size, I_values.size)))):
        fps = fixed_points(w_values[i], I_values[j], a, theta, tau)
        n_fixed[k] = len(fps)
        n_stable[k] = sum(fp.stable for fp in fps)
    return {"index": index, "n_fixed_points": n_fixed, "n_stable": n_stable,
            "w": w_values, "I_ext": I_values}


def gather_bifurcation_chunks(chunks):
    """Reassemble chunk results into the full map: "n_fixed_points", "n_stable" of shape (len(w), len(I_ext))."""
    w_values, I_values = chunks[0]["w"], chunks[0]["I_ext"]
    shape = (w_values.size, I_values.size)
    n_fixed = np.full(shape, -1, dtype=int)
    n_stable = np.full(shape, -1, dtype=int)
    seen = np.zeros(w_values.size * I_values.size, dtype=int)
    for c in chunks:
        if not (np.array_equal(c["w"], w_values) and np.array_equal(c["I_ext"], I_values)):
            raise ValueError("gather_bifurcation_chunks: chunks come from different (w, I_ext) grids")
        np.add.at(seen, c["index"], 1)
        n_fixed.flat[c["index"]] = c["n_fixed_points"]
        n_stable.flat[c["index"]] = c["n_stable"]
    if np.any(seen != 1):
        raise ValueError(f"gather_bifurcation_chunks: {np.sum(seen == 0)} grid points missing, "
                         f"{np.sum(seen > 1)} computed more than once; pass every chunk exactly once")
    return {"w": w_values, "I_ext": I_values, "n_fixed_points": n_fixed, "n_stable": n_stable}


def bifurcation_map(w_values, I_values, a=A, theta=THETA, tau=TAU):
    """Number of fixed points and of stable ones on the (w, I_ext) grid, arrays (len(w), len(I_ext))."""
    return gather_bifurcation_chunks([bifurcation_chunk(w_values, I_values, 0, 1, a, theta, tau)])


@dataclass(frozen=True)
class Transitions:
    """Switches between the two stable states of a trace.

    indices/times (ms): first sample on the new side of the threshold; directions: +1 up, -1 down;
    labels: per-sample state (0 low, 1 high); fraction_low/fraction_high: fraction of samples.
    """

    indices: np.ndarray
    times: np.ndarray
    directions: np.ndarray
    labels: np.ndarray
    fraction_low: float
    fraction_high: float


def detect_transitions(r_trace, low_state, high_state, dt, threshold, band=0.5):
    """Transitions of a rate trace between two stable states, with hysteresis.

    `threshold` is the unstable fixed point between the states (it separates their basins).
    A switch to a state counts only once the trace comes within `band` (0 < band < 1) times the
    state-to-threshold distance of that state; its time is the last threshold crossing before
    that. Excursions across the threshold that turn back earlier are not transitions.
    """
    if not low_state < threshold < high_state:
        raise ValueError(f"detect_transitions: need low_state < threshold < high_state, got "
                         f"{low_state}, {threshold}, {high_state}")
    if not 0 < band < 1:
        raise ValueError(f"detect_transitions: band must be in (0, 1), got {band}")
    r = np.asarray(r_trace, dtype=float)
    above = r > threshold
    zone = np.zeros(r.size, dtype=int)
    zone[r >= high_state - band * (high_state - threshold)] = 1
    zone[r <= low_state + band * (threshold - low_state)] = -1
    if zone[0] == 0:
        zone[0] = 1 if above[0] else -1
    last_entry = np.maximum.accumulate(np.where(zone != 0, np.arange(r.size), 0))
    committed = zone[last_entry]
    entries = np.flatnonzero(committed[1:] != committed[:-1]) + 1
    crossing = np.zeros(r.size, dtype=int)
    crossing[1:] = np.where(above[1:] != above[:-1], np.arange(1, r.size), 0)
    crossing = np.maximum.accumulate(crossing)
    indices = crossing[entries]
    labels = (committed > 0).astype(int)
    for start, stop in zip(indices, entries):
        labels[start:stop] = int(committed[stop] > 0)
    fraction_high = float(labels.mean())
    return Transitions(indices=indices, times=indices * dt, directions=committed[entries],
                       labels=labels, fraction_low=1.0 - fraction_high, fraction_high=fraction_high)
