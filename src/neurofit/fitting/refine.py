"""Least-squares refinement of fitted parameters with an exact (or batched finite-difference) Jacobian."""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from .metrics import valid_samples

DIVERGED_RESIDUAL = 1e6  # residual given to every sample of a diverging candidate


def least_squares_refine(fitter, start: dict, bounds: dict, t_start: int, normalization: float, t_weights,
                         calc_gradient: bool, lengths=None, **kwargs):
    """Minimise Σ ((model − data)·√w / normalization)² over the fitter's free parameters.

    Works in parameters scaled by their starting values (all of order 1). ``lengths`` ((n_traces,) int
    samples per trace, or None when every trace is full): the padded samples after each trace's end are
    left out of the residual vector and of the Jacobian's rows. Returns (refined parameter dict, scipy
    OptimizeResult).
    """
    names = fitter.parameter_names
    scale = np.array([abs(start[p]) if start[p] != 0 else 1.0 for p in names])
    lo = np.array([bounds[p][0] for p in names]) / scale
    hi = np.array([bounds[p][1] for p in names]) / scale
    x0 = np.clip(np.array([start[p] for p in names]) / scale, lo, hi)
    weights = np.ones(fitter.n_steps) if t_weights is None else np.asarray(t_weights, dtype=float)
    sqrt_w = np.sqrt(weights[t_start:]) / float(normalization)
    outputs = list(fitter.output)
    extra = {k: v for k, v in start.items() if k not in names}  # e.g. the iteration variable
    valid = None if lengths is None else valid_samples(lengths, fitter.n_steps, t_start)  # (n_traces, n) bool
    cache = {}

    def as_params(x):
        return {**{p: float(v) for p, v in zip(names, x * scale)}, **extra}

    def run(x):
        key = x.tobytes()
        if key in cache:
            return cache[key]
        sens = names if calc_gradient else ()
        res = fitter._simulate(as_params(x), record=tuple(outputs), sensitivities=sens)
        residuals, jacobian = [], []
        for var in outputs:
            diff = (res.traces[var][0][:, t_start:] - fitter.output[var][:, t_start:]) * sqrt_w
            residuals.append(diff.ravel() if valid is None else diff[valid])
            if calc_gradient:
                s = res.sensitivities[var][0][:, t_start:, :] * sqrt_w[None, :, None]
                s = s.reshape(-1, len(names)) if valid is None else s[valid]
                jacobian.append(s * scale[None, :])
        r = np.concatenate(residuals)
        if res.invalid.any() or not np.all(np.isfinite(r)):
            r = np.full_like(r, DIVERGED_RESIDUAL)
            jacobian = [np.zeros((r.size, len(names)))] if calc_gradient else []
        cache.clear()
        cache[key] = (r, np.concatenate(jacobian) if calc_gradient else None)
        return cache[key]

    def residual(x):
        return run(x)[0]

    if calc_gradient:
        def jac(x):
            return run(x)[1]
    else:
        def jac(x):
            return _batched_forward_differences(fitter, x, scale, hi, names, extra, outputs, t_start, sqrt_w, valid)

    kwargs.setdefault("x_scale", "jac")
    kwargs.setdefault("method", "trf")
    result = least_squares(residual, x0, jac=jac, bounds=(lo, hi), **kwargs)
    refined = {p: float(v) for p, v in zip(names, result.x * scale)}
    return refined, result


def _batched_forward_differences(fitter, x, scale, hi, names, extra, outputs, t_start, sqrt_w, valid=None):
    """Jacobian from one simulation of p+1 parameter sets (x and x + h_i e_i); rows of the valid samples
    only when ``valid`` ((n_traces, n_steps - t_start) bool) is given."""
    n = len(names)
    steps = np.sqrt(np.finfo(float).eps) * np.maximum(np.abs(x), 1e-8)
    steps = np.where(x + steps > hi, -steps, steps)  # stay inside the upper bound
    sets = np.repeat(x[None, :], n + 1, axis=0)
    sets[1:] += np.diag(steps)
    params = {p: sets[:, i] * scale[i] for i, p in enumerate(names)}
    params.update({k: np.full(n + 1, v) for k, v in extra.items()})
    res = fitter._simulate(params, record=tuple(outputs))
    columns = []
    for var in outputs:
        traces = res.traces[var][:, :, t_start:] * sqrt_w[None, None, :]
        if valid is None:
            columns.append(((traces[1:] - traces[0]) / steps[:, None, None]).reshape(n, -1).T)
        else:
            traces = traces[:, valid]  # (n + 1, valid samples)
            columns.append(((traces[1:] - traces[0]) / steps[:, None]).T)
    return np.concatenate(columns)
