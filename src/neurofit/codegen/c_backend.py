"""The C backend: C source generated from a KernelSpec, compiled once, cached by content hash.

Layout: neurons (= trace * n_sets + set) are processed in blocks of ``LANES``; inside a block
the time loop runs over a SIMD loop across the lanes (neurons innermost), so gcc vectorises
the step including ``exp`` (glibc's libmvec). Divergence (NaN/inf) is detected from the bit
pattern of each new state, which no fast-math flag can optimise away.

Names: a model symbol x is ``u_x`` (printing.symbol_name) and the kernel's buffers for it are
``lane_u_x``, ``new_u_x``, ``in_u_x``, ``tg_u_x``, ``err_u_x``; the kernel's own names (``k``, ``j``,
``T``, ``rec``, ``LANES`` …) never start with ``u_``, so no model name can shadow them. Compiled
libraries are cached with their sha256 beside them and loaded only if it matches.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import sympy

from .kernel import NOT_REFRACTORY, KernelSpec, noise_symbol
from .printing import EXPREL_D_SERIES_BELOW, EXPREL_SERIES_BELOW, Printer, symbol_name

LANES = 64  # neurons per SIMD block for batches; small batches (e.g. refine's one set) use SMALL_LANES
SMALL_LANES = 8
_COMMON_FLAGS = ["-O3", "-march=native", "-fPIC", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
# float32: full fast-math for libmvec's vector exp; float64 keeps IEEE arithmetic (1e-9 agreement
# with numpy) but still gets vector exp through the declarations in the generated source.
_DTYPE_FLAGS = {"float32": ["-ffast-math", "-mprefer-vector-width=512"], "float64": ["-fopenmp-simd"]}


class CompileError(RuntimeError):
    """The system C compiler failed on generated code."""


def _compiler() -> str:
    return os.environ.get("NEUROFIT_CC") or shutil.which("gcc") or shutil.which("cc") or "cc"


def cache_dir() -> Path:
    """Where compiled kernels live: $NEUROFIT_CACHE or ~/.cache/neurofit/kernels."""
    base = os.environ.get("NEUROFIT_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurofit" / "kernels"


@functools.lru_cache(maxsize=1)
def _machine_id() -> str:
    """Compiler version and CPU flags: a binary built with -march=native only fits its own kind of CPU."""
    try:
        version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return hashlib.sha256(f"{version}|{flags}|{platform.machine()}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def compiler_works() -> bool:
    """True if the system C compiler can build and load a shared library here."""
    try:
        _build("int nf_probe(void) { return 42; }\n", [], "probe")
        return True
    except (CompileError, OSError):
        return False


def _checksum_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(library: Path) -> bool:
    """True if ``library`` exists and equals the sha256 written beside it when it was built."""
    try:
        return _checksum_path(library).read_text().strip() == _sha256(library)
    except OSError:
        return False


def _build(source: str, flags: list, tag: str) -> Path:
    """The shared library of ``source`` in ``cache_dir()``, compiled on first use (named by a hash of source,
    flags and machine). A cached library is loaded only if it matches its checksum file; a truncated,
    overwritten or checksum-less one is rebuilt, never handed to the dynamic loader."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{source}|{flags}|{_machine_id()}".encode()).hexdigest()[:24]
    target = directory / f"nf_{tag}_{digest}.so"
    if _verified(target):
        return target
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        Path(tmp, "k.c").write_text(source)
        # compile and link separately: linking with -ffast-math would pull in crtfastmath.o, which
        # changes the floating-point mode of the whole Python process. Relative paths inside the
        # temporary directory make every build of a source the same bytes, whichever job builds it.
        steps = [[_compiler(), *_COMMON_FLAGS, *flags, "-c", "k.c", "-o", "k.o"],
                 [_compiler(), "-shared", "-fopenmp", "k.o", "-o", "k.so", "-lm"]]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            if proc.returncode != 0:
                raise CompileError(f"C compiler failed ({' '.join(cmd[:1])}): {proc.stderr.strip()[:2000]}")
        checksum = Path(tmp, "k.sha256")
        checksum.write_text(_sha256(Path(tmp, "k.so")) + "\n")
        # atomic: parallel jobs see either nothing or a whole library; a library whose checksum is not
        # (yet) beside it is rebuilt, not loaded
        os.replace(Path(tmp, "k.so"), target)
        os.replace(checksum, _checksum_path(target))
    return target


