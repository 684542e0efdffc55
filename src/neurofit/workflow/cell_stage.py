"""One (cell, stage) of a batch study: read the cell's recording, fit the stage, validate, give a verdict.

``run_cell_stage`` never lets a user's problem with one cell stop the batch: an excluded row, an unreadable
file, a recording whose sweeps all fail quality control, a selector that finds nothing, a fit that cannot
start - each ends as a result document with a status (``ok``, ``excluded``, ``qc_failed``, ``failed``) and a
one-line reason, which the population table lists. Inside, the stage is an ordinary study: every optimizer
and seed of its fit section runs (checkpointed after every round, so a killed job resumes), each fit is
refined when the section asks, the best run gives the stage's parameters (fixed ones included), and the
sheet's held-out sweeps of the stage measure how the model generalises. Every fitted and held-out sweep gets
its scores (``sweep_scores`` in the result; ``score_sweeps``), summarised for each role (``train_`` and
``heldout_``):

- ``rmse``: root mean squared difference of model and recorded voltage (V; the root of the mean over sweeps
  of each sweep's mean square) - for a model with a spike condition over the samples away from every recorded
  and model spike (2 ms before to 5 ms after), the subthreshold voltage;
- ``count_error``: mean over sweeps of |model spikes - recorded spikes| (models with a spike condition);
- ``gamma``: mean coincidence factor (Kistler 1997; 1 for identical trains, about 0 for chance) of the
  model's and the recorded spikes, within +-4 ms.

Recorded spikes are upward crossings of 0 mV (``selection.SPIKE_THRESHOLD``, the detector the sweep
selectors use). The result document holds numbers only (no wall times), so the same inputs give the same
bytes.
"""
from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.recordings.errors import RecordingError
from ..data.recordings.from_settings import read_study_recording
from ..data.recordings.selection import SPIKE_THRESHOLD
from ..errors import NeurofitError
from .batch import BatchStudy
from .fit_section import (
    FitSection,
    best_run,
    discard_checkpoint,
    final_params,
    run_fit,
    run_refine,
    write_fit,
)
from .sheet import Cell

RESULT_FORMAT = "neurofit.cell_stage"
RESULT_VERSION = 1
STATUSES = ("ok", "excluded", "qc_failed", "failed")
#: Coincidence window of the gamma factor of the sweep scores (s).
HELDOUT_DELTA = 4e-3
#: Samples this long before / after a recorded or model spike are left out of a spiking model's RMSE (s).
SPIKE_WINDOW = (2e-3, 5e-3)


@dataclass
class CellStageRun:
    """The outcome of ``run_cell_stage``: the result document and, for an ``ok`` stage, what its figure shows
    (the study, fit section, fitted and held-out datasets and the final parameters)."""

    doc: dict
    study: object = None
    plan: FitSection | None = None
    dataset: object = None
    heldout: object = None
    params: dict | None = None


def run_cell_stage(batch: BatchStudy, cell: Cell, stage_name: str, folder, previous: dict | None = None,
                   log=None) -> CellStageRun:
    """Fit stage ``stage_name`` of ``cell`` and return its result (never raises for the user's mistakes).

    batch: the checked batch study; cell: the sheet's row; folder: the stage's results folder (fits go to
    ``folder/fit/<label>_<seed>/``); previous: earlier stage name -> its result document (the stage before
    this one at least); log: a function taking one line of progress. The document's status is ``excluded``
    (the sheet's exclude column), that of an earlier stage that did not end ``ok``, ``failed`` (file not
    readable, nothing selected, fit impossible; the reason names it), ``qc_failed`` (no sweep passes quality
    control) or ``ok``."""
    previous = previous or {}
    base = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "study": batch.study.name, "cell": cell.cell,
            "stage": stage_name, "group": cell.group, "metadata": dict(cell.metadata)}
    if cell.exclude:
        return CellStageRun({**base, "status": "excluded", "reason": cell.exclude})
    earlier = batch.required_stage(stage_name)
    if earlier is not None:
        before = previous.get(earlier)
        if before is None or before.get("status") != "ok":
            status = "failed" if before is None else before["status"]
            reason = "no result" if before is None else before.get("reason", "")
            return CellStageRun({**base, "status": status, "reason": f"stage {earlier}: {reason}",
                                 "n_sweeps": None if before is None else before.get("n_sweeps")})
    try:
        return _fit_stage(batch, cell, stage_name, Path(folder), previous, base, log)
    except (NeurofitError, OSError) as err:
        return CellStageRun({**base, "status": "failed", "reason": _one_line(err)})
    except Exception as err:  # a bug of ours: the cell fails with its type named, the others go on
        if log:
            log(traceback.format_exc())
        return CellStageRun({**base, "status": "failed",
                             "reason": f"internal error ({type(err).__name__}: {_one_line(err)}); see the job's log"})


