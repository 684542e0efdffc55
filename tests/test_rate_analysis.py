"""neurofit.analysis.rate against the Neuromatch rate-model tutorial (units: ms, a.u.)."""
import io

import numpy as np
import pytest
from scipy.special import logit

from neurofit.analysis import rate, rate_plots
from neurofit.analysis.rate import F, dF

A, THETA = 1.2, 2.8


def test_tutorial_fixed_points_and_eigenvalues():
    fps = rate.fixed_points(w=5.0, I_ext=0.5, a=A, theta=THETA, tau=1.0)
    assert [round(fp.r, 3) for fp in fps] == [0.042, 0.447, 0.900]
    assert [round(fp.eigenvalue, 3) for fp in fps] == [-0.583, 0.498, -0.626]
    assert [fp.stable for fp in fps] == [True, False, True]
    assert all(fp.residual < 1e-12 for fp in fps)


@pytest.mark.parametrize("a, theta", [(1.2, 2.8), (0.3, 4.0), (3.0, 2.0)])
def test_F_vanishes_at_zero_and_dF_is_its_derivative(a, theta):
    assert F(0.0, a, theta) == pytest.approx(0.0, abs=1e-15)
    x, h = np.linspace(-5.0, 10.0, 301), 1e-5
    assert np.max(np.abs(dF(x, a, theta) - (F(x + h, a, theta) - F(x - h, a, theta)) / (2 * h))) < 1e-7
    assert np.array_equal(rate.fi_curve(x, a, theta), F(x, a, theta))


def test_euler_rate_is_the_tutorial_loop():
    dt, T, w, tau = 0.1, 50.0, 5.0, 1.3
    I_ext = 0.56 + 0.7 * np.random.default_rng(2020).standard_normal(np.arange(0, T, dt).size)
    r = np.zeros(I_ext.size)
    r[0] = 0.2
    for k in range(I_ext.size - 1):  # simulate_single with the tutorial's F
        f = 1 / (1 + np.exp(-A * (w * r[k] + I_ext[k] - THETA))) - 1 / (1 + np.exp(A * THETA))
        r[k + 1] = r[k] + dt / tau * (-r[k] + f)
    assert np.max(np.abs(rate.euler_rate(0.2, w, I_ext, A, THETA, tau, dt) - r)) < 1e-12
    assert np.array_equal(rate.euler_rate(0.2, w, 0.5, A, THETA, tau, dt, T),
                          rate.euler_rate(0.2, w, np.full(I_ext.size, 0.5), A, THETA, tau, dt))


def test_euler_converges_to_closed_form_at_first_order():
    errors = []
    for dt in (0.1, 0.05, 0.025):
        t = np.arange(0, 20.0, dt)
        r = rate.euler_rate(0.2, 0.0, 0.5, A, THETA, 1.0, dt, 20.0)
        errors.append(np.max(np.abs(r - rate.closed_form_w0(t, 0.2, 0.5, A, THETA, 1.0))))
    assert errors[0] <= 1e-2
    assert 1.8 <= errors[0] / errors[1] <= 2.2 and 1.8 <= errors[1] / errors[2] <= 2.2


@pytest.mark.parametrize("I_ext, tau", [(0.0, 1.0), (0.5, 1.0), (3.0, 2.5), (-2.0, 0.4)])
def test_without_recurrence_the_only_fixed_point_is_F_of_input(I_ext, tau):
    (fp,) = rate.fixed_points(0.0, I_ext, A, THETA, tau)
    assert fp.r == pytest.approx(F(I_ext, A, THETA), abs=1e-12)
    assert fp.stable and fp.eigenvalue == pytest.approx(-1.0 / tau)


def test_tangent_fixed_point_is_found():
    w = 5.0  # saddle-node: w F'(x) = 1 at x = w r + I with r = F(x)
    x = THETA + logit((1 + np.sqrt(1 - 4 / (A * w))) / 2) / A
    r_tangent = float(F(x, A, THETA))
    fps = rate.fixed_points(w, x - w * r_tangent, A, THETA)
    assert len(fps) == 2 and fps[0].stable
    assert fps[1].r == pytest.approx(r_tangent, abs=1e-6)
    assert abs(fps[1].eigenvalue) < 1e-6


W = np.linspace(0.0, 8.0, 9)
I = np.linspace(0.0, 2.0, 9)


