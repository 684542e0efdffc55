"""The generated C backend against the numpy reference: float64 to 1e-9, float32 within 0.2 mV with the
same spikes; reproducible noise and chunking; divergence flagged per candidate; refractoriness; online
squared error."""
import numpy as np
import pytest

import neurofit as nf
from neurofit import models
from neurofit.codegen.c_backend import compiler_works

pytestmark = pytest.mark.skipif(not compiler_works(), reason="no working C compiler")

DT = 1e-5
OU_LIF = """
dv/dt = (El - v + mu)/tau + sigma*xi*tau**-0.5 : volt
tau : second (constant)
sigma : volt (constant)
"""

# name -> (model, scale factors of the defaults per parameter set, step amplitudes per trace, n_steps)
CASES = {
    "hh_traub": (lambda: models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV"),
                 [0.85, 1.0, 1.2], [0.5e-9, 1e-9, 3e-9], 3000),
    "adex": (lambda: models.get("adex", refractory="2*ms"), [0.9, 1.0, 1.1], [0.6e-9, 1e-9, 1.5e-9], 5000),
    "lif": (lambda: models.get("lif"), [0.9, 1.0, 1.1], [0.25e-9, 0.4e-9, 0.6e-9], 5000),
    "izhikevich": (lambda: models.get("izhikevich"), [0.9, 1.0, 1.1], [5e-3, 10e-3, 15e-3], 5000),
}
# potentials, thresholds and resets keep their values; rates, conductances, capacitances scale
UNSCALED = {"El", "Vr", "VT", "Vt", "c", "d", "DeltaT"}


# --- helpers -----------------------------------------------------------------------------------

