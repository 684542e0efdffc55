"""The rate-model study (neurofit.analysis.rate_study) against the Neuromatch tutorial.

Units are the tutorial's: ms and arbitrary rate units; the core simulator runs in SI underneath.
"""
import json

import numpy as np
import pytest

from neurofit.analysis import rate, rate_study
from neurofit.codegen.c_backend import compiler_works

A, THETA = 1.2, 2.8

# A small rate study: every key of a config's rate section (the config schema holds their defaults).
EXAMPLE_CONFIG = {
    "model": {"tau": 1.0, "a": 1.2, "theta": 2.8},     # tau in ms
    "w": 5.0, "I_ext": 0.5,                              # dr/dt, fixed points, trajectories
    "fi_curve": {"x_min": 0.0, "x_max": 10.0, "n": 51},
    "trajectories": {"r_inits": [0.0, 0.2, 0.4, 0.6, 0.8], "T": 20.0, "dt": 0.1, "method": "euler",
                     "backend": "numpy"},
    "ou": {"w": 5.0, "I_mean": 0.56, "sigma": 0.7, "tau_ou": 1.0, "T": 300.0, "dt": 0.1, "seed": 2020,
           "r_init": 0.2, "band": 0.5},
    "bifurcation": {"w_min": 0.0, "w_max": 8.0, "n_w": 5, "I_min": 0.0, "I_max": 2.0, "n_I": 5, "n_chunks": 2},
    "fit": {"enabled": True, "true_params": {"tau": 1.0, "a": 1.2, "theta": 2.8, "w": 5.0},
            "amplitudes": [0.5, 0.8, 1.0, 2.0], "T": 50.0, "dt": 0.1, "step_start": 5.0, "step_stop": 25.0,
            "noise_sd": 0.02, "seed": 1, "method": "DE", "n_samples": 30, "n_rounds": 40, "refine": True,
            "n_starts": 2, "backend": "auto",
            "bounds": {"tau": [0.1, 10.0], "a": [0.1, 5.0], "theta": [0.5, 6.0], "w": [0.0, 12.0]}},
}

BACKENDS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(not compiler_works(), reason="no C compiler"))]


def tutorial_loop(r_init, w, I_ext, tau, dt, a=A, theta=THETA):
    """The tutorial's simulate_single update, written out."""
    r = np.zeros(I_ext.size)
    r[0] = r_init
    for k in range(I_ext.size - 1):
        f = 1 / (1 + np.exp(-a * (w * r[k] + I_ext[k] - theta))) - 1 / (1 + np.exp(a * theta))
        r[k + 1] = r[k] + dt / tau * (-r[k] + f)
    return r


# (a) stability of the tutorial's fixed points, through the core simulator ------------------------

def test_simulation_stays_at_stable_points_and_leaves_the_unstable_one():
    fps = rate.fixed_points(5.0, 0.5)
    assert [round(fp.r, 3) for fp in fps] == [0.042, 0.447, 0.900]
    assert [round(fp.eigenvalue, 3) for fp in fps] == [-0.583, 0.498, -0.626]
    low, mid, high = (fp.r for fp in fps)
    starts = [low - 0.01, low + 0.01, mid - 0.01, mid + 0.01, high - 0.01, high + 0.01]
    t, r = rate_study.simulate_rate(5.0, 0.5, starts)  # tutorial defaults: T 20 ms, dt 0.1 ms
    assert r.shape == (6, 200) and np.allclose(t, 0.1 * np.arange(200))
    for i in (0, 1, 4, 5):  # perturbed stable points: never further than the kick, back within 1e-6
        target = low if i < 2 else high
        assert np.max(np.abs(r[i] - target)) <= 0.01 + 1e-12
        assert abs(r[i, -1] - target) < 1e-6
    # the unstable point: 0.01 below ends at the low state, 0.01 above at the high one (within 1e-3)
    assert abs(r[2, -1] - low) < 1e-3 and abs(r[3, -1] - high) < 1e-3
    assert np.min(r[2]) < mid - 0.3 and np.max(r[3]) > mid + 0.4


# (b) the core simulator is the tutorial's Euler rule; w = 0 converges to the closed form ---------

