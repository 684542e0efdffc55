"""Generated code never uses a model's name raw, and a damaged compiled-kernel cache is rebuilt.

Every symbol of the step code is printed as ``u_<name>`` in both backends, so a model name can be any C or
Python keyword, library function or name of the generated code itself (the step counter ``k``, the lane
index ``j``, the float type ``T`` …) and still simulate exactly as an ordinary name does; names the model
language refuses fail with a one-line error. The identifier test reads the generated sources and fails on
any identifier that is neither a printed symbol nor in the internal lists below, so that a new internal
name must be declared here (and tested as a model name). Cached ``.so`` files carry a sha256 beside them:
a truncated or overwritten library is rebuilt (checked in a subprocess, so that a crash fails the test).
"""
import hashlib
import keyword
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import neurofit as nf
from neurofit import models
from neurofit.codegen.c_backend import compiler_works, generate_source
from neurofit.codegen.kernel import NOT_REFRACTORY, build_kernel, noise_symbol
from neurofit.codegen.numpy_backend import NumpyKernel
from neurofit.codegen.sensitivity import with_sensitivities

pytestmark = pytest.mark.skipif(not compiler_works(), reason="no working C compiler")

# --- the names generated code declares itself ------------------------------------------------------

# C math functions the printer may call (double and float32 variants)
C_MATH = {f + suffix for f in ("exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan",
                               "fabs", "floor", "ceil", "expm1", "log1p", "sqrt", "pow", "fmin", "fmax", "fmod")
          for suffix in ("", "f")}
# the C kernel's own names: preprocessor, pragmas, types, helpers, arguments, locals and loop counters
C_INTERNAL = C_MATH | {
    "include", "math", "stdint", "string", "h", "define", "typedef", "__attribute__", "simd", "notinbranch",
    "pragma", "omp", "parallel", "schedule", "dynamic", "num_threads", "reduction",
    "static", "inline", "const", "int", "double", "float", "return", "for", "if",
    "int32_t", "int64_t", "uint8_t", "uint32_t", "uint64_t", "INT32_MIN", "memcpy",
    "T", "LANES", "nf_run", "nf_mix", "nf_normal", "nf_exprel", "nf_exprel_d", "nf_sign", "nf_nonfinite",
    "x", "z", "u", "g", "u1", "u2", "key", "counter",
    "n_sets", "n_traces", "n_steps", "dt_d", "params", "inputs", "state", "record", "targets", "target_start",
    "sq_err", "bad", "lastspike", "spike_steps", "spike_cap", "spike_counts", "seed", "set_offset", "n_threads",
    "n_neurons", "n_blocks", "seed_key", "blk", "n0", "nb", "tr", "badb", "ls", "spk", "j", "n", "set", "trace",
    "k", "rec", "n_spikes", "in_ref", "ref_steps", "fire", "d", "c",
}
# per model name x the C kernel declares tag_u_x: lane copies, updated values, input and target pointers, errors
C_DERIVED_TAGS = ("lane", "new", "in", "tg", "err")
NUMPY_INTERNAL = {"def", "return", "np", "_exprel", "_exprel_d", "_where", "step", "threshold", "refractory",
                  "True", "False"}
NUMPY_RESET = re.compile(r"^reset_\d+$")

# --- model names to try ----------------------------------------------------------------------------

C_KEYWORDS = ["double", "int", "float", "return", "if", "for", "const", "static", "void", "char", "restrict",
              "inline", "while", "unsigned", "long", "struct", "sizeof", "goto", "typedef"]
C_LIBRARY = ["exp", "sqrt", "log", "pow", "fabs", "printf", "malloc", "free", "memcpy", "main", "NAN",
             "INFINITY", "M_PI", "errno", "INT32_MIN", "uint64_t"]
PYTHON = ["lambda", "def", "np", "numpy", "len", "range", "out", "print", "exec", "eval", "self", "True", "None",
          "__import__"]
# names that look like printed or derived ones (u_v is not v), and temporaries of the step code
LOOKALIKES = ["u_v", "u_k", "u_dt", "u__not_refractory", "lane_u_v", "new_u_v", "in_u_I", "tg_u_v", "err_u_v",
              "_cse0", "_not_refractory", "_Z_xi", "_k1_dv"]
RESERVED = sorted(set(C_KEYWORDS + C_LIBRARY + PYTHON + LOOKALIKES) | C_INTERNAL | NUMPY_INTERNAL
                  | {"reset_0"})
