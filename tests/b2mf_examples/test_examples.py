"""brian2modelfitting's examples and tutorials, ported to neurofit with the import lines swapped, run as scripts.

Each test copies one script of ``examples/brian2modelfitting/`` (the port; its README lists the source, the commit
and every edit that is not an import line) into a temporary folder beside the tutorial data (symlinks to
``data/brian2modelfitting/*.csv``), runs it in this process with ``runpy.run_path`` (matplotlib's Agg backend,
``show`` patched to do nothing, numpy's global generator seeded with 0 first: the scripts draw their optimizer
seeds and noise from it) and asserts the result the script or its documentation states on the variables the script
leaves behind.

Ground truth of the tutorial data (data/brian2modelfitting/README.md): gl = 10 nS, g_na = 20 uS, g_kd = 6 uS,
Cm = 200 pF; the true model leaves an MSE of 9.95e-7 V² (the noise floor). A trace resting at -65 mV leaves an MSE of
5.74e-4 V² against all five traces (computed from the CSV): the "no fit" baseline some assertions compare with.

Every script runs to its end on neurofit; the slow ones (multiobjective and the sbi scripts: about 4 min together on
two cores, numbers in examples/brian2modelfitting/README.md) are marked ``slow``.
"""
import runpy
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nevergrad  # noqa: E402, F401 - see below
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sbi.inference  # noqa: E402, F401 - see below
import skopt  # noqa: E402, F401 - see below
import torch  # noqa: E402

from neurofit.inference.inferencer import MisspecificationWarning  # noqa: E402

# nevergrad, skopt and sbi are imported before any script runs: importing nevergrad draws from numpy's global
# generator, so a script that imported it first would see other draws after the test's np.random.seed(0) than a
# script run later; imported here, every script sees the same sequence whatever the order of the tests.

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "brian2modelfitting"
DATA = ROOT / "data" / "brian2modelfitting"
CSVS = ("input_traces_hh.csv", "output_traces_hh.csv")

#: the tutorial data's ground truth and noise floor (data/brian2modelfitting/README.md)
TRUTH = {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6, "Cm": 200e-12}
NOISE_FLOOR = 9.95e-7
#: MSE of a trace resting at -65 mV against the five recorded traces (V²)
REST_MSE = 5.74e-4

torch.set_num_threads(1)