def test_bifurcation_map_counts():
    bmap = rate.bifurcation_map(W, I, A, THETA, 1.0)
    assert bmap["n_fixed_points"].shape == bmap["n_stable"].shape == (W.size, I.size)
    i, j = list(W).index(5.0), list(I).index(0.5)
    assert (bmap["n_fixed_points"][i, j], bmap["n_stable"][i, j]) == (3, 2)
    assert np.all(bmap["n_fixed_points"][0] == 1) and np.all(bmap["n_stable"][0] == 1)
    assert set(np.unique(bmap["n_fixed_points"])) == {1, 3}
    assert np.array_equal(bmap["n_fixed_points"] - bmap["n_stable"],
                          (bmap["n_fixed_points"] == 3).astype(int))


def test_chunks_gather_to_the_unchunked_map():
    full = rate.bifurcation_map(W, I, A, THETA, 1.0)
    chunks = [rate.bifurcation_chunk(W, I, c, 4, A, THETA, 1.0) for c in (2, 0, 3, 1)]
    gathered = rate.gather_bifurcation_chunks(chunks)
    for key in ("w", "I_ext", "n_fixed_points", "n_stable"):
        assert np.array_equal(gathered[key], full[key])
    with pytest.raises(ValueError, match="missing"):
        rate.gather_bifurcation_chunks(chunks[:3])


def test_detect_transitions_on_noisy_square_wave():
    low, unstable, high = 0.042, 0.447, 0.900
    levels = np.repeat([low, high, low, low, high, high, low, high], 200)  # 5 switches
    r = levels + 0.03 * np.random.default_rng(1).standard_normal(levels.size)
    r[300:305] = 0.55  # excursions across the threshold that turn back: not transitions
    r[1100:1103] = 0.35
    res = rate.detect_transitions(r, low, high, dt=0.1, threshold=unstable)
    assert list(res.indices) == [200, 400, 800, 1200, 1400]
    assert list(res.directions) == [1, -1, 1, -1, 1]
    assert np.allclose(res.times, 0.1 * res.indices)
    assert res.fraction_high == pytest.approx(np.mean(levels == high))
    assert res.fraction_low + res.fraction_high == pytest.approx(1.0)


def test_detect_transitions_dates_switch_at_threshold_crossing():
    r = np.array([0.0, 0.1, 0.5, 0.45, 0.6, 0.5, 0.9, 0.9, 0.3, 0.2, 0.0])
    res = rate.detect_transitions(r, 0.0, 1.0, dt=0.5, threshold=0.4, band=0.5)
    assert list(res.indices) == [2, 8] and list(res.times) == [1.0, 4.0]
    assert list(res.labels) == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]


def test_drdt_plot_marks_stable_filled_unstable_open():
    fig = rate_plots.plot_drdt(5.0, 0.5, A, THETA, 1.0)
    ax = fig.axes[0]
    filled = [len(c.get_offsets()) for c in ax.collections if c.get_facecolors()[:, 3].any()]
    open_ = [len(c.get_offsets()) for c in ax.collections if not c.get_facecolors()[:, 3].any()]
    assert sum(filled) == 2 and sum(open_) == 1
    xs = sorted(float(x) for c in ax.collections for x, _ in c.get_offsets())
    assert np.allclose(xs, [fp.r for fp in rate.fixed_points(5.0, 0.5)])
    fig.savefig(io.BytesIO(), format="png")


def test_other_plots_draw_their_data():
    fig = rate_plots.plot_fi_curve(np.arange(0, 10, 0.1))
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), F(np.arange(0, 10, 0.1), A, THETA))

    r_inits = np.arange(0, 1, 0.1)
    fig = rate_plots.plot_trajectories(5.0, 0.5, r_inits)
    assert len(fig.axes[0].lines) == 10 + 3  # trajectories + fixed-point lines
    assert np.array_equal(fig.axes[0].lines[3].get_ydata(), rate.euler_rate(r_inits[3], 5.0, 0.5, T=20.0))
    assert np.allclose([line.get_ydata()[0] for line in fig.axes[0].lines[10:]], [0.042, 0.447, 0.900], atol=5e-4)

    T, dt = 200.0, 0.1
    I_ext = 0.56 + 0.7 * np.random.default_rng(0).standard_normal(np.arange(0, T, dt).size)
    r = rate.euler_rate(0.2, 5.0, I_ext, dt=dt)
    fig = rate_plots.plot_ou_run(np.arange(0, T, dt), r, rate.fixed_points(5.0, 0.56))
    assert len(fig.axes[0].lines) == 1 + 3
    assert np.array_equal(fig.axes[0].lines[0].get_ydata(), r)

    bmap = rate.bifurcation_map(W[::2], I[::2])
    fig = rate_plots.plot_bifurcation_map(bmap, "n_fixed_points")
    assert np.array_equal(fig.axes[0].images[0].get_array(), bmap["n_fixed_points"].T)
    fig.savefig(io.BytesIO(), format="png")
