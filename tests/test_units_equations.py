"""Units, the Brian2 equation syntax (the seed manual's models load unchanged) and safe rate functions."""
import math

import numpy as np
import pytest
import sympy
from scipy.special import exprel as scipy_exprel

import neurofit as nf
from neurofit import models
from neurofit.equations.expressions import exprel, make_rate_functions_safe
from neurofit.units import CAPACITANCE, CONDUCTANCE, RESISTANCE, TIME, VOLTAGE, UnitError, parse_quantity, to_si

MV, MS = 1e-3, 1e-3

# The TraceFitter tutorial's model, as printed in the seed manual (continuation lines, a blank line
# between declarations, the dh/dt line wrapped before 'ms*h').
TRACEFITTER_MODEL = '''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*(13.*mV-v+VT)/
(exp((13.*mV-v+VT)/(4.*mV))-1.)/ms*(1-m)-0.28*(mV**-1)*(v-VT-40.*mV)/
(exp((v-VT-40.*mV)/(5.*mV))-1.)/ms*m : 1

dn/dt = 0.032*(mV**-1)*(15.*mV-v+VT)/
(exp((15.*mV-v+VT)/(5.*mV))-1.)/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1

dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/
ms*h : 1
g_na : siemens (constant)
g_kd : siemens (constant)
gl : siemens (constant)
'''
# its constants, written as in the tutorial (Brian2 unit names)
TRACEFITTER_NAMESPACE = {"area": "20000*umetre**2", "Cm": "1*ufarad*cm**-2 * 20000*umetre**2", "El": "-65*mV",
                         "EK": "-90*mV", "ENa": "50*mV", "VT": "-63*mV"}

# The Inferencer tutorial's model (comments, blank lines inside continued expressions).
INFERENCER_MODEL = '''

# non-linear set of ordinary differential equations
dv/dt = - (g_Na * m ** 3 * h * (v - E_Na)

+ g_K * n ** 4 * (v - E_K)
+ g_l * (v - E_l) - I) / Cm : volt

dm/dt = alpha_m * (1 - m) - beta_m * m : 1
dn/dt = alpha_n * (1 - n) - beta_n * n : 1
dh/dt = alpha_h * (1 - h) - beta_h * h : 1

# time independent rate constants for a channel activation/inactivation
alpha_m = ((-0.32 / mV) * (v - VT - 13.*mV))

/ (exp((-(v - VT - 13.*mV)) / (4.*mV)) - 1) / ms : Hz
beta_m = ((0.28/mV) * (v - VT - 40.*mV))

/ (exp((v - VT - 40.*mV) / (5.*mV)) - 1) / ms : Hz
alpha_h = 0.128 * exp(-(v - VT - 17.*mV) / (18.*mV)) / ms : Hz
beta_h = 4 / (1 + exp((-(v - VT - 40.*mV)) / (5.*mV))) / ms : Hz
alpha_n = ((-0.032/mV) * (v - VT - 15.*mV))

/ (exp((-(v - VT - 15.*mV)) / (5.*mV)) - 1) / ms : Hz
beta_n = 0.5 * exp(-(v - VT - 10.*mV) / (40.*mV)) / ms : Hz

# free parameters
g_Na : siemens (constant)
g_K : siemens (constant)
'''
INFERENCER_NAMESPACE = {"E_Na": "53*mV", "E_K": "-107*mV", "E_l": "-70*mV", "VT": "-60.0*mV", "g_l": "10*nS",
                        "Cm": "200*pF"}
INFERENCER_INIT = {"v": "E_l", "m": "1 / (1 + beta_m / alpha_m)", "h": "1 / (1 + beta_h / alpha_h)",
                   "n": "1 / (1 + beta_n / alpha_n)"}


# --- helpers -----------------------------------------------------------------------------------

