"""Security: user text (equations, bounds, init, threshold, reset, namespace, quantities) is parsed by the
package's restricted AST readers, never evaluated, and no text can make them hang."""
import numpy as np
import pytest
import sympy

import neurofit as nf
from neurofit import models
from neurofit.equations.expressions import MAX_NUMBER_DIGITS, ExpressionError, Scope, parse_expression
from neurofit.fitting.bounds import BoundsError, parse_bounds
from neurofit.reduction.optneuron import Chunk, Experiment, OptNeuron, ReductionError
from neurofit.units import CONDUCTANCE, MAX_EXPONENT, MAX_TEXT_LENGTH, VOLTAGE, UnitError, parse_quantity, to_si

LIF = "dv/dt = (El - v)/tau + I/C : volt\ntau : second (constant)\nC : farad (constant)"
NS = {"El": "-70 mV"}


def payloads(marker) -> list:
    """Code that writes ``marker`` if it is ever evaluated."""
    return [f"__import__('os').system('touch {marker}') or 1",
            f"().__class__.__bases__[0].__subclasses__()[0]('touch {marker}')",
            f"(lambda x=__import__('os'): x.system('touch {marker}'))()",
            f"[__import__('os').system('touch {marker}') for _ in (1,)][0]",
            f"f'{{__import__(\"os\").system(\"touch {marker}\")}}'",
            f"open('{marker}', 'w')",
            f"exec('open(\"{marker}\", \"w\")')"]