_HEADER = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
typedef {T} T;
#define LANES {LANES}
{SIMD_DECLS}
static inline int nf_nonfinite(T x) {{ {NONFINITE} }}
static inline T nf_exprel(T z) {{ return {EXPREL}; }}
static inline T nf_exprel_d(T z) {{ return {EXPREL_D}; }}
static inline T nf_sign(T x) {{ return (T)((x > 0) - (x < 0)); }}
static inline uint64_t nf_mix(uint64_t x) {{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}}
static inline double nf_normal(uint64_t key, uint64_t counter) {{
    uint64_t h = nf_mix(key ^ counter), g = nf_mix(h);
    double u1 = ((double)(h >> 11) + 1.0) * 0x1p-53, u2 = (double)(g >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.141592653589793 * u2);
}}
"""

_SIMD_DECLS_64 = """
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double expm1(double);
__attribute__((simd("notinbranch"))) double log(double);
"""


def _nonfinite(dtype: str) -> str:
    if dtype == "float32":
        return "uint32_t u; memcpy(&u, &x, 4); return (u & 0x7f800000u) == 0x7f800000u;"
    return "uint64_t u; memcpy(&u, &x, 8); return (u & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL;"


def generate_source(spec: KernelSpec, dtype: str, lanes: int = LANES) -> str:
    """C source of the simulation loop for ``spec``, in blocks of ``lanes`` neurons."""
    ctype = "float" if dtype == "float32" else "double"
    pr = Printer("c", dtype)
    small = pr.literal(EXPREL_SERIES_BELOW[dtype])
    half, sixth, one = pr.literal(0.5), pr.literal(1 / 6), pr.literal(1.0)
    series = f"{one} + z*{half} + z*z*{sixth}" if dtype == "float64" else f"{one} + z*{half}"
    expm1, exp, fabs = pr.func("expm1"), pr.func("exp"), pr.func("Abs")
    header = _HEADER.format(T=ctype, LANES=lanes, SIMD_DECLS=_SIMD_DECLS_64 if dtype == "float64" else "",
                            NONFINITE=_nonfinite(dtype),
                            EXPREL=f"{fabs}(z) < {small} ? ({series}) : {expm1}(z) / z",
                            EXPREL_D=f"{fabs}(z) < {pr.literal(EXPREL_D_SERIES_BELOW[dtype])} ? "
                                     f"({half} + z*{pr.literal(1 / 3)} + z*z*{pr.literal(1 / 8)}) : "
                                     f"({exp}(z)*(z - {one}) + {one})/(z*z)")
    S, P, U, N = spec.states, spec.parameters, spec.inputs, spec.noise
    # a model name x is u_x (symbol_name); names derived from it are a tag + u_x (lane_u_x, new_u_x ...)
    u = {x: symbol_name(x) for x in [*S, *P, *U, "t", "dt"]}
    lane_arrays = {x: f"lane_{u[x]}" for x in [*S, *P]}  # per-lane copies of states, params
    g = {v: symbol_name(v) for v in spec.targets}  # a target (state or subexpression) names err_/tg_ buffers
    not_refractory = pr(NOT_REFRACTORY)
    L = []
    w = L.append
    w("int nf_run(int64_t n_sets, int64_t n_traces, int64_t n_steps, double dt_d, const T* params, "
      "const T* inputs, T* state, T* record, const T* targets, int64_t target_start, double* sq_err, "
      "uint8_t* bad, int32_t* lastspike, int32_t* spike_steps, int64_t spike_cap, int64_t* spike_counts, "
      "uint64_t seed, int64_t set_offset, int n_threads) {")
    w("  const int64_t n_neurons = n_sets * n_traces;")
    w("  const int64_t n_blocks = (n_neurons + LANES - 1) / LANES;")
    w(f"  const T {u['dt']} = (T)dt_d;")
    w("  const uint64_t seed_key = nf_mix(seed);")
    w("  #pragma omp parallel for schedule(dynamic) num_threads(n_threads)")
    w("  for (int64_t blk = 0; blk < n_blocks; blk++) {")
    w("    const int64_t n0 = blk * LANES;")
    w("    const int nb = (int)((n_neurons - n0) < LANES ? (n_neurons - n0) : LANES);")
    w("    int64_t tr[LANES]; uint64_t key[LANES]; uint8_t badb[LANES]; int32_t ls[LANES]; int spk[LANES];")
    for array in lane_arrays.values():
        w(f"    T {array}[LANES];")
    for v in spec.targets:
        w(f"    double err_{g[v]}[LANES];")
    w("    for (int j = 0; j < LANES; j++) {")
    w("      const int64_t n = n0 + (j < nb ? j : 0);")
    w("      const int64_t set = n % n_sets, trace = n / n_sets;")
    w("      tr[j] = trace; badb[j] = 0; ls[j] = lastspike[n]; spk[j] = 0;")
    w("      key[j] = nf_mix(seed_key ^ (uint64_t)((set + set_offset) * n_traces + trace));")
    for i, s in enumerate(S):
        w(f"      {lane_arrays[s]}[j] = state[{i} * n_neurons + n];")
    for i, p in enumerate(P):
        w(f"      {lane_arrays[p]}[j] = params[{i} * n_sets + set];")
    for v in spec.targets:
        w(f"      err_{g[v]}[j] = 0.0;")
    w("    }")
    w("    for (int64_t k = 0; k < n_steps; k++) {")
    w(f"      const T {u['t']} = (T)((double)k * dt_d);")
    for i, x in enumerate(U):
        w(f"      const T* in_{u[x]} = inputs + ({i} * n_steps + k) * n_traces;")
    for i, v in enumerate(spec.targets):
        w(f"      const T* tg_{g[v]} = targets + ({i} * n_steps + k) * n_traces;")
    if spec.record:
        w(f"      T* rec = record + (blk * {len(spec.record)} * n_steps + k) * LANES;")
    w("      int n_spikes = 0;")
    w("      #pragma omp simd reduction(+:n_spikes)")
    w("      for (int j = 0; j < LANES; j++) {")
    for x, array in lane_arrays.items():
        w(f"        const T {u[x]} = {array}[j];")
    for x in U:
        w(f"        const T {u[x]} = in_{u[x]}[tr[j]];")
    for i, name in enumerate(N):
        w(f"        const T {pr(noise_symbol(name))} = (T)nf_normal(key[j], (uint64_t)(k * {len(N)} + {i}));")
    if spec.refractory is not None:
        kind, expr = spec.refractory
        if kind == "condition":
            # as Brian2: refractory from a spike until the condition first fails (ls[j] >= 0 marks it)
            w(f"        const int in_ref = (ls[j] >= 0) && ({pr(expr)});")
            w("        ls[j] = in_ref ? ls[j] : (INT32_MIN / 2);")
            w(f"        const T {not_refractory} = in_ref ? {pr.literal(0.0)} : {one};")
        else:
            w(f"        const int32_t ref_steps = (int32_t)floor(((double)({pr(expr)}) + 1e-3 * dt_d) / dt_d);")
            w(f"        const T {not_refractory} = ((int64_t)k - (int64_t)ls[j]) >= ref_steps ? {one} : "
              f"{pr.literal(0.0)};")
    elif spec.uses_not_refractory:
        w(f"        const T {not_refractory} = {one};")
    for sym, expr in spec.body:
        w(f"        const T {pr(sym)} = {pr(expr)};")
    for r_i, r in enumerate(spec.record):
        w(f"        rec[{r_i} * n_steps * LANES + j] = {pr(spec.record_values[r])};")
    for v in spec.targets:
        value = spec.record_values[v]  # the target's value at step start: a state's symbol or an expression
        value = pr(value) if value.is_Symbol else f"({pr(value)})"
        w(f"        if (k >= target_start) {{ const double d = (double){value} - (double)tg_{g[v]}[tr[j]]; "
          f"err_{g[v]}[j] += d * d; }}")
    new = {s: f"new_{u[s]}" for s in S}
    for s in S:
        w(f"        T {new[s]} = {pr(spec.updates[s])};")
    if S:
        w("        badb[j] |= " + " | ".join(f"nf_nonfinite({new[s]})" for s in S) + ";")
    if spec.threshold is not None:
        names = {sympy.Symbol(s, real=True): new[s] for s in S}
        epr = Printer("c", dtype, names)
        cond = f"({epr(spec.threshold)})"
        if spec.refractory is not None:
            cond += f" && ({not_refractory} > {pr.literal(0.5)})"
        w(f"        const int fire = {cond};")
        for target, op, expr in spec.reset:
            value = epr(expr)
            rhs = value if op == "=" else f"{new[target]} {op[0]} {value}"
            w(f"        {new[target]} = fire ? ({rhs}) : {new[target]};")
        w("        ls[j] = fire ? (int32_t)k : ls[j];")
        w("        spk[j] = fire; n_spikes += fire;")
    for s in S:
        w(f"        {lane_arrays[s]}[j] = {new[s]};")
    w("      }")
    if spec.threshold is not None:
        w("      if (n_spikes) for (int j = 0; j < nb; j++) if (spk[j]) {")
        w("        const int64_t n = n0 + j; const int64_t c = spike_counts[n]++;")
        w("        if (c < spike_cap) spike_steps[n * spike_cap + c] = (int32_t)k;")
        w("      }")
    w("    }")
    w("    for (int j = 0; j < nb; j++) {")
    w("      const int64_t n = n0 + j;")
    w("      bad[n] = badb[j]; lastspike[n] = ls[j];")
    for i, s in enumerate(S):
        w(f"      state[{i} * n_neurons + n] = {lane_arrays[s]}[j];")
    for i, v in enumerate(spec.targets):
        w(f"      sq_err[{i} * n_neurons + n] = err_{g[v]}[j];")
    w("    }")
    w("  }")
    w("  return 0;")
    w("}")
    return header + "\n".join(L) + "\n"


class CKernel:
    """A compiled KernelSpec; ``run`` has the same contract as NumpyKernel.run."""

    def __init__(self, spec: KernelSpec, dtype: str):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.source = generate_source(spec, dtype)
        self._functions = {}
        self._function(LANES)  # compile now: errors surface at construction

    def _function(self, lanes: int):
        """The compiled loop for blocks of ``lanes`` neurons (built on first use, cached on disk)."""
        if lanes not in self._functions:
            source = self.source if lanes == LANES else generate_source(self.spec, self.dtype.name, lanes)
            fn = ctypes.CDLL(str(_build(source, _DTYPE_FLAGS[self.dtype.name], self.dtype.name))).nf_run
            ptr, i64 = ctypes.c_void_p, ctypes.c_int64
            fn.argtypes = [i64, i64, i64, ctypes.c_double, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr, ptr, i64,
                           ptr, ctypes.c_uint64, i64, ctypes.c_int]
            fn.restype = ctypes.c_int
            self._functions[lanes] = fn
        return self._functions[lanes]

    def run(self, shape: tuple, params: dict, inputs: dict, init: dict, dt: float, n_steps: int, seed: int,
            set_offset: int, targets: dict, target_start: int, threads: int = 1, spike_cap: int | None = None):
        """As NumpyKernel.run (same arguments, same results), on ``threads`` OpenMP threads; ``spike_cap``:
        spikes buffered per neuron (default min(n_steps, 256); the run repeats with room if one overflows)."""
        spec, dtype = self.spec, self.dtype
        n_sets, n_traces = shape
        n_neurons = n_sets * n_traces
        lanes = SMALL_LANES if n_neurons <= 4 * SMALL_LANES else LANES
        n_blocks = -(-n_neurons // lanes)

        def c(a):
            return a.ctypes.data_as(ctypes.c_void_p)

        par = np.ascontiguousarray(np.array([params[p] for p in spec.parameters], dtype=dtype).reshape(-1))
        inp = np.zeros(1, dtype=dtype)
        if spec.inputs:
            inp = np.ascontiguousarray(np.stack([np.asarray(inputs[u], dtype=dtype).T for u in spec.inputs]))
        # neuron order inside C: trace-major (trace * n_sets + set)
        st = np.zeros(1, dtype=dtype)  # a model without differential equations has no state
        if spec.states:
            st = np.ascontiguousarray(np.stack([np.asarray(init[s], dtype=dtype).T.reshape(-1) for s in spec.states]))
        rec = np.empty(max(1, n_blocks * len(spec.record) * n_steps * lanes), dtype=dtype)
        tg = np.zeros(1, dtype=dtype)
        if spec.targets:
            tg = np.ascontiguousarray(np.stack([np.asarray(targets[v], dtype=dtype).T for v in spec.targets]))
        err = np.zeros(max(1, len(spec.targets) * n_neurons))
        bad = np.zeros(n_neurons, dtype=np.uint8)
        last = np.full(n_neurons, np.iinfo(np.int32).min // 2, dtype=np.int32)
        cap = spike_cap or (min(n_steps, 256) if spec.threshold is not None else 1)
        steps = np.zeros(max(1, n_neurons * cap), dtype=np.int32)
        counts = np.zeros(n_neurons, dtype=np.int64)
        self._function(lanes)(n_sets, n_traces, n_steps, float(dt), c(par), c(inp), c(st), c(rec), c(tg), int(target_start),
                c(err), c(bad), c(last), c(steps), cap, c(counts), int(seed) & 0xFFFFFFFFFFFFFFFF, int(set_offset),
                int(threads))
        if spec.threshold is not None and counts.max(initial=0) > cap:
            # a spike buffer overflowed: run again with room for a spike at every step
            return self.run(shape, params, inputs, init, dt, n_steps, seed, set_offset, targets, target_start, threads,
                            spike_cap=n_steps)

        def to_sets(flat):  # (n_neurons,) trace-major → (n_sets, n_traces)
            return flat.reshape(n_traces, n_sets).T

        records = {}
        if spec.record:
            r = rec.reshape(n_blocks, len(spec.record), n_steps, lanes).transpose(1, 0, 3, 2)
            r = r.reshape(len(spec.record), n_blocks * lanes, n_steps)[:, :n_neurons]
            r = r.reshape(len(spec.record), n_traces, n_sets, n_steps).transpose(0, 2, 1, 3)
            records = {name: np.ascontiguousarray(r[i]) for i, name in enumerate(spec.record)}
        final = {s: to_sets(st[i]).copy() for i, s in enumerate(spec.states)}
        sq_err = {v: to_sets(err[i * n_neurons:(i + 1) * n_neurons]).copy() for i, v in enumerate(spec.targets)}
        events = []
        if spec.threshold is not None:
            # per-neuron spike buffers → (step, sets, traces) in step order, neurons ascending within a step
            neuron = np.repeat(np.arange(n_neurons), counts)
            step = steps.reshape(n_neurons, cap)[np.arange(cap) < counts[:, None]]
            order = np.argsort(step, kind="stable")
            step, neuron = step[order], neuron[order]
            ks, starts = np.unique(step, return_index=True)
            events = [(int(k), ns % n_sets, ns // n_sets) for k, ns in zip(ks, np.split(neuron, starts[1:]))]
        return records, events, to_sets(bad.astype(bool)), final, sq_err


__all__ = ["CKernel", "compiler_works", "generate_source", "cache_dir", "CompileError"]