def _fit_stage(batch, cell, stage_name, folder, previous, base, log) -> CellStageRun:
    stage = batch.stage(stage_name)
    settings = batch.recording_settings(cell, stage)
    recording = read_study_recording(settings, f"cell {cell.cell}")
    passing = [s for s in recording.sweeps if s.passed_qc]
    base["n_sweeps"] = len(passing)
    if not passing:
        return CellStageRun({**base, "status": "qc_failed", "reason": _qc_reason(recording)})
    try:
        fitted, heldout = batch.split_sweeps(cell, stage_name, recording)
    except RecordingError as err:
        return CellStageRun({**base, "status": "failed", "reason": _one_line(err)})
    study = batch.cell_study(cell, stage_name, fitted, previous)
    model = study.model()
    plan = FitSection(study, model)
    dataset = study.dataset(model)
    plan.check(dataset)
    fits, refined = [], []
    for label, seed in plan.runs:
        run_folder = folder / "fit" / f"{label}_{seed}"
        checkpoint = run_folder / "checkpoint.json"
        run = run_fit(plan, dataset, label, seed, checkpoint=checkpoint, log=log)
        write_fit(run, run_folder / "fit.json", run_folder / "history.parquet")
        discard_checkpoint(checkpoint)
        fit_doc = dict(run.doc, _path=str(run_folder / "fit.json"))
        fits.append(fit_doc)
        if plan.refine["enabled"]:
            refined.append(run_refine(plan, dataset, fit_doc, run.history, log=log))
    fit, ref = best_run(fits, refined)
    free = final_params(fit, ref)
    params = {**{p: float(v) for p, v in plan.fixed.items()}, **free}
    train_error = ref["mse"] if ref is not None else fit["best_error"]
    heldout_data = batch.cell_study(cell, stage_name, heldout, previous).dataset(model) if heldout else None
    scores = score_sweeps(plan, dataset, free, fit["seed"], fitted, "fitted")
    if heldout_data is not None:
        scores += score_sweeps(plan, heldout_data, free, fit["seed"], heldout, "heldout")
    criteria = information_criteria(plan, dataset, free, fit["seed"])
    doc = {**base, "status": "ok", "reason": "",
           "model": study.model_label, "sweeps": fitted, "heldout": heldout, "n_fitted": len(fitted),
           "parameters": {p: params[p] for p in sorted(params)}, "free": sorted(free),
           "fixed": {p: float(v) for p, v in sorted(plan.fixed.items())},
           "units": {p: plan.units.get(p) for p in sorted(params)},
           "metric": plan.metric_settings["name"], "train_error": train_error,
           "heldout_error": objective(plan, heldout_data, free, fit["seed"]) if heldout_data is not None else None,
           **criteria,
           **_summary(scores, "fitted", "train"), **_summary(scores, "heldout", "heldout"),
           "best_run": {"optimizer": fit["optimizer"]["label"], "seed": fit["seed"]},
           "runs": [{"optimizer": f["optimizer"]["label"], "seed": f["seed"], "fit_error": f["best_error"],
                     "refined_mse": r["mse"] if r else None} for f, r in _pairs(fits, refined)],
           "sweep_scores": scores}
    if log:
        shown = ", ".join(f"{p}={v:.4g}" for p, v in doc["parameters"].items())
        log(f"cell {cell.cell} stage {stage_name}: ok, train error {train_error:.4g} ({shown})")
    return CellStageRun(doc, study, plan, dataset, heldout_data, free)


def _pairs(fits: list, refined: list) -> list:
    by_run = {(r["optimizer"], r["seed"]): r for r in refined}
    return [(f, by_run.get((f["optimizer"]["label"], f["seed"]))) for f in fits]


def simulator(plan: FitSection, dataset, seed: int):
    """A one-candidate TraceFitter that simulates the stage's model (fixed parameters, initial values, method,
    backend) on ``dataset`` and compares it with the dataset's first recorded output."""
    from ..fitting.fitters import TraceFitter

    output = next(iter(dataset.outputs))
    inputs = {i: dataset.inputs[i] for i in plan.model.inputs if i in dataset.inputs}
    init = dict(plan.init)
    if plan.baseline:
        init.update(plan.baseline_init(dataset, inputs))
    return TraceFitter(model=plan.model, input=inputs, output={output: dataset.outputs[output]}, dt=dataset.dt,
                       n_samples=1, method=plan.method, param_init=init, backend=plan.settings["backend"],
                       dtype=plan.settings["dtype"], seed=seed, at_rest=plan.at_rest,
                       lengths=None if dataset.full_length else dataset.lengths)


