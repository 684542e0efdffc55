"""Multi-objective fits (neurofit.fitting.multiobjective): NSGA-II recovers Pareto fronts known by brute force.

Distances between fronts are measured in objective space, each objective normalised by the brute-force front's
range (0 = its best, 1 = its worst value), with the additive epsilon indicator: I(A, B) = the smallest e such
that every point of B is weakly dominated by some point of A shifted by -e.
"""
import json

import numpy as np
import pytest

import neurofit as nf
from neurofit.equations.model import Model
from neurofit.fitting.fitters import FitError, SpikeFitter, TraceFitter
from neurofit.fitting.metrics import GammaFactor, MSEMetric
from neurofit.fitting.multiobjective import (
    Objective,
    compromise_index,
    compromise_scores,
    fit_pareto,
    non_dominated,
    objective_values,
    pareto_search,
    per_feature,
)

PASSIVE = """dv/dt = (gl*(El - v) + I)/C : volt
gl : siemens (constant)
El : volt (constant)
"""
DT, N_STEPS = 2e-4, 500
TRUTH_HYPER = {"gl": 10e-9, "El": -70e-3}  # generates the hyperpolarising sweep
TRUTH_DEPOL = {"gl": 20e-9, "El": -62e-3}  # generates the depolarising sweep: the objectives conflict
BOUNDS = {"gl": [2e-9, 50e-9, "log"], "El": [-80e-3, -55e-3]}


def epsilon(a: np.ndarray, b: np.ndarray) -> float:
    """Additive epsilon indicator I(a, b): max over b of min over a of max_j (a_j - b_j)."""
    return float((a[None, :, :] - b[:, None, :]).max(axis=2).min(axis=1).max())


def toy(params):
    x = params["x"]
    return np.stack([x ** 2, (x - 2) ** 2], axis=1)


# --- 1. a pure-math front ------------------------------------------------------------------------------
def test_toy_front_is_recovered():
    """f1 = x², f2 = (x - 2)², x in [-5, 5]: the front is x in [0, 2], (f1, f2) from (0, 4) to (4, 0)."""
    xs = np.linspace(-5, 5, 10001)
    grid = toy({"x": xs})
    on = non_dominated(grid)
    assert xs[on].min() == pytest.approx(0.0, abs=1e-12) and xs[on].max() == pytest.approx(2.0, abs=1e-12)
    exact = grid[on]
    result = pareto_search(toy, ["f1", "f2"], n_samples=20, n_generations=20, seed=1, x=[-5, 5])
    assert len(result.F) == 400 and result.settings["algorithm"] == "NSGA-II"
    front = result.F[result.front_index]
    distance = np.sqrt(((front[:, None, :] - exact[None]) ** 2).sum(axis=2)).min(axis=1)
    assert distance.mean() < 0.003 and distance.max() < 0.02  # generational distance (front spans 4 units)
    assert epsilon(exact, front) < 0.002  # no recovered point is better than the exact front (grid step 1e-3)
    assert epsilon(front, exact) < 0.1  # the recovered front covers the exact one: gaps < 2.5 % of its span
    assert front[:, 0].min() < 1e-3 and front[:, 1].min() < 1e-3  # both ends
    x = result.X[result.front_index, 0]
    assert x.min() > -0.01 and x.max() < 2.01 and x.min() < 0.02 and x.max() > 1.98
    assert result.compromise["params"]["x"] == pytest.approx(1.0, abs=0.05)  # f1 = f2: the minimax point
    assert list(result.front.columns) == ["x", "f1", "f2", "generation", "score", "on_front"]


# --- 2. a neuron's front -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def passive_fitter():
    """A passive membrane (C fixed at 100 pF; gl and El free): sweep 0 a -50 pA step from one parameter set,
    sweep 1 a +100 pA step from another, so that no parameter set fits both."""
    model = Model(PASSIVE, namespace={"C": "100 pF"})
    current = np.zeros((2, N_STEPS))
    current[0, 100:350], current[1, 100:350] = -50e-12, 100e-12
    run = lambda truth: nf.simulate(model, truth, {"I": current}, DT, init={"v": "El"}, method="exponential_euler",
                                    backend="numpy").traces["v"][0]
    data = np.stack([run(TRUTH_HYPER)[0], run(TRUTH_DEPOL)[1]])
    return TraceFitter(model, {"I": current}, {"v": data}, DT, n_samples=40, method="exponential_euler",
                       param_init={"v": "El"}, backend="numpy")


def objectives():
    return {"hyperpolarising": (MSEMetric(normalization="1 mV"), [0]),
            "depolarising": (MSEMetric(normalization="1 mV"), {"output": "v", "traces": [1]})}


