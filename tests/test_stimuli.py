"""Stimulus generators (neurofit.data.stimuli)."""
from pathlib import Path

import numpy as np
import pytest

from neurofit.data.dataset import load_array
from neurofit.data.stimuli import StimulusError, from_file, ornstein_uhlenbeck, ramp, step, steps
from neurofit.units import UnitError

SHARED = Path(__file__).resolve().parents[1] / "data" / "brian2modelfitting"


# --- steps and ramps ----------------------------------------------------------------------------

def test_step_reproduces_the_hh_input_trace():
    current = step(1497, "0.01 ms", "10 nA", "4.99 ms", "9.98 ms")
    np.testing.assert_array_equal(current, load_array(SHARED / "input_traces_hh.csv")[0])
    assert current.shape == (1497,) and current.dtype == np.float64


def test_step_edges_fall_on_exact_samples():
    # 249 * 1e-5 < 2.49e-3 in floating point: a naive k*dt >= start would switch on at 250
    trace = step(1000, "0.01 ms", 1.0, "2.49 ms", "4.11 ms", baseline=-0.5)
    assert np.flatnonzero(trace == 1.0)[[0, -1]].tolist() == [249, 410]
    assert (trace[:249] == -0.5).all() and (trace[411:] == -0.5).all()
    assert np.count_nonzero(trace == 1.0) == 411 - 249
    on = step(10, 0.1, 2.0, 0.3, 0.7)
    np.testing.assert_array_equal(on, [0, 0, 0, 2, 2, 2, 2, 0, 0, 0])


