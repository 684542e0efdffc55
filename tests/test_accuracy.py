"""Numerical accuracy of the simulator against closed forms, a reference ODE solver and ground truth.

(a) the Neuromatch rate model with w = 0 against its closed-form solution, and the tutorial's
    Euler update rule; (b) every integrator converging at its order against scipy's solve_ivp
    (DOP853, rtol 1e-10) on HH (Traub-Miles) and AdEx without threshold/reset; (c) the
    TraceFitter tutorial's HH model reproducing brian2modelfitting's recorded traces.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy
from scipy.integrate import solve_ivp
from scipy.special import exprel as scipy_exprel

import neurofit as nf
from neurofit import models
from neurofit.analysis.rate import closed_form_w0, euler_rate

SHARED = Path(__file__).resolve().parents[1] / "data" / "brian2modelfitting"
MS = 1e-3


# --- helpers -----------------------------------------------------------------------------------

def reference_solution(model, params, I, init, T, t_eval, atol):
    """solve_ivp (DOP853, rtol 1e-10) on the model's expanded right-hand side with constant input I."""
    states = [model.symbol(s) for s in model.states]
    subs = {model.symbol(p): v for p, v in params.items()}
    subs[model.symbol("I")] = I
    rhs = [model.expand(model.rhs[s]).xreplace(subs) for s in model.states]
    f = sympy.lambdify(states, rhs, modules=[{"exprel": scipy_exprel}, "numpy"])
    y0 = [init[s] for s in model.states]
    sol = solve_ivp(lambda t, y: f(*y), (0.0, T), y0, method="DOP853", rtol=1e-10, atol=atol, t_eval=t_eval)
    assert sol.success, sol.message
    return sol.y  # (n_states, n_times)


def convergence_errors(model, params, init, currents, T, method, dts, atol):
    """Max error (relative to each state's range) per trace for each dt, on the coarsest grid."""
    coarse = dts[0]
    n_coarse = int(round(T / coarse))
    t_eval = np.arange(n_coarse + 1) * coarse
    refs = [reference_solution(model, params, I, init, t_eval[-1], t_eval, atol) for I in currents]
    errors = np.zeros((len(dts), len(currents)))
    for a, dt in enumerate(dts):
        stride = int(round(coarse / dt))
        n_steps = n_coarse * stride + 1
        inputs = {"I": np.repeat(np.asarray(currents, dtype=float)[:, None], n_steps, axis=1)}
        result = nf.simulate(model, params, inputs, dt=dt, init=init, record=tuple(model.states), method=method,
                             backend="numpy")
        for j, ref in enumerate(refs):
            errors[a, j] = max(np.max(np.abs(result.traces[s][0, j, ::stride] - ref[i])) / np.ptp(ref[i])
                               for i, s in enumerate(model.states))
    return errors


def observed_orders(errors):
    """log2 of successive error ratios (dt halves between rows): one order per (pair, trace)."""
    return np.log2(errors[:-1] / errors[1:])


# --- (a) rate model -----------------------------------------------------------------------------

def rate_run(method, dt_ms, T_ms, I_ext, r0, w=0.0):
    """Simulate the built-in rate model (SI: tau = 1 ms = 1e-3 s); times returned in ms."""
    model = models.get("rate")
    params = {**models.SPECS["rate"].defaults, "w": w}
    n = int(round(T_ms / dt_ms)) + 1
    result = nf.simulate(model, params, {"I_ext": np.asarray(I_ext, dtype=float)[:, None] * np.ones((1, n))},
                         dt=dt_ms * MS, init={"r": np.asarray(r0, dtype=float)[None, :]}, record=("r",),
                         method=method, backend="numpy")
    return np.arange(n) * dt_ms, result.traces["r"][0]


RATE_CURRENTS = np.array([0.0, 1.5, 3.0, 6.0])
RATE_R0 = np.array([0.2, 0.5, 0.3, 0.7])  # transients of 0.2-0.33 around F(I) = 0, 0.17, 0.53, 0.95


def rate_error(method, dt_ms, T_ms=5.0):
    t_ms, r = rate_run(method, dt_ms, T_ms, RATE_CURRENTS, RATE_R0)
    exact = np.stack([closed_form_w0(t_ms, r0, I) for r0, I in zip(RATE_R0, RATE_CURRENTS)])
    return np.max(np.abs(r - exact))


@pytest.mark.parametrize("method,tolerance", [("euler", 1e-2), ("rk2", 1e-3), ("rk4", 1e-6)])
def test_rate_model_w0_matches_closed_form(method, tolerance):
    """dt = 0.1 ms, tau = 1 ms, 5 ms: measured max errors 6.9e-3 (euler), 2.4e-4 (rk2), 1.2e-7 (rk4)."""
    assert rate_error(method, 0.1) < tolerance


