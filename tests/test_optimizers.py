"""Optimizers: bounds, log scale, convergence, determinism, checkpoint/resume, NaN errors."""
import json
import warnings

import numpy as np
import pytest

from neurofit.fitting.optimizers import (
    NEVERGRAD_PENALTY,
    NevergradOptimizer,
    Optimizer,
    ReplayError,
    SkoptOptimizer,
    calc_bounds,
)

NAMES = ["a", "b", "c"]
BOUNDS = {"a": (-5.0, 5.0), "b": ("-100 mV", "0 mV"), "c": (1e-12, 1e-4)}
TARGET = {"a": 1.5, "b": -0.065, "c": 1e-8}


def quadratic(p):
    """Minimum 0 at TARGET; each term scaled to its search range (c on a log scale)."""
    return ((p["a"] - 1.5) / 10) ** 2 + ((p["b"] + 0.065) / 0.1) ** 2 + ((np.log10(p["c"]) + 8) / 8) ** 2


def rosenbrock(p):
    x = [p["x"], p["y"], p["z"]]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(2))


def run(optimizer, objective, rounds, popsize, names=NAMES, bounds=BOUNDS, log_scale=("c",)):
    n = optimizer.initialize(names, bounds, log_scale=set(log_scale), popsize=popsize)
    asks = []
    for _ in range(rounds):
        params = optimizer.ask(n)
        asks.append(params)
        optimizer.tell(params, np.array([objective(p) for p in params]))
    return asks


def assert_near_target(best, rel=0.01):
    assert best["a"] == pytest.approx(TARGET["a"], abs=10 * rel)
    assert best["b"] == pytest.approx(TARGET["b"], abs=0.1 * rel)
    assert np.log10(best["c"]) == pytest.approx(-8, abs=8 * rel)


# ---------------------------------------------------------------- bounds

def test_calc_bounds_parses_quantities():
    bounds = calc_bounds(NAMES, BOUNDS, {"c"})
    assert bounds["b"] == pytest.approx((-0.1, 0.0))
    assert bounds["c"] == (1e-12, 1e-4)


@pytest.mark.parametrize("bounds, log_scale, message", [
    ({"a": (1.0, 1.0)}, (), "'a'.*need finite low < high"),
    ({"a": (0.0, np.inf)}, (), "'a'.*need finite low < high"),
    ({"a": (0.0, 1.0)}, {"a"}, "'a'.*log-scale range needs low > 0"),
    ({}, (), "no bounds for parameter.* a"),
    ({"a": (0.0, 1.0), "g": (0.0, 1.0)}, (), "'g': not a parameter"),
    ({"a": (0.0, 1.0)}, {"g"}, "log_scale names 'g'"),
    ({"a": 3.0}, (), "'a'.*expected \\[low, high\\]"),
])
def test_calc_bounds_errors_name_the_parameter(bounds, log_scale, message):
    with pytest.raises(ValueError, match=message) as info:
        calc_bounds(["a"], bounds, log_scale)
    assert "\n" not in str(info.value)


def test_unknown_methods_list_valid_ones():
    with pytest.raises(ValueError, match="valid names include DE.*CMA"):
        NevergradOptimizer("DifferentialEvolutionPlease")
    with pytest.raises(ValueError, match="GP, RF, ET, GBRT"):
        SkoptOptimizer("SVM")


# ---------------------------------------------------------------- convergence

def test_de_minimises_quadratic_with_log_scale_parameter():
    opt = NevergradOptimizer("DE", seed=1)
    run(opt, quadratic, rounds=60, popsize=30)
    best = opt.recommend()
    assert_near_target(best)
    assert best["c"] == pytest.approx(1e-8, rel=0.2)  # found on [1e-12, 1e-4]


def test_log_scale_samples_log_uniformly_and_returns_si_values():
    opt = NevergradOptimizer("DE", seed=0)
    n = opt.initialize(["c"], {"c": (1e-12, 1e-4)}, log_scale={"c"}, popsize=200)
    values = np.array([p["c"] for p in opt.ask(n)])
    assert ((values >= 1e-12) & (values <= 1e-4)).all()
    # DE starts around the middle of the internal range: 1e-8 in log space (5e-5 if linear)
    assert 1e-9 < np.median(values) < 1e-7
    assert np.mean(values < 1e-10) > 0.02  # a linear search would never go there
    assert opt.to_internal([{"c": 1e-8}])[0, 0] == pytest.approx(-8)


def test_cma_minimises_rosenbrock():
    opt = NevergradOptimizer("CMA", seed=2)
    bounds = {k: (-2.0, 2.0) for k in "xyz"}
    run(opt, rosenbrock, rounds=100, popsize=8, names=list("xyz"), bounds=bounds, log_scale=())
    best = opt.recommend()
    assert rosenbrock(best) < 1e-4
    np.testing.assert_allclose([best[k] for k in "xyz"], 1.0, atol=0.01)


def test_skopt_gp_minimises_quadratic_in_small_budget():
    opt = SkoptOptimizer("GP", n_initial_points=10, random_state=0, acq_optimizer="sampling")
    run(opt, quadratic, rounds=20, popsize=1)
    best = opt.recommend()
    assert quadratic(best) < 0.01  # from ~0.5 for a random point, in 20 evaluations
    assert_near_target(best, rel=0.15)


