"""Model text as Brian2 reads it (brian2modelfitting parity, item 3): models without differential equations,
subexpression outputs (online too), constants from the caller's namespace, exponential Euler on conditionally
linear equations, parameters recorded as constant traces, and the b2mf fitter attributes and bookkeeping
(items 2, 5, 6) that go with them. Every number is checked against a closed form."""
import numpy as np
import pytest

import neurofit as nf
from neurofit import MSEMetric, NevergradOptimizer, OnlineTraceFitter, SpikeFitter, TraceFitter, models
from neurofit.equations.namespace import external_names
from neurofit.fitting.fitters import FitError, FitTypeError

E_REV = 40e-3  # a module constant the equations below use (as b2mf's test modules define E)
G_TRUE = 7e-9
OHMIC = """
I = g*(v - E_REV) : amp
g : siemens (constant)
"""
V = np.array([[0.0, 0.0, 0.01, 0.02, 0.03], [-0.01, 0.0, 0.01, 0.05, 0.05]])  # (2 traces, 5 samples), volt
I_TRUE = G_TRUE * (V - E_REV)
BACKENDS = ["numpy", "c"]


def one_line(info, *fragments):
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- models without differential equations ------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_an_algebraic_model_is_computed_from_its_inputs(backend):
    model = nf.Model(OHMIC, namespace={"E_REV": E_REV}, inputs=["v"])
    assert model.states == [] and model.recordable() == ["I"]
    g = np.array([G_TRUE, 2 * G_TRUE])
    res = nf.simulate(model, {"g": g}, {"v": V}, 1e-4, record=("I", "g"), targets={"I": I_TRUE},
                      sensitivities=("g",), backend=backend)
    expected = g[:, None, None] * (V - E_REV)
    np.testing.assert_allclose(res.traces["I"], expected, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(res.traces["g"], np.broadcast_to(g[:, None, None], (2, 2, 5)))
    # the squared error summed online against a subexpression target, and dI/dg = v - E_REV
    np.testing.assert_allclose(res.sq_error["I"], (((g - G_TRUE)[:, None, None] * (V - E_REV)) ** 2).sum(axis=2),
                               rtol=1e-12)
    np.testing.assert_allclose(res.sensitivities["I"][..., 0], np.broadcast_to(V - E_REV, (2, 2, 5)), rtol=1e-14)
    assert res.final_state == {} and not res.invalid.any()


def test_a_model_needs_a_differential_equation_or_a_subexpression():
    with pytest.raises(nf.EquationError) as info:
        nf.Model("g : siemens (constant)\nE : volt (constant)")
    one_line(info, "no differential equation", "no subexpression")


@pytest.mark.parametrize("backend", BACKENDS)
def test_trace_fitter_fits_refines_and_generates_an_algebraic_model(backend):
    tf = TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=8, backend=backend)  # E_REV: module global
    assert tf.model.namespace_text == {"E_REV": E_REV}
    best, error = tf.fit(NevergradOptimizer("DE", seed=0), MSEMetric(normalization=1e-10), n_rounds=2,
                         callback=None, g=[1e-9, 30e-9])
    assert error == pytest.approx(np.mean(((best["g"] - G_TRUE) * (V - E_REV) / 1e-10) ** 2), rel=1e-10)
    for calc_gradient in (False, True):
        refined, result = tf.refine({"g": 3e-9}, calc_gradient=calc_gradient)
        assert refined["g"] == pytest.approx(G_TRUE, rel=1e-9)
        assert result.objective_errors_normalized["I"] == pytest.approx(0.0, abs=1e-16)
    traces = tf.generate(output_var=["I", "g"], params={"g": 5e-9})
    np.testing.assert_allclose(traces["I"], 5e-9 * (V - E_REV), rtol=1e-14)
    np.testing.assert_array_equal(traces["g"], np.full(V.shape, 5e-9))
    np.testing.assert_allclose(tf.generate_traces(params={"g": G_TRUE}), I_TRUE, rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_online_fitter_compares_a_subexpression_output_as_the_trace_fitter(backend):
    online = OnlineTraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=3, backend=backend)
    offline = TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=3, backend=backend)
    online.metric = offline.metric = MSEMetric(t_start=2e-4, normalization=1e-10)
    candidates = [{"g": 1e-9}, {"g": G_TRUE}, {"g": 20e-9}]
    expected = [np.mean(((c["g"] - G_TRUE) * (V[:, 2:] - E_REV) / 1e-10) ** 2) for c in candidates]
    np.testing.assert_allclose(online._errors(candidates, 0), expected, rtol=1e-12, atol=1e-20)
    np.testing.assert_allclose(offline._errors(candidates, 0), expected, rtol=1e-12, atol=1e-20)


# --- constants from the caller's namespace ------------------------------------------------------------------

