"""The Neuromatch rate-model tutorial as a study: simulations through the core simulator, the
OU-driven run, fitting the model to rate traces, and `rate_study` writing every artefact.

Units are the tutorial's (times in ms, rates, inputs and weights in arbitrary units); conversion
to the simulator's SI units (seconds) happens here and only here. Entry points take plain floats,
lists and dicts so that a CLI can call them with a parsed YAML config; files are written
atomically (`neurofit.data.files`, `neurofit.plots.save_figure`).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from scipy.special import expit

from ..data.files import atomic_save_npz, atomic_write_json
from . import rate, rate_plots
from .rate import TAU, THETA, A

MS = 1e-3  # seconds per ms: the tutorial's time unit in SI
PARAMETERS = ("tau", "a", "theta", "w")


def simulate_rate(w, I_ext, r_init, tau=TAU, a=A, theta=THETA, dt=0.1, T=None, method="euler",
                  backend="numpy"):
    """The tutorial's `simulate_single`, run by `neurofit.simulate` on the built-in "rate" model.

    w, tau (ms), a, theta: model parameters. I_ext: a number (constant for T ms; T defaults to the
    tutorial's 20 ms), an array (n_steps,) or (n_traces, n_steps) sampled every dt ms (its length
    sets the duration; a T that disagrees is an error). r_init: a number, or one initial rate per
    trace (shape (n_traces,); with a single input trace the trace is repeated per r_init).
    Sample k is the rate at t = k·dt (k = 0: r_init); I_ext[k] drives step k → k+1.

    Returns (t_ms (n_steps,), r) with r of shape (n_steps,) for one trace, else (n_traces, n_steps).
    """
    import neurofit

    from .. import models

    if np.ndim(I_ext) == 0:
        I_ext = np.full(rate.n_steps(20.0 if T is None else T, dt), float(I_ext))
    I_ext = np.asarray(I_ext, dtype=float)
    if I_ext.ndim not in (1, 2):
        raise ValueError(f"simulate_rate: I_ext has shape {I_ext.shape}; expected a number, (n_steps,) "
                         f"or (n_traces, n_steps)")
    n_steps = I_ext.shape[-1]
    if T is not None and n_steps != rate.n_steps(T, dt):
        raise ValueError(f"simulate_rate: I_ext has {n_steps} samples but T={T} ms, dt={dt} ms needs "
                         f"{rate.n_steps(T, dt)}; give T=None to take the duration from I_ext")
    single = I_ext.ndim == 1 and np.ndim(r_init) == 0
    traces = np.atleast_2d(I_ext)
    r0 = np.atleast_1d(np.asarray(r_init, dtype=float))
    if r0.ndim != 1:
        raise ValueError(f"simulate_rate: r_init has shape {np.shape(r_init)}; expected a number or (n_traces,)")
    if traces.shape[0] == 1 and r0.size > 1:
        traces = np.repeat(traces, r0.size, axis=0)
    if r0.size not in (1, traces.shape[0]):
        raise ValueError(f"simulate_rate: {r0.size} initial rates for {traces.shape[0]} input traces; give one "
                         f"r_init, or one per trace")
    r0 = np.broadcast_to(r0, (traces.shape[0],))
    result = neurofit.simulate(
        models.get("rate"), {"tau": tau * MS, "a": a, "theta": theta, "w": w}, {"I_ext": traces}, dt * MS,
        init={"r": r0[None, :]}, record=("r",), method=method, backend=backend)
    r = result.traces["r"][0]
    t = np.arange(n_steps) * dt
    return t, (r[0] if single else r)


def ou_input(n_steps, dt=0.1, I_mean=0.56, sigma=0.7, tau_ou=1.0, *, seed):
    """The tutorial's input `I_mean + my_OU(pars, sig=sigma)`: Euler-updated OU noise that starts at a
    stationary draw, from `stimuli.ornstein_uhlenbeck(method="euler", x0="stationary")`.

    The update is the tutorial's; its draws come from np.random.default_rng(seed), not from the
    legacy np.random.seed, so a seed gives other numbers than the tutorial's `myseed`.
    """
    from ..data.stimuli import ornstein_uhlenbeck

    return ornstein_uhlenbeck(int(n_steps), dt * MS, tau_ou * MS, sigma, mu=I_mean, x0="stationary",
                              seed=seed, method="euler")


def ou_driven_run(w=5.0, I_mean=0.56, sigma=0.7, tau_ou=1.0, T=1000.0, dt=0.1, *, seed, r_init=0.2,
                  tau=TAU, a=A, theta=THETA, band=0.5, backend="numpy"):
    """A rate trace driven by I_ext = I_mean + OU(sigma, tau_ou) and its transitions between the two
    stable states of the noise-free model at I_mean (the tutorial's bonus section 2).

    Returns (t_ms, I_ext, r, transitions). transitions is a `rate.Transitions` detected with the
    unstable fixed point as threshold (`rate.detect_transitions`, hysteresis `band`), or None when
    the model at (w, I_mean) does not have two stable states.
    """
    I_ext = ou_input(rate.n_steps(T, dt), dt, I_mean, sigma, tau_ou, seed=seed)
    t, r = simulate_rate(w, I_ext, r_init, tau, a, theta, dt, method="euler", backend=backend)
    fps = rate.fixed_points(w, I_mean, a, theta, tau)
    stable = [fp.r for fp in fps if fp.stable]
    unstable = [fp.r for fp in fps if not fp.stable]
    transitions = None
    if len(stable) == 2 and len(unstable) == 1:
        transitions = rate.detect_transitions(r, stable[0], stable[1], dt, unstable[0], band=band)
    return t, I_ext, r, transitions


def step_protocol(amplitudes, T=50.0, dt=0.1, start=5.0, stop=25.0, baseline=0.0):
    """I_ext traces (len(amplitudes), n_steps): `baseline`, then each amplitude for start <= t < stop (ms)."""
    from ..data.stimuli import steps

    return steps(rate.n_steps(T, dt), dt * MS, [float(x) for x in amplitudes], start * MS, stop * MS,
                 baseline=baseline)


def synthetic_traces(params, I_ext, dt=0.1, noise_sd=0.02, *, seed, r_init=0.0, backend="numpy"):
    """Rate traces of the model with `params` (tau in ms, a, theta, w) under the I_ext traces (n_traces,
    n_steps), plus Gaussian noise of SD `noise_sd` from np.random.default_rng(seed).

    Returns (t_ms, r_clean, r_noisy), both (n_traces, n_steps).
    """
    I_ext = np.atleast_2d(np.asarray(I_ext, dtype=float))
    t, r = simulate_rate(params["w"], I_ext, r_init, params["tau"], params["a"], params["theta"], dt,
                         backend=backend)
    r = np.atleast_2d(r)
    noisy = r + noise_sd * np.random.default_rng(seed).standard_normal(r.shape)
    return t, r, noisy


def fit_rate_model(t, I_ext_traces, r_traces, bounds, *, seed, r_init=0.0, n_samples=30, n_rounds=40,
                   method="DE", refine=True, n_starts=2, backend="auto"):
    """Fit tau, a, theta, w of the rate model to rate traces (tutorial units).

    t: (n_steps,) sample times in ms (evenly spaced from 0). I_ext_traces, r_traces: (n_traces,
    n_steps). bounds: name → [low, high] or [low, high, "log"] in tutorial units (tau in ms), one for each
    of tau, a, theta, w (a rate study's fit.bounds: the config schema holds their defaults). r_init: the
    rate at t = 0 (a number or one per trace; 0 is the rest state at I_ext = 0). A nevergrad `method`
    search (n_rounds × n_samples candidates, MSE) followed, if `refine`, by least-squares refinement with
    the exact Jacobian.

    Returns a JSON-ready dict: "params" (best, tutorial units), "error" (its MSE), "search_params",
    "search_error" (the global search's best), "n_simulations" (parameter sets simulated in the search).
    """
    from .. import models
    from ..fitting.fitters import TraceFitter
    from ..fitting.metrics import MSEMetric
    from ..fitting.optimizers import NevergradOptimizer

    t = np.asarray(t, dtype=float)
    I_ext_traces = np.atleast_2d(np.asarray(I_ext_traces, dtype=float))
    r_traces = np.atleast_2d(np.asarray(r_traces, dtype=float))
    if t.ndim != 1 or t.size < 2 or t.size != I_ext_traces.shape[1]:
        raise ValueError(f"fit_rate_model: t has shape {t.shape}; expected (n_steps,) = ({I_ext_traces.shape[1]},)")
    dt = float(t[1] - t[0])
    if not np.allclose(np.diff(t), dt, rtol=1e-6, atol=0.0) or abs(t[0]) > 1e-9 * dt:
        raise ValueError("fit_rate_model: t must be evenly spaced samples starting at 0 ms")
    unknown = sorted(set(bounds or {}) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"fit_rate_model: bounds for unknown parameter(s) {', '.join(unknown)} "
                         f"(parameters: {', '.join(PARAMETERS)})")
    missing = [name for name in PARAMETERS if name not in (bounds or {})]
    if missing:
        raise ValueError(f"fit_rate_model: no bounds for {', '.join(missing)} (give [low, high] for each of "
                         f"{', '.join(PARAMETERS)})")
    si_bounds = {}
    for name in PARAMETERS:
        spec = list(bounds[name])
        scale = MS if name == "tau" else 1.0
        si_bounds[name] = [float(spec[0]) * scale, float(spec[1]) * scale, *spec[2:]]
    r0 = np.atleast_1d(np.asarray(r_init, dtype=float))
    fitter = TraceFitter(models.get("rate"), input={"I_ext": I_ext_traces}, output={"r": r_traces}, dt=dt * MS,
                         n_samples=n_samples, method="euler", param_init={"r": r0[None, :] if r0.size > 1 else r0[0]},
                         backend=backend)
    best, error = fitter.fit(NevergradOptimizer(method, seed=seed), MSEMetric(), n_rounds=n_rounds, callback=None,
                             **si_bounds)

    def tutorial_units(p):
        return {name: float(p[name]) / (MS if name == "tau" else 1.0) for name in PARAMETERS}

    out = {"search_params": tutorial_units(best), "search_error": float(error),
           "n_simulations": len(fitter.history)}
    if refine:
        refined, result = fitter.refine(n_starts=n_starts, calc_gradient=True)  # the exact Jacobian, as before
        out["params"], out["error"] = tutorial_units(refined), float(np.mean(result.fun ** 2))
        if out["error"] > out["search_error"]:  # refinement never makes the answer worse
            out["params"], out["error"] = out["search_params"], out["search_error"]
    else:
        out["params"], out["error"] = out["search_params"], out["search_error"]
    return out


# --- the study ------------------------------------------------------------------------------------

FIGURES = ("fi_curve.png", "drdt.png", "trajectories.png", "ou_run.png", "bifurcation_map.png")
FIT_FIGURE = "fit_traces.png"
SUMMARY = "rate_study.json"


def bifurcation_grid(config):
    """The study's (w, I_ext) grid: np.linspace(w_min, w_max, n_w), np.linspace(I_min, I_max, n_I)."""
    b = config["bifurcation"]
    if int(b["n_w"]) < 1 or int(b["n_I"]) < 1:
        raise ValueError(f"rate study config: bifurcation.n_w = {b['n_w']}, bifurcation.n_I = {b['n_I']}; "
                         f"both must be >= 1")
    return (np.linspace(float(b["w_min"]), float(b["w_max"]), int(b["n_w"])),
            np.linspace(float(b["I_min"]), float(b["I_max"]), int(b["n_I"])))


def write_bifurcation_chunk(config, chunk, n_chunks, path):
    """One chunk of the study's (w, I_ext) bifurcation map (`rate.bifurcation_chunk`), as an .npz at `path`."""
    m = config["model"]
    w_grid, I_grid = bifurcation_grid(config)
    res = rate.bifurcation_chunk(w_grid, I_grid, int(chunk), int(n_chunks), m["a"], m["theta"], m["tau"])
    return atomic_save_npz(path, {k: np.asarray(v) for k, v in res.items()})


def _read_chunks(paths):
    chunks = []
    for p in paths:
        with np.load(p, allow_pickle=False) as f:
            chunks.append({k: f[k] for k in ("index", "n_fixed_points", "n_stable", "w", "I_ext")})
    return chunks


def _fixed_point_dict(fp):
    return {"r": fp.r, "eigenvalue": fp.eigenvalue, "stable": fp.stable, "residual": fp.residual}


def rate_study(config, out_dir, bifurcation_chunks=None):
    """Run the rate-model study and write its artefacts into `out_dir`; returns the summary dict.

    Files (each written atomically): fi_curve.png, drdt.png (fixed points: filled stable, open
    unstable), trajectories.png (several r_init), ou_run.png, bifurcation_map.png, fit_traces.png
    (when fit.enabled) and rate_study.json with the numbers: fixed points with eigenvalues, the
    trajectories' final rates, the OU run's transitions, the bifurcation map, the fit.
    `config`: every key of a study's ``rate`` section (``neurofit.workflow.rate_section`` passes the
    section's settings, with the defaults of the config schema filled in; with fit.enabled false, the fit's
    keys are not read). `bifurcation_chunks`: paths of .npz files from `write_bifurcation_chunk` to gather
    instead of computing the map here.
    """
    cfg = copy.deepcopy(config)
    out = Path(out_dir)
    m = cfg["model"]
    tau, a, theta = float(m["tau"]), float(m["a"]), float(m["theta"])
    w, I0 = float(cfg["w"]), float(cfg["I_ext"])
    from ..plots import save_figure

    summary = {"config": cfg, "units": {"time": "ms", "rate": "a.u.", "input": "a.u.", "eigenvalue": "1/ms"}}

    fc = cfg["fi_curve"]
    x = np.linspace(fc["x_min"], fc["x_max"], int(fc["n"]))
    save_figure(rate_plots.plot_fi_curve(x, a, theta), out / "fi_curve.png")
    summary["fi_curve"] = {"x": x.tolist(), "F": rate.fi_curve(x, a, theta).tolist(),
                           "F_sup": float(expit(a * theta))}

    fps = rate.fixed_points(w, I0, a, theta, tau)
    save_figure(rate_plots.plot_drdt(w, I0, a, theta, tau), out / "drdt.png")
    summary["fixed_points"] = [_fixed_point_dict(fp) for fp in fps]

    tr = cfg["trajectories"]
    r_inits = [float(v) for v in tr["r_inits"]]
    t, r = simulate_rate(w, I0, r_inits, tau, a, theta, tr["dt"], tr["T"], tr["method"], tr["backend"])
    fig = rate_plots.plot_trajectories(w, I0, [], a, theta, tau, tr["dt"], tr["T"])
    ax = fig.axes[0]
    for row in np.atleast_2d(r):
        ax.plot(t, row, "b", alpha=0.6)
    save_figure(fig, out / "trajectories.png")
    summary["trajectories"] = {"r_init": r_inits, "r_final": [float(v) for v in np.atleast_2d(r)[:, -1]],
                               "T": float(tr["T"]), "dt": float(tr["dt"]), "method": tr["method"],
                               "backend": tr["backend"]}

    ou = cfg["ou"]
    t, I_ext, r, trans = ou_driven_run(ou["w"], ou["I_mean"], ou["sigma"], ou["tau_ou"], ou["T"], ou["dt"],
                                       seed=int(ou["seed"]), r_init=ou["r_init"], tau=tau, a=a, theta=theta,
                                       band=ou["band"])
    ou_fps = rate.fixed_points(ou["w"], ou["I_mean"], a, theta, tau)
    save_figure(rate_plots.plot_ou_run(t, r, ou_fps), out / "ou_run.png")
    summary["ou"] = {"fixed_points": [_fixed_point_dict(fp) for fp in ou_fps], "bistable": trans is not None}
    if trans is not None:
        summary["ou"].update({
            "n_transitions": int(trans.indices.size), "n_up": int(np.sum(trans.directions > 0)),
            "n_down": int(np.sum(trans.directions < 0)), "times": trans.times.tolist(),
            "fraction_low": trans.fraction_low, "fraction_high": trans.fraction_high})

    w_grid, I_grid = bifurcation_grid(cfg)
    if bifurcation_chunks:
        bmap = rate.gather_bifurcation_chunks(_read_chunks(bifurcation_chunks))
        if not (np.array_equal(bmap["w"], w_grid) and np.array_equal(bmap["I_ext"], I_grid)):
            raise ValueError("rate_study: the bifurcation chunks were computed on another (w, I_ext) grid "
                             "than the config's bifurcation.w / bifurcation.I_ext")
    else:
        n_chunks = int(cfg["bifurcation"]["n_chunks"])
        bmap = rate.gather_bifurcation_chunks(
            [rate.bifurcation_chunk(w_grid, I_grid, c, n_chunks, a, theta, tau) for c in range(n_chunks)])
    save_figure(rate_plots.plot_bifurcation_map(bmap, "n_stable"), out / "bifurcation_map.png")
    summary["bifurcation"] = {"w": bmap["w"].tolist(), "I_ext": bmap["I_ext"].tolist(),
                              "n_fixed_points": bmap["n_fixed_points"].tolist(),
                              "n_stable": bmap["n_stable"].tolist(),
                              "n_bistable_points": int(np.sum(bmap["n_stable"] == 2))}

    fit = cfg["fit"]
    if fit["enabled"]:
        summary["fit"] = _fit_section(fit, out, save_figure)

    atomic_write_json(out / SUMMARY, summary)
    return summary


def _fit_section(fit, out, save_figure):
    from ..plots import plot_traces

    true = {k: float(fit["true_params"][k]) for k in PARAMETERS}
    I_ext = step_protocol(fit["amplitudes"], fit["T"], fit["dt"], fit["step_start"], fit["step_stop"])
    t, clean, noisy = synthetic_traces(true, I_ext, fit["dt"], fit["noise_sd"], seed=int(fit["seed"]),
                                       backend=fit["backend"])
    res = fit_rate_model(t, I_ext, noisy, fit["bounds"], seed=int(fit["seed"]), n_samples=int(fit["n_samples"]),
                         n_rounds=int(fit["n_rounds"]), method=fit["method"], refine=bool(fit["refine"]),
                         n_starts=int(fit["n_starts"]),
                         backend=fit["backend"])
    p = res["params"]
    _, fitted = simulate_rate(p["w"], I_ext, 0.0, p["tau"], p["a"], p["theta"], fit["dt"], backend=fit["backend"])
    fig = plot_traces(t * MS, {"r": np.atleast_2d(fitted)}, {"r": noisy}, {"I_ext": I_ext},
                      units={"r": "1", "I_ext": "1"}, title="rate model fit to noisy step responses")
    save_figure(fig, out / FIT_FIGURE)
    res["true_params"] = true
    res["relative_errors"] = {k: abs(p[k] - true[k]) / abs(true[k]) if true[k] else abs(p[k]) for k in PARAMETERS}
    res["noise_sd"] = float(fit["noise_sd"])
    res["amplitudes"] = [float(v) for v in fit["amplitudes"]]
    return res