@pytest.mark.parametrize("backend", BACKENDS)
def test_core_simulator_is_the_tutorial_update_rule(backend):
    dt, T, w, tau = 0.1, 50.0, 5.0, 1.3
    n = np.arange(0, T, dt).size
    I_ext = 0.56 + 0.7 * np.random.default_rng(2020).standard_normal(n) + 0.3 * np.sin(np.arange(n) * dt)
    t, r = rate_study.simulate_rate(w, I_ext, 0.2, tau=tau, dt=dt, backend=backend)
    assert t.shape == r.shape == (n,)
    assert np.max(np.abs(r - tutorial_loop(0.2, w, I_ext, tau, dt))) < 1e-12
    # several traces and several initial rates in one batch
    _, rr = rate_study.simulate_rate(w, np.stack([I_ext, I_ext[::-1]]), [0.1, 0.8], tau=tau, dt=dt, backend=backend)
    assert np.max(np.abs(rr[0] - tutorial_loop(0.1, w, I_ext, tau, dt))) < 1e-12
    assert np.max(np.abs(rr[1] - tutorial_loop(0.8, w, I_ext[::-1], tau, dt))) < 1e-12


def test_w0_run_converges_to_the_closed_form_at_first_order():
    errors = []
    for dt in (0.1, 0.05, 0.025):
        t, r = rate_study.simulate_rate(0.0, 0.5, 0.2, dt=dt, T=20.0)
        errors.append(np.max(np.abs(r - rate.closed_form_w0(t, 0.2, 0.5))))
    assert errors[0] <= 1e-2
    assert 1.8 <= errors[0] / errors[1] <= 2.2 and 1.8 <= errors[1] / errors[2] <= 2.2


def test_simulate_rate_rejects_a_duration_that_disagrees_with_the_input():
    with pytest.raises(ValueError, match="T=10"):
        rate_study.simulate_rate(5.0, np.zeros(50), 0.2, T=10.0)


# (c) OU input: the tutorial's process; the noisy run visits both stable states --------------------

def test_ou_input_is_the_tutorial_my_OU():
    n, dt, tau_ou, sig = 2000, 0.1, 1.0, 0.7
    noise = np.random.default_rng(7).standard_normal((1, n))[0]  # the draws ornstein_uhlenbeck makes
    I_ou = np.zeros(n)  # my_OU with those draws
    I_ou[0] = noise[0] * sig
    for it in range(n - 1):
        I_ou[it + 1] = I_ou[it] + dt / tau_ou * (0.0 - I_ou[it]) + np.sqrt(2 * dt / tau_ou) * sig * noise[it + 1]
    I_ext = rate_study.ou_input(n, dt, I_mean=0.56, sigma=sig, tau_ou=tau_ou, seed=7)
    assert np.max(np.abs(I_ext - (0.56 + I_ou))) < 1e-12


def test_ou_driven_run_visits_both_stable_states():
    t, I_ext, r, tr = rate_study.ou_driven_run(w=5.0, I_mean=0.56, sigma=0.7, tau_ou=1.0, T=1000.0, dt=0.1,
                                               seed=2020)
    assert t.size == I_ext.size == r.size == 10000
    low, _, high = (fp.r for fp in rate.fixed_points(5.0, 0.56))
    assert tr is not None
    assert min(tr.fraction_low, tr.fraction_high) > 0.25  # seed 2020: 0.348 low, 0.652 high
    assert np.sum(tr.directions > 0) >= 5 and np.sum(tr.directions < 0) >= 5  # seed 2020: 16 up, 15 down
    assert np.all(np.diff(tr.directions) != 0)  # up and down alternate
    assert np.min(np.abs(r - low)) < 0.02 and np.min(np.abs(r - high)) < 0.02
    # the same seed gives the same run
    assert np.array_equal(rate_study.ou_driven_run(seed=2020)[2], r)


def test_ou_driven_run_without_bistability_has_no_transitions():
    *_, tr = rate_study.ou_driven_run(w=0.0, T=50.0, seed=1)
    assert tr is None


# (d) fitting recovers the parameters ---------------------------------------------------------------

TRUE = {"tau": 1.0, "a": 1.2, "theta": 2.8, "w": 5.0}


@pytest.mark.slow
def test_fit_recovers_parameters_from_noisy_step_responses():
    # 4 traces: I_ext 0 → amplitude for 5 <= t < 25 ms → 0, T 50 ms, dt 0.1 ms. 0.5 and 0.8 stay in
    # the low state, 1.0 and 2.0 jump to the high state and fall back after the step.
    I_ext = rate_study.step_protocol([0.5, 0.8, 1.0, 2.0], T=50.0, dt=0.1, start=5.0, stop=25.0)
    t, clean, noisy = rate_study.synthetic_traces(TRUE, I_ext, dt=0.1, noise_sd=0.02, seed=1)
    assert np.max(clean[2:, 200:250]) > 0.9 and np.max(clean[:2]) < 0.2  # both regimes are in the data
    res = rate_study.fit_rate_model(t, I_ext, noisy, EXAMPLE_CONFIG["fit"]["bounds"], seed=1, n_samples=30,
                                    n_rounds=40, method="DE", refine=True)
    for name, value in TRUE.items():
        assert res["params"][name] == pytest.approx(value, rel=0.05), name
    assert res["error"] == pytest.approx(0.02 ** 2, rel=0.1)  # the residual is the noise
    assert res["error"] <= res["search_error"] and res["n_simulations"] == 30 * 40


