"""A tiny study run through the Snakemake workflow: the shared subject of the robustness, audit and SLURM tests.

The HH tutorial's recordings, simulated at the ground truth, fitted with one optimizer (DE, seed 1,
30 candidates x 20 rounds: a few seconds, so that a kill can land mid-fit) and refined, and a small
simulation-based inference on the same recordings (300 simulations in 2 chunks, NPE with an MDN); figures
off to keep it quick. The DAG is 4 jobs deep: prepare -> simulate | fit -> refine -> summarize, and
prepare -> simulate_training (2) -> infer.
"""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "brian2modelfitting"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
STUDY = "tiny"

#: Every numeric result of the tiny study (relative to results/tiny/).
INFER_OUTPUTS = ("infer/chunks/chunk_0.npz", "infer/chunks/chunk_1.npz", "infer/posterior.pt",
                 "infer/samples.parquet", "infer/posterior.csv", "infer/summary.json", "infer/pairplot.png",
                 "infer/predictive.png")
NUMERIC_OUTPUTS = ("study.yaml", "data.npz", "simulate/traces.npz", "fit/DE_1/fit.json", "fit/DE_1/history.parquet",
                   "fit/DE_1/refined.json", "summary/fits.csv", *INFER_OUTPUTS)
#: Those whose bytes carry no run time: equal numbers give equal bytes.
BYTE_IDENTICAL = ("study.yaml", "data.npz", "simulate/traces.npz", "fit/DE_1/history.parquet", *INFER_OUTPUTS)


def tiny_config(n_rounds: int = 20) -> dict:
    return {"studies": {STUDY: {
        "model": {"builtin": "hh_traub"},
        "data": {"dt": "0.01 ms", "inputs": {"I": {"path": str(DATA / "input_traces_hh.csv"), "unit": "amp"}},
                 "outputs": {"v": {"path": str(DATA / "output_traces_hh.csv"), "unit": "mV"}}},
        "ground_truth": {"gl": "10 nS", "g_na": "20 uS", "g_kd": "6 uS"},
        "simulate": {"params": {"gl": "10 nS", "g_na": "20 uS", "g_kd": "6 uS"}, "init": {"v": "-65 mV"}},
        "fit": {"bounds": {"gl": ["2 pS", "200 nS", "log"], "g_na": ["200 nS", "0.4 mS", "log"],
                           "g_kd": ["200 nS", "200 uS", "log"]},
                "init": {"v": "-65 mV"}, "optimizers": [{"name": "DE"}], "seeds": [1],
                "n_samples": 30, "n_rounds": n_rounds, "noise_floor": 9.95e-7, "refine": {"n_starts": 2}},
        "infer": {"bounds": {"gl": ["2 nS", "50 nS", "log"], "g_na": ["5 uS", "80 uS", "log"],
                             "g_kd": ["1 uS", "30 uS", "log"]},
                  "features": {"v": ["v_max", "v_mean", "v_std"]}, "noise": {"v": "1 mV"},
                  "n_samples": 300, "n_chunks": 2, "density_estimator": "mdn", "num_posterior_samples": 500},
        "figures": {"traces": False, "fits": False},
    }}}


def make_workdir(path: Path, config: dict | None = None) -> Path:
    path = Path(path)
    (path / "config").mkdir(parents=True, exist_ok=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config or tiny_config(), sort_keys=False))
    return path


def snakemake_command(*args) -> list:
    return [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), *map(str, args)]


def run_snakemake(workdir: Path, *args, timeout: float = 600, env=None) -> tuple[int, str]:
    proc = subprocess.run(snakemake_command(*args), cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=env)
    return proc.returncode, proc.stdout + proc.stderr


def results(workdir: Path) -> Path:
    return Path(workdir) / "results" / STUDY


def numeric_differences(a: Path, b: Path, names=NUMERIC_OUTPUTS) -> dict:
    """name -> differences between the results folders ``a`` and ``b`` (only names that differ): the
    files of BYTE_IDENTICAL must be equal byte for byte, the others in every number (run times aside)."""
    from neurofit.cli.auditor import compare_files

    found = {}
    for name in names:
        x, y = Path(a) / name, Path(b) / name
        if not (x.is_file() and y.is_file()):
            found[name] = [f"missing: {x if not x.is_file() else y}"]
        elif name in BYTE_IDENTICAL:
            if x.read_bytes() != y.read_bytes():
                found[name] = ["bytes differ"] + compare_files(x, y)
        elif compare_files(x, y):
            found[name] = compare_files(x, y)
    return found
