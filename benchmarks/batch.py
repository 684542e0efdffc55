"""Benchmark: a batch study of N synthetic cells x 2 stages run by the Snakemake workflow on --cores cores.

Cells: the current protocol of data/recordings/abf/171116sh_0018.abf (17 sweeps, -100 ... +300 pA in 25 pA steps;
its first 1.1 s: 147 ms baseline, a 500 ms step, 453 ms of recovery) given to an AdEx neuron whose parameters are
drawn per cell (``np.random.default_rng(cell index)``), simulated at dt 0.05 ms (20 kHz, the file's rate) with the
model's own threshold and reset, an action potential pasted at each reset (the AdEx threshold, VT + 5 DeltaT, is
below the 0 mV the spike detectors look for), plus 0.3 mV of Gaussian noise; one NWB file per cell, read back and
checked with ``neurofit.read_recording``. The study is the two stages of config/examples/cells/config.yaml
(passive, then AdEx on the spiking sweeps with C, gl, El fixed), unchanged but for the sheet. Reports the wall time of the
whole run, the per-job times from Snakemake's benchmark files, CPU-seconds against cores x wall time, the cells'
statuses and the error of the fitted parameters against the drawn ones.
Run: ``.venv/bin/python benchmarks/batch.py --cells 100 --cores 2``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
PROTOCOL = ROOT / "data" / "recordings" / "abf" / "171116sh_0018.abf"
EXAMPLE = ROOT / "config" / "examples" / "cells" / "config.yaml"
STUDY = "batch_bench"
STAGES = ("passive", "adex")
DT = 5e-5  # s: simulation step and sampling step of the files (20 kHz, as the ABF file)
KEEP = 1.1  # s of each sweep kept: the protocol's first step (0.147-0.647 s) and its recovery, not the prepulse
NOISE = 0.3e-3  # V
SUBTHRESHOLD_HELDOUT = 2  # -50 pA
#: Drawn parameters: name -> (low, high) in SI, uniform.
RANGES = {"C": (80e-12, 250e-12), "gl": (3e-9, 15e-9), "El": (-75e-3, -60e-3), "VT": (-55e-3, -45e-3),
          "DeltaT": (1e-3, 3e-3), "a": (0.5e-9, 5e-9), "tau_w": (50e-3, 300e-3), "b": (10e-12, 100e-12),
          "Vr": (-70e-3, -50e-3)}
#: Pasted action potential: peak (V), samples at the peak, then decay (s) into the reset trajectory.
SPIKE_PEAK, SPIKE_TOP, SPIKE_DECAY = 30e-3, 2, 0.25e-3


# --- synthetic cells ------------------------------------------------------------------------------------------
def protocol() -> np.ndarray:
    """(17, n) injected current (A) of the ABF file's sweeps, the first KEEP seconds."""
    from neurofit import read_recording

    recording = read_recording(PROTOCOL)
    n = round(KEEP / DT)
    for sweep in recording.sweeps:
        if not np.isclose(sweep.dt, DT):
            raise SystemExit(f"{PROTOCOL}: sampled every {sweep.dt:g} s, expected {DT:g} s")
    return np.array([sweep.current[:n] for sweep in recording.sweeps])


def draw(index: int) -> tuple[dict, np.random.Generator]:
    """The AdEx parameters of cell ``index`` (SI) and its generator (which then draws the noise)."""
    rng = np.random.default_rng(index)
    return {name: float(rng.uniform(low, high)) for name, (low, high) in RANGES.items()}, rng


