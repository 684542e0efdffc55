"""Benchmark: training data and NPE training for simulation-based inference (neurofit.inference.inferencer).

HH of brian2modelfitting's Inferencer tutorial (g_Na, g_K free, uniform priors 1–100 uS, 0.1–10 uS),
driven by trace 0 of the tutorial's recorded input (1497 steps at dt 0.01 ms, 10 nA step);
features v_max, v_mean, v_std, resting_potential (and, in one row, spike count/ISI/latency).
Reports simulations with features per second (C compilation excluded), then the wall time of
training NPE on 10^4 of these simulations. Run: ``.venv/bin/python benchmarks/inference.py``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from neurofit import models
from neurofit.inference.inferencer import Inferencer

DATA = Path(__file__).resolve().parents[1] / "data" / "brian2modelfitting" / "input_traces_hh.csv"
SPEC = models.SPECS["hh_inferencer"]  # the manual's Inferencer tutorial model (threshold, refractory: m > 0.5)
TRACE_FEATURES = ["v_max", "v_mean", "v_std", "resting_potential"]


def inferencer(dtype: str, spikes: bool, threads: int) -> Inferencer:
    current = pd.read_csv(DATA, index_col=0).to_numpy()[:1]
    output = {"v": np.full(current.shape, -0.07)}
    features = {"v": TRACE_FEATURES}
    if spikes:
        output["spikes"] = [np.array([0.006])]
        features["spikes"] = ["spike_count", "mean_isi", "first_spike_latency"]
    inf = Inferencer("0.01 ms", models.get("hh_inferencer"), {"I": current}, output, features=features,
                     method=SPEC.method, param_init=SPEC.init, dtype=dtype, threads=threads, seed=0)
    inf.init_prior(g_Na=["1 uS", "100 uS"], g_K=["0.1 uS", "10 uS"])
    return inf


def throughput(n: int, dtype: str, spikes: bool, threads: int) -> tuple[float, np.ndarray, np.ndarray]:
    inf = inferencer(dtype, spikes, threads)
    theta = inf.generate_training_data(n)
    inf.extract_summary_statistics(theta[:10])  # compile the C kernel (cached afterwards)
    start = time.perf_counter()
    x = inf.extract_summary_statistics(theta)
    return n / (time.perf_counter() - start), theta, x


def npe_training(theta, x, estimator: str, threads: int) -> tuple[float, int]:
    inf = inferencer("float64", False, threads)
    inference = inf.init_inference("NPE", estimator)
    start = time.perf_counter()
    inf.infer_step(inf.prior, inference, theta=theta, x=x)
    return time.perf_counter() - start, int(inference.summary["epochs_trained"][-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="simulations (default 10000)")
    parser.add_argument("--threads", type=int, default=1, help="torch and C threads (default 1)")
    args = parser.parse_args()
    rows = {}
    for dtype, spikes in (("float64", False), ("float32", False), ("float64", True)):
        rate, theta, x = throughput(args.n, dtype, spikes, args.threads)
        rows[f"simulations/s {dtype}{' + spike features' if spikes else ''}"] = round(rate)
        if dtype == "float64" and not spikes:
            data = (theta, x)
    for estimator in ("maf", "mdn"):
        seconds, epochs = npe_training(*data, estimator, args.threads)
        rows[f"NPE-{estimator} training on {args.n} simulations (s, epochs)"] = [round(seconds, 1), epochs]
    rows["machine"] = f"{platform.processor() or platform.machine()}, {args.threads} thread(s)"
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
