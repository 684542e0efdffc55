"""Simulation speed: HH (Traub-Miles) neuron-steps per second, numpy and C backends, float32/float64.

    .venv/bin/python benchmarks/simulate.py                 # N = 500, 5,000, 50,000 (numpy up to 5,000)
    .venv/bin/python benchmarks/simulate.py --numpy-all     # numpy at 50,000 too (about a minute more)
    .venv/bin/python benchmarks/simulate.py --sizes 5000 --steps 2000

The brian2modelfitting tutorial's model (models.get("hh_traub")), exponential_euler, dt = 0.01 ms,
one parameter set per neuron (gl, g_na, g_kd drawn log-uniformly in x0.7..x1.4 of the tutorial's
values), one step current (0 for 1 ms, then 1 nA) that makes most neurons fire. record=() so memory
stays small. Each configuration: one warm-up run (compilation, caches) excluded, then the best of
--repeats timed runs, one thread. Prints a Markdown table (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import neurofit as nf  # noqa: E402
from neurofit import models  # noqa: E402

DT = 1e-5
STEP_ON = 100  # samples (1 ms) before the current step


def workload(n_neurons: int, n_steps: int, seed: int = 0):
    """(params, inputs): one random parameter set per neuron, one step current shared by all."""
    rng = np.random.default_rng(seed)
    defaults = models.SPECS["hh_traub"].defaults
    params = {p: x * np.exp(rng.uniform(np.log(0.7), np.log(1.4), n_neurons)) for p, x in defaults.items()}
    current = np.zeros((1, n_steps))
    current[0, STEP_ON:] = 1e-9
    return params, {"I": current}


def fraction_spiking(n_neurons: int = 2000, n_steps: int = 2000) -> float:
    """Share of the benchmark's neurons that fire at least once (checked once, not timed)."""
    model = models.get("hh_traub", threshold="v > -20*mV", refractory="v > -20*mV")
    params, inputs = workload(n_neurons, n_steps)
    result = nf.simulate(model, params, inputs, dt=DT, init=models.SPECS["hh_traub"].init, record=(), spikes=True,
                         method="exponential_euler", backend="c" if _c_available() else "numpy")
    return float(np.mean(result.spike_counts[:, 0] > 0))


def _c_available() -> bool:
    from neurofit.codegen.c_backend import compiler_works
    return compiler_works()


def time_one(backend: str, dtype: str, n_neurons: int, n_steps: int, repeats: int) -> tuple[float, bool]:
    """Best wall time (s) of ``repeats`` runs after one warm-up; and whether any neuron diverged."""
    model = models.get("hh_traub")
    params, inputs = workload(n_neurons, n_steps)
    init = models.SPECS["hh_traub"].init

    def once():
        return nf.simulate(model, params, inputs, dt=DT, init=init, record=(), method="exponential_euler",
                           backend=backend, dtype=dtype, threads=1)

    result = once()  # warm-up: compile / load, fill caches
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - start)
    return best, bool(result.invalid.any())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = f"{names[0]} ({len(names)} logical cores)"
    except OSError:
        pass
    return f"{cpu}, Python {platform.python_version()}, numpy {np.__version__}, {platform.system()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5_000, 50_000])
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy-max", type=int, default=5_000, help="largest N for the numpy backend")
    parser.add_argument("--numpy-all", action="store_true", help="run numpy at every N")
    parser.add_argument("--backends", nargs="+", default=["c", "numpy"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    args = parser.parse_args(argv)

    backends = [b for b in args.backends if b != "c" or _c_available()]
    print(f"# HH (hh_traub, exponential_euler, dt 0.01 ms), {args.steps} steps, best of {args.repeats}, 1 thread")
    print(f"# machine: {machine()}")
    print(f"# neurons firing at least once under the step current: {100 * fraction_spiking():.0f} %")
    print()
    print("| backend | dtype | N | time (s) | neuron-steps/s |")
    print("|---|---|---:|---:|---:|")
    for backend in backends:
        for dtype in args.dtypes:
            for n in args.sizes:
                if backend == "numpy" and n > args.numpy_max and not args.numpy_all:
                    continue
                seconds, diverged = time_one(backend, dtype, n, args.steps, args.repeats)
                rate = n * args.steps / seconds
                flag = " (diverged!)" if diverged else ""
                print(f"| {backend} | {dtype} | {n:,} | {seconds:.3f} | {rate / 1e6:.1f} M{flag} |", flush=True)


if __name__ == "__main__":
    main()
