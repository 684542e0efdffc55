"""Least-squares refinement of fitted parameters with an exact (or batched finite-difference) Jacobian."""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from .metrics import valid_samples

DIVERGED_RESIDUAL = 1e6  # residual given to every sample of a diverging candidate


def least_squares_refine(fitter, start: dict, bounds: dict, t_start, normalization, t_weights,
                         calc_gradient: bool, lengths=None, on_evaluation=None, **kwargs):
    """Minimise Σ ((model − data)·√w / normalization)² over the fitter's free parameters.

    Works in parameters scaled by their starting values (all of order 1). ``t_start`` (first compared sample,
    int), ``normalization`` (float) and ``t_weights`` ((n_steps,) array or None) apply to every output, or are
    dicts output variable → such a value (one per output, as a fit's metric dict gives them). ``lengths``
    ((n_traces,) int samples per trace, or None when every trace is full): the padded samples after each
    trace's end are left out of the residual vector and of the Jacobian's rows. ``on_evaluation(params,
    residuals)`` (optional) is called after every residual evaluation with the parameter dict (SI) and a dict
    output → that output's residual vector. Returns (refined parameter dict, scipy OptimizeResult), the result
    with ``objective_errors_normalized``: output → mean squared residual of that output at the refined point.
    """
    names = fitter.parameter_names
    outputs = list(fitter.output)

    def per_output(value):
        return {var: value[var] for var in outputs} if isinstance(value, dict) else dict.fromkeys(outputs, value)

    starts, norms, weights_of = per_output(t_start), per_output(normalization), per_output(t_weights)
    scale = np.array([abs(start[p]) if start[p] != 0 else 1.0 for p in names])
    lo = np.array([bounds[p][0] for p in names]) / scale
    hi = np.array([bounds[p][1] for p in names]) / scale
    x0 = np.clip(np.array([start[p] for p in names]) / scale, lo, hi)
    sqrt_w = {}
    for var in outputs:
        weights = np.ones(fitter.n_steps) if weights_of[var] is None else np.asarray(weights_of[var], dtype=float)
        sqrt_w[var] = np.sqrt(weights[starts[var]:]) / float(norms[var])
    extra = {k: v for k, v in start.items() if k not in names}  # e.g. the iteration variable
    # (n_traces, n) bool per output
    valid = {var: None if lengths is None else valid_samples(lengths, fitter.n_steps, starts[var]) for var in outputs}
    cache = {}
    sizes = {}  # output -> length of its residual vector

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
            t0 = starts[var]
            diff = (res.traces[var][0][:, t0:] - fitter.output[var][:, t0:]) * sqrt_w[var]
            residuals.append(diff.ravel() if valid[var] is None else diff[valid[var]])
            if calc_gradient:
                s = res.sensitivities[var][0][:, t0:, :] * sqrt_w[var][None, :, None]
                s = s.reshape(-1, len(names)) if valid[var] is None else s[valid[var]]
                jacobian.append(s * scale[None, :])
        sizes.update((var, one.size) for var, one in zip(outputs, residuals))
        r = np.concatenate(residuals)
        if res.invalid.any() or not np.all(np.isfinite(r)):
            r = np.full_like(r, DIVERGED_RESIDUAL)
            jacobian = [np.zeros((r.size, len(names)))] if calc_gradient else []
            residuals = [np.full_like(one, DIVERGED_RESIDUAL) for one in residuals]
        cache.clear()
        cache[key] = (r, np.concatenate(jacobian) if calc_gradient else None)
        if on_evaluation is not None:
            on_evaluation(as_params(x), dict(zip(outputs, residuals)))
        return cache[key]

    def residual(x):
        return run(x)[0]

    if calc_gradient:
        def jac(x):
            return run(x)[1]
    else:
        def jac(x):
            return _batched_forward_differences(fitter, x, scale, hi, names, extra, outputs, starts, sqrt_w, valid)

    kwargs.setdefault("x_scale", "jac")
    kwargs.setdefault("method", "trf")
    result = least_squares(residual, x0, jac=jac, bounds=(lo, hi), **kwargs)
    refined = {p: float(v) for p, v in zip(names, result.x * scale)}
    parts = np.split(result.fun, np.cumsum([sizes[var] for var in outputs])[:-1])
    result.objective_errors_normalized = {var: float(np.mean(part ** 2)) for var, part in zip(outputs, parts)}
    return refined, result


def _batched_forward_differences(fitter, x, scale, hi, names, extra, outputs, t_start, sqrt_w, valid=None):
    """Jacobian from one simulation of p+1 parameter sets (x and x + h_i e_i); rows of the valid samples
    only when ``valid`` ((n_traces, n_steps - t_start) bool) is given. ``t_start``, ``sqrt_w`` and ``valid``
    apply to every output, or are dicts output → value."""
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
        t0 = t_start[var] if isinstance(t_start, dict) else t_start
        w = sqrt_w[var] if isinstance(sqrt_w, dict) else sqrt_w
        ok = valid.get(var) if isinstance(valid, dict) else valid
        traces = res.traces[var][:, :, t0:] * w[None, None, :]
        if ok is None:
            columns.append(((traces[1:] - traces[0]) / steps[:, None, None]).reshape(n, -1).T)
        else:
            traces = traces[:, ok]  # (n + 1, valid samples)
            columns.append(((traces[1:] - traces[0]) / steps[:, None]).T)
    return np.concatenate(columns)
