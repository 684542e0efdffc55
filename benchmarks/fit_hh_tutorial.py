"""Wall time of brian2modelfitting's TraceFitter tutorial with neurofit: DE, 100 samples × 10 rounds,
then refine, on the tutorial's recorded traces. Prints time per round, total time and the final
MSE relative to the noise floor, for 3 seeds, with 3 and 4 (Cm free) parameters.

    .venv/bin/python benchmarks/fit_hh_tutorial.py
"""
import os
import time

import numpy as np
import pandas as pd

from neurofit import MSEMetric, NevergradOptimizer, TraceFitter, models

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "brian2modelfitting")
NOISE_FLOOR = 9.95e-7
BOUNDS = {"gl": [2e-12, 200e-9], "g_na": [200e-9, 0.4e-3], "g_kd": [200e-9, 200e-6], "Cm": [20e-12, 2e-9]}


def main():
    inp = pd.read_csv(os.path.join(DATA, "input_traces_hh.csv"), index_col=0).to_numpy()
    out = pd.read_csv(os.path.join(DATA, "output_traces_hh.csv"), index_col=0).to_numpy() * 1e-3
    print("params  seed  fit 10 rounds (s)  per round (ms)  fit MSE/floor  refine (s)  final MSE/floor  total (s)")
    for free_cm in (False, True):
        model = models.get("hh_traub", free=["Cm"] if free_cm else [])
        bounds = {k: v for k, v in BOUNDS.items() if k != "Cm" or free_cm}
        warm = TraceFitter(model, input={"I": inp}, output={"v": out}, dt=1e-5, n_samples=100,
                           method="exponential_euler", param_init={"v": -65e-3})
        warm.fit(NevergradOptimizer("DE", seed=0), MSEMetric(), n_rounds=1, callback=None, **bounds)
        warm.refine(n_starts=1)  # compiles (and caches) both kernels: not part of the timings
        for seed in (1, 2, 3):
            fitter = TraceFitter(model, input={"I": inp}, output={"v": out}, dt=1e-5, n_samples=100,
                                 method="exponential_euler", param_init={"v": -65e-3})
            t0 = time.perf_counter()
            _, error = fitter.fit(NevergradOptimizer("DE", seed=seed), MSEMetric(), n_rounds=10, callback=None,
                                  **bounds)
            t1 = time.perf_counter()
            _, result = fitter.refine()
            t2 = time.perf_counter()
            print(f"{len(bounds):6d}  {seed:4d}  {t1 - t0:17.3f}  {(t1 - t0) * 100:14.1f}  {error / NOISE_FLOOR:13.1f}"
                  f"  {t2 - t1:10.3f}  {np.mean(result.fun ** 2) / NOISE_FLOOR:15.4f}  {t2 - t0:9.3f}")


if __name__ == "__main__":
    main()
