"""Item 1: units as Brian2 users write them. ``from brian2 import nS, mV, ms`` becomes
``from neurofit.units import nS, mV, ms``: SI floats, equal to what neurofit reads from quantity strings."""
import math

import numpy as np
import pytest

import neurofit.units as units
from neurofit import GammaFactor, MSEMetric, NevergradOptimizer, TraceFitter
from neurofit.units import (
    BRIAN_UNIT_NAMES,
    Gohm,
    Hz,
    Mohm,
    amp,
    cm,
    cm2,
    farad,
    kHz,
    kohm,
    metre,
    mM,
    mS,
    ms,
    mV,
    nA,
    nF,
    nS,
    ohm,
    pA,
    pF,
    pS,
    second,
    siemens,
    to_si,
    uA,
    uF,
    ufarad,
    um,
    umetre,
    uS,
    us,
    uV,
    volt,
)

#: What neurofit.units exported before the Brian2 names were added (tests/test_units_equations.py and
#: the modules importing it use these); none of them may be shadowed.
EARLIER_NAMES = {"CAPACITANCE", "CHARGE", "CONCENTRATION", "CONDUCTANCE", "CURRENT", "DIMENSIONLESS", "Dimension",
                 "FREQUENCY", "LENGTH", "MASS", "MAX_EXPONENT", "MAX_LITERAL_DIGITS", "MAX_TEXT_LENGTH", "NeurofitError",
                 "RESISTANCE", "TIME", "UNITS", "UnitError", "VOLTAGE", "exponent_too_large", "literal_too_large",
                 "parse_quantity", "parse_unit", "shorten", "to_si", "too_long", "unit_value"}


def test_examples_of_the_brief():
    assert 10*nS == 1e-08
    assert -65*mV == -0.065
    assert 1*ms == 0.001


@pytest.mark.parametrize("name", BRIAN_UNIT_NAMES)
def test_constant_equals_quantity_string(name):
    """Every constant is the SI value neurofit reads for '1 <name>' (and '10*<name>')."""
    value = getattr(units, name)
    assert isinstance(value, float)
    assert value == to_si(f"1 {name}")
    assert math.isclose(10*value, to_si(f"10*{name}"), rel_tol=1e-15)


@pytest.mark.parametrize("expr, text", [
    (10*nS, "10 nS"), (-65*mV, "-65 mV"), (0.01*ms, "0.01 ms"), (200*pF, "200 pF"), (0.5*nA, "0.5 nA"),
    (3*uA, "3 uA"), (1*uF, "1 uF"), (2*nF, "2 nF"), (5*mS, "5 mS"), (7*uS, "7 uS"), (40*pS, "40 pS"),
    (1*kohm, "1 kohm"), (100*Mohm, "100 Mohm"), (2*Gohm, "2 Gohm"), (3*ohm, "3 ohm"), (10*us, "10 us"),
    (5*Hz, "5 Hz"), (2*kHz, "2 kHz"), (1*cm, "1 cm"), (20*um, "20 um"), (1*cm2, "1 cm**2"), (1*mM, "1 mM"),
    (4*uV, "4 uV"), (1*ufarad*cm**-2 * 20000*umetre**2, "1*ufarad*cm**-2 * 20000*umetre**2"),
    (5e-5*siemens/cm**2 * 20000*umetre**2, "5e-5*siemens/cm**2 * 20000*umetre**2"),
    (1*volt, "1 volt"), (1*amp, "1 amp"), (1*second, "1 second"), (1*farad, "1 farad"), (1*metre, "1 metre"),
])
def test_brian_expressions(expr, text):
    """Expressions as b2mf scripts write them (the TraceFitter tutorial's area and Cm among them)."""
    assert math.isclose(expr, to_si(text), rel_tol=1e-12)


def test_no_clash_with_earlier_names():
    assert not EARLIER_NAMES & set(BRIAN_UNIT_NAMES)
    for name in EARLIER_NAMES:
        assert hasattr(units, name)
    assert units.TIME == units.Dimension((0, 0, 1, 0, 0, 0, 0))
    assert callable(units.to_si) and units.to_si("10 nS") == 1e-08


def test_no_single_letter_names():
    """As in Brian2: no m, s, V, A, S, F, M ... that would shadow a model's gating variable ``m``."""
    assert all(len(name) > 1 for name in BRIAN_UNIT_NAMES)
    for letter in "msVASFMCgK":
        assert not isinstance(getattr(units, letter, None), float)


PASSIVE = """
dv/dt = (gl*(El - v) + I)/C : volt
gl : siemens (constant)
"""


def _passive_fitter(**kw):
    steps = 400
    current = np.zeros((2, steps))
    current[0, 100:300] = 50*pA
    current[1, 100:300] = 100*pA
    dt = kw.pop("dt", 0.05*ms)
    init = kw.pop("param_init", {"v": -65*mV})
    ns = kw.pop("namespace", {"El": -65*mV, "C": 200*pF})
    data = TraceFitter(model=PASSIVE, input={"I": current}, output={"v": np.zeros((2, steps))}, dt=dt,
                       namespace=ns, param_init=init).generate(params={"gl": 10*nS})
    return TraceFitter(model=PASSIVE, input={"I": current}, output={"v": data}, dt=dt, namespace=ns,
                       param_init=init, n_samples=kw.pop("n_samples", 20), **kw)


def test_fitters_take_brian_style_values():
    """TraceFitter(..., dt=0.01*ms), bounds gl=[1*nS, 100*nS] and param_init={"v": -65*mV} work as written."""
    tf = _passive_fitter(dt=0.05*ms, param_init={"v": -65*mV})
    assert tf.dt == 5e-05
    traces = tf.generate(params={"gl": 10*nS})
    assert np.allclose(traces[:, 0], -0.065)
    best, error = tf.fit(n_rounds=4, optimizer=NevergradOptimizer("DE", seed=1), metric=MSEMetric(t_start=1*ms),
                         gl=[1*nS, 100*nS], callback=None)
    assert 1*nS <= best["gl"] <= 100*nS
    assert error >= 0


def test_floats_and_quantity_strings_fit_alike():
    """The same fit written with Brian2-style floats and with quantity strings gives the same numbers."""
    a = _passive_fitter()
    b = _passive_fitter(dt="0.05 ms", param_init={"v": "-65 mV"}, namespace={"El": "-65 mV", "C": "200 pF"})
    assert a.dt == b.dt
    ra = a.fit(n_rounds=2, optimizer=NevergradOptimizer("DE", seed=3), metric=MSEMetric(t_start=1*ms),
               gl=[1*nS, 100*nS], callback=None)
    rb = b.fit(n_rounds=2, optimizer=NevergradOptimizer("DE", seed=3), metric=MSEMetric(t_start="1 ms"),
               gl=["1 nS", "100 nS"], callback=None)
    assert ra == rb


def test_metrics_take_brian_style_values():
    assert MSEMetric(t_start=5*ms).t_start == MSEMetric(t_start="5 ms").t_start
    assert MSEMetric(normalization=1*mV).normalization == 0.001
    gf = GammaFactor(delta=2*ms, time=1*second)
    assert (gf.delta, gf.time) == (0.002, 1.0)