def simulate_cell(params: dict, current: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """(n_sweeps, n) membrane potential (V) with spikes pasted and noise added, and the spike counts."""
    from neurofit import models, simulate

    result = simulate(models.get("adex"), params, {"I": current}, DT, init={"v": params["El"], "w": 0.0},
                      record=("v",), spikes=True, method="euler", at_rest=True)
    if result.invalid.any():
        raise RuntimeError(f"AdEx diverged at {params}")
    v = result.traces["v"][0].copy()
    n = v.shape[1]
    shape = np.ones(SPIKE_TOP + int(6 * SPIKE_DECAY / DT))
    shape[SPIKE_TOP:] = np.exp(-np.arange(shape.size - SPIKE_TOP) * DT / SPIKE_DECAY)
    counts = []
    for trace, times in zip(v, result.spikes[0]):
        counts.append(len(times))
        for t in times:
            k = int(round(t / DT))  # the sample after the threshold crossing (already reset)
            part = slice(k, min(k + shape.size, n))
            w = shape[: part.stop - part.start]
            trace[part] = w * SPIKE_PEAK + (1 - w) * trace[part]
    v += NOISE * rng.standard_normal(v.shape)
    return v, counts


def write_nwb(path: Path, current: np.ndarray, voltage: np.ndarray, name: str) -> None:
    """One NWB file, one CurrentClampSeries (mV, float32) + CurrentClampStimulusSeries (pA) per sweep."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile(f"synthetic AdEx cell {name}", f"neurofit-batch-{name}",
                  datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc))
    electrode = nwb.create_icephys_electrode(name="elec0", description="simulated",
                                             device=nwb.create_device(name="neurofit.simulate"))
    for k, (i, v) in enumerate(zip(current, voltage)):
        response = CurrentClampSeries(
            name=f"ic_{k:02d}", data=H5DataIO((v * 1e3).astype(np.float32), compression="gzip", shuffle=True),
            electrode=electrode, rate=1 / DT, gain=1.0, conversion=1e-3, unit="volts", sweep_number=np.uint32(k))
        stimulus = CurrentClampStimulusSeries(
            name=f"ics_{k:02d}", data=H5DataIO((i * 1e12).astype(np.float32), compression="gzip", shuffle=True),
            electrode=electrode, rate=1 / DT, gain=1.0, conversion=1e-12, unit="amperes",
            stimulus_description="171116sh_0018 step", sweep_number=np.uint32(k))
        nwb.add_acquisition(response)
        nwb.add_stimulus(stimulus)
        nwb.add_intracellular_recording(electrode=electrode, stimulus=stimulus, response=response)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def check_nwb(path: Path, current: np.ndarray, voltage: np.ndarray) -> dict:
    """read_recording gives back every sweep, in order, with the same samples (float32 precision); returns
    the sweeps failing the default quality control: index -> the names of the failed checks."""
    from neurofit import read_recording

    recording = read_recording(path)
    if len(recording.sweeps) != len(current):
        raise SystemExit(f"{path}: {len(recording.sweeps)} sweeps read back, {len(current)} written")
    for k, sweep in enumerate(recording.sweeps):
        ok = (sweep.index == k and np.isclose(sweep.dt, DT) and sweep.voltage.shape == voltage[k].shape
              and np.allclose(sweep.voltage, voltage[k], rtol=2e-7, atol=0)
              and np.allclose(sweep.current, current[k], rtol=2e-7, atol=1e-18))
        if not ok:
            raise SystemExit(f"{path}: sweep {k} does not read back as written")
    return {sweep.index: sorted(sweep.qc_reasons) for sweep in recording.sweeps if not sweep.passed_qc}


def make_cells(folder: Path, n_cells: int) -> list[dict]:
    """Write cells/cell_XXX.nwb and cells.tsv under ``folder``; return each cell's truth and sweeps."""
    current = protocol()
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    rows, truth = [], []
    for index in range(n_cells):
        name = f"cell_{index:03d}"
        params, rng = draw(index)
        voltage, counts = simulate_cell(params, current, rng)
        path = folder / "cells" / f"{name}.nwb"
        write_nwb(path, current, voltage, name)
        qc_failed = check_nwb(path, current, voltage)
        spiking = [k for k, c in enumerate(counts) if c > 0 and k not in qc_failed]  # held out: one passing QC
        heldout = [SUBTHRESHOLD_HELDOUT]
        if len(spiking) >= 2:  # keep at least one suprathreshold sweep to fit
            heldout.append(spiking[len(spiking) // 2])
        group = "AB"[index % 2]
        rows.append([name, f"cells/{name}.nwb", "", "", ",".join(map(str, heldout)), group, "", ""])
        truth.append({"cell": name, "group": group, "heldout": heldout, "spike_counts": counts,
                      "qc_failed": qc_failed, **params})
    with open(folder / "cells.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["cell", "file", "current_file", "sweeps", "heldout", "group", "ljp", "exclude"])
        writer.writerows(rows)
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def write_config(folder: Path) -> Path:
    """config.yaml: the example's study (both stages as they are) on this folder's sheet."""
    example = yaml.safe_load(EXAMPLE.read_text())
    study = next(iter(example["studies"].values()))
    study["sheet"] = "cells.tsv"
    study["description"] = "Synthetic AdEx cells on 171116sh_0018's protocol (benchmarks/batch.py)."
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"studies": {STUDY: study}}, sort_keys=False))
    return path


# --- the run --------------------------------------------------------------------------------------------------
def busy_cpu_seconds() -> float:
    """CPU-seconds every process of the machine has used since boot (/proc/stat, all cores)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def snakemake(folder: Path, config: Path, cores: int, *extra: str) -> dict:
    """One Snakemake run in ``folder``: wall s, cpu (s, Snakemake and all its jobs), machine_cpu (s, every
    process of the machine meanwhile), load (1-min load averages sampled every 5 s), log."""
    command = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(SNAKEFILE), "--cores",
               str(cores), "--configfile", str(config), "--replace-workflow-config", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = busy_cpu_seconds()
    start = time.perf_counter()
    with open(folder / "snakemake.log", "a") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, text=True)
        load, own = [os.getloadavg()[0]], 0.0
        while True:
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                load.append(os.getloadavg()[0])
                own = process_cpu_seconds(process.pid, own)
    wall = time.perf_counter() - start
    machine = busy_cpu_seconds() - machine
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = (folder / "snakemake.log").read_text()
    if process.returncode != 0:
        print(text[-5000:], file=sys.stderr)
        raise SystemExit(f"snakemake failed (exit {process.returncode}); log above ({folder / 'snakemake.log'})")
    return {"wall": wall, "cpu": cpu, "machine_cpu": machine, "load": np.array(load), "log": text,
            "snakemake_cpu": own}


def process_cpu_seconds(pid: int, last: float) -> float:
    """CPU-seconds of process ``pid`` itself, without its children (/proc/<pid>/stat), or ``last`` once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return last
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job_spans(log: str) -> dict:
    """rule -> list of (start, end) datetimes of its jobs, from Snakemake's log (1 s resolution)."""
    stamp, started, spans, jobs = None, {}, {}, {}
    rule = None
    for line in log.splitlines():
        found = re.match(r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", line.strip())
        if found:
            stamp = datetime.datetime.strptime(found.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line.strip())
        if head:
            rule = head.group(1)
            continue
        jobid = re.match(r"jobid: (\d+)", line.strip())
        if jobid and rule is not None:
            jobs[jobid.group(1)] = rule
            started[jobid.group(1)] = stamp
            rule = None
            continue
        finished = re.match(r"Finished job(?:id)?:? (\d+)", line.strip())
        if finished and finished.group(1) in jobs:
            spans.setdefault(jobs[finished.group(1)], []).append((started[finished.group(1)], stamp))
    return spans


def benchmark_seconds(folder: Path) -> dict:
    """'passive' / 'adex' / 'population' / 'prepare_config' -> arrays of (s, cpu_time) from the benchmark TSVs."""
    base = folder / "results" / STUDY / "benchmarks"
    out = {}

    def read(path):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        return float(row["s"]), float(row["cpu_time"])

    for stage in STAGES:
        out[stage] = np.array([read(p) for p in sorted(base.glob(f"cells/*/{stage}.tsv"))])
    out["population"] = np.array([read(base / "population.tsv")])
    out["prepare_config"] = np.array([read(base / "prepare.tsv")])
    return out


def prepare_cell_seconds(folder: Path) -> np.ndarray:
    """In-process wall time (s) of every prepare_cell job (its manifest; no benchmark file for a local rule)."""
    paths = sorted((folder / "results" / STUDY / "cells").glob("*/cell.json.manifest.json"))
    return np.array([json.loads(p.read_text())["wall_time_s"] for p in paths])


# --- accuracy -------------------------------------------------------------------------------------------------
def population(folder: Path) -> list[dict]:
    with open(folder / "results" / STUDY / "population" / "cells.csv") as handle:
        return list(csv.DictReader(handle))


def number(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


def errors(table: list[dict], truth: list[dict]) -> dict:
    """name -> array over the cells with that stage's values (NaN for the others) of the error of a fitted
    parameter (relative, or absolute for potentials), or held-out numbers."""
    drawn = {t["cell"]: t for t in truth}
    out = {}
    for label, column, true in (
            ("passive gl vs gl", "passive.gl", lambda t: t["gl"]),
            ("passive gl vs gl + a", "passive.gl", lambda t: t["gl"] + t["a"]),
            ("passive C", "passive.C", lambda t: t["C"]),
            ("passive tau = C/gl vs C/gl", None, None),
            ("adex a", "adex.a", lambda t: t["a"]),
            ("adex b", "adex.b", lambda t: t["b"]),
            ("adex tau_w", "adex.tau_w", lambda t: t["tau_w"]),
            ("adex DeltaT", "adex.DeltaT", lambda t: t["DeltaT"])):
        if column is None:
            fitted = np.array([number(r.get("passive.C")) / number(r.get("passive.gl")) for r in table])
            true_values = np.array([drawn[r["cell"]]["C"] / drawn[r["cell"]]["gl"] for r in table])
        else:
            fitted = np.array([number(r.get(column)) for r in table])
            true_values = np.array([true(drawn[r["cell"]]) for r in table])
        out[label] = np.abs(fitted / true_values - 1)
    for label, column, name in (("passive El (mV)", "passive.El", "El"), ("adex VT (mV)", "adex.VT", "VT"),
                                ("adex Vr (mV)", "adex.Vr", "Vr")):
        out[label] = np.array([abs(number(r.get(column)) - drawn[r["cell"]][name]) * 1e3 for r in table])
    for label, column in (("adex held-out gamma", "adex.heldout_gamma"),
                          ("adex held-out spike-count error", "adex.heldout_count_error"),
                          ("passive held-out RMSE (mV)", "passive.heldout_rmse")):
        scale = 1e3 if "RMSE" in label else 1.0
        out[label] = np.array([number(r.get(column)) * scale for r in table])
    return out


# --- report ---------------------------------------------------------------------------------------------------
def stats(values) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return "- | - | - | -"
    return f"{np.mean(values):.2f} | {np.median(values):.2f} | {np.max(values):.2f} | {values.size}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100, help="synthetic cells (default 100)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--workdir", type=Path, help="empty or new folder to work in (default: a new one in /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (always kept with --workdir)")
    args = parser.parse_args()
    if args.workdir is None:
        folder = Path(tempfile.mkdtemp(prefix="neurofit-batch-", dir="/tmp"))
    else:
        folder = args.workdir.resolve()
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"--workdir {folder}: not empty (give an empty or new folder)")
        folder.mkdir(parents=True, exist_ok=True)
    print(f"working in {folder}", file=sys.stderr)

    start = time.perf_counter()
    truth = make_cells(folder, args.cells)
    generate = time.perf_counter() - start
    config = write_config(folder)
    print(f"{args.cells} cells written and read back in {generate:.1f} s", file=sys.stderr)
    dry_wall = snakemake(folder, config, args.cores, "--dry-run", "--quiet")["wall"]
    (folder / "snakemake.log").unlink()
    print(f"dry run (parse + DAG): {dry_wall:.1f} s; running ...", file=sys.stderr)
    run = snakemake(folder, config, args.cores)
    wall, cpu, log = run["wall"], run["cpu"], run["log"]

    bench = benchmark_seconds(folder)
    spans = job_spans(log)
    starts = [s for jobs in spans.values() for s, _ in jobs if s is not None]
    ends = [e for jobs in spans.values() for _, e in jobs if e is not None]
    first_to_last = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    prepare_cell_log = [(e - s).total_seconds() for s, e in spans.get("prepare_cell", []) if s and e]
    table = population(folder)
    statuses = {}
    for row in table:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    job_s = sum(float(bench[k][:, 0].sum()) for k in bench) + float(np.sum(prepare_cell_log))
    job_cpu = sum(float(bench[k][:, 1].sum()) for k in bench)
    n_jobs = sum(len(v) for v in spans.values())

    lines = [f"{args.cells} cells x {len(STAGES)} stages on --cores {args.cores} "
             f"({os.cpu_count()} logical cores, {platform.processor() or platform.machine()}, "
             f"1-min load average during the run: median {np.median(run['load']):.1f}, max {run['load'].max():.1f})",
             "",
             "| job | mean (s) | median (s) | max (s) | jobs |", "|---|---:|---:|---:|---:|"]
    for stage in STAGES:
        lines.append(f"| fit_cell {stage} (benchmark s) | {stats(bench[stage][:, 0])} |")
        lines.append(f"| fit_cell {stage} (benchmark cpu_time) | {stats(bench[stage][:, 1])} |")
    lines.append(f"| prepare_cell (log, 1 s resolution) | {stats(prepare_cell_log)} |")
    lines.append(f"| prepare_cell (in-process, manifest) | {stats(prepare_cell_seconds(folder))} |")
    lines.append(f"| prepare_config | {stats(bench['prepare_config'][:, 0])} |")
    lines.append(f"| population | {stats(bench['population'][:, 0])} |")
    lines += ["", "| whole run | value |", "|---|---:|",
              f"| cells generated + written + read back (s) | {generate:.1f} |",
              f"| snakemake --dry-run (parse, checks, DAG) (s) | {dry_wall:.1f} |",
              f"| snakemake run, wall (s) | {wall:.1f} |",
              f"| first job start to last job end, from the log (s) | {first_to_last:.0f} |",
              f"| jobs run (with the target rule all) | {n_jobs} |",
              f"| sum of job wall times (s) | {job_s:.0f} |",
              f"| sum of job cpu_time (benchmark files) (s) | {job_cpu:.0f} |",
              f"| CPU of snakemake + every job (rusage) (s) | {cpu:.0f} |",
              f"| of which Snakemake's own process (sampled every 5 s) (s) | {run['snakemake_cpu']:.0f} |",
              f"| CPU of other processes meanwhile (/proc/stat) (s) | {max(run['machine_cpu'] - cpu, 0):.0f} |",
              f"| parallel efficiency: CPU / (cores x wall) | {cpu / (args.cores * wall):.0%} |",
              f"| job slots busy: sum of job wall times / (cores x wall) | {job_s / (args.cores * wall):.0%} |",
              f"| cells / hour | {args.cells / wall * 3600:.0f} |",
              "| cells by status (cells.csv) | " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) + " |"]
    for stage in STAGES:
        by_status = {}
        for path in (folder / "results" / STUDY / "cells").glob(f"*/{stage}/result.json"):
            status = json.loads(path.read_text())["status"]
            by_status[status] = by_status.get(status, 0) + 1
        lines.append(f"| stage {stage} by status (result.json) | "
                     + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) + " |")
    reasons = sorted({row["reason"] for row in table if row["status"] != "ok"})
    if reasons:
        lines += ["", "Reasons of the cells not ok:"] + [f"- {r}" for r in reasons]
    lines += ["", "| cells fitted by the stage: error against the drawn value | median | 90th percentile | cells |",
              "|---|---:|---:|---:|"]
    for label, values in errors(table, truth).items():
        values = values[np.isfinite(values)]
        if values.size == 0:
            lines.append(f"| {label} | - | - | 0 |")
            continue
        relative = not any(word in label for word in ("mV", "gamma", "count"))
        fmt = (lambda x: f"{100 * x:.1f} %") if relative else (lambda x: f"{x:.2f}")
        lines.append(f"| {label} | {fmt(np.median(values))} | {fmt(np.percentile(values, 90))} | {values.size} |")
    counts = np.array([sum(c > 0 for c in t["spike_counts"]) for t in truth])
    lines += ["", f"spiking sweeps per cell (of 17): median {np.median(counts):.0f}, range {counts.min()}-{counts.max()}"]
    checks = {}
    for t in truth:
        for names in t["qc_failed"].values():
            for name in names:
                checks[name] = checks.get(name, 0) + 1
    failing = sum(len(t["qc_failed"]) for t in truth)
    lines.append(f"sweeps failing quality control: {failing} of {17 * len(truth)} in "
                 f"{sum(bool(t['qc_failed']) for t in truth)} cells ("
                 + (", ".join(f"{k} {v}" for k, v in sorted(checks.items())) or "none") + ")")
    report = "\n".join(lines)
    raw = {"cells": args.cells, "cores": args.cores, "generate_s": generate, "dry_run_s": dry_wall, "wall_s": wall,
           "cpu_s": cpu, "machine_cpu_s": run["machine_cpu"],
           "snakemake_cpu_s": run["snakemake_cpu"], "load": run["load"].tolist(),
           "benchmarks": {k: v.tolist() for k, v in bench.items()}, "prepare_cell_log_s": prepare_cell_log,
           "statuses": statuses}
    (folder / "report.json").write_text(json.dumps(raw, indent=1))
    print(report)
    (folder / "report.md").write_text(report + "\n")
    if args.workdir is None and not args.keep:
        shutil.rmtree(folder)
    else:
        print(f"\nkept {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