def objective(plan: FitSection, dataset, params: dict, seed: int) -> float | None:
    """The stage's fit metric (as the fit computes it) of ``params`` (free parameters, SI) on ``dataset``
    (e.g. the held-out sweeps); None when it is not finite."""
    fitter = plan.fitter(dataset, seed=seed)
    fitter.restore(plan.bounds, plan.metric(dataset), [], log_scale=plan.log_scale)
    value = fitter.error(params)
    return value if math.isfinite(value) else None


def information_criteria(plan: FitSection, dataset, params: dict, seed: int) -> dict:
    """AIC and BIC of a least-squares stage (trace fit, metric mse): with Gaussian noise of unknown variance,
    -2 log L = n log(RSS / n) + const over the n recorded samples of the fitted sweeps, k = free parameters + 1
    (the variance): AIC = n log(RSS/n) + 2k, BIC = n log(RSS/n) + k log n. None for other objectives (no
    likelihood). Returns {"n_samples", "rss" (V^2), "aic", "bic"}."""
    none = {"n_samples": None, "rss": None, "aic": None, "bic": None}
    if plan.kind != "trace" or plan.metric_settings["name"] != "mse":
        return none
    fitter = simulator(plan, dataset, seed)
    output = next(iter(fitter.output))
    model = np.asarray(fitter.generate(output_var=output, params=params))
    lengths = dataset.lengths if dataset.lengths is not None else [dataset.n_steps] * dataset.n_traces
    diff = np.concatenate([(model[k, :n] - dataset.outputs[output][k, :n]) for k, n in enumerate(lengths)])
    n, rss, k = diff.size, float(np.sum(diff ** 2)), len(params) + 1
    if not (math.isfinite(rss) and rss > 0):
        return none
    return {"n_samples": int(n), "rss": rss, "aic": n * math.log(rss / n) + 2 * k,
            "bic": n * math.log(rss / n) + k * math.log(n)}


def score_sweeps(plan: FitSection, dataset, params: dict, seed: int, sweeps: list, role: str) -> list[dict]:
    """Per sweep of ``dataset`` (one row per ``Sweep.index`` of ``sweeps``): the model at ``params`` (the free
    parameters, SI) against the recording - ``rmse`` (V; for a spiking model over the samples away from every
    recorded and model spike, SPIKE_WINDOW) and, for a model with a spike condition, the spike scores of
    ``neurofit.fitting.spike_scores.sweep_scores`` (window HELDOUT_DELTA). ``role`` ("fitted" / "heldout")
    is copied into each row."""
    from ..data.spikes import detect_spikes
    from ..fitting.spike_scores import sweep_scores

    fitter = simulator(plan, dataset, seed)
    output = next(iter(fitter.output))
    spiking = plan.model.threshold is not None
    lengths = dataset.lengths if dataset.lengths is not None else [dataset.n_steps] * dataset.n_traces
    traces = fitter.generate(output_var=[output, "spikes"] if spiking else output, params=params)
    model_v = traces[output] if spiking else traces
    recorded = dataset.outputs[output]
    data_trains = [detect_spikes(np.asarray(v[:n]), dataset.dt, SPIKE_THRESHOLD)[0] for v, n in zip(recorded, lengths)]
    model_trains = traces["spikes"] if spiking else [np.empty(0)] * len(lengths)
    rows = []
    for k, (sweep, n) in enumerate(zip(sweeps, lengths)):
        keep = np.ones(n, dtype=bool)
        if spiking:
            t = np.arange(n) * dataset.dt
            for spike in [*data_trains[k], *model_trains[k]]:
                keep &= ~((t >= spike - SPIKE_WINDOW[0]) & (t < spike + SPIKE_WINDOW[1]))
        diff = np.asarray(model_v[k][:n]) - np.asarray(recorded[k][:n])
        value = float(np.sqrt(np.mean(diff[keep] ** 2))) if keep.any() else None
        rows.append({"sweep": int(sweep), "role": role, "rmse": value if value is None or math.isfinite(value) else None})
    if spiking:
        spikes = sweep_scores(model_trains, data_trains, [n * dataset.dt for n in lengths], dataset.dt, HELDOUT_DELTA)
        rows = [{**row, **score} for row, score in zip(rows, spikes)]
    return rows


