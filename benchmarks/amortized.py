"""Benchmark: amortized population inference (neurofit.inference.amortized) - one posterior for a protocol, then
N cells in seconds.

Protocol: two 100 ms current steps (-0.15 and +0.15 nA) after a 50 ms baseline, 0.2 s at 0.1 ms. Cells: passive
membranes (``neurofit.models.get("passive")``) whose gl (5-50 nS), El (-80 to -60 mV) and C (50-300 pF) are
drawn uniformly from the prior (``np.random.default_rng(--seed)``), plus white observation noise of SD 2 mV.
One Inferencer per training size (features v_max, v_mean, v_std, resting_potential, voltage_deflection per
trace; the noise pooled from the cells' baselines, ``pooled_noise``; NPE-MAF, sbi's default training) is trained
once, then ``infer_population`` gives every cell its features, misspecification check and 1000 posterior draws.
Reports the training time (simulations + NPE), the time per cell after training (mean, and split into features,
check and draws, timed separately on the same cells), the empirical coverage of the central 50 % and 90 %
intervals over cells x parameters (per parameter and pooled) and the cells whose check failed (false alarms:
every cell is well specified). torch and the simulations use one thread.
Run: ``.venv/bin/python benchmarks/amortized.py`` (N = 20 and 100; training sizes 2000 and 10000).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import torch

from neurofit import models, simulate
from neurofit.inference.amortized import cell_seed, infer_population, pooled_noise
from neurofit.inference.inferencer import Inferencer, _draw

DT, N_STEPS, SD = 1e-4, 2000, 2e-3
STEP = np.zeros((2, N_STEPS))
STEP[0, 500:1500], STEP[1, 500:1500] = -0.15e-9, 0.15e-9
NAMES = ["gl", "El", "C"]
BOUNDS = {"gl": [5e-9, 50e-9], "El": [-80e-3, -60e-3], "C": [50e-12, 300e-12]}
FEATURES = {"v": ["v_max", "v_mean", "v_std", "resting_potential", "voltage_deflection"]}


def cells(n: int, seed: int) -> tuple[dict, dict]:
    """n passive cells from the prior: ({cell: {"v": (2, N_STEPS)}}, {cell: theta})."""
    rng = np.random.default_rng(seed)
    theta = np.column_stack([rng.uniform(*BOUNDS[p], n) for p in NAMES])
    result = simulate(models.get("passive"), dict(zip(NAMES, theta.T)), {"I": STEP}, DT, init={"v": "El"},
                      record="v", method="exponential_euler")
    v = result.traces["v"] + SD * rng.standard_normal(result.traces["v"].shape)
    names = [f"cell_{k:03d}" for k in range(n)]
    return {c: {"v": v[k]} for k, c in enumerate(names)}, {c: theta[k] for k, c in enumerate(names)}


def train(group: dict, n_train: int) -> tuple[Inferencer, float, int]:
    """The group's amortized posterior: (inferencer, seconds, epochs)."""
    start = time.perf_counter()
    inferencer = Inferencer(DT, models.get("passive"), {"I": STEP}, next(iter(group.values())), features=FEATURES,
                            method="exponential_euler", param_init={"v": "El"},
                            noise=pooled_noise(group, DT, {"I": STEP}), seed=0, threads=1)
    inferencer.infer(n_samples=n_train, **BOUNDS)
    return inferencer, time.perf_counter() - start, int(inferencer.inference.summary["epochs_trained"][-1])


def split_times(inferencer: Inferencer, group: dict, n_samples: int) -> dict:
    """Mean seconds per cell of each part, timed separately: features, misspecification check, draws."""
    parts = {"features": 0.0, "check": 0.0, "draws": 0.0}
    inferencer._checked = {}  # results are cached per x: time the check afresh
    for cell, recording in group.items():
        t0 = time.perf_counter()
        x = inferencer.features_of(recording)
        t1 = time.perf_counter()
        inferencer.check_misspecification(x, warn=False)
        t2 = time.perf_counter()
        _draw(inferencer.posterior, (n_samples,), cell_seed(inferencer.seed, cell), x=x)
        t3 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[key] += dt
    return {k: round(v / len(group), 4) for k, v in parts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[20, 100], help="group sizes (default 20 100)")
    parser.add_argument("--train", type=int, nargs="+", default=[2000, 10_000],
                        help="training simulations (default 2000 10000)")
    parser.add_argument("--samples", type=int, default=1000, help="posterior draws per cell (default 1000)")
    parser.add_argument("--seed", type=int, default=12, help="seed of the cells' parameters and noise")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    largest, truth = cells(max(args.cells), args.seed)
    for n_train in args.train:
        inferencer, seconds, epochs = train(largest, n_train)
        for n in args.cells:
            group = dict(list(largest.items())[:n])
            start = time.perf_counter()
            population = infer_population(inferencer, group, n_samples=args.samples)
            wall = time.perf_counter() - start
            coverage = population.coverage({c: truth[c] for c in group}, [0.5, 0.9])
            rows.append({"training simulations": n_train, "training s": round(seconds, 1), "epochs": epochs,
                         "cells": n, "s per cell": round(population.seconds_per_cell, 4),
                         "all cells s": round(wall, 2), "split s per cell": split_times(inferencer, group, args.samples),
                         "coverage 50 % (gl, El, C)": coverage[0].round(3).tolist(),
                         "coverage 50 % pooled": round(float(coverage[0].mean()), 3),
                         "coverage 90 % (gl, El, C)": coverage[1].round(3).tolist(),
                         "coverage 90 % pooled": round(float(coverage[1].mean()), 3),
                         "failed checks": population.failed})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, 1 thread",
                      "samples per cell": args.samples, "noise SD (V)": SD}))


if __name__ == "__main__":
    main()