class RandomSearch(Optimizer):
    """A user optimizer: uniform sampling in the internal (log) space."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def ask(self, n_samples):
        x = self.rng.uniform(self.internal_lower, self.internal_upper, (n_samples, len(self.parameter_names)))
        return self.from_internal(x)


def test_user_optimizer_end_to_end():
    opt = RandomSearch(seed=0)
    run(opt, quadratic, rounds=20, popsize=100)
    best = opt.recommend()
    assert best == opt.tested_parameters[int(np.argmin(opt.errors))]
    assert_near_target(best, rel=0.1)
    resumed = RandomSearch(seed=0)  # the same settings and seed: the replay reaches the same state
    resumed.set_state(json.loads(json.dumps(opt.get_state())))  # plain data
    assert resumed.ask(3) == opt.ask(3)
    with pytest.raises(ReplayError, match="other candidates than recorded"):
        RandomSearch(seed=99).set_state(opt.get_state())


# ---------------------------------------------------------------- determinism and resume

@pytest.mark.parametrize("make", [
    lambda seed: NevergradOptimizer("DE", seed=seed),
    lambda seed: NevergradOptimizer("CMA", seed=seed),
    lambda seed: SkoptOptimizer("GP", n_initial_points=2, random_state=seed, acq_optimizer="sampling"),
], ids=["DE", "CMA", "GP"])
def test_same_seed_same_asks_and_resume_is_identical(make):
    original = make(5)
    n = original.initialize(NAMES, BOUNDS, log_scale={"c"}, popsize=2)
    asks, snapshot = [], None
    for _ in range(3):
        asks.append(original.ask(n))
        original.tell(asks[-1], [quadratic(p) for p in asks[-1]])
        snapshot = snapshot or original.get_state()  # killed after round 1
    assert run(make(5), quadratic, rounds=3, popsize=2) == asks
    assert run(make(6), quadratic, rounds=1, popsize=2)[0] != asks[0]

    resumed = make(5)
    resumed.set_state(json.loads(json.dumps(snapshot)))
    for expected in asks[1:]:
        params = resumed.ask(n)
        assert params == expected
        resumed.tell(params, [quadratic(p) for p in params])
    assert resumed.recommend() == original.recommend()
    with pytest.raises(ReplayError):
        make(6).set_state(snapshot)  # another seed proposes other candidates


def test_state_of_another_class_is_refused():
    opt = NevergradOptimizer("DE", seed=0)
    opt.initialize(NAMES, BOUNDS, log_scale={"c"}, popsize=4)
    with pytest.raises(ValueError, match="NevergradOptimizer"):
        SkoptOptimizer().set_state(opt.get_state())


# ---------------------------------------------------------------- NaN / inf errors

def broken(p):
    """The quadratic, but NaN for a > 2 and inf for a < -3 (a 'diverging simulation')."""
    if p["a"] > 2:
        return np.nan
    if p["a"] < -3:
        return np.inf
    return quadratic(p)


def test_nevergrad_survives_nan_and_inf_errors():
    opt = NevergradOptimizer("DE", seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nevergrad must not even warn: it gets finite losses
        run(opt, broken, rounds=40, popsize=20)
    assert np.isnan(opt.errors).any() and np.isinf(opt.errors).any()
    best = opt.recommend()
    assert np.isfinite(broken(best))
    assert_near_target(best, rel=0.05)
    assert opt._optim.current_bests["pessimistic"].mean < NEVERGRAD_PENALTY


def test_skopt_survives_nan_errors_with_penalties_on_the_error_scale():
    opt = SkoptOptimizer("GP", n_initial_points=6, random_state=0, acq_optimizer="sampling")
    run(opt, broken, rounds=2, popsize=6)
    told = np.asarray(opt._optim.yi)
    errors = np.asarray(opt.errors)
    finite = errors[np.isfinite(errors)]
    assert np.isfinite(told).all()
    penalty = finite.max() + (finite.max() - finite.min())
    np.testing.assert_allclose(told[~np.isfinite(errors)], penalty)
    assert np.isfinite(broken(opt.recommend()))


def test_all_nan_round_still_gives_a_recommendation():
    opt = NevergradOptimizer("DE", seed=0)
    run(opt, lambda p: np.nan, rounds=1, popsize=4)
    assert set(opt.recommend()) == set(NAMES)
    assert opt.recommend() == opt.tested_parameters[0]  # all equally bad: the first one told


# ---------------------------------------------------------------- nevergrad specifics

def test_nevergrad_accepts_points_it_did_not_ask_for():
    opt = NevergradOptimizer("DE", seed=0)
    opt.initialize(NAMES, BOUNDS, log_scale={"c"}, popsize=4)
    opt.tell([TARGET], [0.0])
    params = opt.ask(4)
    opt.tell(params, [quadratic(p) for p in params])
    assert opt.recommend() == TARGET


def test_sequential_methods_use_popsize_one_and_budget_methods_need_a_budget():
    opt = NevergradOptimizer("NelderMead", seed=0)
    assert opt.initialize(NAMES, BOUNDS, log_scale={"c"}, popsize=10) == 1
    with pytest.raises(ValueError, match="one point at a time"):
        opt.ask(2)
    no_budget = NevergradOptimizer("NGOpt", seed=0)
    no_budget.initialize(NAMES, BOUNDS, log_scale={"c"}, popsize=1)
    with pytest.raises(ValueError, match="needs a budget"):
        no_budget.ask(1)


def test_nevergrad_reports_its_population_size():
    opt = NevergradOptimizer("DE", seed=0)
    assert opt.initialize(NAMES, BOUNDS, popsize=4, log_scale={"c"}) == 30  # DE's minimum population
    assert NevergradOptimizer("CMA").initialize(NAMES, BOUNDS, popsize=12, log_scale={"c"}) == 12


def test_cma_on_a_single_parameter_runs_without_fcmaes():
    opt = NevergradOptimizer("CMA", seed=0)
    run(opt, lambda p: (p["x"] - 0.3) ** 2, rounds=20, popsize=8, names=["x"], bounds={"x": (-1.0, 1.0)},
        log_scale=())
    assert opt.recommend()["x"] == pytest.approx(0.3, abs=1e-3)