@pytest.mark.parametrize("method,order", [("euler", 1), ("rk2", 2), ("rk4", 4)])
def test_rate_model_converges_at_order(method, order):
    errors = np.array([rate_error(method, dt_ms) for dt_ms in (0.1, 0.05, 0.025)])
    ratios = errors[:-1] / errors[1:]
    np.testing.assert_allclose(np.log2(ratios), order, atol=0.15)


def test_rate_model_euler_equals_tutorial_update_rule():
    rng = np.random.default_rng(3)
    I_ext = np.concatenate([np.zeros(50), np.full(100, 4.0), rng.uniform(0, 6, 150)])
    for w in (0.0, 5.0, -2.0):
        expected = euler_rate(0.1, w, I_ext, dt=0.1)
        model = models.get("rate")
        result = nf.simulate(model, {**models.SPECS["rate"].defaults, "w": w}, {"I_ext": I_ext[None, :]},
                             dt=0.1 * MS, init={"r": 0.1}, record=("r",), method="euler", backend="numpy")
        np.testing.assert_allclose(result.traces["r"][0, 0], expected, rtol=0, atol=1e-12)


# --- (b) integrator orders against solve_ivp --------------------------------------------------

# (model, method, coarsest dt, window T, expected order); dt halves twice
HH_CASES = [("euler", 4e-6, 1), ("exponential_euler", 4e-6, 1), ("rk2", 8e-6, 2), ("rk4", 2e-5, 4)]
ADEX_CASES = [("euler", 2e-5, 1), ("rk2", 2e-4, 2), ("rk4", 8e-4, 4)]


@pytest.mark.parametrize("method,dt0,order", HH_CASES)
def test_hh_integrator_order(method, dt0, order):
    model = models.get("hh_traub")
    spec = models.SPECS["hh_traub"]
    # 0.2 nA stays subthreshold; 1 nA fires an action potential at ~3.2 ms (no threshold in the model)
    errors = convergence_errors(model, spec.defaults, spec.init, [0.2e-9, 1e-9], 5e-3, method,
                                [dt0, dt0 / 2, dt0 / 4], atol=1e-14)
    assert np.all(errors < 0.1)
    np.testing.assert_allclose(observed_orders(errors), order, atol=0.3)


@pytest.mark.parametrize("method,dt0,order", ADEX_CASES)
def test_adex_integrator_order(method, dt0, order):
    model = models.get("adex", threshold=None, reset=None)
    assert model.threshold is None and model.reset == []
    spec = models.SPECS["adex"]
    # 0.6 nA approaches threshold slowly; 1 nA climbs onto the exponential upswing (-48 mV at 10 ms)
    errors = np.concatenate([
        convergence_errors(model, spec.defaults, spec.init, [0.6e-9], 40e-3, method, [dt0, dt0 / 2, dt0 / 4],
                           atol=[1e-16, 1e-24]),
        convergence_errors(model, spec.defaults, spec.init, [1e-9], 10e-3, method, [dt0, dt0 / 2, dt0 / 4],
                           atol=[1e-16, 1e-24])], axis=1)
    assert np.all(errors < 0.05)
    np.testing.assert_allclose(observed_orders(errors), order, atol=0.3)


# --- (c) the TraceFitter tutorial's ground truth ------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_hh_tutorial_reproduces_recorded_traces(backend):
    inputs = pd.read_csv(SHARED / "input_traces_hh.csv", index_col=0).to_numpy()  # amp
    outputs = pd.read_csv(SHARED / "output_traces_hh.csv", index_col=0).to_numpy()  # mV
    assert inputs.shape == outputs.shape == (5, 1497)
    model = models.get("hh_traub")
    params = {"gl": "10 nS", "g_na": "20 uS", "g_kd": "6 uS"}
    result = nf.simulate(model, params, {"I": inputs}, dt="0.01 ms", init={"v": "-65 mV", "m": 0, "n": 0, "h": 0},
                         method="exponential_euler", backend=backend)
    residual = outputs - result.traces["v"][0] / 1e-3  # mV
    assert residual.shape == (5, 1497)
    assert np.all(np.abs(residual.mean(axis=1)) < 0.1), residual.mean(axis=1)
    assert np.all(residual.std(axis=1) <= 1.05), residual.std(axis=1)
    # the data carry sigma ~ 1 mV of noise: anything systematic would push the SD well above it
    assert np.all(residual.std(axis=1) >= 0.9)