def refused(func, error=ValueError) -> str:
    """func must raise ``error`` with a one-line message."""
    with pytest.raises(error) as info:
        func()
    message = str(info.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "user text was evaluated"


# --- (a) bounds expressions ---------------------------------------------------------------------

@pytest.mark.parametrize("index", range(7))
def test_bounds_expression_payloads_are_refused(marker, index):
    payload = payloads(marker)[index]
    message = refused(lambda: parse_bounds({"gl": [1e-9, 5e-9], "a": payload}, ["gl", "a"], allow_expressions=True),
                      BoundsError)
    assert message.startswith("bounds['a'] = ") and "expression of other parameters" in message


@pytest.mark.parametrize("payload, why", [
    ("__import__('os').getcwd()", "a call of something other than a function name"),
    ("().__class__.__bases__[0].__subclasses__()", "a call of something other than a function name"),
    ("(lambda: 1)()", "a call of something other than a function name"),
    ("gl.real", "attribute access"), ("gl[0]", "a subscript"), ("lambda: gl", "a lambda"),
    ("[gl for gl in (1, 2)][0]", "a subscript"), ("sum(x for x in (gl,))", "unknown function 'sum'"),
    ("f'{gl}'", "an f-string"), ("exp(*gl)", "a starred argument"), ("(x := gl)", "an assignment"),
    ("gl if gl else 1", "a conditional expression"), ("'gl'", "a constant that is not a number"),
    ("__gl", "names starting with '_'"), ("_x + gl", "names starting with '_'"),
    ("__import__", "names starting with '_'"), ("eval(gl)", "unknown function 'eval'"),
    ("exp(gl, base=2)", "keyword arguments"), ("x + gl", "unknown identifier 'x'"),
])
def test_bounds_expressions_name_what_is_not_allowed(payload, why):
    message = refused(lambda: parse_bounds({"gl": [1e-9, 5e-9], "a": payload}, ["gl", "a"], allow_expressions=True),
                      BoundsError)
    assert why in message and "bounds['a']" in message


def test_expressions_are_refused_where_bounds_take_no_expressions(marker):
    refused(lambda: parse_bounds({"gl": [1e-9, 5e-9], "a": payloads(marker)[0]}, ["gl", "a"], allow_fixed=True),
            BoundsError)


# --- (b) model text, events, namespace, init -------------------------------------------------------

@pytest.mark.parametrize("index", range(7))
def test_equation_threshold_reset_namespace_payloads_are_refused(marker, index):
    payload = payloads(marker)[index]
    refused(lambda: nf.Model(LIF.replace("I/C", f"I/C + ({payload})*mV/ms"), namespace=NS), nf.EquationError)
    refused(lambda: nf.Model(LIF, namespace=NS, threshold=payload), nf.EquationError)
    refused(lambda: nf.Model(LIF, namespace=NS, threshold="v > -50*mV", reset=f"v = {payload}"), nf.EquationError)
    refused(lambda: nf.Model(LIF, namespace=NS, threshold="v > -50*mV", refractory=payload), nf.EquationError)
    refused(lambda: nf.Model(LIF, namespace={"El": payload}), nf.EquationError)
    refused(lambda: nf.Model(f"dv/dt = -v/tau : volt\ntau : {payload}"), nf.EquationError)
    refused(lambda: to_si(payload), UnitError)


@pytest.mark.parametrize("index", range(7))
def test_init_expression_payloads_are_refused(marker, index):
    model = nf.Model(LIF, namespace=NS)
    payload = payloads(marker)[index]
    message = refused(lambda: nf.simulate(model, {"tau": 0.01, "C": 2e-10}, {"I": np.zeros((1, 5))}, 1e-4,
                                          init={"v": payload}, backend="numpy"), nf.SimulationError)
    assert message.startswith("init['v'] = ")


def test_model_names_starting_with_underscore_or_keywords_are_refused():
    assert "starting with '_'" in refused(lambda: nf.Model("dv/dt = -v/__x : volt\n__x : second (constant)"),
                                          nf.EquationError)
    assert "reserved" in refused(lambda: nf.Model("dv/dt = -v/tau : volt\nlambda : 1 (constant)\n"
                                                  "tau : second (constant)"), nf.EquationError)


def test_long_unit_text_does_not_backtrack():
    refused(lambda: nf.Model("dv/dt = -v/tau : a" + " " * 50_000 + "b (constant)\ntau : second (constant)"),
            nf.EquationError)


# --- (c) model reduction's variables_bounds ------------------------------------------------------

@pytest.mark.parametrize("index", range(7))
def test_optneuron_bounds_payloads_are_refused(marker, index):
    experiment = Experiment([Chunk(inputs={"I": np.full(200, 0.4e-9)})], dt="0.1 ms")
    bounds = {"C": [50e-12, 500e-12], "gl": [2e-9, 50e-9], "El": -70e-3, "VT": -50e-3, "DeltaT": 2e-3,
              "tau_w": 0.1, "b": 0.0, "Vr": -60e-3, "a": payloads(marker)[index]}
    message = refused(lambda: OptNeuron(experiment=experiment, get_loss_function=lambda a, b: 0.0,
                                        variables_bounds=bounds, neuron_model=models.get("adex"),
                                        results_soll=np.zeros(10)), ReductionError)
    assert message.startswith("variables_bounds['a'] = ")


# --- (d) huge numbers fail fast ----------------------------------------------------------------

TINY = ["(1/10**30)**64", "*".join(["10**-30"] * 12), "1/" + "/".join(["10**30"] * 12)]  # floats: just 0
HUGE = ["9**9**9", "2**100000", "10**10**10", "((9**9)**9)**9**2", "(((2**64)**64)**64)**64", "2**-100000",
        "9**9.0**9", "1" * 40, "1e400", "-" * 9000 + "1", "1" + "+1" * 4000, "(" * 300 + "1" + ")" * 300,
        "1*" * (MAX_TEXT_LENGTH // 2) + "1", "*".join(["10**30"] * 12), "0x" + "f" * 5000]


@pytest.mark.parametrize("text", HUGE + TINY)
def test_huge_numbers_are_refused_in_bounds(text):
    refused(lambda: parse_bounds({"gl": [1e-9, 5e-9], "a": text}, ["gl", "a"], allow_expressions=True), BoundsError)


@pytest.mark.parametrize("text", HUGE + TINY)
def test_huge_numbers_are_refused_in_equations(text):
    refused(lambda: nf.Model(LIF.replace("I/C", f"I/C + ({text})*mV/ms"), namespace=NS), nf.EquationError)


@pytest.mark.parametrize("text", HUGE + ["(-8)**0.5*mV", "0**-1*mV", "1/0*mV", "(1e300)**2*mV", "1e308*10*mV"])
def test_huge_or_invalid_numbers_are_refused_in_quantities(text):
    refused(lambda: parse_quantity(text), UnitError)
    refused(lambda: nf.Model(LIF, namespace={"El": text}), nf.EquationError)


def test_limits_are_named_in_the_messages():
    scope = Scope({}, {})
    assert f"at most {MAX_EXPONENT}" in refused(lambda: parse_expression("9**9**9", scope), ExpressionError)
    assert f"1e{MAX_NUMBER_DIGITS}" in refused(lambda: parse_expression("(2**64)**64", scope), ExpressionError)
    assert "30 digits" in refused(lambda: parse_expression("1" * 31, scope), ExpressionError)
    assert f"{MAX_TEXT_LENGTH} characters" in refused(lambda: parse_expression("1" * (MAX_TEXT_LENGTH + 1), scope),
                                                      ExpressionError)
    assert f"at most {MAX_EXPONENT}" in refused(lambda: parse_quantity("2**65*mV"), UnitError)


# --- legitimate expressions still work -------------------------------------------------------------

def test_bounds_expression_ties_a_parameter():
    space = parse_bounds({"gl": [2e-9, 50e-9], "a": "2*gl", "Vr": "El + 0.005", "El": "-70 mV", "b": "2e-3*gl/nS"},
                         ["gl", "a", "Vr", "El", "b"], allow_fixed=True, allow_expressions=True)
    gl, el = sympy.Symbol("gl", real=True), sympy.Symbol("El", real=True)
    assert space.expressions["a"] == 2 * gl
    assert float(space.expressions["Vr"].subs(el, -0.07)) == pytest.approx(-0.065)
    assert float(space.expressions["b"].subs(gl, 3e-9)) == pytest.approx(6e-3)
    assert space.fixed == {"El": pytest.approx(-0.07)}


def test_bounds_expression_in_wrong_units_names_them():
    dimensions = {"gl": CONDUCTANCE, "a": CONDUCTANCE}
    for text in ("5*mV", "5 mV", "gl*mV/mV + 5*mV*nS/nS"):
        message = refused(lambda text=text: parse_bounds({"gl": [2e-9, 50e-9], "a": text}, ["gl", "a"], allow_expressions=True,
                                               dimensions=dimensions), BoundsError)
        assert "has units of volt" in message and "bounds['a']" in message


def test_optneuron_evaluates_a_tied_parameter():
    model = nf.Model("dr/dt = (a*I_in + b - r)/tau : 1\na : 1 (constant)\nb : 1 (constant)",
                     namespace={"tau": "1 ms"}, inputs=["I_in"])
    experiment = Experiment([Chunk({"I_in": np.full(50, 1.0)}, record=("r",))], dt="0.1 ms")
    opt = OptNeuron(experiment, lambda ist, soll: 0.0, {"a": [1, 3], "b": "exprel(a)*a**2*a**-1"}, model,
                    results_soll=[0.0])
    best = opt.run(max_evals=4).best_params
    assert best["b"] == pytest.approx(np.expm1(best["a"]))


@pytest.mark.parametrize("text", ["exp(-v/mV)", "x**2", "x**-1", "(mV**-1)*(13*mV - v)/(exp((13*mV - v)/(4*mV)) - 1)",
                                  "2**64*x", "x**(1/2)", "(-x)**-64", "1e-300*x", "x**0.5**2", "10**30*1e-30*x"])
def test_legitimate_expressions_still_parse(text):
    v, x = sympy.Symbol("v", real=True), sympy.Symbol("x", real=True)
    expr, _ = parse_expression(text, Scope({"v": (v, VOLTAGE), "x": (x, None)}, {}))
    assert expr.free_symbols <= {v, x}


def test_legitimate_model_and_init_expression_still_simulate():
    model = nf.Model("dv/dt = (El - v)/tau + I/C + 0*exp(-v/mV)*(mV**-1)**2*mV**3/ms : volt\n"
                     "tau : second (constant)\nC : farad (constant)", namespace={"El": "-70 mV"},
                     threshold="v > -50*mV", reset="v = El")
    res = nf.simulate(model, {"tau": 0.01, "C": 2e-10}, {"I": np.zeros((1, 3))}, 1e-4,
                      init={"v": "El + 2*mV**2/mV"}, backend="numpy")
    assert res.traces["v"][0, 0, 0] == pytest.approx(-0.068)
    assert parse_quantity("1 uF/cm**2")[0] == pytest.approx(1e-2)
    assert parse_quantity("2**64*mV")[0] == pytest.approx(2.0 ** 64 * 1e-3)