def inferencer_rates(v):
    """The Inferencer tutorial's rate functions in plain numpy (SI: v in volts, rates in Hz), written
    with scipy's exprel so that they are defined at the removable singularities too."""
    VT = -60e-3
    x_m, x_b, x_n = -(v - VT - 13 * MV), v - VT - 40 * MV, -(v - VT - 15 * MV)
    return {
        "alpha_m": 0.32 / MV * 4 * MV / scipy_exprel(x_m / (4 * MV)) / MS,
        "beta_m": 0.28 / MV * 5 * MV / scipy_exprel(x_b / (5 * MV)) / MS,
        "alpha_h": 0.128 * np.exp(-(v - VT - 17 * MV) / (18 * MV)) / MS,
        "beta_h": 4 / (1 + np.exp(-(v - VT - 40 * MV) / (5 * MV))) / MS,
        "alpha_n": 0.032 / MV * 5 * MV / scipy_exprel(x_n / (5 * MV)) / MS,
        "beta_n": 0.5 * np.exp(-(v - VT - 10 * MV) / (40 * MV)) / MS,
    }


def traub_gating_derivatives(v, m, n, h, VT=-63e-3):
    """dm/dt, dn/dt, dh/dt of the TraceFitter model, rate functions via scipy's exprel."""
    alpha_m = 0.32 / MV * 4 * MV / scipy_exprel((13 * MV - v + VT) / (4 * MV)) / MS
    beta_m = 0.28 / MV * 5 * MV / scipy_exprel((v - VT - 40 * MV) / (5 * MV)) / MS
    alpha_n = 0.032 / MV * 5 * MV / scipy_exprel((15 * MV - v + VT) / (5 * MV)) / MS
    beta_n = 0.5 * np.exp((10 * MV - v + VT) / (40 * MV)) / MS
    alpha_h = 0.128 * np.exp((17 * MV - v + VT) / (18 * MV)) / MS
    beta_h = 4.0 / (1 + np.exp((40 * MV - v + VT) / (5 * MV))) / MS
    return (alpha_m * (1 - m) - beta_m * m, alpha_n * (1 - n) - beta_n * n, alpha_h * (1 - h) - beta_h * h)


def textbook_traub_rates(v, dtype):
    """alpha_m, beta_m, alpha_n exactly as the tutorial writes them (x/(exp(x/k)-1)), in ``dtype``: NaN at 0/0."""
    f = np.dtype(dtype).type
    v, mV, VT = np.asarray(v, dtype=dtype), f(1e-3), f(-63e-3)
    with np.errstate(all="ignore"):
        x_m, x_b, x_n = f(13) * mV - v + VT, v - VT - f(40) * mV, f(15) * mV - v + VT
        return (f(0.32) / mV * x_m / (np.exp(x_m / (f(4) * mV)) - f(1)),
                f(0.28) / mV * x_b / (np.exp(x_b / (f(5) * mV)) - f(1)),
                f(0.032) / mV * x_n / (np.exp(x_n / (f(5) * mV)) - f(1)))


def one_euler_step(model, params, v, gates, backend, dtype="float64", dt=1e-7):
    """(x1 - x0)/dt for every state after one Euler step from v (array) and gating values, I = 0."""
    n_sets = len(v)
    init = {"v": v, **{g: np.full(n_sets, x) for g, x in gates.items()}}
    result = nf.simulate(model, {p: np.full(n_sets, x) for p, x in params.items()},
                         {"I": np.zeros((1, 2))}, dt=dt, init=init, record=tuple(model.states), method="euler",
                         backend=backend, dtype=dtype)
    return {s: (result.traces[s][:, 0, 1].astype(float) - result.traces[s][:, 0, 0].astype(float)) / dt
            for s in model.states}, result


# --- units ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("10 nS", 1e-8), ("10*nS", 1e-8), ("10 * nS", 1e-8), ("10 nsiemens", 1e-8), ("10*nanosiemens", 1e-8),
    ("1 uF/cm**2", 0.01), ("1*ufarad*cm**-2", 0.01), ("200 pF", 2e-10), ("-65 mV", -0.065), ("-65*mvolt", -0.065),
    ("100 Mohm", 1e8), ("100*Mohm", 1e8), ("2.5 kohm", 2.5e3), ("20000*umetre**2", 2e-8), ("20000 um2", 2e-8),
    ("0.01 ms", 1e-5), ("5 msecond", 5e-3), ("3 nA", 3e-9), ("40 Hz", 40.0), ("1.5 uS", 1.5e-6), ("7", 7.0),
])
def test_quantity_strings_parse_to_si(text, value):
    assert math.isclose(to_si(text), value, rel_tol=1e-12)


