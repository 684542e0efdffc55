"""A tiny study run through the Snakemake workflow: the shared subject of the robustness, audit and SLURM tests.

The study is the workflow's test config, .test/config/config.yaml (`snakemake --cores 2 --directory .test` runs
it): the HH tutorial's recordings, simulated at the ground truth, fitted with one optimizer (DE, seed 1,
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
TEST_DIR = ROOT / ".test"
TEST_CONFIG = TEST_DIR / "config" / "config.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
STUDY = "tiny"

#: Every numeric result of the tiny study (relative to results/tiny/).
INFER_OUTPUTS = ("infer/chunks/chunk_0.npz", "infer/chunks/chunk_1.npz", "infer/posterior.pt",
                 "infer/samples.parquet", "infer/posterior.csv", "infer/summary.json", "infer/pairplot.png",
                 "infer/predictive.png", "infer/predictive_check.json", "infer/predictive_check.png")
NUMERIC_OUTPUTS = ("study.yaml", "data.npz", "simulate/traces.npz", "fit/DE_1/fit.json", "fit/DE_1/history.parquet",
                   "fit/DE_1/refined.json", "summary/fits.csv", *INFER_OUTPUTS)
#: Those whose bytes carry no run time: equal numbers give equal bytes.
BYTE_IDENTICAL = ("study.yaml", "data.npz", "simulate/traces.npz", "fit/DE_1/history.parquet", *INFER_OUTPUTS)


def tiny_config(n_rounds: int = 20) -> dict:
    """The config of .test/config/config.yaml with its data paths made absolute (they are relative to .test/,
    the working directory of `snakemake --directory .test`) and fit.n_rounds set to ``n_rounds``."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for study in config["studies"].values():
        for role in ("inputs", "outputs"):
            for spec in study.get("data", {}).get(role, {}).values():
                spec["path"] = str((TEST_DIR / spec["path"]).resolve())
    config["studies"][STUDY]["fit"]["n_rounds"] = n_rounds
    return config


def make_workdir(path: Path, config: dict | None = None) -> Path:
    """A working directory for the workflow, ``path``/work, whose config/config.yaml links to ``path``/config.yaml
    (``config``, default the tiny study's). The config, like the recordings, lies outside the working directory:
    jobs name it by its absolute path, so that a copy of results/ made elsewhere finds every input of its
    manifests (the audit's tests review such a copy). Returns the working directory."""
    path = Path(path)
    work = path / "work"
    (work / "config").mkdir(parents=True, exist_ok=True)
    source = path / "config.yaml"
    source.write_text(yaml.safe_dump(config or tiny_config(), sort_keys=False))
    link = work / "config" / "config.yaml"
    if not link.is_symlink():
        link.symlink_to(source)
    return work


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
