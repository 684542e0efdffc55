"""Bad input gets ONE clear line naming the culprit (and, where it helps, what would be valid)."""
import numpy as np
import pytest

import neurofit as nf
from neurofit import models

LIF = """
dv/dt = (El - v)/tau + I/C : volt
tau : second (constant)
C : farad (constant)
"""
NS = {"El": "-70 mV"}
PARAMS = {"tau": "10 ms", "C": "200 pF"}


# --- helpers -----------------------------------------------------------------------------------

def one_line_error(func, *fragments, error=ValueError) -> str:
    """Call func; it must raise ``error`` whose message is one line containing every fragment."""
    with pytest.raises(error) as info:
        func()
    message = str(info.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"multi-line message: {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def lif_model():
    return nf.Model(LIF, namespace=NS)


def run_lif(**overrides):
    kwargs = dict(params=PARAMS, inputs={"I": np.zeros((2, 50))}, dt=1e-4, init={"v": -0.07}, backend="numpy")
    kwargs.update(overrides)
    return nf.simulate(lif_model(), **kwargs)


# --- equations ---------------------------------------------------------------------------------

def test_syntax_error_shows_the_line():
    text = LIF + "dw/dt = (v - w/tau : volt\n"
    message = one_line_error(lambda: nf.Model(text, namespace=NS), "line 5", "dw/dt = (v - w/tau : volt",
                             "syntax error", error=nf.EquationError)
    assert message.startswith("equations line 5")


def test_syntax_error_in_continued_equation_names_its_first_line():
    text = "dv/dt = (El - v)/tau +\n   * I/C : volt\ntau : second (constant)\nC : farad (constant)\n"
    one_line_error(lambda: nf.Model(text, namespace=NS), "line 1", "syntax error", error=nf.EquationError)


def test_missing_unit_and_not_an_equation():
    # a line without ': unit' continues onto the next one: the joined text is shown with its first line
    one_line_error(lambda: nf.Model("dv/dt = -v/tau\ntau : second (constant)"), "line 1", "-v/tau tau",
                   "syntax error", error=nf.EquationError)
    one_line_error(lambda: nf.Model("tau : second (constant)\ndv/dt = -v/tau"), "line 2", "missing ': unit'",
                   error=nf.EquationError)
    one_line_error(lambda: nf.Model("dv/dt = -v/tau : volt\n3 + tau : second"), "line 2", "not an equation",
                   error=nf.EquationError)


def test_unknown_identifier():
    text = LIF.replace("I/C", "I/C + g_foo*v/C")
    one_line_error(lambda: nf.Model(text, namespace=NS), "unknown identifier 'g_foo'", "line 2",
                   "g_foo : <unit> (constant)", error=nf.EquationError)


def test_unknown_function():
    text = LIF.replace("(El - v)/tau", "expo((El - v)/(10*mV))*mV/tau")
    one_line_error(lambda: nf.Model(text, namespace=NS), "unknown function 'expo'", "line 2", error=nf.EquationError)


def test_dimension_mismatch_names_the_derivative():
    text = LIF.replace("(El - v)/tau", "(El - v)")
    one_line_error(lambda: nf.Model(text, namespace=NS), "dimension mismatch", "dv/dt", "line 2",
                   error=nf.EquationError)


def test_dimension_mismatch_in_a_sum():
    text = LIF.replace("(El - v)/tau", "(El - tau)/tau")
    one_line_error(lambda: nf.Model(text, namespace=NS), "dimension mismatch", "El - tau", "line 2",
                   error=nf.EquationError)


def test_dimension_mismatch_in_subexpression_names_it():
    text = LIF + "g_syn = v/tau : siemens\n"
    one_line_error(lambda: nf.Model(text, namespace=NS), "dimension mismatch", "g_syn", "line 5",
                   error=nf.EquationError)


def test_exp_of_a_quantity_with_units():
    text = LIF.replace("(El - v)/tau", "exp(v)*mV/tau")
    one_line_error(lambda: nf.Model(text, namespace=NS), "exp", "dimensionless", "volt", error=nf.EquationError)


def test_unknown_unit_in_equation():
    text = LIF.replace(": volt", ": volts")
    one_line_error(lambda: nf.Model(text, namespace=NS), "unknown unit 'volts'", "line 2", error=nf.EquationError)


def test_unknown_unit_in_namespace_and_quantity():
    one_line_error(lambda: nf.Model(LIF, namespace={"El": "-70 mVolt"}), "namespace['El']", "unknown unit 'mVolt'",
                   error=nf.EquationError)
    one_line_error(lambda: nf.to_si("3 parsec"), "unknown unit 'parsec'", "mV", error=nf.UnitError)
    one_line_error(lambda: run_lif(params={"tau": "10 msec", "C": "200 pF"}), "unknown unit 'msec'",
                   error=nf.SimulationError)


def test_unknown_flag_and_duplicate_definition():
    one_line_error(lambda: nf.Model(LIF.replace("(constant)", "(constnt)", 1), namespace=NS), "unknown flag",
                   "constnt", "line 3", error=nf.EquationError)
    one_line_error(lambda: nf.Model(LIF + "tau : second\n", namespace=NS), "'tau' is already defined on line 3",
                   error=nf.EquationError)


def test_events_errors():
    model = lambda **kw: nf.Model(LIF, namespace=NS, **kw)  # noqa: E731
    one_line_error(lambda: model(threshold="v + 1*mV"), "threshold", "condition", error=nf.EquationError)
    one_line_error(lambda: model(threshold="v > -50*mV", reset="w = 0*mV"), "reset line 1", "'w'",
                   "not a state variable", error=nf.EquationError)
    one_line_error(lambda: model(threshold="v > -50*mV", reset="v = -70*mV\nv += 3*nA"), "reset line 2",
                   "dimension mismatch", error=nf.EquationError)
    one_line_error(lambda: model(threshold="v > -50*mV", refractory="2*mV"), "refractory '2*mV'", "duration",
                   error=nf.EquationError)
    one_line_error(lambda: model(reset="v = -70*mV"), "without a threshold", error=nf.EquationError)


# --- simulate arguments -----------------------------------------------------------------------

def test_missing_input_variable():
    one_line_error(lambda: run_lif(inputs={}), "missing input variable", "I", error=nf.SimulationError)


def test_input_not_used_by_the_model():
    one_line_error(lambda: run_lif(inputs={"I": np.zeros((2, 50)), "I_syn": np.zeros((2, 50))}), "I_syn",
                   "not used by the model", error=nf.SimulationError)


def test_input_shape_mismatch():
    one_line_error(lambda: run_lif(inputs={"I": np.zeros((2, 3, 50))}), "inputs['I']", "(2, 3, 50)",
                   "(n_traces, n_steps)", error=nf.SimulationError)
    model = nf.Model(LIF.replace("I/C", "(I + J)/C"), namespace=NS, inputs=["I", "J"])
    one_line_error(lambda: nf.simulate(model, PARAMS, {"I": np.zeros((2, 50)), "J": np.zeros((2, 40))}, dt=1e-4,
                                       backend="numpy"), "different shapes", "(2, 40)", error=nf.SimulationError)


def test_nan_in_inputs():
    I = np.zeros((2, 50))
    I[1, 7] = np.nan
    one_line_error(lambda: run_lif(inputs={"I": I}), "inputs['I']", "NaN", error=nf.SimulationError)
    I[1, 7] = np.inf
    one_line_error(lambda: run_lif(inputs={"I": I}), "inputs['I']", "inf", error=nf.SimulationError)


@pytest.mark.parametrize("dt", [-1e-4, 0.0, "-0.1 ms", float("nan")])
def test_negative_or_zero_dt(dt):
    one_line_error(lambda: run_lif(dt=dt), "dt", "positive", error=nf.SimulationError)


def test_dt_with_wrong_unit():
    one_line_error(lambda: run_lif(dt="0.1 mV"), "dt", "second", error=nf.SimulationError)


def test_unknown_parameter():
    one_line_error(lambda: run_lif(params={**PARAMS, "g_kd": 1e-6}), "unknown parameter", "g_kd",
                   "model parameters: tau, C", error=nf.SimulationError)


def test_missing_parameter():
    one_line_error(lambda: run_lif(params={"tau": 0.01}), "missing value", "C", error=nf.SimulationError)


def test_parameter_arrays_of_different_lengths_and_wrong_units():
    one_line_error(lambda: run_lif(params={"tau": [0.01, 0.02], "C": [1e-10, 2e-10, 3e-10]}), "different lengths",
                   error=nf.SimulationError)
    one_line_error(lambda: run_lif(params={"tau": "10 mV", "C": "200 pF"}), "params['tau']", "expected second",
                   error=nf.SimulationError)


def test_unknown_record_variable():
    one_line_error(lambda: run_lif(record=("v", "w")), "record", "w", "recordable: v", error=nf.SimulationError)


def test_unknown_init_variable_and_bad_init_shape():
    one_line_error(lambda: run_lif(init={"v": -0.07, "u": 0.0}), "init", "u", "states: v", error=nf.SimulationError)
    one_line_error(lambda: run_lif(init={"v": np.zeros((3, 4))}), "init['v']", "(3, 4)", error=nf.SimulationError)


@pytest.mark.parametrize("method", ["rk45", "Euler", "heun"])
def test_unknown_method(method):
    one_line_error(lambda: run_lif(method=method), f"'{method}'", "valid:", "rk4", error=nf.SimulationError)


@pytest.mark.parametrize("backend", ["cuda", "C", ""])
def test_unknown_backend(backend):
    one_line_error(lambda: run_lif(backend=backend), f"backend='{backend}'", "numpy", error=nf.SimulationError)


def test_unknown_dtype():
    one_line_error(lambda: run_lif(dtype="float16"), "dtype='float16'", "float32", error=nf.SimulationError)


def test_spikes_without_threshold_and_noise_without_seed():
    one_line_error(lambda: run_lif(spikes=True), "spikes=True", "threshold", error=nf.SimulationError)
    noisy = nf.Model("dv/dt = (El - v)/tau + sigma*xi*tau**-0.5 : volt\nsigma : volt (constant)",
                     namespace={"El": "-60 mV", "tau": "10 ms"})
    one_line_error(lambda: nf.simulate(noisy, {"sigma": 1e-3}, {}, dt=1e-4, n_steps=10, backend="numpy"), "seed",
                   "xi", error=nf.SimulationError)
    one_line_error(lambda: nf.simulate(noisy, {"sigma": 1e-3}, {}, dt=1e-4, n_steps=10, seed=1, method="rk4",
                                       backend="numpy"), "rk4", "xi", error=nf.SimulationError)


def test_targets_shape_and_variable():
    one_line_error(lambda: run_lif(targets={"v": np.zeros((2, 49))}), "targets['v']", "(2, 49)", "(2, 50)",
                   error=nf.SimulationError)
    one_line_error(lambda: run_lif(targets={"w": np.zeros((2, 50))}), "targets", "w", error=nf.SimulationError)


def test_nonlinear_model_with_exponential_euler():
    one_line_error(lambda: nf.simulate(models.get("izhikevich"), models.SPECS["izhikevich"].defaults,
                                       {"I": np.zeros((1, 5))}, dt=1e-5, method="exponential_euler",
                                       backend="numpy"),
                   "exponential_euler", "dv/dt", "rk4")


def test_unknown_builtin_model():
    with pytest.raises(KeyError) as info:
        models.get("hh_trub")
    assert "hh_trub" in str(info.value) and "hh_traub" in str(info.value)