def _ohmic_fitter(**kw):
    return TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=2, backend="numpy", **kw)


def test_constants_come_from_the_calling_scope_locals_first():
    E_REV = 30e-3  # noqa: N806 - shadows the module's 40 mV, as Brian2's get_local_namespace (locals first)
    tf = TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=2, backend="numpy")
    assert tf.model.namespace_text == {"E_REV": E_REV}
    np.testing.assert_allclose(tf.generate_traces(params={"g": 1e-9}), 1e-9 * (V - 0.03), rtol=1e-14)
    # an explicit namespace is used alone
    assert _ohmic_fitter(namespace={"E_REV": "10 mV"}).model.namespace_text == {"E_REV": "10 mV"}


def test_level_looks_further_up():
    E_REV = np.float64(20e-3)  # noqa: N806 - a numpy scalar is a number too
    assert _ohmic_fitter().model.namespace_text == {"E_REV": 40e-3}  # _ohmic_fitter's caller: the module
    assert _ohmic_fitter(level=1).model.namespace_text == {"E_REV": E_REV}  # one frame further: this function
    assert OnlineTraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=2).model.namespace_text == \
        {"E_REV": E_REV}


@pytest.mark.parametrize("value", ["40 mV", len, np, np.array([0.04]), True])
def test_a_constant_that_is_not_a_number_is_refused(value):
    E_REV = value  # noqa: N806, F841 - read by the constructor from this scope
    with pytest.raises(nf.EquationError) as info:
        TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=2)
    one_line(info, "'E_REV'", "namespace=")


def _ohmic_inferencer(**kw):
    return nf.Inferencer(1e-4, OHMIC, {"v": V}, {"I": I_TRUE}, features={"I": ["v_mean"]}, backend="numpy", **kw)


def test_the_inferencer_reads_constants_from_the_calling_scope():
    """As the fitters (b2mf's Inferencer takes E from its test module): locals first, level= one frame further,
    an explicit namespace alone; the simulated I is g*(v - E_REV) with the E_REV found (closed form)."""
    E_REV = 30e-3  # noqa: N806 - shadows the module's 40 mV
    inferencer = nf.Inferencer(1e-4, OHMIC, {"v": V}, {"I": I_TRUE}, features={"I": ["v_mean"]}, backend="numpy")
    assert inferencer.model.namespace_text == {"E_REV": E_REV}
    assert _ohmic_inferencer().model.namespace_text == {"E_REV": 40e-3}  # _ohmic_inferencer's caller: the module
    assert _ohmic_inferencer(level=1).model.namespace_text == {"E_REV": E_REV}  # this function
    assert _ohmic_inferencer(namespace={"E_REV": "10 mV"}).model.namespace_text == {"E_REV": "10 mV"}
    result = nf.simulate(inferencer.model, {"g": 1e-9}, {"v": V}, 1e-4, record="I", backend="numpy")
    np.testing.assert_allclose(result.traces["I"][0], 1e-9 * (V - 0.03), rtol=1e-14)


def test_the_inferencer_refuses_a_constant_that_is_not_a_number():
    E_REV = "40 mV"  # noqa: N806, F841 - read by the constructor from this scope
    with pytest.raises(nf.EquationError) as info:
        nf.Inferencer(1e-4, OHMIC, {"v": V}, {"I": I_TRUE}, features={"I": ["v_mean"]})
    one_line(info, "'E_REV'", "namespace=")


def test_a_name_found_nowhere_is_an_unknown_identifier():
    with pytest.raises(nf.EquationError) as info:
        TraceFitter(OHMIC.replace("E_REV", "E_NOWHERE"), {"v": V}, {"I": I_TRUE}, 1e-4)
    one_line(info, "unknown identifier 'E_NOWHERE'")


def test_external_names_skip_declared_names_units_functions_and_noise():
    text = "dv/dt = (El - v)/tau + sigma*xi/sqrt(ms) + exp(-t/tau_x)*mV/ms : volt\nEl : volt\nsigma : volt"
    assert external_names(text, threshold="v > Vt", reset="v = Vr\nw += b", expressions=["-70 mV", "El + dV"]) == \
        ["tau", "tau_x", "Vt", "Vr", "b", "dV"]