def test_quantity_dimensions():
    assert parse_quantity("10 nS")[1] == CONDUCTANCE
    assert parse_quantity("1*ufarad*cm**-2 * 20000*umetre**2") == pytest.approx((2e-10, CAPACITANCE))
    assert parse_quantity("100 Mohm")[1] == RESISTANCE
    assert parse_quantity("-65 mV")[1] == VOLTAGE
    assert parse_quantity("2 ms")[1] == TIME
    # Ohm's law and the membrane time constant come out with the right dimensions
    assert parse_quantity("100*Mohm * 0.2*nA") == pytest.approx((0.02, VOLTAGE))
    assert parse_quantity("200*pF / (10*nS)") == pytest.approx((0.02, TIME))


def test_to_si_checks_dimension_and_accepts_floats():
    assert to_si(0.25) == 0.25
    assert to_si("10 nS", CONDUCTANCE) == pytest.approx(1e-8)
    with pytest.raises(UnitError) as info:
        to_si("10 mV", TIME, name="tau")
    assert "\n" not in str(info.value) and "tau" in str(info.value)
    with pytest.raises(UnitError):
        parse_quantity("10 mV + 2 ms")


# --- the seed manual's models ---------------------------------------------------------------

def test_tracefitter_tutorial_model_loads_unchanged():
    model = nf.Model(TRACEFITTER_MODEL, namespace=TRACEFITTER_NAMESPACE)
    assert model.states == ["v", "m", "n", "h"]
    assert model.parameters == ["g_na", "g_kd", "gl"]
    assert model.inputs == ["I"]
    assert model.constants["Cm"][0] == pytest.approx(200e-12, rel=1e-12)