# what the model language refuses: Python keywords, names starting with '_', and its own reserved names
REFUSED = {n for n in RESERVED if keyword.iskeyword(n) or n.startswith("_")} | {"lastspike"}

EQUATIONS = "dv/dt = ({name}*(El - v) + I)/Cm : volt (unless refractory)\n{name} : siemens (constant)"
NAMESPACE = {"El": "-65 mV", "Cm": "200 pF"}


def model_named(name):
    """The test LIF with its leak conductance called ``name``."""
    return nf.Model(EQUATIONS.format(name=name), namespace=NAMESPACE, threshold="v > -55*mV", reset="v = -65*mV",
                    refractory="2*ms")


def current():
    """One trace (1, 3000): 0.5 nA from step 500 on."""
    inp = np.zeros((1, 3000))
    inp[0, 500:] = 0.5e-9
    return inp


def run_named(name, backend, **kwargs):
    return nf.simulate(model_named(name), {name: np.array([10e-9, 12e-9])}, {"I": current()}, 1e-5,
                       init={"v": -65e-3}, backend=backend, method="euler", record=("v",), spikes=True, **kwargs)


@pytest.fixture(scope="module")
def ordinary():
    """The same model and run with an ordinary name, on the numpy backend."""
    return run_named("gleak", "numpy")


# --- every name simulates as an ordinary one (or is refused in one line) ---------------------------

def test_the_name_lists_are_consistent():
    assert not [n for n in C_INTERNAL | NUMPY_INTERNAL if n.startswith("u_")]
    assert not [n for n in C_INTERNAL if n.startswith(tuple(f"{tag}_u_" for tag in C_DERIVED_TAGS))]
    assert {"k", "j", "T", "rec", "LANES", "n_steps", "params", "state"} <= set(RESERVED)


@pytest.mark.parametrize("name", RESERVED)
def test_a_model_name_never_collides_with_generated_code(name, ordinary):
    if name in REFUSED:
        with pytest.raises(nf.EquationError) as err:
            model_named(name)
        assert "\n" not in str(err.value) and f"'{name}'" in str(err.value)
        return
    runs = {b: run_named(name, b) for b in ("c", "numpy")}
    assert runs["numpy"].spike_counts.min() >= 2  # the model really spikes, through reset and refractoriness
    for b, result in runs.items():
        np.testing.assert_allclose(result.traces["v"], ordinary.traces["v"], rtol=0, atol=1e-9, err_msg=b)
        np.testing.assert_array_equal(result.spike_counts, ordinary.spike_counts, err_msg=b)
    np.testing.assert_allclose(runs["c"].traces["v"], runs["numpy"].traces["v"], rtol=0, atol=1e-9)


def test_noise_is_drawn_per_step_when_a_parameter_is_called_k():
    """The C kernel's draws are counted by its step k; a parameter k must not freeze them."""
    model = nf.Model("dv/dt = (k*(El - v) + I)/Cm + sigma*xi*tau**-0.5 : volt\nk : siemens (constant)\n"
                     "sigma : volt (constant)", namespace={**NAMESPACE, "tau": "10 ms"})
    dt, sigma, k = 1e-5, 2e-3, np.array([10e-9, 12e-9])
    runs = [nf.simulate(model, {"k": k, "sigma": sigma}, {"I": current()}, dt, init={"v": -65e-3}, seed=5,
                        backend=b, record=("v",)) for b in ("c", "numpy")]
    np.testing.assert_allclose(runs[0].traces["v"], runs[1].traces["v"], rtol=1e-12, atol=1e-15)
    v = runs[1].traces["v"][:, 0]
    drift = (k[:, None] * (-65e-3 - v[:, :-1]) + current()[:, :-1]) / 200e-12
    z = (np.diff(v, axis=-1) - dt * drift) / (sigma * np.sqrt(dt / 10e-3))  # the standard normal draws
    assert np.all(np.abs(z.std(axis=-1) - 1) < 0.05) and np.all(np.abs(z.mean(axis=-1)) < 0.05)
    assert abs(np.corrcoef(z[:, 1:].ravel(), z[:, :-1].ravel())[0, 1]) < 0.05  # a new draw each step


@pytest.mark.parametrize("name", ["k", "j", "T", "rec", "LANES", "n_steps", "params", "state", "double", "np",
                                  "u_v", "lane_u_v"])