def test_step_outside_the_trace_is_clipped():
    np.testing.assert_array_equal(step(5, 1.0, 1.0, -2.0, 2.0), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(step(5, 1.0, 1.0, 3.0, 100.0), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(step(5, 1.0, 1.0, 7.0, 9.0), np.zeros(5))
    np.testing.assert_array_equal(step(5, 1.0, 1.0, 2.0, 2.0), np.zeros(5))


def test_steps_stacks_one_row_per_amplitude():
    traces = steps(1497, "0.01 ms", ["10 nA", "2 nA", 50e-9], "4.99 ms", "9.98 ms")
    recorded = load_array(SHARED / "input_traces_hh.csv")
    assert traces.shape == (3, 1497)
    np.testing.assert_allclose(traces, recorded[[0, 1, 3]], rtol=1e-12, atol=0)


def test_ramp_values():
    trace = ramp(10, "1 ms", "2 ms", "6 ms", "0 mV", "8 mV", baseline=-1e-3)
    np.testing.assert_allclose(trace, [-1e-3, -1e-3, 0, 2e-3, 4e-3, 6e-3, -1e-3, -1e-3, -1e-3, -1e-3],
                               rtol=0, atol=1e-15)
    # starting before t = 0 keeps the slope: value at t is amp_start + slope * (t - start)
    np.testing.assert_allclose(ramp(4, 1.0, -2.0, 2.0, 0.0, 4.0), [2.0, 3.0, 0.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ramp(4, 1.0, 1.0, 1.0, 5.0, 9.0), np.zeros(4))


def test_step_and_ramp_mistakes():
    with pytest.raises(StimulusError, match="stop = '1 ms' is before start = '2 ms'"):
        step(10, "0.1 ms", 1.0, "2 ms", "1 ms")
    with pytest.raises(StimulusError, match="n_steps = 0 must be a positive integer"):
        step(0, 1.0, 1.0, 0, 1)
    with pytest.raises(StimulusError, match="n_steps = 2.5"):
        ramp(2.5, 1.0, 0, 1, 0, 1)
    with pytest.raises(StimulusError, match="dt = -1.0 must be a positive"):
        step(3, -1.0, 1.0, 0, 1)
    with pytest.raises(UnitError, match="start = '1 mV' has units of volt, expected second"):
        step(3, 1.0, 1.0, "1 mV", 2)
    with pytest.raises(StimulusError, match="amplitudes"):
        steps(3, 1.0, [], 0, 1)


# --- Ornstein-Uhlenbeck -------------------------------------------------------------------------

def autocorrelation(x: np.ndarray, lag: int) -> float:
    y = x - x.mean()
    return float(np.mean(y[:-lag] * y[lag:]) / np.var(y))


def test_ou_exact_stationary_statistics():
    # 200 000 samples = 20 000 tau: standard errors ~0.02 (mean), ~0.01 (SD / sigma), ~0.01 (autocorrelation)
    x = ornstein_uhlenbeck(200_000, "0.1 ms", "1 ms", sigma=2.0, mu=0.5, x0="stationary", seed=1)
    assert x.shape == (200_000,)
    assert x.mean() == pytest.approx(0.5, abs=0.1)
    assert x.std() == pytest.approx(2.0, rel=0.03)
    assert autocorrelation(x, 10) == pytest.approx(np.exp(-1), abs=0.03)  # lag 10 samples = tau


def test_ou_exact_holds_for_steps_longer_than_tau():
    x = ornstein_uhlenbeck(100_000, "2 ms", "1 ms", sigma="3 mV", x0="stationary", seed=3)
    assert x.std() == pytest.approx(3e-3, rel=0.03)
    assert autocorrelation(x, 1) == pytest.approx(np.exp(-2), abs=0.02)


def test_ou_ensemble_mean_relaxes_from_x0():
    x = ornstein_uhlenbeck(50, "0.1 ms", "1 ms", sigma=1.0, mu=1.0, x0=5.0, seed=4, n_traces=4000)
    assert x.shape == (4000, 50)
    assert (x[:, 0] == 5.0).all()
    t = np.arange(50) * 1e-4
    np.testing.assert_allclose(x.mean(axis=0), 1.0 + 4.0 * np.exp(-t / 1e-3), rtol=0, atol=0.07)
    # variance grows as sigma^2 (1 - exp(-2t/tau)); SE of a variance from 4000 samples ~2%
    np.testing.assert_allclose(x[:, 1:].var(axis=0), 1 - np.exp(-2 * t[1:] / 1e-3), rtol=0.1)


def test_ou_default_start_is_mu_and_seed_reproduces():
    a = ornstein_uhlenbeck(100, 1e-4, 1e-3, 1.0, mu="2 nA", seed=7)
    assert a[0] == 2e-9
    np.testing.assert_array_equal(a, ornstein_uhlenbeck(100, 1e-4, 1e-3, 1.0, mu="2 nA", seed=7))
    assert not np.array_equal(a, ornstein_uhlenbeck(100, 1e-4, 1e-3, 1.0, mu="2 nA", seed=8))


def test_ou_euler_matches_the_tutorial_loop():
    """The update of Neuromatch's my_OU, with noise drawn once from default_rng(seed)."""
    n, dt, tau_ou, sig = 1000, 0.1, 1.0, 0.1  # as in the tutorial: dt = 0.1 ms, tau_ou = 1 ms
    noise = np.random.default_rng(2020).standard_normal(n)
    expected = np.zeros(n)
    expected[0] = noise[0] * sig
    for it in range(n - 1):
        expected[it + 1] = (expected[it] + dt / tau_ou * (0. - expected[it])
                            + np.sqrt(2 * dt / tau_ou) * sig * noise[it + 1])
    got = ornstein_uhlenbeck(n, "0.1 ms", "1 ms", sig, x0="stationary", seed=2020, method="euler")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_ou_euler_with_mean_and_start_value():
    n, dt, tau, sigma, mu, x0 = 500, 2e-4, 5e-3, 0.3, -1.0, 0.4
    noise = np.random.default_rng(11).standard_normal((2, n))
    expected = np.empty((2, n))
    expected[:, 0] = x0
    for k in range(n - 1):
        expected[:, k + 1] = (expected[:, k] + dt / tau * (mu - expected[:, k])
                              + sigma * np.sqrt(2 * dt / tau) * noise[:, k + 1])
    got = ornstein_uhlenbeck(n, dt, tau, sigma, mu=mu, x0=x0, seed=11, n_traces=2, method="euler")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_ou_mistakes():
    with pytest.raises(TypeError):
        ornstein_uhlenbeck(10, 1e-4, 1e-3, 1.0)  # seed is keyword-only and required
    with pytest.raises(StimulusError, match="seed is required"):
        ornstein_uhlenbeck(10, 1e-4, 1e-3, 1.0, seed=None)
    with pytest.raises(StimulusError, match=r"method = 'rk4' is unknown \(valid: exact, euler\)"):
        ornstein_uhlenbeck(10, 1e-4, 1e-3, 1.0, seed=0, method="rk4")
    with pytest.raises(StimulusError, match="sigma = -1.0 must be >= 0"):
        ornstein_uhlenbeck(10, 1e-4, 1e-3, -1.0, seed=0)
    with pytest.raises(StimulusError, match="tau = 0 must be a positive"):
        ornstein_uhlenbeck(10, 1e-4, 0, 1.0, seed=0)
    with pytest.raises(StimulusError, match="n_traces = 0"):
        ornstein_uhlenbeck(10, 1e-4, 1e-3, 1.0, seed=0, n_traces=0)


# --- from file ----------------------------------------------------------------------------------

def test_from_file_converts_units(tmp_path):
    v = from_file(SHARED / "output_traces_hh.csv", unit="mV")
    assert v.shape == (5, 1497)
    np.testing.assert_array_equal(v, load_array(SHARED / "output_traces_hh.csv") * 1e-3)
    assert v.min() == pytest.approx(-0.0874, abs=1e-4) and v.max() == pytest.approx(0.0556, abs=1e-4)
    np.savez(tmp_path / "stim.npz", I=np.array([1.0, 2.0]), other=np.zeros(2))
    np.testing.assert_allclose(from_file(tmp_path / "stim.npz", unit="nA", name="I"), [[1e-9, 2e-9]], rtol=1e-12)