# --- exponential Euler as Brian2's ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_exponential_euler_on_adex_is_brian2s_conditionally_linear_update(backend):
    """Brian2 collects AdEx's dv/dt in v: A = -gl/C, B = the rest (the exp term at the step's start); each step
    is (x + B/A)*exp(A*dt) - B/A (Brian2's formula), dw/dt likewise with A = -1/tau_w."""
    model = models.get("adex", threshold=None, reset=None)
    p, dt, n = models.SPECS["adex"].defaults, 5e-5, 250
    current = np.full((1, n), 0.9e-9)
    res = nf.simulate(model, p, {"I": current}, dt, init={"v": -60e-3, "w": 0.1e-9}, record=("v", "w"),
                      method="exponential_euler", backend=backend)
    v, w = -60e-3, 0.1e-9
    expected = []
    for k in range(n):
        expected.append((v, w))
        a_v = -p["gl"] / p["C"]
        b_v = (p["gl"] * p["El"] + p["gl"] * p["DeltaT"] * np.exp((v - p["VT"]) / p["DeltaT"]) - w + current[0, k]) \
            / p["C"]
        a_w, b_w = -1 / p["tau_w"], p["a"] * (v - p["El"]) / p["tau_w"]
        v, w = (v + b_v / a_v) * np.exp(a_v * dt) - b_v / a_v, (w + b_w / a_w) * np.exp(a_w * dt) - b_w / a_w
    expected = np.array(expected)
    assert -43e-3 > expected[-1, 0] > -45e-3  # on the exponential upswing
    np.testing.assert_allclose(res.traces["v"][0, 0], expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(res.traces["w"][0, 0], expected[:, 1], rtol=1e-10)


def test_exponential_euler_on_the_rate_model_treats_f_as_b():
    """dr/dt = (-r + F(w r + I))/tau: A = -1/tau, B = F/tau evaluated at the step's start."""
    model = models.get("rate")
    p, dt = {**models.SPECS["rate"].defaults, "w": 5.0}, 1e-4
    drive = np.concatenate([np.zeros(20), np.full(80, 3.0)])[None, :]
    res = nf.simulate(model, p, {"I_ext": drive}, dt, init={"r": 0.2}, record="r", method="exponential_euler",
                      backend="numpy")
    r, expected = 0.2, []
    for k in range(drive.shape[1]):
        expected.append(r)
        f = 1 / (1 + np.exp(-p["a"] * (p["w"] * r + drive[0, k] - p["theta"]))) - 1 / (1 + np.exp(p["a"] * p["theta"]))
        a, b = -1 / p["tau"], f / p["tau"]
        r = (r + b / a) * np.exp(a * dt) - b / a
    np.testing.assert_allclose(res.traces["r"][0, 0], expected, rtol=1e-12)


@pytest.mark.parametrize("equations,line", [
    (models.SPECS["izhikevich"].equations(), "dv/dt"),  # a v**2 term: Brian2 finds {v**2, v, 1}
    ("dx/dt = exp(x)/second : 1", "dx/dt"),  # no term linear in x: Brian2 finds {1} only
])
def test_exponential_euler_refuses_what_brian2_refuses(equations, line):
    model = nf.Model(equations)
    params = {name: 1.0 for name in model.parameters}
    inputs = {name: np.zeros((1, 3)) for name in model.inputs}
    with pytest.raises(nf.SimulationError) as info:
        nf.simulate(model, params, inputs, 1e-4, n_steps=None if inputs else 3, record=(),
                    method="exponential_euler", backend="numpy")
    one_line(info, line, "line", "exponential_euler", "'euler'", "'rk4'")


def test_the_default_method_is_unchanged_for_conditionally_linear_models():
    """method=None keeps euler for AdEx (Brian2 would take exponential_euler): earlier fits keep their numbers."""
    model = models.get("adex", threshold=None, reset=None)
    res = nf.simulate(model, models.SPECS["adex"].defaults, {"I": np.zeros((1, 3))}, 1e-4,
                      init=models.SPECS["adex"].init, backend="numpy")
    assert res.method == "euler"
    assert nf.simulate(models.get("passive"), models.SPECS["passive"].defaults, {"I": np.zeros((1, 3))}, 1e-4,
                       backend="numpy").method == "exponential_euler"


# --- the constructors' b2mf spellings and checks ---------------------------------------------------------------

def test_b2mf_attributes():
    tf = TraceFitter(OHMIC, {"v": V}, {"I": I_TRUE}, 1e-4, n_samples=2, threshold="I > 1*amp", refractory="1 ms")
    assert (tf.duration, tf.output_var, tf.threshold, tf.reset, tf.refractory) == \
        (pytest.approx(5e-4), ["I"], "I > 1*amp", None, "1 ms")
    assert tf.best_objective_errors is None and tf.best_objective_errors_normalized is None


def test_legacy_outputs_as_a_list_with_their_names():
    v2 = """
    v = c + x : volt
    v2 = 2*c + x : volt
    c : volt (constant)
    """
    x = np.zeros((1, 4))
    with pytest.warns(DeprecationWarning):
        tf = TraceFitter(v2, x, [x + 0.01, x + 0.02], 1e-4, input_var="x", output_var=["v", "v2"], n_samples=2)
    assert tf.output_var == ["v", "v2"]
    np.testing.assert_array_equal(tf.output["v2"], x + 0.02)
    with pytest.warns(DeprecationWarning), pytest.raises(FitError) as info:
        TraceFitter(v2, {"x": x}, {"v": x}, 1e-4, input_var="I")
    one_line(info, "input_var='I'", "x")
    with pytest.warns(DeprecationWarning), pytest.raises(FitError) as info:
        TraceFitter(v2, {"x": x}, {"v": x}, 1e-4, output_var=["v", "v2"])
    one_line(info, "output_var", "v")
    with pytest.raises(FitTypeError) as info:
        TraceFitter(v2, x, {"v": x}, 1e-4)
    one_line(info, "input must be a dict", "input_var")


def test_an_output_that_is_not_a_model_variable_is_refused_at_construction():
    with pytest.raises(FitError) as info:
        TraceFitter(OHMIC, {"v": V}, {"g": I_TRUE}, 1e-4)
    one_line(info, "output: g not a variable of the model", "I")


def test_spike_fitter_takes_b2mfs_positional_order():
    eqs = "dv/dt = (R*I - v)/(0.01*ms) : volt\nR : ohm (constant)"
    current = np.full((1, 200), 2e-8)
    with pytest.warns(DeprecationWarning):
        sf = SpikeFitter(eqs, current, [np.array([5e-3])], 1e-4, "v = 0*mV", "v > 10*mV", refractory="1 ms",
                         param_init={"v": 0.0})
    assert (list(sf.input), sf.reset, sf.threshold, sf.refractory, sf.output_var) == \
        (["I"], "v = 0*mV", "v > 10*mV", "1 ms", ["spikes"])
    # v -> R*I = 20 mV within every step (tau = 10 us, dt = 0.1 ms): a spike in each step that is not refractory,
    # at t = 0 (the step's start, as Brian2) and then every 1 ms
    spikes = sf.generate_spikes(params={"R": 1e6})
    np.testing.assert_allclose(spikes[0], np.arange(20) * 1e-3, rtol=0, atol=1e-12)


# --- per-output errors -----------------------------------------------------------------------------------------

def test_per_output_errors_are_booked_and_survive_a_checkpoint(tmp_path):
    eqs = """
    v = c + x : volt
    v2 = 2*c + x : volt
    c : volt (constant)
    """
    x = np.zeros((1, 10))
    data = {"v": x + 0.01, "v2": x + 0.03}
    metric = {"v": MSEMetric(), "v2": MSEMetric(normalization=1e-3)}

    def fitter():
        return TraceFitter(eqs, {"x": x}, data, 1e-4, n_samples=4, backend="numpy")

    tf = fitter()
    seen = []
    tf.fit(NevergradOptimizer("DE", seed=3), metric, n_rounds=2, callback=lambda *args: seen.append(args[-1]),
           checkpoint=str(tmp_path / "fit.json"), c=[0.0, 0.04])
    rows = tf.results("list")
    for row in rows:
        c = row["c"]
        assert row["objective_errors"] == pytest.approx({"v": (c - 0.01) ** 2, "v2": (2 * c - 0.03) ** 2}, rel=1e-12)
        assert row["objective_errors_normalized"] == pytest.approx({"v": (c - 0.01) ** 2, "v2": (2 * c - 0.03) ** 2
                                                                    / 1e-6}, rel=1e-12)
        assert row["error"] == pytest.approx(sum(row["objective_errors_normalized"].values()), rel=1e-12)
    best = min(rows, key=lambda r: r["error"])
    assert tf.best_objective_errors == pytest.approx(best["objective_errors"], rel=1e-12)
    assert seen[-1]["objective_errors"] == pytest.approx(tuple(best["objective_errors"].values()), rel=1e-12)
    assert seen[-1]["output_var"] == ["v", "v2"]
    frame = tf.results("dataframe")
    assert list(frame.columns) == ["c", "error", "round", "normalized_error_v", "normalized_error_v2", "error_v",
                                   "error_v2"]
    np.testing.assert_allclose(tf.results("dict")["objective_errors"]["v2"], frame["error_v2"], rtol=0)
    # a killed run resumed from its checkpoint books the same per-output errors
    resumed = fitter()
    resumed.fit(NevergradOptimizer("DE", seed=3), metric, n_rounds=2, callback=None,
                checkpoint=str(tmp_path / "fit.json"), c=[0.0, 0.04])
    assert resumed.results("list") == rows
    assert resumed.best_objective_errors_normalized == tf.best_objective_errors_normalized


def test_refine_needs_bounds_when_there_was_no_fit():
    with pytest.raises(FitTypeError) as info:
        _ohmic_fitter().refine({"g": 5e-9})
    one_line(info, "no bounds for g", "g=[low, high]")