def test_exact_gradients_with_colliding_names(name):
    """The sensitivity kernel (states u__S_v__<name>) equals the one of an ordinary name, in both backends."""
    reference = run_named("gleak", "numpy", sensitivities=("gleak",)).sensitivities["v"]
    scale = np.abs(reference).max()
    for b in ("c", "numpy"):
        exact = run_named(name, b, sensitivities=(name,)).sensitivities["v"]
        np.testing.assert_allclose(exact, reference, rtol=0, atol=1e-9 * scale, err_msg=b)


@pytest.mark.parametrize("method", ["rk2", "rk4"])
def test_a_subexpression_named_like_a_stage_derivative(method):
    """Stage k2's value of a subexpression dv and stage k2's dv/dt both derive the name _k2_dv: they stay two."""
    eqs = "dv/dt = ({sub} - v)/tau : volt\n{sub} = 0.5*v + El : volt\ntau : second (constant)"
    kwargs = dict(params={"tau": 10e-3}, inputs={}, dt=1e-4, n_steps=200, init={"v": 0.0}, method=method)
    results = {}
    for sub in ("dv", "dd"):
        model = nf.Model(eqs.format(sub=sub), namespace={"El": "-30 mV"})
        for b in ("c", "numpy"):
            results[sub, b] = nf.simulate(model, backend=b, record=("v",), **kwargs).traces["v"]
    for key, value in results.items():
        np.testing.assert_allclose(value, results["dd", "numpy"], rtol=1e-12, atol=0, err_msg=str(key))


def test_sensitivity_names_that_would_coincide_are_refused():
    """d(a)/d(b__c) and d(a__b)/d(c) would both be _S_a__b__c."""
    model = nf.Model("da/dt = (b__c - a*c)/tau : 1\nda__b/dt = -a__b/tau : 1\nc : 1 (constant)\n"
                     "b__c : 1 (constant)", namespace={"tau": "10 ms"})
    with pytest.raises(nf.SimulationError) as err:
        nf.simulate(model, {"c": 1.0, "b__c": 0.5}, {}, 1e-4, n_steps=10, record=("a",), backend="numpy",
                    sensitivities=("c", "b__c"))
    assert "\n" not in str(err.value) and "_S_a__b__c" in str(err.value)


# --- every identifier of the generated sources is declared -----------------------------------------

# numbers (hex floats, exponents, suffixes) are skipped; an identifier after '.' is an attribute (np.exp)
_TOKEN = re.compile(r"0[xX][0-9A-Fa-f]*(?:\.[0-9A-Fa-f]*)?(?:[pP][+-]?\d+)?[A-Za-z]*"
                    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z]*|(\.?)([A-Za-z_]\w*)")


def identifiers(source: str) -> set:
    """Identifiers in C or Python source, without numbers and attribute names."""
    return {m.group(2) for m in _TOKEN.finditer(source) if m.group(2) and not m.group(1)}


def symbols(spec) -> set:
    """Names of every sympy symbol a spec's code can hold: model names and the step code's temporaries."""
    return ({*spec.states, *spec.parameters, *spec.inputs, "t", "dt", NOT_REFRACTORY.name}
            | {noise_symbol(n).name for n in spec.noise} | {sym.name for sym, _ in spec.body})


def variety():
    """Specs covering every kind of generated code: refractory by duration and by condition, noise,
    targets, rk2/rk4/exponential Euler, sensitivities, piecewise and math functions, reserved names."""
    ou = nf.Model("dv/dt = (El - v + mu)/tau + sigma*(xi + xi_2)*tau**-0.5 : volt\ntau : second (constant)\n"
                  "sigma : volt (constant)", namespace={"El": "-60 mV"}, inputs=["mu"])
    functions = nf.Model(
        "dv/dt = (clip(v, -1*mV, 2*mV) + abs(v)*sign(v) + floor(v/mV)*mV + (v/mV % 3)*mV + sqrt(abs(v)/mV)*mV"
        " + (v/mV)**2.5*mV + int(v > 0*mV)*mV + exprel(v/mV)*mV + tanh(v/mV)*mV + log1p(abs(v/mV))*mV"
        " + t/ms*mV)/tau - w/tau : volt (unless refractory)\ndw/dt = (k*v - w)/tau : volt\n"
        "tau : second (constant)\nk : 1 (constant)", threshold="v > 1*mV", reset="v = 0*mV; w += 1*mV",
        refractory="1*ms")
    hh = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV")
    return [build_kernel(models.get("lif"), "exponential_euler", record=("v",), targets=("v",)),
            build_kernel(hh, "rk4", record=("v",)),
            with_sensitivities(build_kernel(hh, "exponential_euler", record=("v",)), ("gl", "g_na"), ("v",)),
            build_kernel(ou, "euler_maruyama", record=("v",), targets=("v",)),
            build_kernel(functions, "rk2", record=("v", "w"), targets=("v",)),
            with_sensitivities(build_kernel(models.get("adex"), "euler", record=("v",)), ("a", "b"), ("v",)),
            build_kernel(model_named("LANES"), "euler", record=("v",)),
            build_kernel(model_named("np"), "euler", record=("v",))]