def test_objectives_are_the_metric_on_the_selected_sweeps(passive_fitter):
    params = [TRUTH_HYPER, TRUTH_DEPOL, {"gl": 15e-9, "El": -66e-3}]
    values = objective_values(passive_fitter, objectives(), params)
    for k, p in enumerate(params):
        v = passive_fitter.generate(params=p)
        expected = [np.mean((v[i] - passive_fitter.output["v"][i]) ** 2) / 1e-6 for i in (0, 1)]
        np.testing.assert_allclose(values[k], expected, rtol=1e-12)
    assert values[0, 0] < 1e-20 and values[1, 1] < 1e-20 and values[0, 1] > 1 and values[1, 0] > 1


def test_neuron_front_matches_brute_force(passive_fitter):
    """40 x 40 grid (gl log-spaced 2..50 nS, El -80..-55 mV) in one batch vs NSGA-II (40 x 25 = 1000 candidates)."""
    gl, El = np.geomspace(2e-9, 50e-9, 40), np.linspace(-80e-3, -55e-3, 40)
    grid = objective_values(passive_fitter, objectives(), {"gl": np.repeat(gl, 40), "El": np.tile(El, 40)})
    on = non_dominated(grid)
    assert 20 <= on.sum() <= 60
    low, high = grid[on].min(axis=0), grid[on].max(axis=0)
    exact = (grid[on] - low) / (high - low)
    result = fit_pareto(passive_fitter, objectives(), n_generations=25, seed=0, **BOUNDS)
    assert len(result.F) == 1000 and set(result.generation) == set(range(25))
    front = (result.F[result.front_index] - low) / (high - low)
    assert epsilon(front, exact) < 0.02  # every brute-force front point is matched within 2 % of the range
    assert epsilon(exact, front) < 0.03  # and NSGA-II's front points are better than the grid's (> 0: coarse grid)
    beaten = -(exact[None, :, :] - front[:, None, :]).max(axis=2).min(axis=1)  # > 0: a grid point dominates
    assert beaten.max() < 0.01  # no NSGA-II front point is dominated by a grid point by more than 1 %
    assert (result.F[result.front_index].min(axis=0) <= grid[on].min(axis=0)).all()  # both ends reached
    # the compromise: between the two parameter sets, and as good by the rule as the grid's compromise
    best = result.compromise["params"]
    assert TRUTH_HYPER["gl"] * 0.5 < best["gl"] < TRUTH_DEPOL["gl"] and -70e-3 < best["El"] < -62e-3
    grid_best = compromise_index(exact, np.ones(len(exact), dtype=bool))
    ours = (result.F[result.compromise_index] - low) / (high - low)
    assert ours.max() <= exact[grid_best].max() + 0.02  # 0.198 vs 0.189 (each normalised by its own front)


# --- 3. determinism -------------------------------------------------------------------------------------
def test_same_seed_same_bytes(passive_fitter):
    runs = [fit_pareto(passive_fitter, objectives(), n_generations=4, seed=s, hall_of_fame=5, **BOUNDS)
            for s in (7, 7, 8)]
    text = [json.dumps(r.to_dict(), sort_keys=True) for r in runs]
    assert text[0] == text[1] and text[0] != text[2]
    doc = json.loads(text[0])
    assert doc["format"] == "neurofit.pareto_fit" and doc["settings"]["seed"] == 7
    assert len(doc["history"]["gl"]) == 160 and len(doc["hall_of_fame"]) == 5
    assert doc["compromise"] == doc["hall_of_fame"][0]  # the rule's best overall is on the front
    assert doc["log_scale"] == ["gl"] and doc["bounds"]["gl"] == [2e-9, 50e-9]


# --- 4. the compromise rule ----------------------------------------------------------------------------
def test_compromise_rule_on_a_hand_made_front():
    F = np.array([[0, 10], [1, 4], [3, 2], [6, 1], [10, 0], [5, 5], [np.inf, 0], [3, 2.5]], dtype=float)
    assert non_dominated(F).tolist() == [True, True, True, True, True, False, False, False]
    # normalised by the front's range (ideal (0, 0), nadir (10, 10)): max = 1, .4, .3, .6, 1 -> row 2
    score, total, ideal, nadir = compromise_scores(F)
    np.testing.assert_allclose(score[:6], [1, 0.4, 0.3, 0.6, 1, 0.5])
    assert ideal.tolist() == [0, 0] and nadir.tolist() == [10, 10] and score[6] == np.inf
    assert compromise_index(F) == 2
    # scales (10, 1): f / scale max = 10, 4, 2, 1, 1 -> a tie of rows 3 and 4, the lower sum (1 < 1.6) wins
    assert compromise_index(F, scales=[10, 1]) == 4
    # only the front competes: row 7, dominated by row 2, ties its score (max(3, 2.5) = max(3, 2) = 3)
    assert compromise_scores(F, scales=[1, 1])[0][7] == 3 and compromise_index(F, scales=[1, 1]) == 2
    with pytest.raises(ValueError, match="scales"):
        compromise_scores(F, scales=[1, 0])