def test_fit_rejects_unknown_bounds():
    I_ext = rate_study.step_protocol([1.0], T=5.0)
    t, _, noisy = rate_study.synthetic_traces(TRUE, I_ext, seed=0)
    with pytest.raises(ValueError, match="unknown parameter.*gain"):
        rate_study.fit_rate_model(t, I_ext, noisy, {"gain": [0, 1]}, seed=0)


# (e) the study writes its artefacts -----------------------------------------------------------------

@pytest.mark.slow
def test_rate_study_writes_figures_and_numbers(tmp_path):
    summary = rate_study.rate_study(EXAMPLE_CONFIG, tmp_path / "study")
    files = sorted(p.name for p in (tmp_path / "study").iterdir())
    assert files == sorted([*rate_study.FIGURES, rate_study.FIT_FIGURE, rate_study.SUMMARY])
    for name in (*rate_study.FIGURES, rate_study.FIT_FIGURE):
        assert (tmp_path / "study" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "study" / rate_study.SUMMARY).read_text())
    assert [round(fp["r"], 3) for fp in data["fixed_points"]] == [0.042, 0.447, 0.900]
    assert [round(fp["eigenvalue"], 3) for fp in data["fixed_points"]] == [-0.583, 0.498, -0.626]
    assert [fp["stable"] for fp in data["fixed_points"]] == [True, False, True]
    assert data["fi_curve"]["F"][0] == pytest.approx(0.0, abs=1e-15)
    finals = data["trajectories"]["r_final"]  # r_init 0, 0.2, 0.4 → low state; 0.6, 0.8 → high state
    assert np.allclose(finals, [0.0415, 0.0415, 0.0415, 0.8997, 0.8997], atol=1e-3)
    assert data["ou"]["bistable"] and data["ou"]["n_up"] >= 1 and data["ou"]["n_down"] >= 1
    assert data["ou"]["n_transitions"] == len(data["ou"]["times"])
    assert np.array(data["bifurcation"]["n_stable"]).shape == (5, 5)
    assert data["bifurcation"]["n_stable"][0] == [1] * 5  # w = 0: one stable point everywhere
    assert max(data["fit"]["relative_errors"].values()) < 0.05
    assert json.loads(json.dumps(summary)) == data


def test_rate_study_gathers_chunks_written_separately(tmp_path):
    config = {**EXAMPLE_CONFIG, "fit": {"enabled": False}, "ou": {**EXAMPLE_CONFIG["ou"], "T": 50.0},
              "bifurcation": {**EXAMPLE_CONFIG["bifurcation"], "n_chunks": 1}}
    paths = [rate_study.write_bifurcation_chunk(config, c, 3, tmp_path / f"chunk_{c}.npz") for c in range(3)]
    chunked = rate_study.rate_study(config, tmp_path / "a", bifurcation_chunks=paths)
    direct = rate_study.rate_study(config, tmp_path / "b")
    assert chunked["bifurcation"] == direct["bifurcation"]
    assert "fit" not in chunked and not (tmp_path / "a" / rate_study.FIT_FIGURE).exists()
    other = {**config, "bifurcation": {**config["bifurcation"], "n_w": 6}}
    with pytest.raises(ValueError, match="another"):
        rate_study.rate_study(other, tmp_path / "c", bifurcation_chunks=paths)


def test_the_schema_names_unknown_keys_and_fills_in_the_rest():
    """The defaults and the valid keys of a rate study are the config schema's (no copy in rate_study)."""
    from neurofit.workflow.study import ConfigError, validate_config

    def rate(section):
        return validate_config({"studies": {"r": {"rate": section}}})["studies"]["r"]["rate"]

    assert rate({})["w"] == 5.0
    for section, key in (({"gain": 1}, "gain"), ({"ou": {"sigma_ou": 1}}, "ou.sigma_ou"),
                         ({"model": {"w": 1}}, "model.w"), ({"fit": {"bounds": {"gain": [0, 1]}}}, "fit.bounds.gain")):
        with pytest.raises(ConfigError, match=f"studies.r.rate.{key}: unknown key"):
            rate(section)
    cfg = rate({"fit": {"true_params": {"w": 4.0}, "bounds": {"w": [1.0, 8.0]}}})
    assert cfg["fit"]["true_params"] == {**TRUE, "w": 4.0}  # nested mappings are filled in key by key
    assert cfg["fit"]["bounds"] == {**rate({})["fit"]["bounds"], "w": [1.0, 8.0]}