def _summary(scores: list[dict], role: str, prefix: str) -> dict:
    """<prefix>_rmse (pooled over the sweeps of ``role``, V), and for spiking models <prefix>_count_error,
    <prefix>_gamma (``spike_scores.summarize``); None where the stage has no such sweep or number."""
    from ..fitting.spike_scores import summarize

    rows = [row for row in scores if row["role"] == role]
    rmse = [row["rmse"] for row in rows if row["rmse"] is not None]
    out = {f"{prefix}_rmse": float(np.sqrt(np.mean(np.square(rmse)))) if rmse else None,
           f"{prefix}_count_error": None, f"{prefix}_gamma": None}
    if rows and "n_data" in rows[0]:
        summary = summarize(rows)
        out.update({f"{prefix}_count_error": summary["count_error"], f"{prefix}_gamma": summary["gamma"]})
    return out


def _qc_reason(recording) -> str:
    """'no sweep passes quality control (16 sweeps; e.g. sweep 0: <reason>)'."""
    first = recording.sweeps[0]
    example = next(iter(first.qc_reasons.values()), "")
    return (f"no sweep passes quality control ({len(recording.sweeps)} sweeps; e.g. sweep {first.index}: "
            f"{' '.join(example.split())})")


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return " ".join((str(err) or type(err).__name__).split())


def stage_figure(run: CellStageRun, max_traces: int = 6):
    """The figure of one (cell, stage): the model's traces over the fitted and held-out sweeps with the
    parameters in the title, or, for a stage that did not end ok, its status and reason as text."""
    import matplotlib.pyplot as plt

    from ..plots import format_quantity, plot_traces

    doc = run.doc
    if doc["status"] != "ok":
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.01, 0.5, f"cell {doc['cell']}, stage {doc['stage']}: {doc['status']}\n{doc['reason']}",
                va="center", ha="left", fontsize=9, wrap=True)
        return fig
    data = run.dataset
    output = next(iter(data.outputs))
    sets = [(run.dataset, doc["sweeps"], "fitted")]
    if run.heldout is not None:
        sets.append((run.heldout, doc["heldout"], "held out"))
    n_steps = max(dataset.n_steps for dataset, _, _ in sets)
    model, recorded, current, labels = [], [], [], []
    for dataset, sweeps, label in sets:
        traces = simulator(run.plan, dataset, doc["best_run"]["seed"]).generate(output_var=output, params=run.params)
        model.append(_pad(traces, n_steps))
        recorded.append(_pad(dataset.outputs[output], n_steps))
        current.append(_pad(next(iter(dataset.inputs.values())), n_steps, edge=True))
        labels += [f"{label}: sweep {i}" for i in sweeps]
    model_all, data_all, input_all = (np.concatenate(arrays) for arrays in (model, recorded, current))
    order = _spread(model_all.shape[0], max_traces)
    values = ", ".join(f"{p} = {format_quantity(v, doc['units'].get(p))}" for p, v in doc["parameters"].items())
    title = f"cell {doc['cell']}, stage {doc['stage']} ({doc['model']}): {values}"
    fig = plot_traces(np.arange(n_steps) * data.dt, {output: model_all[order]}, data={output: data_all[order]},
                      inputs={"I": input_all[order]}, units=dict(data.units), max_traces=max_traces, title=title)
    panels = [ax for ax in fig.axes if ax.get_ylabel().startswith(f"{output} (")]  # not the current strips
    for ax, index in zip(panels, order):
        ax.set_title(f"{labels[index]}: {_score_text(doc['sweep_scores'][index])}", fontsize=8, loc="left")
    return fig


def _score_text(row: dict) -> str:
    """'spikes 6 recorded / 5 model, gamma 0.71, RMSE 2.1 mV (subthreshold)' or 'RMSE 0.9 mV'."""
    rmse = "" if row["rmse"] is None else f"RMSE {row['rmse'] * 1e3:.2f} mV"
    if "n_data" not in row:
        return rmse
    gamma = "" if row["gamma"] is None else f", gamma {row['gamma']:.2f}"
    return f"spikes {row['n_data']} recorded / {row['n_model']} model{gamma}, {rmse} (subthreshold)"


def _pad(array, n_steps: int, edge: bool = False):
    array = np.asarray(array, dtype=float)
    missing = n_steps - array.shape[1]
    if missing <= 0:
        return array
    return np.pad(array, ((0, 0), (0, missing)), mode="edge") if edge else \
        np.pad(array, ((0, 0), (0, missing)), constant_values=np.nan)


def _spread(n: int, k: int) -> list:
    """At most ``k`` indices of 0..n-1 spread evenly (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})
