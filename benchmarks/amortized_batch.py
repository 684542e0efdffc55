"""Benchmark: amortized inference per sheet group through the batch workflow (``amortize: group``).

Cells: N synthetic passive membranes (``models.get("passive")``; gl, El, C drawn uniformly from the prior with
``np.random.default_rng(seed)``) under one protocol - two 100 ms steps of -0.15 and +0.15 nA after a 50 ms
baseline, 0.2 s at 0.1 ms - with white noise of SD 2 mV (the set-up of tests/test_amortized.py), one NWB file
each, all in one sheet group. The study: one infer stage (NPE, 2000 training simulations, the five trace
features of the test) with ``amortize: group``, run by Snakemake on ``--cores`` cores; then the same stage with
``amortize: cell`` (a training in every cell's job) on the first ``--per-cell`` cells, for the time per cell
without amortization. Reports the wall time, the group's training job and the cells' conditioning jobs (from
Snakemake's benchmark files), and the empirical coverage of the central 50 % and 90 % intervals of the cells'
posterior samples (samples.parquet) against the drawn parameters.
Run: ``.venv/bin/python benchmarks/amortized_batch.py --cells 24 --cores 2``.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDY, STAGE, GROUP = "amortized_bench", "passive", "protocol_A"
DT, N_STEPS, SD = 1e-4, 2000, 2e-3
NAMES = ("gl", "El", "C")
BOUNDS = {"gl": (5e-9, 50e-9), "El": (-80e-3, -60e-3), "C": (50e-12, 300e-12)}
LEVELS = (0.5, 0.9)


def make_cells(folder: Path, n_cells: int, seed: int) -> dict:
    """The cells' NWB files and cells.tsv in ``folder``; returns cell -> {parameter: drawn value (SI)}."""
    from neurofit import models, simulate
    from neurofit.data.recordings.nwb_writer import write_nwb_cell

    rng = np.random.default_rng(seed)
    current = np.zeros((2, N_STEPS))
    current[0, 500:1500], current[1, 500:1500] = -0.15e-9, 0.15e-9
    theta = {p: rng.uniform(*BOUNDS[p], n_cells) for p in NAMES}
    v = simulate(models.get("passive"), theta, {"I": current}, DT, init={"v": "El"}, record="v",
                 method="exponential_euler").traces["v"]
    truth, rows = {}, ["cell\tfile\tgroup"]
    for k in range(n_cells):
        cell = f"cell_{k:03d}"
        write_nwb_cell(folder / f"{cell}.nwb", current, v[k] + SD * rng.standard_normal(v[k].shape), DT, cell)
        truth[cell] = {p: float(theta[p][k]) for p in NAMES}
        rows.append(f"{cell}\t{cell}.nwb\t{GROUP}")
    (folder / "cells.tsv").write_text("\n".join(rows) + "\n")
    return truth


def write_config(folder: Path, amortize: str, sheet: str) -> Path:
    stage = {"name": STAGE, "model": {"builtin": "passive"}, "amortize": amortize,
             "infer": {"bounds": {"gl": ["5 nS", "50 nS"], "El": ["-80 mV", "-60 mV"], "C": ["50 pF", "300 pF"]},
                       "features": {"v": ["v_max", "v_mean", "v_std", "resting_potential", "voltage_deflection"]},
                       "n_samples": 2000, "num_posterior_samples": 1000, "seed": 0}}
    config = {"studies": {STUDY: {"description": f"benchmarks/amortized_batch.py (amortize: {amortize})",
                                  "sheet": sheet, "data": {"dt": "0.1 ms",
                                                           "recording": {"qc": {"max_noise_rms": "3 mV"}}},
                                  "stages": [stage]}}}
    path = folder / f"config_{amortize}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(folder: Path, config: Path, cores: int) -> float:
    """Run the workflow in ``folder``; returns its wall time (s)."""
    command = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"), "--cores",
               str(cores), "--configfile", str(config), "--replace-workflow-config"]
    start = time.perf_counter()
    process = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(process.stdout[-3000:] + process.stderr[-3000:])
    return time.perf_counter() - start


def job_seconds(path: Path) -> float:
    with open(path) as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def coverage(folder: Path, truth: dict) -> dict:
    """Level -> parameter -> share of cells whose drawn value lies in the central interval of their samples."""
    import pandas as pd

    inside = {level: dict.fromkeys(NAMES, 0) for level in LEVELS}
    for cell, values in truth.items():
        samples = pd.read_parquet(folder / "results" / STUDY / "cells" / cell / STAGE / "infer" / "samples.parquet")
        for level in LEVELS:
            for p in NAMES:
                low, high = np.quantile(samples[p], [(1 - level) / 2, (1 + level) / 2])
                inside[level][p] += int(low <= values[p] <= high)
    return {level: {p: n / len(truth) for p, n in found.items()} for level, found in inside.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=24)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--per-cell", type=int, default=4, help="cells run again with a training each")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="neurofit-amortized-batch-") as tmp:
        folder = Path(tmp)
        truth = make_cells(folder, args.cells, args.seed)
        wall = snakemake(folder, write_config(folder, "group", "cells.tsv"), args.cores)
        bench = folder / "results" / STUDY / "benchmarks"
        training = job_seconds(bench / "groups" / GROUP / f"{STAGE}.tsv")
        cells = np.array([job_seconds(bench / "cells" / c / f"{STAGE}.tsv") for c in truth])
        found = coverage(folder, truth)
        table = list(csv.DictReader(open(folder / "results" / STUDY / "population" / "cells.csv")))
        flagged = sum(row[f"{STAGE}.misspecified"] == "True" for row in table)
        other = folder / "per_cell"
        other.mkdir()
        lines = (folder / "cells.tsv").read_text().splitlines()[: args.per_cell + 1]
        (other / "cells.tsv").write_text("\n".join(lines).replace("\tcell_", "\t../cell_") + "\n")
        per_cell_wall = snakemake(other, write_config(other, "cell", "cells.tsv"), args.cores)
        per_cell = np.array([job_seconds(other / "results" / STUDY / "benchmarks" / "cells" / row.split("\t")[0] /
                                         f"{STAGE}.tsv") for row in lines[1:]])
    report = {"cells": args.cells, "cores": args.cores, "wall_s": round(wall, 1), "training_job_s": round(training, 1),
              "cell_job_s": {"median": round(float(np.median(cells)), 2), "max": round(float(cells.max()), 2)},
              "coverage": {str(level): {p: round(v, 3) for p, v in c.items()} for level, c in found.items()},
              "misspecification_flags": flagged,
              "per_cell_training": {"cells": int(per_cell.size), "wall_s": round(per_cell_wall, 1),
                                    "cell_job_s_median": round(float(np.median(per_cell)), 2)}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