def test_hall_of_fame_is_distinct_and_ordered_by_the_rule():
    result = pareto_search(toy, ["f1", "f2"], n_samples=20, n_generations=10, seed=3, hall_of_fame=6,
                           min_distance=0.02, x=[-5, 5])
    fame = result.hall_of_fame
    assert len(fame) == 6 and fame.index[0] == result.compromise_index
    assert np.all(np.diff(fame["score"].to_numpy()) >= 0)
    u = (fame["x"].to_numpy() + 5) / 10
    assert np.min(np.abs(u[:, None] - u[None, :]) + np.eye(6)) > 0.02


def test_no_finite_candidate_gives_no_front_and_no_compromise():
    result = pareto_search(lambda p: np.full((len(p["x"]), 2), np.nan), ["a", "b"], n_samples=3, n_generations=2,
                           x=[0, 1])
    assert len(result.F) == 6 and np.isinf(result.F).all()
    assert result.compromise is None and len(result.front) == 0 and len(result.hall_of_fame) == 0
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["compromise"] is None and doc["history"]["a"] == [None] * 6


# --- the fitter's API ----------------------------------------------------------------------------------
def test_spike_fitter_objectives_per_sweep():
    model = Model("dv/dt = (gl*(El - v) + I)/C : volt (unless refractory)\ngl : siemens (constant)\n"
                  "El : volt (constant)\n", namespace={"C": "200 pF"}, threshold="v > -50*mV", reset="v = -70*mV",
                  refractory="2*ms")
    current = np.zeros((2, 2000))
    current[0, 200:1800], current[1, 200:1800] = 0.3e-9, 0.6e-9
    truth = {"gl": 10e-9, "El": -70e-3}
    spikes = nf.simulate(model, truth, {"I": current}, 1e-4, init={"v": -70e-3}, spikes=True,
                         backend="numpy").spikes[0]
    fitter = SpikeFitter(model, {"I": current}, spikes, 1e-4, n_samples=12, param_init={"v": -70e-3},
                         backend="numpy")
    gamma = GammaFactor(delta="2 ms", time="0.2 s")
    result = fit_pareto(fitter, {"weak": (gamma, 0), "strong": (gamma, 1)}, n_generations=3, seed=0,
                        gl=[5e-9, 20e-9], El=[-75e-3, -65e-3])
    assert result.F.shape == (36, 2) and result.on_front.any()
    assert np.isfinite(result.F).all() and len(result.hall_of_fame) <= 10
    np.testing.assert_allclose(objective_values(fitter, {"weak": (gamma, 0), "strong": (gamma, 1)}, [truth]),
                               [[0.0, 0.0]], atol=1e-12)


def test_bad_objectives_say_what_is_wrong(passive_fitter):
    cases = [({"one": MSEMetric()}, "at least two"),
             ({"a": (MSEMetric(), "w"), "b": MSEMetric()}, "output 'w'"),
             ({"a": (MSEMetric(), [0, 5]), "b": MSEMetric()}, "traces"),
             ({"a": (MSEMetric(), {"sweeps": [0]}), "b": MSEMetric()}, "sweeps"),
             ({"gl": MSEMetric(), "b": MSEMetric()}, "parameter names"),
             ({"a": GammaFactor("2 ms", "1 s"), "b": MSEMetric()}, "SpikeTraceMetric"),
             ({"a": Objective(MSEMetric(), feature="spike_count"), "b": MSEMetric()}, "FeatureMetric")]
    for spec, words in cases:
        with pytest.raises(FitError, match=words) as info:
            fit_pareto(passive_fitter, spec, n_generations=1, **BOUNDS)
        assert "\n" not in str(info.value)
    with pytest.raises(FitError, match="El"):
        fit_pareto(passive_fitter, objectives(), n_generations=1, gl=[1e-9, 2e-9])


def test_per_feature_splits_a_feature_metric():
    from neurofit.fitting.metrics import FeatureMetric
    metric = FeatureMetric([(0.02, 0.07)], ["voltage_base", "steady_state_voltage_stimend"],
                           weights={"voltage_base": 2.0})
    split = per_feature(metric, traces=[1], prefix="step:")
    assert list(split) == ["step:voltage_base", "step:steady_state_voltage_stimend"]
    assert split["step:voltage_base"].feature == "voltage_base" and split["step:voltage_base"].traces == (1,)


def test_plot_pareto_front(tmp_path):
    from neurofit.plots import plot_pareto_front, save_figure

    result = pareto_search(toy, ["f1", "f2"], n_samples=20, n_generations=5, seed=0, x=[-5, 5])
    fig = plot_pareto_front(result, objectives=("f1", "f2"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == f"evaluated ({len(result.F)})" and labels[1] == f"Pareto front ({int(result.on_front.sum())})"
    assert labels[-1] == "compromise" and fig.axes[0].get_xlabel() == "f1"
    assert save_figure(fig, tmp_path / "front.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="f3"):
        plot_pareto_front(result, objectives=("f1", "f3"))