def test_tracefitter_tutorial_model_equals_builtin_hh_traub():
    """Same numbers as models.get('hh_traub') on a spiking step, to rounding (1e-12 relative)."""
    model = nf.Model(TRACEFITTER_MODEL, namespace=TRACEFITTER_NAMESPACE)
    builtin = models.get("hh_traub")
    I = np.zeros((2, 600))
    I[0, 100:] = 1e-9
    I[1, 50:] = 0.2e-9
    kwargs = dict(params={"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, inputs={"I": I}, dt=1e-5,
                  init={"v": -65e-3, "m": 0, "n": 0, "h": 0}, record=("v", "m"), method="exponential_euler",
                  backend="numpy")
    mine, ref = nf.simulate(model, **kwargs), nf.simulate(builtin, **kwargs)
    assert mine.traces["v"].max() > 20e-3  # the 1 nA step fires
    np.testing.assert_allclose(mine.traces["v"], ref.traces["v"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mine.traces["m"], ref.traces["m"], rtol=1e-12, atol=1e-15)


def test_tracefitter_model_derivatives_match_textbook_formulas():
    """The parsed right-hand sides equal a hand-written numpy version away from the singular points."""
    model = nf.Model(TRACEFITTER_MODEL, namespace=TRACEFITTER_NAMESPACE)
    v = np.linspace(-90e-3, 40e-3, 27)
    gates = {"m": 0.3, "n": 0.4, "h": 0.6}
    derivs, _ = one_euler_step(model, {"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, v, gates, "numpy")
    dm, dn, dh = traub_gating_derivatives(v, 0.3, 0.4, 0.6)
    np.testing.assert_allclose(derivs["m"], dm, rtol=1e-7)
    np.testing.assert_allclose(derivs["n"], dn, rtol=1e-7)
    np.testing.assert_allclose(derivs["h"], dh, rtol=1e-7)
    dv = (10e-9 * (-65e-3 - v) - 20e-6 * 0.3 ** 3 * 0.6 * (v - 50e-3) - 6e-6 * 0.4 ** 4 * (v + 90e-3)) / 200e-12
    np.testing.assert_allclose(derivs["v"], dv, rtol=1e-6)


def test_inferencer_tutorial_model_and_init_expressions():
    model = nf.Model(INFERENCER_MODEL, namespace=INFERENCER_NAMESPACE)
    assert model.states == ["v", "m", "n", "h"]
    assert model.parameters == ["g_Na", "g_K"]
    assert list(model.subexpressions) == ["alpha_m", "beta_m", "alpha_h", "beta_h", "alpha_n", "beta_n"]
    assert model.inputs == ["I"]
    result = nf.simulate(model, {"g_Na": "32 uS", "g_K": "1 uS"}, {"I": np.zeros((1, 3))}, dt="0.01 ms",
                         init=INFERENCER_INIT, record=("v", "m", "n", "h", *model.subexpressions),
                         method="exponential_euler", backend="numpy")
    rates = inferencer_rates(-70e-3)
    assert result.traces["v"][0, 0, 0] == pytest.approx(-70e-3, rel=1e-12)
    for gate in "mnh":
        alpha, beta = rates[f"alpha_{gate}"], rates[f"beta_{gate}"]
        assert result.traces[gate][0, 0, 0] == pytest.approx(1 / (1 + beta / alpha), rel=1e-12)
    for name, value in rates.items():
        assert result.traces[name][0, 0, 0] == pytest.approx(value, rel=1e-10)


def test_inferencer_model_threshold_and_refractory_conditions():
    """threshold='m > 0.5', refractory='m > 0.5' (as the tutorial): one spike per upward crossing of m."""
    model = nf.Model(INFERENCER_MODEL, namespace=INFERENCER_NAMESPACE, threshold="m > 0.5", refractory="m > 0.5")
    assert model.refractory[0] == "condition"
    I = np.zeros((3, 3000))
    I[0, 500:2500] = 0.3e-9
    I[1, 500:2500] = 1e-9
    result = nf.simulate(model, {"g_Na": "32 uS", "g_K": "1 uS"}, {"I": I}, dt="0.01 ms", init=INFERENCER_INIT,
                         record=("m",), spikes=True, method="exponential_euler", backend="numpy")
    m = result.traces["m"][0]  # m at the start of each step
    for j in range(3):
        # spike at step k: the updated m (record k+1) crossed 0.5 while m at step k was not above it
        crossings = np.nonzero((m[j, 1:] > 0.5) & (m[j, :-1] <= 0.5))[0] * 1e-5
        np.testing.assert_allclose(result.spikes[0][j], crossings, atol=1e-12)
    assert result.spike_counts[0, 2] == 0 and result.spike_counts[0, 0] >= 1 and result.spike_counts[0, 1] >= 2


# --- syntax features -----------------------------------------------------------------------

LIF_TEXT = """
# leaky integrate-and-fire with a spike counter
dv/dt = (El - v + R*I)/tau : volt (unless refractory)   # frozen while refractory
dc/dt = 0/second : 1                                    # counts resets
R : ohm (constant)
tau : second (constant)
"""
LIF_RESET = """
v = Vr   # back to reset
# a comment line inside the reset code
c += 1
"""


def lif_run(refractory, I=0.4e-9, n_steps=10000, dt=1e-5):
    model = nf.Model(LIF_TEXT, namespace={"El": "-70 mV", "Vt": "-50 mV", "Vr": "-75 mV"}, threshold="v > Vt",
                     reset=LIF_RESET, refractory=refractory)
    return nf.simulate(model, {"R": "100 Mohm", "tau": "10 ms"}, {"I": np.full((1, n_steps), I)}, dt=dt,
                       init={"v": "-70 mV"}, record=("v", "c"), spikes=True, method="exponential_euler",
                       backend="numpy")


def test_refractory_duration_unless_refractory_and_multiline_reset():
    dt, ref, tau = 1e-5, 5e-3, 10e-3
    result = lif_run("5*ms")
    spikes = result.spikes[0][0]
    v_inf = -70e-3 + 100e6 * 0.4e-9  # -30 mV
    # exact (exponential Euler is exact for this linear equation): first crossing from -70 mV,
    # then refractory + charging from Vr; spike times are the start of the step that crosses
    first = tau * math.log((v_inf + 70e-3) / (v_inf + 50e-3))
    charge = tau * math.log((v_inf + 75e-3) / (v_inf + 50e-3))
    assert spikes[0] == pytest.approx(math.floor(first / dt) * dt, abs=1e-12)
    np.testing.assert_allclose(np.diff(spikes), ref + math.floor(charge / dt) * dt, atol=1e-12)
    assert len(spikes) == 8
    # the multi-line reset ran once per spike: c counts them
    assert result.traces["c"][0, 0, -1] == len(spikes)
    # (unless refractory): v sits exactly at Vr for the whole refractory period, then moves
    v = result.traces["v"][0, 0]
    for k0 in np.round(spikes / dt).astype(int)[:-1]:
        np.testing.assert_array_equal(v[k0 + 1:k0 + 1 + round(ref / dt)], -75e-3)
        assert v[k0 + 1 + round(ref / dt)] > -75e-3 + 1e-6


def test_refractory_as_condition():
    """refractory='v > -60*mV': no new spike until v has come back below -60 mV (v frozen while above)."""
    result = lif_run("v > -60*mV", I=0.45e-9)
    # as in Brian2 the condition only keeps a neuron refractory after a spike: v passes -60 mV on its way
    # up without freezing, and since Vr = -75 mV is below -60 mV refractoriness ends at once after reset,
    # so the ISI is the pure charging time from Vr (integration resumes on the step after the spike)
    dt, tau, v_inf = 1e-5, 10e-3, -70e-3 + 100e6 * 0.45e-9
    charge = tau * math.log((v_inf + 75e-3) / (v_inf + 50e-3))
    assert result.spike_counts[0, 0] == 14
    np.testing.assert_allclose(np.diff(result.spikes[0][0]), (math.floor(charge / dt) + 1) * dt, atol=1e-12)
    # with the condition 'v > -76*mV' the neuron is refractory (frozen at Vr) forever after its first spike
    frozen = lif_run("v > -76*mV", I=0.45e-9)
    assert frozen.spike_counts[0, 0] == 1
    k0 = int(round(frozen.spikes[0][0][0] / dt))
    np.testing.assert_array_equal(frozen.traces["v"][0, 0, k0 + 1:], -75e-3)


def test_reset_with_semicolons_and_parameter_dependent_refractory():
    model = nf.Model(LIF_TEXT + "tref : second (constant)\n", namespace={"El": "-70 mV", "Vt": "-50 mV"},
                     threshold="v > Vt", reset="v = -75*mV; c += 2", refractory="tref")
    result = nf.simulate(model, {"R": 1e8, "tau": 0.01, "tref": [2e-3, 8e-3]}, {"I": np.full((1, 5000), 0.4e-9)},
                         dt=1e-5, init={"v": -70e-3}, record=("c",), spikes=True, method="exponential_euler",
                         backend="numpy")
    charge = math.floor(0.01 * math.log(45 / 20) / 1e-5) * 1e-5
    for i, tref in enumerate([2e-3, 8e-3]):
        np.testing.assert_allclose(np.diff(result.spikes[i][0]), tref + charge, atol=1e-12)
        assert result.traces["c"][i, 0, -1] == 2 * len(result.spikes[i][0])


def test_white_noise_xi_ou_statistics():
    """OU process dv/dt = (El - v)/tau + sigma*xi*tau**-0.5: Euler-Maruyama's stationary variance is
    sigma^2/(2 - dt/tau) and the autocorrelation exp(-lag/tau), for any dt (xi scales with sqrt(dt))."""
    model = nf.Model("dv/dt = (El - v)/tau + sigma*xi*tau**-0.5 : volt\nsigma : volt (constant)",
                     namespace={"El": "-60 mV", "tau": "10 ms"})
    assert model.noise == ["xi"]
    sigma, tau = 2e-3, 10e-3
    for dt in (1e-4, 4e-4):
        n_steps = int(round(0.2 / dt))
        result = nf.simulate(model, {"sigma": np.full(2000, sigma)}, {}, dt=dt, n_steps=n_steps, init={"v": -60e-3},
                             seed=7, backend="numpy")
        v = result.traces["v"][:, 0]
        samples = v[:, int(round(0.05 / dt))::int(round(0.03 / dt))]  # after 5 tau, 3 tau apart
        expected_var = sigma ** 2 / (2 - dt / tau)
        assert abs(samples.mean() + 60e-3) < 0.03 * sigma
        assert samples.var() == pytest.approx(expected_var, rel=0.05)
        lag = int(round(tau / dt))
        a, b = v[:, -1 - lag] + 60e-3, v[:, -1] + 60e-3
        assert np.corrcoef(a, b)[0, 1] == pytest.approx(math.exp(-1), abs=0.06)


def test_input_variable_inferred_and_declared():
    model = nf.Model("dv/dt = (El - v)/tau + I_ext/C : volt\ntau : second (constant)\nC : farad (constant)",
                     namespace={"El": -0.07})
    assert model.inputs == ["I_ext"]
    declared = nf.Model("dv/dt = (El - v)/tau + stim/C : volt\ntau : second (constant)\nC : farad (constant)",
                        namespace={"El": -0.07}, inputs=["stim"])
    assert declared.inputs == ["stim"]
    result = nf.simulate(declared, {"tau": 0.01, "C": 1e-10}, {"stim": np.full((1, 101), 1e-10)}, dt=1e-4,
                         init={"v": -0.07}, method="exponential_euler", backend="numpy")
    # exact for constant input: v(t) = El + R I (1 - exp(-t/tau)), R I = tau/C * I = 10 mV
    t = np.arange(101) * 1e-4
    np.testing.assert_allclose(result.traces["v"][0, 0], -0.07 + 0.01 * (1 - np.exp(-t / 0.01)), rtol=0, atol=1e-15)


# --- safe rate functions ------------------------------------------------------------------------

def test_rate_function_rewrite_uses_exprel():
    x = sympy.Symbol("x", real=True)
    safe = make_rate_functions_safe(0.32 * (13e-3 - x) / (sympy.exp((13e-3 - x) / 4e-3) - 1))
    assert safe.has(exprel)
    assert float(safe.subs(x, 13e-3)) == pytest.approx(0.32 * 4e-3, rel=1e-12)
    # 1 - exp(...) in the denominator (classic HH) too
    safe = make_rate_functions_safe(0.1 * (x + 40) / (1 - sympy.exp(-(x + 40) / 10)))
    assert safe.has(exprel)
    assert float(safe.subs(x, -40)) == pytest.approx(1.0, rel=1e-12)
    # in a model written with plain numbers (v/mV) as well: finite and equal to the limit at -40 mV
    model = nf.Model("dv/dt = k*alpha*mV : volt\nalpha = 0.1*(v/mV + 40)/(1 - exp(-(v/mV + 40)/10))/ms : Hz\n"
                     "k : 1 (constant)")
    result = nf.simulate(model, {"k": [1.0, 1.0, 1.0]}, {}, dt=1e-5, n_steps=2,
                         init={"v": np.array([-40e-3, -40e-3 + 1e-12, -30e-3])}, record=("alpha",), method="euler",
                         backend="numpy")
    np.testing.assert_allclose(result.traces["alpha"][:, 0, 0],
                               [1000.0, 1000.0, 1000.0 / scipy_exprel(-1.0)], rtol=1e-9)


def traub_singular_voltages():
    """v where a TraceFitter rate function is 0/0 (computed in float64 as the model writes them)."""
    VT = -63e-3
    return np.array([13e-3 + VT, VT + 40e-3, 15e-3 + VT])  # alpha_m, beta_m, alpha_n


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_hh_derivatives_at_singular_voltage_equal_the_limit(backend):
    model = models.get("hh_traub")
    v_sing = traub_singular_voltages()
    # the singular points and their float64 neighbours (a few ulps away)
    v = np.concatenate([v_sing + k * np.spacing(v_sing) for k in range(-3, 4)] + [v_sing])
    gates = {"m": 0.3, "n": 0.4, "h": 0.6}
    # each of the three textbook rate functions is exactly 0/0 at its singular voltage in float64
    assert all(np.isnan(rate[i]) for i, rate in zip(range(3), textbook_traub_rates(v_sing, "float64")))
    derivs, result = one_euler_step(model, models.SPECS["hh_traub"].defaults, v, gates, backend)
    assert not result.invalid.any()
    dm, dn, dh = traub_gating_derivatives(v, 0.3, 0.4, 0.6)
    for state, expected in (("m", dm), ("n", dn), ("h", dh)):
        assert np.all(np.isfinite(derivs[state]))
        np.testing.assert_allclose(derivs[state], expected, rtol=1e-7)
    # at alpha_m's singular point the limit is 0.32/mV * 4 mV / ms = 1280 Hz
    beta_m = 0.28 / MV * 5 * MV / scipy_exprel((v_sing[0] + 63e-3 - 40e-3) / (5 * MV)) / MS
    assert derivs["m"][-3] == pytest.approx(1280.0 * 0.7 - beta_m * 0.3, rel=1e-7)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_subexpression_rates_at_singular_voltage(backend):
    """The Inferencer model's alpha_m, beta_m, alpha_n at exactly their 0/0 voltages equal the limits."""
    model = nf.Model(INFERENCER_MODEL, namespace=INFERENCER_NAMESPACE)
    VT = -60e-3
    v = np.array([VT + 13 * MV, VT + 40 * MV, VT + 15 * MV, -70e-3])
    result = nf.simulate(model, {"g_Na": np.full(4, 32e-6), "g_K": np.full(4, 1e-6)}, {"I": np.zeros((1, 2))},
                         dt=1e-5, init={"v": v, "m": 0.5, "n": 0.5, "h": 0.5}, record=("alpha_m", "beta_m", "alpha_n"),
                         method="exponential_euler", backend=backend)
    expected = inferencer_rates(v)
    for name in ("alpha_m", "beta_m", "alpha_n"):
        np.testing.assert_allclose(result.traces[name][:, 0, 0], expected[name], rtol=1e-9)
    assert result.traces["alpha_m"][0, 0, 0] == pytest.approx(1280.0, rel=1e-9)  # 0.32/mV * 4 mV / ms
    assert result.traces["beta_m"][1, 0, 0] == pytest.approx(1400.0, rel=1e-9)  # 0.28/mV * 5 mV / ms
    assert result.traces["alpha_n"][2, 0, 0] == pytest.approx(160.0, rel=1e-9)  # 0.032/mV * 5 mV / ms
    assert not result.invalid.any()


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_float32_batch_over_singular_points_has_no_nan(backend):
    """20,000 HH neurons in float32, voltages on and around every 0/0 point (float32 ulps) and spread over
    -90..+40 mV: no NaN anywhere, and the first steps agree with float64."""
    n = 20_000
    v_sing = traub_singular_voltages().astype(np.float32)
    near = [np.nextafter(v_sing, np.float32(np.sign(k)) * np.inf) if k else v_sing for k in (-1, 0, 1)]
    offsets = np.arange(-2000, 2000, dtype=np.float32) * np.float32(1e-7)  # +-0.2 mV in 0.1 uV steps
    v = np.concatenate([*near, *(s + offsets for s in v_sing)])
    v = np.concatenate([v, np.linspace(-90e-3, 40e-3, n - v.size, dtype=np.float32)]).astype(np.float64)
    assert v.size == n and np.count_nonzero(np.isin(v.astype(np.float32), v_sing)) >= 3
    # the batch does hit 0/0: the textbook formulas evaluated in float32 give NaN for some neurons
    assert sum(np.count_nonzero(np.isnan(rate)) for rate in textbook_traub_rates(v, "float32")) >= 2
    model = models.get("hh_traub")
    params = {p: np.full(n, x) for p, x in models.SPECS["hh_traub"].defaults.items()}
    kwargs = dict(params=params, inputs={"I": np.full((1, 20), 0.5e-9)}, dt=1e-5,
                  init={"v": v, "m": 0.3, "n": 0.4, "h": 0.6}, record=("v",), method="exponential_euler",
                  backend=backend)
    single = nf.simulate(model, dtype="float32", **kwargs)
    assert np.all(np.isfinite(single.traces["v"]))
    assert all(np.all(np.isfinite(x)) for x in single.final_state.values())
    assert not single.invalid.any()
    double = nf.simulate(model, dtype="float64", **{**kwargs, "backend": "numpy"})
    np.testing.assert_allclose(single.traces["v"], double.traces["v"], rtol=0, atol=0.2e-3)
    for s in "mnh":
        np.testing.assert_allclose(single.final_state[s], double.final_state[s], rtol=0, atol=2e-3)
