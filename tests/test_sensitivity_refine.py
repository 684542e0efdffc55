"""Exact forward sensitivities vs finite differences; least-squares refine reaches the noise floor."""
import os

import numpy as np
import pandas as pd
import pytest

import neurofit as nf
from neurofit import models
from neurofit.fitting.fitters import TraceFitter

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "brian2modelfitting")
NOISE_FLOOR = 9.95e-7  # V², MSE of the ground truth against the recorded traces (data README)
TRUTH = {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6, "Cm": 200e-12}


@pytest.fixture(scope="module")
def hh_data():
    inp = pd.read_csv(os.path.join(DATA, "input_traces_hh.csv"), index_col=0).to_numpy()
    out = pd.read_csv(os.path.join(DATA, "output_traces_hh.csv"), index_col=0).to_numpy() * 1e-3
    return inp, out


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_sensitivities_equal_central_differences(hh_data, backend):
    inp, _ = hh_data
    model = models.get("hh_traub", free=["Cm"])
    names = ("gl", "g_na", "g_kd", "Cm")
    res = nf.simulate(model, TRUTH, {"I": inp[[0, 4]]}, 1e-5, init={"v": -65e-3}, backend=backend,
                      sensitivities=names)
    exact = res.sensitivities["v"][0]
    assert exact.shape == (2, inp.shape[1], 4)
    for i, p in enumerate(names):
        h = TRUTH[p] * 1e-6
        up = nf.simulate(model, {**TRUTH, p: TRUTH[p] + h}, {"I": inp[[0, 4]]}, 1e-5, init={"v": -65e-3},
                         backend=backend).traces["v"][0]
        down = nf.simulate(model, {**TRUTH, p: TRUTH[p] - h}, {"I": inp[[0, 4]]}, 1e-5, init={"v": -65e-3},
                           backend=backend).traces["v"][0]
        central = (up - down) / (2 * h)
        # central differences carry O(h²) truncation and ~1e-10 rounding: agreement to 1e-5 of the scale
        assert np.abs(exact[..., i] - central).max() <= 1e-5 * np.abs(central).max()


def test_sensitivities_of_a_linear_model_are_analytic():
    # dv/dt = (El - v)/tau, v(0) = 0, El constant input: v = El (1 - exp(-t/tau)); exact Euler map:
    # v_k = El (1 - (1 - dt/tau)^k)  →  dv_k/dtau = El · (-k) (1 - dt/tau)^(k-1) · dt/tau²
    model = nf.Model("dv/dt = (El - v)/tau : volt\ntau : second (constant)\nEl : volt (constant)")
    dt, tau, el = 1e-4, 10e-3, -70e-3
    res = nf.simulate(model, {"tau": tau, "El": el}, {}, dt, n_steps=200, method="euler", backend="numpy",
                      sensitivities=("tau", "El"))
    k = np.arange(200)
    dv_dtau = el * (-k) * (1 - dt / tau) ** np.maximum(k - 1, 0) * dt / tau ** 2
    dv_del = 1 - (1 - dt / tau) ** k
    np.testing.assert_allclose(res.sensitivities["v"][0, 0, :, 0], dv_dtau, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.sensitivities["v"][0, 0, :, 1], dv_del, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("calc_gradient", [True, False])
def test_refine_reaches_the_noise_floor_from_a_perturbed_start(hh_data, calc_gradient):
    inp, out = hh_data
    fitter = TraceFitter(model=models.get("hh_traub"), input={"I": inp}, output={"v": out}, dt=1e-5,
                         n_samples=10, method="exponential_euler", param_init={"v": -65e-3})
    fitter.bounds = {"gl": (2e-12, 200e-9), "g_na": (200e-9, 0.4e-3), "g_kd": (200e-9, 200e-6)}
    start = {"gl": 14e-9, "g_na": 15e-6, "g_kd": 8e-6}  # 25-40% off
    refined, result = fitter.refine(params=start, calc_gradient=calc_gradient)
    mse = np.mean(result.fun ** 2)
    assert mse <= 1.01 * NOISE_FLOOR
    for name in ("gl", "g_na", "g_kd"):
        assert refined[name] == pytest.approx(TRUTH[name], rel=0.02)
    v = fitter.generate_traces(params=refined)
    assert np.mean((v - out) ** 2) == pytest.approx(mse, rel=1e-9)
