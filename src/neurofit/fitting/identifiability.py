"""Identifiability of a least-squares fit: Wald intervals from the Jacobian and profile likelihoods.

After ``TraceFitter.refine`` the residuals r = (model − data)·√t_weights / normalization over the compared
samples (those of ``refine``) and their exact Jacobian give, with Gaussian noise of variance σ²:

* Wald (Gauss-Newton) intervals: Cov(θ) = σ² (JᵀJ)⁻¹, θ ± t_{n−rank}((1+level)/2)·se (the normal quantile
  when σ² is known). σ² is RSS/(n − rank) unless given (e.g. from the recording's baseline). A direction in
  which the residuals do not change (rank deficiency) gives se = inf to every parameter that moves along it.
* Profile likelihood of one parameter: hold it at each value of a grid over its bounds, re-optimise the others
  by least squares (``refine``'s machinery, exact sensitivities), record the minimal RSS. The profile interval
  is where RSS stays below min RSS + χ²₁(level)·σ². Flat over the bounds → "not identifiable"; rising above that
  threshold on both sides → "identifiable"; on one side only → "practically unbounded on one side".

Units: parameter values, standard errors and intervals are SI (those of the parameters); jacobians are
∂residual/∂parameter in 1/(SI unit of the parameter); RSS and the residual variance are in the units of the
residuals squared (a pure number when normalization carries the output's unit, else the output's SI unit
squared, e.g. V²), while the ``noise_variance`` of ``profile_likelihood`` and ``identifiability`` is the
recorded output's noise variance in its SI units squared (V²).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from ..units import to_si
from .metrics import first_step, valid_samples
from .refine import DIVERGED_RESIDUAL, _batched_forward_differences, least_squares_refine

IDENTIFIABLE = "identifiable"
NOT_IDENTIFIABLE = "not identifiable"
ONE_SIDED = "practically unbounded on one side"
#: A parameter whose component in a null direction of the (column-scaled) Jacobian exceeds this is singular.
NULL_COMPONENT = 1e-6


# --- Wald intervals -----------------------------------------------------------------------------------------

def _gauss_newton(jacobian, residuals, noise_variance=None, rtol=None):
    """(covariance (p, p) SI², singular (p,) bool, residual variance, degrees of freedom, rank).

    The Jacobian's columns are scaled to unit norm before the SVD (parameters differ by many orders of
    magnitude in SI); its rank counts singular values above ``rtol``·largest (default max(n, p)·eps). An
    array ``noise_variance`` (one variance per residual) gives the sandwich (JᵀJ)⁺ Jᵀ diag(v) J (JᵀJ)⁺."""
    J = np.asarray(jacobian, dtype=float)
    r = np.asarray(residuals, dtype=float).ravel()
    if J.ndim != 2 or J.shape[0] != r.size:
        raise ValueError(f"jacobian has shape {J.shape}; expected ({r.size}, n_params), one row per residual")
    if not (np.all(np.isfinite(J)) and np.all(np.isfinite(r))):
        raise ValueError("jacobian and residuals must be finite (the simulation diverged?)")
    n, p = J.shape
    norms = np.linalg.norm(J, axis=0)
    used = norms > 0
    singular = ~used
    cov = np.full((p, p), np.nan)
    rank = 0
    if used.any():
        Js = J[:, used] / norms[used]
        U, s, Vt = np.linalg.svd(Js, full_matrices=False)
        tol = (max(n, int(used.sum())) * np.finfo(float).eps if rtol is None else rtol) * s[0]
        rank = int(np.sum(s > tol))
        null = Vt[rank:]  # rows: directions the residuals do not see
        moving = np.any(np.abs(null) > NULL_COMPONENT, axis=0) if null.size else np.zeros(int(used.sum()), bool)
        singular[np.flatnonzero(used)[moving]] = True
        V, s_r, U_r = Vt[:rank].T, s[:rank], U[:, :rank]
        if np.ndim(noise_variance) == 0:
            inner = np.eye(rank)
        else:
            v = np.asarray(noise_variance, dtype=float).ravel()
            if v.size != n:
                raise ValueError(f"noise_variance has {v.size} entries; expected one per residual ({n})")
            inner = (U_r * v[:, None]).T @ U_r
        cov_s = (V / s_r) @ inner @ (V / s_r).T
        index = np.flatnonzero(used)
        cov[np.ix_(index, index)] = cov_s / np.outer(norms[used], norms[used])
    dof = n - rank
    if noise_variance is None:
        if dof <= 0:
            raise ValueError(f"{n} residuals for {rank} identified directions: no degrees of freedom left to "
                             f"estimate the noise variance; give noise_variance")
        sigma2 = float(r @ r) / dof
    else:
        sigma2 = float(np.mean(noise_variance))
    if np.ndim(noise_variance) == 0:
        cov = cov * sigma2
    cov[singular, :] = np.inf
    cov[:, singular] = np.inf
    return cov, singular, sigma2, dof, rank


def confidence_intervals(jacobian, residuals, names, values, level: float = 0.95, noise_variance=None,
                         rtol=None) -> dict:
    """Wald (Gauss-Newton) confidence intervals of least-squares estimates.

    jacobian: (n_residuals, n_params) derivatives of the residuals with respect to the parameters in their SI
    units (e.g. 1/S for a conductance when the residuals are pure numbers); residuals: (n_residuals,) the
    residuals (model − data, scaled as in the fit) at ``values``; names: the n_params parameter names, in the
    jacobian's column order; values: the n_params estimates, SI (a sequence, or a dict name → value);
    level: coverage of the intervals (0 < level < 1); noise_variance: variance of each residual, in the
    residuals' units squared - a number, an (n_residuals,) array (one per residual: sandwich covariance), or
    None to estimate it as RSS/(n_residuals − rank) and use Student-t quantiles with that many degrees of
    freedom (a given variance uses the normal quantile); rtol: relative singular-value tolerance of the rank
    check on the column-normalised Jacobian (None: max(n_residuals, n_params)·machine epsilon).

    Returns name → {"value", "se", "low", "high", "singular"}: the estimate, its standard error
    sqrt(σ² [(JᵀJ)⁺]_ii) and the interval value ∓ quantile·se (all SI, the parameter's unit); a parameter
    that moves along a direction the residuals do not see (a zero column, or a null vector of the Jacobian
    with a component on it) has se = inf, low = -inf, high = inf and "singular" True. Raises ValueError for
    shapes that do not match, non-finite input, a level outside (0, 1), or no degrees of freedom left.
    """
    if not 0 < level < 1:
        raise ValueError(f"level = {level} must lie strictly between 0 and 1 (e.g. 0.95)")
    names = list(names)
    values = [values[p] for p in names] if isinstance(values, dict) else list(values)
    if len(names) != len(values) or len(names) != np.shape(jacobian)[-1]:
        raise ValueError(f"{len(names)} names, {len(values)} values and {np.shape(jacobian)[-1]} jacobian columns "
                         f"do not match")
    cov, singular, _, dof, _ = _gauss_newton(jacobian, residuals, noise_variance, rtol)
    q = _quantile(level, None if noise_variance is not None else dof)
    out = {}
    for i, (name, value) in enumerate(zip(names, values)):
        se = float(np.sqrt(cov[i, i])) if not singular[i] else float("inf")
        out[name] = {"value": float(value), "se": se, "low": float(value - q * se), "high": float(value + q * se),
                     "singular": bool(singular[i])}
    return out


def _quantile(level: float, dof) -> float:
    """Two-sided quantile: Student t with ``dof`` degrees of freedom, normal when dof is None."""
    upper = 0.5 * (1.0 + level)
    return float(stats.norm.ppf(upper) if dof is None else stats.t.ppf(upper, dof))


def wald_verdict(interval: dict, bounds) -> str:
    """"not identifiable" when the Wald interval is infinite or wider than the bounds, else "identifiable".

    interval: one entry of ``confidence_intervals`` ({"se", "low", "high", ...}, SI); bounds: (low, high) of
    the parameter's search range, SI. Returns the verdict string.
    """
    width = interval["high"] - interval["low"]
    if not np.isfinite(interval["se"]) or not np.isfinite(width) or width > float(bounds[1]) - float(bounds[0]):
        return NOT_IDENTIFIABLE
    return IDENTIFIABLE


# --- residuals and Jacobian of a fitter at one point --------------------------------------------------------

class _Residuals:
    """The residual vector of ``TraceFitter.refine`` (its t_start, normalization, t_weights, valid samples) and
    its Jacobian in SI parameter units, at any parameter set of the fitter."""

    def __init__(self, fitter, metric=None, t_start=None, normalization=None, calc_gradient=True):
        metric = metric or (fitter.metric if not isinstance(fitter.metric, dict) else None)
        t = to_si(t_start if t_start is not None else getattr(metric, "t_start", 0.0), name="t_start")
        self.fitter = fitter
        self.start = first_step(t, fitter.dt)
        self.normalization = float(normalization or getattr(metric, "normalization", 1.0))
        self.t_weights = getattr(metric, "t_weights", None)
        weights = np.ones(fitter.n_steps) if self.t_weights is None else np.asarray(self.t_weights, dtype=float)
        self.sqrt_w = np.sqrt(weights[self.start:]) / self.normalization
        self.valid = None if fitter.lengths is None else valid_samples(fitter.lengths, fitter.n_steps, self.start)
        self.calc_gradient = bool(calc_gradient) and not fitter.at_rest  # as refine: at rest, differences
        self.outputs = list(fitter.output)
        per_sample = np.broadcast_to(weights[self.start:], (fitter.n_traces, fitter.n_steps - self.start))
        w = per_sample.ravel() if self.valid is None else per_sample[self.valid]
        self.weights = np.concatenate([w] * len(self.outputs))  # w_i of every residual

    def _rows(self, a):
        return a.ravel() if self.valid is None else a[self.valid]

    def __call__(self, params: dict, jacobian: bool = False):
        """(residuals (n,), Jacobian (n, p) in 1/SI parameter units or None) at ``params`` (every parameter)."""
        fitter = self.fitter
        names = list(fitter.parameter_names)
        full = fitter._resolve_params(params)
        exact = jacobian and self.calc_gradient
        res = fitter._simulate(full, record=tuple(self.outputs), sensitivities=tuple(names) if exact else ())
        residuals, columns = [], []
        for var in self.outputs:
            diff = (res.traces[var][0][:, self.start:] - fitter.output[var][:, self.start:]) * self.sqrt_w
            residuals.append(self._rows(diff))
            if exact:
                s = res.sensitivities[var][0][:, self.start:, :] * self.sqrt_w[None, :, None]
                columns.append(s.reshape(-1, len(names)) if self.valid is None else s[self.valid])
        r = np.concatenate(residuals)
        if not jacobian:
            return r, None
        if exact:
            return r, np.concatenate(columns)
        values = np.array([full[p] for p in names])
        scale = np.where(values != 0, np.abs(values), 1.0)
        hi = np.array([(fitter.bounds.get(p, (-np.inf, np.inf)))[1] for p in names]) / scale
        extra = {k: v for k, v in full.items() if k not in names}
        J = _batched_forward_differences(fitter, values / scale, scale, hi, names, extra, self.outputs, self.start,
                                         self.sqrt_w, self.valid)
        return r, J / scale[None, :]


def residuals_and_jacobian(fitter, params, metric=None, t_start=None, normalization=None, calc_gradient=True):
    """The residuals ``TraceFitter.refine`` minimises and their Jacobian, at one parameter set.

    fitter: a TraceFitter (its outputs, lengths, bounds and metric are used); params: parameter name → SI
    number, every free parameter; metric, t_start, normalization: as for ``TraceFitter.refine`` (None: the
    fit's metric's t_start, normalization and t_weights); calc_gradient: exact forward sensitivities (True;
    finite differences when the fitter starts at rest) or batched forward differences (False).

    Returns (residuals, jacobian): (n,) array of (model − data)·√t_weights/normalization over the compared
    samples of every output, and the (n, n_params) derivatives with respect to the parameters in their SI
    units, columns in ``fitter.parameter_names`` order.
    """
    return _Residuals(fitter, metric, t_start, normalization, calc_gradient)(params, jacobian=True)


# --- profile likelihood -------------------------------------------------------------------------------------

class _Holding:
    """The fitter seen with some parameters held: ``least_squares_refine`` optimises ``free`` only, the held
    values ride along in its start as extras (like the iteration variable)."""

    def __init__(self, fitter, free):
        self._fitter = fitter
        self.parameter_names = list(free)

    def __getattr__(self, name):
        return getattr(self._fitter, name)


def _noise_in_residual_units(setup: _Residuals, noise_variance):
    """The recorded output's noise variance (SI²) as the variance of each residual: w_i·σ²/normalization²
    (a number when every weight is 1)."""
    if noise_variance is None:
        return None
    sigma2 = float(noise_variance) / setup.normalization ** 2
    return sigma2 if np.all(setup.weights == 1.0) else setup.weights * sigma2


def profile_likelihood(fitter, params, name: str, bounds=None, n_points: int = 15, log_scale=False,
                       level: float = 0.95, noise_variance=None, metric=None, t_start=None, normalization=None,
                       calc_gradient: bool = True, max_nfev: int | None = None) -> dict:
    """Profile likelihood of one parameter: the least RSS with ``name`` held at each value of a grid.

    fitter: a TraceFitter with the data (and, unless ``bounds`` is given, the fit's bounds); params: the fitted
    parameters, name → SI number, every free parameter (the profile starts there); name: the parameter to
    profile; bounds: name → (low, high) SI of every free parameter (None: the fitter's) - the grid spans
    ``name``'s bounds, the others are re-optimised within theirs; n_points: grid values over the bounds (the
    fitted value is added); log_scale: whether the grid is log-spaced (True, or a collection of the names
    searched on a log scale); level: the likelihood-ratio level; noise_variance: the recorded output's noise
    variance in its SI units squared (V²), or None to estimate the residual variance as RSS/(n − p) at
    ``params``; metric, t_start, normalization, calc_gradient: the residuals, as for ``TraceFitter.refine``;
    max_nfev: at most this many simulations per re-optimisation (None: scipy's default).

    Each grid value, walking outwards from the fitted one, re-optimises the other parameters by least squares
    (``least_squares_refine`` with the exact sensitivities of the free ones) from the previous point's optimum.
    The threshold is min RSS + χ²₁(level)·σ² (σ² in residual units); each crossing is located by Brent's method
    between the grid values around it.

    Returns a dict: "name"; "grid" and "rss" (lists, the held value SI and the least RSS in residual units²);
    "value" (the held value of least RSS); "rss_min", "threshold", "noise_variance" (residual units²);
    "interval" [low, high] (SI; a bound where the profile does not cross the threshold on that side);
    "closed" [bool, bool] (whether it crosses on each side); "verdict": "identifiable", "not identifiable"
    (flat: never above the threshold within the bounds) or "practically unbounded on one side"; "evaluations"
    (re-optimisations). Raises FitError for an unknown name or infinite bounds.
    """
    setup = _Residuals(fitter, metric, t_start, normalization, calc_gradient)
    if noise_variance is not None:
        sigma2 = float(np.mean(_noise_in_residual_units(setup, noise_variance)))
    else:
        r, _ = setup(params)
        sigma2 = float(r @ r) / max(r.size - len(fitter.parameter_names), 1)
    return _profile(fitter, setup, params, name, bounds, n_points, log_scale, level, sigma2, max_nfev)


def _profile(fitter, setup: _Residuals, params, name, bounds, n_points, log_scale, level, sigma2, max_nfev) -> dict:
    """``profile_likelihood`` with its residuals and residual variance (residual units²) given."""
    from .fitters import FitError

    names = list(fitter.parameter_names)
    if name not in names:
        raise FitError(f"profile_likelihood: {name!r} is not a free parameter (free: {', '.join(names)})")
    bounds = {p: tuple(map(float, b)) for p, b in (bounds or fitter.bounds).items()}
    if name not in bounds or not np.all(np.isfinite(bounds[name])):
        raise FitError(f"profile_likelihood: {name} needs finite bounds (low, high) to lay the grid over")
    log = bool(log_scale) if isinstance(log_scale, bool) else name in set(log_scale)
    lo, hi = bounds[name]
    if log and lo <= 0:
        raise FitError(f"profile_likelihood: {name} has bounds ({lo:g}, {hi:g}); a log-spaced grid needs low > 0")
    fitted = fitter._resolve_params(params)
    others = [p for p in names if p != name]
    holding = _Holding(fitter, others)
    extra_kwargs = {"max_nfev": max_nfev} if max_nfev else {}
    evaluations = [0]

    def optimise(value, start):
        """(least RSS with ``name`` at ``value``, the parameters reaching it), from ``start``."""
        point = {**start, name: float(value)}
        evaluations[0] += 1
        if not others:
            r, _ = setup(point)
            return (float(r @ r) if np.all(np.isfinite(r)) else r.size * DIVERGED_RESIDUAL ** 2), point  # as refine
        refined, result = least_squares_refine(holding, point, {p: bounds[p] for p in others}, setup.start,
                                               setup.normalization, setup.t_weights, setup.calc_gradient,
                                               lengths=fitter.lengths, **extra_kwargs)
        return float(result.fun @ result.fun), {**point, **refined}

    theta = min(max(float(fitted[name]), lo), hi)
    space = (np.geomspace if log else np.linspace)(lo, hi, int(n_points))
    below, above = space[space < theta][::-1], space[space > theta]  # walking outwards
    rss0, params0 = optimise(theta, fitted)
    points = {theta: (rss0, params0)}
    for side in (below, above):
        rss, start = rss0, params0
        for value in side:
            rss, start = optimise(value, start)
            points[float(value)] = (rss, start)
    grid = np.array(sorted(points))
    rss = np.array([points[v][0] for v in grid])
    best = int(np.argmin(rss))
    rss_min = float(rss[best])
    threshold = rss_min + float(stats.chi2.ppf(level, 1)) * sigma2
    left_above = np.flatnonzero(rss[:best] > threshold)
    right_above = np.flatnonzero(rss[best + 1:] > threshold) + best + 1

    def crossing(inner, outer):
        """Where the profile crosses the threshold between grid indices inner (below) and outer (above)."""
        a, b = grid[inner], grid[outer]
        start = points[a][1]
        to_x = np.log if log else (lambda v: v)
        from_x = np.exp if log else (lambda v: v)

        def f(x):
            return optimise(from_x(x), start)[0] - threshold

        try:
            return float(from_x(optimize.brentq(f, to_x(a), to_x(b), xtol=1e-4 * abs(to_x(b) - to_x(a)),
                                                maxiter=50)))
        except ValueError:  # no sign change from this start (another local minimum): interpolate linearly
            ra, rb = rss[inner], rss[outer]
            return float(from_x(to_x(a) + (threshold - ra) / (rb - ra) * (to_x(b) - to_x(a))))

    closed = [left_above.size > 0, right_above.size > 0]
    low = crossing(left_above[-1] + 1, left_above[-1]) if closed[0] else lo
    high = crossing(right_above[0] - 1, right_above[0]) if closed[1] else hi
    verdict = IDENTIFIABLE if all(closed) else (ONE_SIDED if any(closed) else NOT_IDENTIFIABLE)
    return {"name": name, "grid": [float(v) for v in grid], "rss": [float(v) for v in rss],
            "value": float(grid[best]), "rss_min": rss_min, "threshold": float(threshold),
            "noise_variance": sigma2, "interval": [float(low), float(high)], "closed": closed, "verdict": verdict,
            "evaluations": evaluations[0]}


# --- both, for every free parameter ---------------------------------------------------------------------------

def baseline_noise_variance(fitter, output: str | None = None, min_samples: int = 10) -> float:
    """The recording's noise variance from its baseline: the samples before any input first changes.

    fitter: a Fitter with recorded traces; output: the recorded variable (None: the first); min_samples:
    baseline samples needed per trace for it to count. Each trace's baseline is detrended (a straight line is
    fitted and removed, so a slow drift does not count as noise); the variance is pooled over the traces with
    2 degrees of freedom taken per trace. Returns the variance in the output's SI units squared (V²).
    Raises FitError when no trace has ``min_samples`` baseline samples. Assumes the recorded variable is at
    rest before the stimulus (e.g. the model starts at rest): transients count as noise.
    """
    from .fitters import FitError

    var = output or next(iter(fitter.output))
    data = np.asarray(fitter.output[var], dtype=float)
    inputs = [np.asarray(a, dtype=float) for a in fitter.input.values()]
    total, dof = 0.0, 0
    for i in range(data.shape[0]):
        changes = [np.flatnonzero(a[i] != a[i, 0]) for a in inputs]
        end = min([c[0] for c in changes if c.size] or [data.shape[1]])
        if fitter.lengths is not None:
            end = min(end, int(fitter.lengths[i]))
        if end < min_samples:
            continue
        t = np.arange(end)
        y = data[i, :end]
        trend = np.polyval(np.polyfit(t, y, 1), t)
        total += float(np.sum((y - trend) ** 2))
        dof += end - 2
    if dof <= 0:
        raise FitError(f"baseline_noise_variance: no trace has {min_samples} samples before its input changes")
    return total / dof


def identifiability(fitter, params, bounds=None, log_scale=(), level: float = 0.95, n_points: int = 15,
                    noise_variance=None, noise_source: str = "baseline", profile: bool = True, metric=None,
                    t_start=None, normalization=None, calc_gradient: bool = True, max_nfev: int | None = None) -> dict:
    """Wald intervals and (optionally) profile likelihoods of every free parameter of a refined fit.

    fitter: the TraceFitter of the fit (data, metric, bounds); params: the refined parameters, name → SI
    number, every free parameter; bounds: name → (low, high) SI (None: the fitter's); log_scale: names
    searched on a log scale (their profile grid is log-spaced); level: coverage of the intervals and
    likelihood-ratio level of the profiles; n_points: profile grid values per parameter; noise_variance: the
    recorded output's noise variance in its SI units squared (V²), e.g. ``baseline_noise_variance(fitter)``,
    or None to estimate it from the residuals (RSS/(n − rank), Student-t quantiles); noise_source: the label
    recorded for a given noise_variance (e.g. "baseline"); profile: compute the profile likelihoods (False:
    Wald only, one simulation); metric, t_start, normalization, calc_gradient: the residuals, as for
    ``TraceFitter.refine``; max_nfev: at most this many simulations per profile re-optimisation.

    Returns a dict: "level"; "noise_variance" (the output's noise variance used, SI², with t_weights divided by
    their mean) and "noise_source" ("residuals" or ``noise_source``); "rss" (residual units²), "n_residuals",
    "dof", "rank"; "parameters": name → {"value", "se", "interval" [low, high] (Wald, SI), "wald_verdict",
    "profile_interval" [low, high] or None, "profile" (``profile_likelihood``'s dict without the name) or None,
    "verdict" (the profile's when computed, else the Wald one)}. Raises FitError for a diverging simulation at
    ``params`` and as ``profile_likelihood``.
    """
    from .fitters import FitError

    names = list(fitter.parameter_names)
    bounds = {p: tuple(map(float, b)) for p, b in (bounds or fitter.bounds or {}).items()}
    setup = _Residuals(fitter, metric, t_start, normalization, calc_gradient)
    values = {p: float(v) for p, v in fitter._resolve_params(params).items() if p in names}
    r, J = setup(values, jacobian=True)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J))):
        raise FitError("identifiability: the simulation at the given parameters diverged (non-finite residuals)")
    residual_variance = _noise_in_residual_units(setup, noise_variance)
    intervals = confidence_intervals(J, r, names, values, level=level, noise_variance=residual_variance)
    _, _, sigma2, dof, rank = _gauss_newton(J, r, residual_variance)
    mean_w = float(np.mean(setup.weights))
    out = {"level": level, "noise_variance": sigma2 * setup.normalization ** 2 / mean_w,
           "noise_source": "residuals" if noise_variance is None else noise_source,
           "rss": float(r @ r), "n_residuals": int(r.size), "dof": int(dof), "rank": int(rank), "parameters": {}}
    for p in names:
        entry = intervals[p]
        unbounded = (-np.inf, np.inf)
        wald = wald_verdict(entry, bounds.get(p, unbounded))
        row = {"value": entry["value"], "se": entry["se"], "interval": [entry["low"], entry["high"]],
               "wald_verdict": wald, "profile_interval": None, "profile": None, "verdict": wald}
        if profile:
            prof = _profile(fitter, setup, values, p, bounds, n_points, log_scale, level, sigma2, max_nfev)
            row.update(profile_interval=prof["interval"], verdict=prof["verdict"],
                       profile={k: v for k, v in prof.items() if k != "name"})
        out["parameters"][p] = row
    return out
