"""One (cell, stage) of a batch study: read the cell's recording, fit the stage, validate, give a verdict.

``run_cell_stage`` never lets a user's problem with one cell stop the batch: an excluded row, an unreadable
file, a recording whose sweeps all fail quality control, a selector that finds nothing, a fit that cannot
start - each ends as a result document with a status (``ok``, ``excluded``, ``qc_failed``, ``failed``) and a
one-line reason, which the population table lists. Inside, the stage is an ordinary study: every optimizer
and seed of its fit section runs (checkpointed after every round, so a killed job resumes), each fit is
refined when the section asks, the best run gives the stage's parameters (fixed ones included), and the
sheet's held-out sweeps of the stage measure how the model generalises: every fitted and held-out sweep gets
its scores (``sweep_scores`` in the result; ``validation.score_sweeps``: RMSE, and for spiking models spike
counts, gamma, latency and ISI errors), summarised for each role (``train_`` and ``heldout_`` rmse,
count_error, gamma); the stage's objective on the held-out sweeps (``heldout_error``) and, for least-squares
stages, AIC and BIC let alternative models be compared. The result document holds numbers only (no wall
times), so the same inputs give the same bytes.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..data.files import atomic_write_json
from ..data.recordings.errors import RecordingError
from ..data.recordings.from_settings import read_study_recording
from ..errors import ConfigError, NeurofitError
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
from .provenance import write_manifest
from .sheet import Cell
from .validation import information_criteria, objective, score_sweeps, scores_figure, summarize_scores

RESULT_FORMAT = "neurofit.cell_stage"
RESULT_VERSION = 1
STATUSES = ("ok", "excluded", "qc_failed", "failed")


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
                   log=None, group: tuple | None = None) -> CellStageRun:
    """Fit stage ``stage_name`` of ``cell`` and return its result (never raises for the user's mistakes).

    batch: the checked batch study; cell: the sheet's row; folder: the stage's results folder (fits go to
    ``folder/fit/<label>_<seed>/``); previous: earlier stage name -> its result document (the stage before
    this one at least); log: a function taking one line of progress; group: for a stage with ``amortize:
    group``, (the group's document, its folder) as ``train_group`` wrote them - the cell is conditioned on the
    group's posterior (``group_posterior.condition_cell``). The document's status is ``excluded``
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
        return _fit_stage(batch, cell, stage_name, Path(folder), previous, base, log, group)
    except (NeurofitError, OSError) as err:
        return CellStageRun({**base, "status": "failed", "reason": _one_line(err)})
    except Exception as err:  # a bug of ours: the cell fails with its type named, the others go on
        if log:
            log(traceback.format_exc())
        return CellStageRun({**base, "status": "failed",
                             "reason": f"internal error ({type(err).__name__}: {_one_line(err)}); see the job's log"})


def stage_sweeps(batch: BatchStudy, cell: Cell, stage_name: str, base: dict) -> tuple[dict | None, list, list]:
    """Read ``cell``'s recording for a stage and choose its sweeps: (None, fitted, held-out ``Sweep.index``
    values), or (the result document, [], []) when the cell stops here - ``qc_failed`` (no sweep passes
    quality control) or ``failed`` (the stage's selector finds nothing). base: the document's common fields;
    gains ``n_sweeps`` (sweeps passing QC). A missing or unreadable file raises ConfigError / RecordingError
    (one line)."""
    for column, files in (("file", cell.files), ("current_file", cell.current_files)):
        for path in files:
            if not Path(path).exists():  # named as the sheet names it: the reason is the same in any folder
                shown = os.path.relpath(path, batch.sheet.resolve().parent)
                raise ConfigError(f"{shown}: file not found (sheet line {cell.line}, column {column}; paths are "
                                  f"relative to the sheet)")
    settings = batch.recording_settings(cell, batch.stage(stage_name))
    recording = read_study_recording(settings, f"cell {cell.cell}")
    passing = [s for s in recording.sweeps if s.passed_qc]
    base["n_sweeps"] = len(passing)
    if not passing:
        return {**base, "status": "qc_failed", "reason": _qc_reason(recording)}, [], []
    try:
        fitted, heldout = batch.split_sweeps(cell, stage_name, recording)
    except RecordingError as err:
        return {**base, "status": "failed", "reason": _one_line(err)}, [], []
    return None, fitted, heldout


def train_group(batch: BatchStudy, stage_name: str, group: str, cells: list, folder, log=None) -> dict:
    """Train the amortized posterior of stage ``stage_name`` for one sheet group (``amortize: group``).

    cells: the group's cells (``Cell``, not excluded, sheet order); folder: the group's stage folder
    (posterior.pt, training.npz, protocol.npz go there); log: a function taking one line of progress. Each
    cell's stage sweeps are read as its own job would; a cell that cannot be read, fails quality control or
    has no sweep for the stage is left out with its reason. Returns the group document
    (``group_posterior.train_group_posterior``)."""
    from .group_posterior import train_group_posterior

    usable, refused = {}, {}
    for cell in cells:
        try:
            stopped, fitted, _ = stage_sweeps(batch, cell, stage_name, {"cell": cell.cell})
            if stopped is not None:
                refused[cell.cell] = f"{stopped['status']}: {stopped['reason']}"
                continue
            study = batch.cell_study(cell, stage_name, fitted)
            model = study.model()
            usable[cell.cell] = (study, model, study.dataset(model))
        except (NeurofitError, OSError) as err:
            refused[cell.cell] = _one_line(err)
    return train_group_posterior(usable, refused, folder, stage_name, group, log)


def _fit_stage(batch, cell, stage_name, folder, previous, base, log, group) -> CellStageRun:
    stage = batch.stage(stage_name)
    stopped, fitted, heldout = stage_sweeps(batch, cell, stage_name, base)
    if stopped is not None:
        return CellStageRun(stopped)
    study = batch.cell_study(cell, stage_name, fitted, previous)
    model = study.model()
    if stage.get("infer") is not None:
        base = {**base, "sweeps": fitted, "heldout": heldout}
        provenance = dict(study=batch.study.name, config=study.section, inputs=[*cell.files, *cell.current_files],
                          seeds={"infer": study.section["infer"]["seed"]})
        if batch.amortized(stage_name):
            return _amortized_stage(study, model, cell, folder, base, group, log, provenance)
        return _infer_stage(study, model, folder, base, log, provenance)
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
        recordings = [*cell.files, *cell.current_files]
        provenance = dict(study=batch.study.name, config=study.section, seeds={"fit": seed}, inputs=recordings,
                          backend=plan.settings["backend"], dtype=plan.settings["dtype"])
        for name in ("history.parquet", "fit.json"):
            write_manifest(run_folder / name, **provenance)
        fit_doc = dict(run.doc, _path=str(run_folder / "fit.json"))
        fits.append(fit_doc)
        if plan.refine["enabled"]:
            refined.append(run_refine(plan, dataset, fit_doc, run.history, log=log))
            atomic_write_json(run_folder / "refined.json", refined[-1])
            write_manifest(run_folder / "refined.json", **dict(provenance, inputs=[*recordings,
                                                                                   str(run_folder / "fit.json")]))
    fit, ref = best_run(fits, refined)
    free = final_params(fit, ref)
    params = {**{p: float(v) for p, v in plan.fixed.items()}, **free}
    train_error = ref["mse"] if ref is not None else fit["best_error"]
    heldout_data = batch.cell_study(cell, stage_name, heldout, previous).dataset(model) if heldout else None
    scores = score_sweeps(plan, dataset, free, fit["seed"], fitted, "fitted")
    if heldout_data is not None:
        scores += score_sweeps(plan, heldout_data, free, fit["seed"], heldout, "heldout")
    criteria = information_criteria(plan, scores, len(free))
    doc = {**base, "status": "ok", "reason": "",
           "model": study.model_label, "sweeps": fitted, "heldout": heldout, "n_fitted": len(fitted),
           "parameters": {p: params[p] for p in sorted(params)}, "free": sorted(free),
           "fixed": {p: float(v) for p, v in sorted(plan.fixed.items())},
           "units": {p: plan.units.get(p) for p in sorted(params)},
           "metric": plan.metric_settings["name"], "train_error": train_error,
           "heldout_error": objective(plan, heldout_data, free, fit["seed"]) if heldout_data is not None else None,
           **criteria,
           **summarize_scores(scores, "fitted", "train"), **summarize_scores(scores, "heldout", "heldout"),
           "best_run": {"optimizer": fit["optimizer"]["label"], "seed": fit["seed"]},
           "runs": [{"optimizer": f["optimizer"]["label"], "seed": f["seed"], "fit_error": f["best_error"],
                     "refined_mse": r["mse"] if r else None} for f, r in _pairs(fits, refined)],
           "sweep_scores": scores}
    if log:
        shown = ", ".join(f"{p}={v:.4g}" for p, v in doc["parameters"].items())
        log(f"cell {cell.cell} stage {stage_name}: ok, train error {train_error:.4g} ({shown})")
    return CellStageRun(doc, study, plan, dataset, heldout_data, free)


def _posterior_doc(base: dict, study, model, quantiles: dict, fixed: dict, misspecification: dict | None,
                   predictive_outside, noise, n_simulations) -> dict:
    """The result document of an infer stage: posterior means as the stage's parameters (fixed ones included),
    5 / 50 / 95 % quantiles, the misspecification check and the predictive check's count of features outside
    their 90 % interval. quantiles: parameter -> {mean, q05, q50, q95} (SI)."""
    params = {**fixed, **{p: q["mean"] for p, q in quantiles.items()}}
    misspecification = misspecification or {}
    return {**base, "status": "ok", "reason": "", "model": study.model_label, "n_fitted": len(base["sweeps"]),
            "parameters": {p: params[p] for p in sorted(params)}, "free": sorted(quantiles), "fixed": fixed,
            "units": {p: str(model.dimensions[p]) for p in sorted(params) if p in model.dimensions},
            "metric": "posterior", "train_error": None,
            "quantiles": {p: {k: q[k] for k in ("q05", "q50", "q95")} for p, q in sorted(quantiles.items())},
            "misspecified": misspecification.get("verdict") == "fail" if misspecification else None,
            "misspecification_p": misspecification.get("p_value"),
            "predictive_outside": predictive_outside, "noise": noise, "n_simulations": n_simulations}


def _amortized_stage(study, model, cell: Cell, folder: Path, base: dict, group, log, provenance: dict) -> CellStageRun:
    """A stage with ``amortize: group``: the cell's posterior from its group's (no training in this job); its
    samples and predictive check in ``folder/infer/``, each with a manifest (``provenance``: write_manifest's
    keywords; the group's files join its inputs)."""
    from .group_posterior import GROUP_FILES, GroupPosteriorError, condition_cell

    if group is None:
        raise GroupPosteriorError(f"stage {base['stage']} is amortized over the sheet group; its job needs the "
                                  f"group's posterior (group.json)")
    group_doc, group_folder = group
    fields = condition_cell(study, model, study.dataset(model), cell.cell, group_doc, group_folder, folder / "infer")
    inputs = [*provenance["inputs"], *(str(Path(group_folder) / name) for name in GROUP_FILES)]
    for path in fields["files"]:
        write_manifest(path, **dict(provenance, inputs=inputs))
    doc = _posterior_doc({**base, "amortized": {"group": group_doc["group"],
                                                "reference_cell": group_doc["reference_cell"],
                                                "n_cells": len(group_doc["cells"])}},
                         study, model, fields["quantiles"], fields["fixed"], fields["misspecification"],
                         fields["predictive_outside"], fields["noise"], fields["n_simulations"])
    if log:
        log(f"stage {base['stage']}: posterior from group {group_doc['group']}'s; misspecification p = "
            f"{doc['misspecification_p']}")
    return CellStageRun(doc)


def _infer_stage(study, model, folder: Path, base: dict, log, provenance: dict) -> CellStageRun:
    """A stage with an infer section on the cell's sweeps: one training (one chunk, in this job), the posterior
    and its diagnostics in ``folder/infer/`` (as a study's infer outputs, each with a manifest: ``provenance``
    holds write_manifest's keywords), and the result: posterior mean (the stage's parameters, as a fit stage's),
    5 / 50 / 95 % quantiles, the misspecification check and the posterior predictive check of the features."""
    import json

    from .infer_section import run_inference, run_training_chunk

    dataset = study.dataset(model)
    out = folder / "infer"
    chunk = out / "chunks" / "chunk_0.npz"
    run_training_chunk(study, 0, 1, chunk, dataset)
    write_manifest(chunk, **provenance)
    paths = run_inference(study, [chunk], out, dataset)
    for path in paths.values():
        write_manifest(path, **dict(provenance, inputs=[*provenance["inputs"], str(chunk)]))
    summary = json.loads(Path(paths["summary.json"]).read_text(encoding="utf-8"))
    check = json.loads(Path(paths["predictive_check.json"]).read_text(encoding="utf-8"))
    posterior = summary["parameters"]
    fixed = {p: float(v) for p, v in study.section["infer"]["bounds"].items() if not isinstance(v, list)
             and isinstance(v, (int, float))}
    quantiles = {p: {"mean": q["mean"], "q05": q["q05"], "q50": q["median"], "q95": q["q95"]}
                 for p, q in posterior.items()}
    doc = _posterior_doc(base, study, model, quantiles, fixed, summary.get("misspecification"),
                         check.get("n_outside"), summary.get("noise"), summary.get("n_simulations"))
    if log:
        log(f"stage {base['stage']}: posterior of {', '.join(posterior)}; misspecification p = "
            f"{doc['misspecification_p']}")
    return CellStageRun(doc)


def _pairs(fits: list, refined: list) -> list:
    by_run = {(r["optimizer"], r["seed"]): r for r in refined}
    return [(f, by_run.get((f["optimizer"]["label"], f["seed"]))) for f in fits]


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
    """The figure of one (cell, stage): ``validation.scores_figure`` of the stage's fitted and held-out sweeps,
    or, for a stage that did not end ok, its status and reason as text."""
    import matplotlib.pyplot as plt

    from ..plots import format_quantity

    doc = run.doc
    if doc["status"] == "ok" and doc.get("metric") == "posterior":  # an infer stage: its figures are in infer/
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        lines = [f"{p}: {format_quantity(q['q50'], doc['units'].get(p))} [{format_quantity(q['q05'], doc['units'].get(p))}"
                 f", {format_quantity(q['q95'], doc['units'].get(p))}]" for p, q in doc["quantiles"].items()]
        verdict = "misspecified" if doc["misspecified"] else "within the training simulations"
        ax.text(0.01, 0.5, f"cell {doc['cell']}, stage {doc['stage']}: posterior median [5 %, 95 %]\n" + "\n".join(lines)
                + f"\nmisspecification check: {verdict} (p = {doc['misspecification_p']:.3g})", va="center",
                ha="left", fontsize=9)
        return fig
    if doc["status"] != "ok":
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.01, 0.5, f"cell {doc['cell']}, stage {doc['stage']}: {doc['status']}\n{doc['reason']}",
                va="center", ha="left", fontsize=9, wrap=True)
        return fig
    title = f"cell {doc['cell']}, stage {doc['stage']} ({doc['model']})"
    return scores_figure(run.plan, run.dataset, run.heldout, run.params, doc, title, max_traces)