def test_generated_sources_use_only_declared_and_prefixed_names():
    for spec in variety():
        printed = {"u_" + name for name in symbols(spec)}
        derived = {f"{tag}_{p}" for tag in C_DERIVED_TAGS for p in printed}
        for dtype in ("float64", "float32"):
            for lanes in (64, 8):
                unknown = identifiers(generate_source(spec, dtype, lanes)) - printed - derived - C_INTERNAL
                assert not unknown, f"C ({spec.method}, {dtype}): undeclared identifiers {sorted(unknown)}"
            names = identifiers(NumpyKernel(spec, dtype).source) - printed - NUMPY_INTERNAL
            unknown = {n for n in names if not NUMPY_RESET.match(n)}
            assert not unknown, f"numpy ({spec.method}, {dtype}): undeclared identifiers {sorted(unknown)}"


def test_model_names_are_printed_with_the_prefix():
    spec = build_kernel(model_named("k"), "euler", record=("v",))
    c_ids = identifiers(generate_source(spec, "float64"))
    np_ids = identifiers(NumpyKernel(spec, "float64").source)
    for ids in (c_ids, np_ids):
        assert {"u_k", "u_v", "u_I", "u_dt"} <= ids
        assert not {"v", "I", "El", "Cm"} & ids
    assert "k" in c_ids  # the step counter, still there beside the parameter u_k


# --- a damaged kernel cache is rebuilt, never loaded ------------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import neurofit as nf
    model = nf.Model("dv/dt = (gl*(El - v) + I)/C : volt\\ngl : siemens (constant)",
                     namespace={"El": "-65 mV", "C": "200 pF"}, threshold="v > -55*mV", reset="v = -65*mV")
    inp = np.zeros((1, 2000))
    inp[0, 200:] = 0.5e-9
    result = nf.simulate(model, {"gl": 10e-9}, {"I": inp}, 1e-5, init={"v": -65e-3}, backend="c",
                         method="euler", record=("v",))
    np.save(sys.argv[1], result.traces["v"])
""")


def simulate_in_subprocess(cache: Path, out: Path) -> np.ndarray:
    proc = subprocess.run([sys.executable, "-c", WORKER, str(out)], env=dict(os.environ, NEUROFIT_CACHE=str(cache)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return np.load(out)


def libraries(cache: Path) -> dict:
    """The model's compiled kernels: path → bytes."""
    return {p: p.read_bytes() for p in sorted(cache.glob("nf_float64_*.so"))}


def checksum_matches(library: Path) -> bool:
    sums = library.with_name(library.name + ".sha256")
    return sums.exists() and sums.read_text().strip() == hashlib.sha256(library.read_bytes()).hexdigest()


def damage(library: Path, how: str) -> None:
    data = library.read_bytes()
    if how == "half":
        library.write_bytes(data[:len(data) // 2])
    elif how == "empty":
        library.write_bytes(b"")
    elif how == "garbage":
        library.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif how == "no checksum":
        library.with_name(library.name + ".sha256").unlink()
    else:  # a checksum that does not match
        library.with_name(library.name + ".sha256").write_text("0" * 64 + "\n")


@pytest.mark.parametrize("how", ["half", "empty", "garbage", "no checksum", "wrong checksum"])
def test_a_damaged_cached_kernel_is_rebuilt(tmp_path, how):
    cache = tmp_path / "cache"
    first = simulate_in_subprocess(cache, tmp_path / "first.npy")
    built = libraries(cache)
    assert len(built) == 2 and all(checksum_matches(p) for p in built)  # 64- and 8-lane kernels
    for library in built:
        damage(library, how)
    again = simulate_in_subprocess(cache, tmp_path / "again.npy")
    np.testing.assert_array_equal(again, first)
    rebuilt = libraries(cache)
    assert rebuilt == built  # same names, and the same bytes as the first build
    assert all(checksum_matches(p) for p in rebuilt)
    assert not [p for p in cache.iterdir() if p.is_dir()]  # no build folders left behind