def step_inputs(amplitudes, n_steps):
    """One step current per trace, on from 10 % to 90 % of the window."""
    I = np.zeros((len(amplitudes), n_steps))
    I[:, n_steps // 10:n_steps - n_steps // 10] = np.asarray(amplitudes)[:, None]
    return I


def batch(name):
    """(model, params with one value per set, inputs, init, method) for a built-in model's test batch."""
    make, factors, amplitudes, n_steps = CASES[name]
    spec = models.SPECS[name]
    params = {p: np.array([x if p in UNSCALED else x * f for f in factors]) for p, x in spec.defaults.items()}
    return make(), params, {"I": step_inputs(amplitudes, n_steps)}, spec.init, spec.method


def run(name, backend, dtype, **kwargs):
    model, params, inputs, init, method = batch(name)
    return nf.simulate(model, params, inputs, dt=DT, init=init, record=("v",), spikes=True, method=method,
                       backend=backend, dtype=dtype, **kwargs)


def ou_model():
    return nf.Model(OU_LIF, namespace={"El": "-60 mV"}, inputs=["mu"])


def ou_run(backend, seed, n_sets=10, set_offset=0, dtype="float64", first_set=0):
    taus = 5e-3 + 1e-3 * np.arange(first_set, first_set + n_sets)
    mu = np.repeat(np.array([[0.0], [2e-3], [-1e-3]]), 400, axis=1)  # 3 traces: mean shifts (V)
    return nf.simulate(ou_model(), {"tau": taus, "sigma": 2e-3}, {"mu": mu}, dt=1e-4,
                       init={"v": -60e-3}, seed=seed, set_offset=set_offset, backend=backend, dtype=dtype)


# --- c == numpy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_c_float64_equals_numpy(name):
    ref = run(name, "numpy", "float64")
    out = run(name, "c", "float64")
    assert out.backend == "c" and ref.backend == "numpy"
    assert ref.traces["v"].shape == (3, 3, CASES[name][3])
    assert ref.spike_counts.sum() >= 9 and np.count_nonzero(ref.spike_counts) >= 6  # the batch really spikes
    np.testing.assert_allclose(out.traces["v"], ref.traces["v"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(out.spike_counts, ref.spike_counts)
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(out.spikes[i][j], ref.spikes[i][j], rtol=0, atol=1e-12)
    for s, value in ref.final_state.items():
        np.testing.assert_allclose(out.final_state[s], value, rtol=1e-9, atol=1e-15)
    assert not out.invalid.any() and not ref.invalid.any()


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_float32_within_0p2_mV_of_float64(name, backend):
    ref = run(name, "numpy", "float64")
    out = run(name, backend, "float32")
    assert out.traces["v"].dtype == np.float32
    assert np.max(np.abs(out.traces["v"].astype(np.float64) - ref.traces["v"])) < 0.2e-3
    np.testing.assert_array_equal(out.spike_counts, ref.spike_counts)
    assert not out.invalid.any()


def test_c_threads_do_not_change_results():
    one = run("hh_traub", "c", "float64")
    two = run("hh_traub", "c", "float64", threads=2)
    np.testing.assert_array_equal(one.traces["v"], two.traces["v"])


def test_large_batch_matches_across_simd_blocks():
    """200 sets x 2 traces = 400 neurons (several 64-lane blocks, last one partial): same as numpy."""
    model = models.get("lif")
    spec = models.SPECS["lif"]
    rng = np.random.default_rng(5)
    params = {**spec.defaults, "gl": spec.defaults["gl"] * rng.uniform(0.5, 1.5, 200),
              "C": spec.defaults["C"] * rng.uniform(0.5, 1.5, 200)}
    inputs = {"I": step_inputs([0.3e-9, 0.5e-9], 2000)}
    kwargs = dict(dt=DT, init=spec.init, record=("v",), spikes=True, method=spec.method)
    ref = nf.simulate(model, params, inputs, backend="numpy", **kwargs)
    out = nf.simulate(model, params, inputs, backend="c", **kwargs)
    np.testing.assert_allclose(out.traces["v"], ref.traces["v"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(out.spike_counts, ref.spike_counts)
    assert ref.spike_counts.sum() > 200


def test_spike_buffer_overflow_reruns_with_room():
    """A LIF without refractoriness, reset 1 mV below threshold, fires every few steps: more spikes than the
    C kernel's first buffer (256 per neuron) holds, so it runs again; the spike times still equal numpy's."""
    model = models.get("lif", refractory=None)
    params = {**models.SPECS["lif"].defaults, "Vr": -51e-3, "gl": np.array([10e-9, 20e-9])}
    kwargs = dict(dt=DT, init={"v": -51e-3}, record=(), spikes=True, method="exponential_euler")
    inputs = {"I": np.full((2, 1500), 1e-8) * np.array([[1.0], [2.0]])}
    ref = nf.simulate(model, params, inputs, backend="numpy", **kwargs)
    out = nf.simulate(model, params, inputs, backend="c", **kwargs)
    assert ref.spike_counts.min() > 256
    np.testing.assert_array_equal(out.spike_counts, ref.spike_counts)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(out.spikes[i][j], ref.spikes[i][j], rtol=0, atol=1e-12)


# --- noise -----------------------------------------------------------------------------------------

def test_noise_identical_in_numpy_and_c():
    ref = ou_run("numpy", seed=11)
    out = ou_run("c", seed=11)
    np.testing.assert_allclose(out.traces["v"], ref.traces["v"], rtol=1e-12, atol=1e-15)
    # the draws really move v: after 40 ms the spread across neurons is of the order of sigma/sqrt(2)
    assert 0.7e-3 < (ref.traces["v"][:, :, -1] - ref.traces["v"][:, :, -1].mean(axis=0)).std() < 2.5e-3


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_noise_seeds(backend):
    a, b, c = ou_run(backend, seed=3), ou_run(backend, seed=3), ou_run(backend, seed=4)
    np.testing.assert_array_equal(a.traces["v"], b.traces["v"])
    diff = np.abs(a.traces["v"][:, :, 1:] - c.traces["v"][:, :, 1:])
    assert np.all(diff.max(axis=-1) > 1e-4)  # every neuron's path differs with another seed
    # every neuron gets its own draws: no two traces of the same set are equal
    v = a.traces["v"]
    assert np.all(np.abs(v[:, 0, 1:] - v[:, 1, 1:]).max(axis=-1) > 1e-4)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_noise_chunking_with_set_offset(backend):
    whole = ou_run(backend, seed=9, n_sets=10)
    first = ou_run(backend, seed=9, n_sets=5)
    second = ou_run(backend, seed=9, n_sets=5, set_offset=5, first_set=5)
    np.testing.assert_array_equal(np.concatenate([first.traces["v"], second.traces["v"]]), whole.traces["v"])
    # without the offset the second chunk would repeat the first chunk's draws
    wrong = ou_run(backend, seed=9, n_sets=5, first_set=5)
    assert not np.allclose(wrong.traces["v"], whole.traces["v"][5:])


def test_noise_float32_close_to_float64():
    ref = ou_run("numpy", seed=2)
    for backend in ("numpy", "c"):
        out = ou_run(backend, seed=2, dtype="float32")
        assert np.max(np.abs(out.traces["v"].astype(np.float64) - ref.traces["v"])) < 1e-6


# --- divergence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,dtype", [("numpy", "float64"), ("c", "float64"), ("numpy", "float32"),
                                           ("c", "float32")])
def test_divergence_flags_only_the_bad_set(backend, dtype):
    """A huge negative leak (gl = -1 mS) blows v up to inf/NaN: that set is invalid, the others are not,
    and their traces are exactly those of a batch without the bad set (the C float32 kernel is built with
    -ffast-math; the NaN check must survive it)."""
    model = models.get("hh_traub")
    spec = models.SPECS["hh_traub"]
    gl = np.array([10e-9, -1e-3, 12e-9, 8e-9])
    params = {**spec.defaults, "gl": gl}
    inputs = {"I": step_inputs([0.5e-9, 2e-9], 1000)}
    kwargs = dict(dt=DT, init=spec.init, record=("v",), method="exponential_euler", backend=backend, dtype=dtype)
    result = nf.simulate(model, params, inputs, **kwargs)
    np.testing.assert_array_equal(result.invalid, [[False, False], [True, True], [False, False], [False, False]])
    np.testing.assert_array_equal(result.invalid_sets, [False, True, False, False])
    assert not np.all(np.isfinite(result.traces["v"][1]))
    assert np.all(np.isfinite(result.traces["v"][[0, 2, 3]]))
    good = nf.simulate(model, {**spec.defaults, "gl": gl[[0, 2, 3]]}, inputs, **kwargs)
    np.testing.assert_array_equal(result.traces["v"][[0, 2, 3]], good.traces["v"])
    assert not good.invalid.any()


def test_divergence_without_recording():
    """invalid is reported from the state itself, also when nothing is recorded (record=())."""
    model = models.get("hh_traub")
    params = {**models.SPECS["hh_traub"].defaults, "gl": np.array([10e-9, -1e-3])}
    for backend in ("numpy", "c"):
        for dtype in ("float64", "float32"):
            result = nf.simulate(model, params, {"I": np.zeros((1, 800))}, dt=DT, init=models.SPECS["hh_traub"].init,
                                 record=(), method="exponential_euler", backend=backend, dtype=dtype)
            np.testing.assert_array_equal(result.invalid, [[False], [True]])
            assert result.traces == {}


# --- refractoriness and online error ---------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_lif_refractory_period_respected(backend):
    """Strong drive (charging takes < 1 ms): ISIs are never below the 2 ms refractory period, and equal
    2 ms + the charging time from Vr, quantised to dt (exact integration of the linear equation)."""
    model = models.get("lif")
    spec = models.SPECS["lif"]
    amplitudes = [2e-9, 5e-9, 20e-9]
    result = nf.simulate(model, spec.defaults, {"I": np.repeat(np.array(amplitudes)[:, None], 5000, axis=1)}, dt=DT,
                         init=spec.init, record=("v",), spikes=True, method="exponential_euler", backend=backend)
    tau = spec.defaults["C"] / spec.defaults["gl"]
    charges = []
    for j, I in enumerate(amplitudes):
        isi = np.diff(result.spikes[0][j])
        assert isi.size >= 10
        assert np.all(isi >= 2e-3 - 1e-12)
        v_inf = spec.defaults["El"] + I / spec.defaults["gl"]
        charge = tau * np.log((v_inf - spec.defaults["Vr"]) / (v_inf - spec.defaults["Vt"]))
        charges.append(charge)
        np.testing.assert_allclose(isi, 2e-3 + np.floor(charge / DT) * DT, atol=1e-12)
    assert min(charges) < 0.5e-3  # without refractoriness the fastest trace would fire every < 0.5 ms


@pytest.mark.parametrize("backend,dtype,rtol", [("numpy", "float64", 1e-12), ("c", "float64", 1e-12),
                                                ("c", "float32", 1e-4)])
def test_online_squared_error_equals_recorded(backend, dtype, rtol):
    model, params, inputs, init, method = batch("adex")
    rng = np.random.default_rng(1)
    target = -0.065 + 0.01 * rng.standard_normal(inputs["I"].shape)
    start = 700
    result = nf.simulate(model, params, inputs, dt=DT, init=init, record=("v",), method=method, backend=backend,
                         dtype=dtype, targets={"v": target}, target_start=start)
    expected = ((result.traces["v"].astype(np.float64) - target[None]) ** 2)[:, :, start:].sum(axis=-1)
    assert result.sq_error["v"].shape == (3, 3)
    np.testing.assert_allclose(result.sq_error["v"], expected, rtol=rtol)
    # the same without keeping the traces
    lean = nf.simulate(model, params, inputs, dt=DT, init=init, record=(), method=method, backend=backend,
                       dtype=dtype, targets={"v": target}, target_start=start)
    np.testing.assert_allclose(lean.sq_error["v"], expected, rtol=rtol)