def run_example(name: str, tmp_path, monkeypatch, helpers=()) -> dict:
    """Run examples/brian2modelfitting/<name>.py in tmp_path beside the tutorial data; its globals after the run.

    helpers: other scripts of the folder that the script imports or reads the output of (copied too)."""
    for script in (name, *helpers):
        shutil.copy(EXAMPLES / f"{script}.py", tmp_path)
    for csv in CSVS:
        if not (tmp_path / csv).exists():
            (tmp_path / csv).symlink_to(DATA / csv)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python script.py` puts the script's folder first
    import pylab
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    monkeypatch.setattr(pylab, "show", lambda *args, **kwargs: None)
    np.random.seed(0)
    try:
        return runpy.run_path(str(tmp_path / f"{name}.py"), run_name="__main__")
    finally:
        plt.close("all")


def rest_mse(out_traces_volt) -> float:
    """MSE (V²) of a trace resting at -65 mV against the given recorded traces."""
    return float(np.mean((np.asarray(out_traces_volt) + 0.065) ** 2))


def check_results_bookkeeping(g: dict, rows: int):
    """The best error is the smallest error in the results table, which has one row per evaluated candidate."""
    table = g["fitter"].results(format="dataframe")
    assert len(table) == rows
    assert g["error"] == pytest.approx(table["error"].min(), rel=1e-12)
    best = table.loc[table["error"].idxmin()]
    for name, value in g["res"].items():
        assert best[name] == pytest.approx(value, rel=1e-12)


def within_bounds(params: dict, bounds: dict):
    for name, (low, high) in bounds.items():
        assert low <= params[name] <= high, (name, params[name], low, high)


# --- toy models (the model text has no differential equation) --------------------------------------------------

def first_round_best(g: dict, samples: int) -> float:
    """The smallest error of the first round (the results table's first ``samples`` rows)."""
    return float(g["fitter"].results(format="dataframe")["error"].iloc[:samples].min())


def _toy_asserts(g: dict, rounds: int, samples: int, max_error: float):
    """The toy scripts state no result but print (res, error): asserted are the bookkeeping, the bounds, an error no
    larger than the first round's best and below ``max_error``."""
    check_results_bookkeeping(g, rounds * samples)
    within_bounds(g["res"], {"g": (1e-9, 30e-9), "E": (-20e-3, 100e-3)})
    assert g["error"] <= first_round_best(g, samples)
    assert g["error"] < max_error


def test_modelfitting_nevergrad(tmp_path, monkeypatch):
    """examples/modelfitting_nevergrad.py: NevergradOptimizer (DE) on the algebraic model I = g*(v-E), data
    I = 10 nS * v. Two rounds of 10 candidates do not get far (neurofit with numpy seed 0: 3.4e-20 A², g 8.6 nS, E
    19.6 mV; the model I = 0 leaves mean(I²) = 3e-20 A²): asserted below 1 % of the largest error within the bounds,
    (30 nS * 140 mV)² / 2 ~ 8.8e-18 A² (half of the samples are at v = 0), i.e. below 1e-19 A²."""
    g = run_example("modelfitting_nevergrad", tmp_path, monkeypatch)
    assert float(np.mean(np.asarray(g["output_traces"]) ** 2)) == pytest.approx(3e-20, rel=1e-9)
    _toy_asserts(g, rounds=2, samples=10, max_error=1e-19)


def test_modelfitting_skopt(tmp_path, monkeypatch):
    """examples/modelfitting_skopt.py: SkoptOptimizer('gp', random_state=1), legacy input_var/output_var spelling. The
    script's data are all zero (its loop `for i in range(1)` sets the one trace to 0*10 mV), so the fit must find
    g*E near 0: the error is asserted below 1e-4 times the largest error within the bounds ((30 nS * 100 mV)² =
    9e-18 A²; neurofit: 5.3e-23 A², g 13.9 nS, E -0.5 mV)."""
    g = run_example("modelfitting_skopt", tmp_path, monkeypatch)
    assert not np.any(g["output_traces"])
    _toy_asserts(g, rounds=2, samples=10, max_error=9e-18 * 1e-4)


# --- TraceFitter on the Hodgkin-Huxley tutorial data --------------------------------------------------------------

HH_BOUNDS = {"gl": (1e-9, 1e-7), "g_na": (2e-6, 2e-4), "g_kd": (6e-7, 6e-5),
             "Cm": (20e-12, 400e-12)}  # Cm: 0.1 and 2 uF/cm² times the area of 20,000 um² (the bounds given)


def _hh_fit_asserts(g: dict, rows: int, max_error: float, n_traces: int = 5):
    check_results_bookkeeping(g, rows)
    within_bounds(g["res"], HH_BOUNDS)
    assert g["error"] < max_error
    assert np.asarray(g["fits"]).shape == (n_traces, 1497)


def test_hh_nevergrad_runtime(tmp_path, monkeypatch):
    """examples/hh_nevergrad_runtime.py: 4 rounds of 20 (DE), MSEMetric(t_start=5 ms). The script states no number; the
    plotted fit (error 1.38e-4 V² with numpy seed 0) is asserted to beat the resting trace (REST_MSE, 5.74e-4 V²) and
    the results to be consistent."""
    g = run_example("hh_nevergrad_runtime", tmp_path, monkeypatch)
    _hh_fit_asserts(g, rows=4 * 20, max_error=REST_MSE)


def test_hh_nevergrad_multiruns(tmp_path, monkeypatch):
    """examples/hh_nevergrad_multiruns.py: 2 rounds, then fit(restart=True) with 20 rounds of 20 (DE). The restarted
    fit keeps only its own 400 evaluations; its error (1.57e-5 V² with numpy seed 0, 16x the noise floor) is asserted
    below 3e-5 V² (5.5 mV rms: spikes at about the right times, as the script's plot shows; REST_MSE is 5.74e-4)."""
    g = run_example("hh_nevergrad_multiruns", tmp_path, monkeypatch)
    _hh_fit_asserts(g, rows=20 * 20, max_error=3e-5)


def test_docs_hh_multirun(tmp_path, monkeypatch):
    """docs_sphinx/examples/hh_multirun.rst: as hh_nevergrad_multiruns (input_var/output_var spelling)."""
    g = run_example("docs_hh_multirun", tmp_path, monkeypatch)
    _hh_fit_asserts(g, rows=20 * 20, max_error=3e-5)


def test_hh_nevergrad_onlinetracefitter(tmp_path, monkeypatch):
    """examples/hh_nevergrad_onlinetracefitter.py: OnlineTraceFitter, 10 rounds of 40 (DE), online MSE. Error with
    numpy seed 0: 1.6e-5 V²; asserted below 1e-4 V² (a fit that reproduces the spikes; REST_MSE is 5.74e-4)."""
    g = run_example("hh_nevergrad_onlinetracefitter", tmp_path, monkeypatch)
    _hh_fit_asserts(g, rows=10 * 40, max_error=1e-4)


def test_hh_nevergrad_eFEL(tmp_path, monkeypatch):
    """examples/hh_nevergrad_eFEL.py: FeatureMetric on eFEL's voltage_base, time_to_first_spike and Spikecount (weight
    10) between 5 and 10 ms, 4 traces, 2 rounds of 20. The script states no number: the results are asserted to be
    consistent, inside the bounds, and the error finite (0.087 with numpy seed 0)."""
    g = run_example("hh_nevergrad_eFEL", tmp_path, monkeypatch)
    _hh_fit_asserts(g, rows=2 * 20, max_error=np.inf, n_traces=4)
    assert np.isfinite(g["error"])


def test_hh_skopt(tmp_path, monkeypatch):
    """examples/hh_skopt.py: one synthetic trace (the true model plus 1 mV noise from numpy's global generator), 2
    rounds of 5 of a Gaussian-process optimizer (random_state=1). Ten evaluations do not find the printed 'correct'
    parameters (error 8.4e-5 V² with numpy seed 0); the script states no more, so the data, the bookkeeping and a fit
    better than the resting trace are asserted."""
    g = run_example("hh_skopt", tmp_path, monkeypatch)
    assert np.asarray(g["out_trace"]).shape == (1, 1497)  # 3 * int(5*ms/dt) = 3 * int(499.99...)
    noise = g["out_trace"][0] - g["mon"].traces["v"][0, 0] / 1e-3  # mV
    assert np.std(noise) == pytest.approx(1.0, abs=0.05)  # np.random.randn(1497): sd 1 within 2.7 standard errors
    check_results_bookkeeping(g, 2 * 5)
    area = 20000e-12
    within_bounds(g["res"], {"gl": (1e-8 * 1e4 * area, 1e-3 * 1e4 * area), "g_na": (1e-3 * 1e4 * area, 2 * 1e4 * area),
                             "g_kd": (1e-3 * 1e4 * area, 1 * 1e4 * area)})
    assert g["error"] < rest_mse(g["out_trace"] * 1e-3)


def test_tutorial_hh(tmp_path, monkeypatch):
    """docs_sphinx/introduction/tutorial_hh.rst: 10 rounds of 100 (DE), then refine().

    Documented: the rounds' printed errors fall from 2.3e-4 to 1.8e-6 V² (one random run), and after refine "the fits
    ... now closely match the target data". Asserted: the 10-round error below the documented round-1 error (1.35e-4;
    neurofit with numpy seed 0: 1.66e-5), and refine at the ground truth (gl, g_na, g_kd within 2 %; neurofit: 0.8 %,
    0.1 %, 0.1 %) with the traces of the refined parameters at the noise floor (MSE within 1 % of 9.95e-7 V²)."""
    g = run_example("tutorial_hh", tmp_path, monkeypatch)
    check_results_bookkeeping(g, 10 * 100)
    assert g["error"] < 1.35e-4
    for name in ("gl", "g_na", "g_kd"):
        assert g["refined_params"][name] == pytest.approx(TRUTH[name], rel=0.02)
    refined_mse = float(np.mean((np.asarray(g["traces"]) - g["out_trace"] * 1e-3) ** 2))
    assert refined_mse == pytest.approx(NOISE_FLOOR, rel=0.01)


@pytest.mark.slow
def test_multiobjective(tmp_path, monkeypatch):
    """examples/multiobjective.py: noise-free v and m of five traces, fit(metric=[metric_v, metric_m]) - one normalized
    MSE per output, from t_start = 5 ms (500 samples) -, 20 rounds of 60 (DE), then refine(calc_gradient=True,
    n_starts=1). The script states no number (it plots ground truth, fit and refined traces). Asserted: the fit's
    error is the sum of the two outputs' errors as the script's metrics define them, recomputed from the traces of
    the fit's parameters (mean((v - v_true)/10 mV)² + mean((m - m_true)/0.1)² after 5 ms: 5.91 with numpy seed
    0), and refine lowers it (3.65; from the fit's best start, 400 evaluations do not reach the ground truth), the
    fitter's best error and per-output errors then being the refined traces' (refine replaces them: deliberate)."""
    g = run_example("multiobjective", tmp_path, monkeypatch)
    fitter, start = g["fitter"], 500

    def objectives(traces):
        return {"v": float(np.mean(((traces["v"] - g["ground_truth_v"])[:, start:] / 10e-3) ** 2)),
                "m": float(np.mean(((traces["m"] - g["ground_truth_m"])[:, start:] / 0.1) ** 2))}
    fitted = objectives(fitter.generate_traces(params=g["res"], param_init={"v": -65e-3}))
    assert g["error"] == pytest.approx(fitted["v"] + fitted["m"], rel=1e-9)
    refined = objectives(g["refined_fits"])
    assert sum(refined.values()) < 0.9 * g["error"]
    assert fitter.best_error == pytest.approx(sum(refined.values()), rel=1e-6)
    for var in ("v", "m"):
        assert fitter.best_objective_errors_normalized[var] == pytest.approx(refined[var], rel=1e-6)
    within_bounds(g["refined_params"], HH_BOUNDS)


# --- SpikeFitter on synthetic AdEx-like spike trains -------------------------------------------------------------

def _spike_match(model_spikes, data_spikes, delta=1e-3):
    """Every trace: the same number of spikes, each within delta (the GammaFactor's coincidence window)."""
    assert len(model_spikes) == len(data_spikes)
    for mine, theirs in zip(model_spikes, data_spikes):
        mine, theirs = np.asarray(mine), np.asarray(theirs)
        assert mine.shape == theirs.shape, (mine, theirs)
        assert np.all(np.abs(mine - theirs) <= delta), (mine, theirs)


def test_IF_spikefitter(tmp_path, monkeypatch):
    """examples/IF_spikefitter.py: 5 spikes of a model with gL = 30 nS, C = 1 nF, EL = -70 mV (the printed 'goal');
    GammaFactor(delta=1 ms), 3 rounds of 30 (DE) over gL, C and EL. Ninety candidates in a 3-D box do not reach the
    goal with numpy seed 0 (neurofit: error 1.145 after 2.53 in round 0, gL 35.7 nS, C 0.96 nF, EL -57 mV; another
    random state found a perfect match, error 0, at gL 54 nS, C 0.69 nF, EL -90 mV: five spike times do not identify
    three parameters). Asserted: the five data spikes, the bookkeeping, the bounds, an error no larger than the first
    round's best, and the generated traces."""
    g = run_example("IF_spikefitter", tmp_path, monkeypatch)
    assert len(g["out_spikes"]) == 5
    table = g["fitter"].results(format="dataframe")
    assert len(table) == 3 * 30 and g["error"] == pytest.approx(table["error"].min(), rel=1e-12)
    within_bounds(g["result_dict"], {"gL": (10e-9, 100e-9), "C": (0.1e-9, 10e-9), "EL": (-0.1, -0.05)})
    assert g["error"] <= first_round_best(g, 30)
    assert len(g["spikes"]) == 1
    assert np.asarray(g["fits"]).shape == (1, 600)


def test_IF_spikefitter_doubleinp(tmp_path, monkeypatch):
    """examples/IF_spikefitter_doubleinp.py: two step inputs (2.5 and 5 nA), goal gL = 30 nS, C = 1 nF, GammaFactor
    (delta=1 ms), 2 rounds of 30 (DE). Asserted: both spike trains matched within delta, error below 0.05, and the
    printed results near the goal (neurofit with numpy seed 0: gL 32.4 nS, C 1.005 nF, error 0; tolerance 20 %: the
    spike trains constrain C/gL and the rheobase only to about that precision within 60 candidates)."""
    g = run_example("IF_spikefitter_doubleinp", tmp_path, monkeypatch)
    assert [len(s) for s in g["out_spikes"]] == [len(g["spike_trains"][0]), len(g["spike_trains"][1])]
    assert g["error"] < 0.05
    _spike_match(g["spikes"], g["out_spikes"])
    assert g["result_dict"]["gL"] == pytest.approx(30e-9, rel=0.2)
    assert g["result_dict"]["C"] == pytest.approx(1e-9, rel=0.2)


def test_generate_traces_synthetic(tmp_path, monkeypatch):
    """examples/generate_traces_synthetic.py (the data of tutorial_sbi): 1 s at 0.1 ms of an HH model under a current
    ramping from 0.1 to 0.5 nA between 100 and 900 ms. Asserted: the saved files (10,000 samples), the ramp (0 before
    t_on and from t_off on, I1 at t_on, I2 - (I2 - I1)*dt/(t_off - t_on) at the last sample on) and a membrane
    potential starting at E_l = -70 mV that fires during the ramp (peaks above 0 mV) and not before it."""
    run_example("generate_traces_synthetic", tmp_path, monkeypatch)
    current = np.load(tmp_path / "input_traces_synthetic.npy")
    v = np.load(tmp_path / "output_traces_synthetic.npy")  # mV
    assert current.shape == v.shape == (10_000,)
    assert np.all(current[:1000] == 0) and np.all(current[9000:] == 0)
    assert current[1000] == pytest.approx(0.1e-9, rel=1e-9)
    assert current[8999] == pytest.approx(0.5e-9 - 0.4e-9 * 0.1 / 800, rel=1e-9)
    assert v[0] == pytest.approx(-70.0, abs=1e-9)
    assert v[:1000].max() < -60 and v[1000:9000].max() > 0


# --- Inferencer (sbi) -----------------------------------------------------------------------------------------------

def posterior_covers(samples, names, truth: dict, prior: dict, shrink: float = 0.5):
    """The truth inside the central 99 % of the posterior samples for every parameter, and the posterior's central
    90 % narrower than ``shrink`` times the prior's width for at least one parameter (the data were informative)."""
    samples = np.asarray(samples)
    narrower = []
    for k, name in enumerate(names):
        low, high = np.quantile(samples[:, k], [0.005, 0.995])
        assert low <= truth[name] <= high, (name, truth[name], low, high)
        q05, q95 = np.quantile(samples[:, k], [0.05, 0.95])
        narrower.append((q95 - q05) < shrink * (prior[name][1] - prior[name][0]))
    assert any(narrower)


HH_PRIOR = dict(HH_BOUNDS)


def _misspecified_at_rest(g: dict, resting: list):
    """The HH 'simple interface' scripts' data are out of the model's reach, and neurofit's check says so: the model
    starts at v = VT = -63 mV (the scripts' param_init) and rests identically before every stimulus - at the true
    parameters the resting feature is -63.2 mV -, while the recordings, started at El, rest at -64.9 and -65.0 mV.
    Asserted: infer's misspecification check (after the first round) rejects the data (p < alpha) and its two
    furthest-out features, given the others, are the two traces' resting features. Where the features cannot match,
    the posterior need not cover the ground truth (it does not: it leans to gl near its upper bound, where the rest
    is pulled fastest to El), so only its narrowing (some parameter's central 90 % below half its prior width) and
    the generated traces are asserted besides."""
    inferencer = g["inferencer"]
    check = inferencer.misspecification
    assert check.p_value < check.alpha
    furthest = [check.names[i] for i in np.argsort(-np.abs(check.z_conditional))[:2]]
    assert sorted(furthest) == sorted(resting)
    samples = np.asarray(g["samples"])
    widths = [np.subtract(*np.quantile(samples[:, k], [0.95, 0.05])) / (HH_PRIOR[n][1] - HH_PRIOR[n][0])
              for k, n in enumerate(inferencer.param_names)]
    assert min(widths) < 0.5
    assert np.asarray(g["inf_traces"]).shape == (2, 1497)


@pytest.mark.slow
def test_IF_sbi(tmp_path, monkeypatch):
    """examples/IF_sbi.py: posterior over gl and C from the spike train (count, mean ISI) of gl = 30 nS, C = 1 nF
    (the script's ground_truth_params, drawn as the pairplot's red point); 3 rounds of 1,000 simulations (SNPE; the
    script's 3,000 reduced: README). Asserted: the posterior samples cover the ground truth (numpy seed 0: gl within
    10.5-99.5 nS, C within 0.88-1.08 nF) and C's central 90 % is narrower than half its prior (1 % of it)."""
    g = run_example("IF_sbi", tmp_path, monkeypatch)
    posterior_covers(g["samples"], g["inferencer"].param_names, g["ground_truth_params"],
                     {"gl": (10e-9, 100e-9), "C": (0.1e-9, 10e-9)})
    assert np.asarray(g["inf_trace"]).shape == (1, 600)


@pytest.mark.slow
def test_hh_sbi_simple_interface(tmp_path, monkeypatch):
    """examples/hh_sbi_simple_interface.py: traces 0 and 1 of the tutorial data, 5 voltage features and the spike
    count, 3 rounds of 500 (SNPE, mdn; the script's 5,000 reduced: README). The script states no result (it plots
    posterior samples and a trace of their mean): see ``_misspecified_at_rest``."""
    with pytest.warns(MisspecificationWarning):
        g = run_example("hh_sbi_simple_interface", tmp_path, monkeypatch)
    _misspecified_at_rest(g, ["v[0].f4", "v[1].f4"])
    assert np.asarray(g["cond_coeff_mat"]).shape == (4, 4)


@pytest.mark.slow
def test_docs_hh_sbi_simple(tmp_path, monkeypatch):
    """docs_sphinx/examples/hh_sbi_simple.rst: as hh_sbi_simple_interface with 4 voltage features, no spikes (the
    page's 5,000 per round reduced to 500: README); see ``_misspecified_at_rest``."""
    with pytest.warns(MisspecificationWarning):
        g = run_example("docs_hh_sbi_simple", tmp_path, monkeypatch)
    _misspecified_at_rest(g, ["v[0].f3", "v[1].f3"])


@pytest.mark.slow
def test_hh_sbi_flexible_interface(tmp_path, monkeypatch):
    """examples/hh_sbi_flexible_interface.py: step by step (prior, 500 training simulations - the script's 5,000
    reduced: README - saved and reloadable, amortized SNPE-mdn, posterior saved), then infer(n_rounds=2). Its
    features (whole-trace mean, stimulus mean and std, peak-to-peak) are matched at the truth. Asserted: the files
    written, and the final posterior covering the ground truth (numpy seed 0: g_kd's 0.5 % quantile 5.8 uS for the
    true 6 uS) and narrower than the prior (g_na's central 90 %: 10 % of its prior)."""
    g = run_example("hh_sbi_flexible_interface", tmp_path, monkeypatch)
    assert (tmp_path / "hh_sbi_flexible_interface_data.npz").exists()
    assert (tmp_path / "hh_sbi_flexible_interface_posterior.pth").exists()
    assert np.asarray(g["theta"]).shape == (500, 4)
    posterior_covers(g["inferencer"].samples, g["inferencer"].param_names, TRUTH, HH_PRIOR)


@pytest.mark.slow
def test_docs_hh_sbi_flex(tmp_path, monkeypatch):
    """docs_sphinx/examples/hh_sbi_flex.rst: as hh_sbi_flexible_interface with 1,000 training simulations (the page's
    10,000 reduced: README), 3 features and one focused round (infer()). Asserted: the saved summary statistics
    reload unchanged and the posterior after infer() covers the ground truth, narrower than the prior (g_na's and
    g_kd's central 90 %: 19 % and 18 % of their priors with numpy seed 0)."""
    g = run_example("docs_hh_sbi_flex", tmp_path, monkeypatch)
    assert np.asarray(g["theta"]).shape == (1_000, 4) and np.asarray(g["x"]).shape[0] == 1_000
    posterior_covers(g["inferencer"].samples, g["inferencer"].param_names, TRUTH, HH_PRIOR)


@pytest.mark.slow
def test_tutorial_sbi(tmp_path, monkeypatch):
    """docs_sphinx/introduction/tutorial_sbi.rst (run after generate_traces_synthetic.py, with tutorial_sbi_helpers.py).

    Documented for the toy example (g_Na, g_K free): "the ground truth parameters are located in high-probability
    regions of the estimated distribution"; asserted on the first samples drawn (the toy example's) for g_Na = 32 uS,
    g_K = 1 uS. The 4-parameter sections document no success ("estimated poorly", "promising for some parameters"):
    they are asserted to run (their samples finite)."""
    from neurofit.inference.inferencer import Inferencer

    drawn = []
    original = Inferencer.sample

    def recording_sample(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        drawn.append((list(self.param_names), np.array(out)))
        return out

    monkeypatch.setattr(Inferencer, "sample", recording_sample)
    run_example("generate_traces_synthetic", tmp_path, monkeypatch)
    run_example("tutorial_sbi", tmp_path, monkeypatch, helpers=("tutorial_sbi_helpers",))
    names, toy = drawn[0]
    posterior_covers(toy, names, {"g_Na": 32e-6, "g_K": 1e-6}, {"g_Na": (1e-6, 100e-6), "g_K": (0.1e-6, 10e-6)})
    assert all(np.all(np.isfinite(s)) for _, s in drawn[1:])
