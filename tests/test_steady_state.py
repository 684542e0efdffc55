"""simulate(..., at_rest=True): the model starts at its steady state under each trace's holding input."""
import numpy as np
import pytest

import neurofit
from neurofit import models
from neurofit.simulate import steady_state


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_passive_rest_is_el_plus_i_over_gl(backend):
    """Analytic: v_rest = El + I_hold/gl for every (set, trace)."""
    model = models.get("passive")
    current = np.zeros((3, 50))
    current[:, 0] = [-50e-12, 0.0, 20e-12]  # only the first sample is the holding input
    gl = np.array([10e-9, 4e-9])
    result = neurofit.simulate(model, {"gl": gl, "El": -0.07, "C": 100e-12}, {"I": current}, 1e-4,
                               init={"v": -0.05}, at_rest=True, method="exponential_euler", backend=backend)
    expected = -0.07 + current[:, 0][None, :] / gl[:, None]
    np.testing.assert_allclose(np.asarray(result.traces["v"])[:, :, 0], expected, rtol=0, atol=1e-12)


def test_hodgkin_huxley_rest_is_a_fixed_point_of_the_run():
    """At rest the derivatives vanish: the recorded trace stays flat (to 1e-9 V over 0.2 s) under the holding
    current, and a hyperpolarising holding current gives a lower rest."""
    model = models.get("hh_traub")
    current = np.zeros((2, 20000))
    current[1] = -0.1e-9
    result = neurofit.simulate(model, {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, {"I": current}, 1e-5,
                               init={"v": -0.065, "m": 0.05, "h": 0.6, "n": 0.3}, at_rest=True,
                               method="exponential_euler", record=("v", "m", "n", "h"))
    for name in ("v", "m", "n", "h"):
        trace = np.asarray(result.traces[name])[0]
        assert np.all(np.ptp(trace, axis=1) < 1e-9)
    v = np.asarray(result.traces["v"])[0, :, 0]
    assert -0.066 < v[0] < -0.064 and v[1] < v[0] - 5e-3


def test_a_cell_without_rest_is_an_invalid_run_not_an_error():
    """Hodgkin-Huxley fires tonically under 50 pA here: no stable rest, so the run is flagged invalid."""
    model = models.get("hh_traub")
    current = np.zeros((2, 1000))
    current[1] = 0.05e-9
    result = neurofit.simulate(model, {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, {"I": current}, 1e-5,
                               init={"v": -0.065, "m": 0.05, "h": 0.6, "n": 0.3}, at_rest=True,
                               method="exponential_euler")
    assert result.invalid.tolist() == [[False, True]]


def test_newton_solve_alone_from_a_guess():
    model = models.get("passive")
    rest = steady_state(model, {"v": np.full((1, 2), -0.03)}, {"gl": np.array([5e-9]), "El": np.array([-0.06]),
                        "C": np.array([1e-10])}, {"I": np.array([[10e-12], [0.0]])}, 1, 2, 1e-4)
    np.testing.assert_allclose(rest["v"], [[-0.058, -0.06]], rtol=0, atol=1e-12)
