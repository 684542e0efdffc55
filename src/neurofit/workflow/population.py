"""The population table of a batch study: one row per cell, the verdict and every stage's numbers.

Columns, in this order: ``cell``, ``group``, ``status`` (``ok``, ``excluded``, ``qc_failed``, ``failed``: the
first stage that did not end ok decides), ``reason`` (``stage <name>: <why>``; empty when ok), ``n_sweeps``
(sweeps of the recording passing quality control), the sheet's extra columns (metadata, as text), then per
stage ``<stage>.n_fitted``, ``<stage>.<parameter>`` (SI, fixed ones included), ``<stage>.train_error`` (the
fit metric of the final parameters), then on the fitted (``train_``) and held-out (``heldout_``) sweeps the
``rmse`` (V; subthreshold for spiking models), ``count_error`` (spikes per sweep) and ``gamma`` of
``cell_stage.score_sweeps``, ``<stage>.heldout_error`` (the fit's objective on the held-out sweeps),
``<stage>.aic`` / ``<stage>.bic`` (least-squares stages); and for stages compared as alternatives
(``compare``), ``<label>.best_model`` and ``<label>.criterion``. An infer stage's parameters are posterior means,
with ``<stage>.<parameter>.q05`` / ``.q95`` (5 and 95 % quantiles), ``<stage>.misspecified`` (the check failed),
``<stage>.misspecification_p`` and ``<stage>.predictive_outside`` (features outside their 90 % predictive
interval). Rows follow the sheet. Numbers
are written with 10 significant digits, so the same results give the same bytes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..data.files import atomic_write_bytes
from ..errors import ConfigError
from .cell_stage import RESULT_FORMAT, STATUSES

STAGE_NUMBERS = ("train_error", "train_rmse", "train_count_error", "train_gamma", "heldout_error", "heldout_rmse",
                 "heldout_count_error", "heldout_gamma", "aic", "bic")
#: Alternatives whose scores differ by less than this fraction count as equal: the simpler one is chosen.
TIE_TOLERANCE = 0.02


def read_result(path) -> dict:
    """A result.json written for one (cell, stage); ConfigError (one line) for anything else."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT:
        raise ConfigError(f"{path}: not a cell-stage result (format {doc.get('format')!r}; expected "
                          f"{RESULT_FORMAT!r})" if isinstance(doc, dict) else f"{path}: not a cell-stage result")
    if doc.get("status") not in STATUSES:
        raise ConfigError(f"{path}: status {doc.get('status')!r} is not one of {', '.join(STATUSES)}")
    return doc


def best_model(docs: list) -> tuple[str | None, str | None]:
    """(stage name, criterion) of the best of alternative stages ``docs`` (their result documents) of one cell.

    Among the stages that ended ok: the lowest BIC when every one has it (a Gaussian likelihood: metric mse),
    else the lowest error of its own objective on the held-out sweeps when every one has it, else on the fitted
    sweeps (criterion "bic", "heldout_error" or "train_error"). Scores within TIE_TOLERANCE of the best (BIC:
    within 2 units; errors: relative) are ties, won by the stage with the fewest free parameters. (None, None)
    when no alternative ended ok."""
    ok = [d for d in docs if d["status"] == "ok"]
    if not ok:
        return None, None
    for criterion in ("bic", "heldout_error", "train_error"):
        if all(d.get(criterion) is not None and math.isfinite(d[criterion]) for d in ok):
            break
    else:
        return None, None
    best = min(d[criterion] for d in ok)
    tied = [d for d in ok if (d[criterion] - best <= 2.0 if criterion == "bic"
                              else d[criterion] <= best * (1 + TIE_TOLERANCE) + 1e-300)]
    winner = min(tied, key=lambda d: (len(d.get("free", [])), d[criterion]))
    return winner["stage"], criterion


def population_table(results: list, stages: list, compare: dict | None = None):
    """The table (a pandas DataFrame) of ``results`` (result documents, any order) for the stage names
    ``stages`` (in run order); rows in order of first appearance of each cell. compare: label -> names of
    alternative stages (``BatchStudy.compare_groups``): adds ``<label>.best_model`` and ``<label>.criterion``
    (``best_model``)."""
    import pandas as pd

    by_cell: dict = {}
    for doc in results:
        by_cell.setdefault(doc["cell"], {})[doc["stage"]] = doc
    rows, parameter_columns = [], {stage: [] for stage in stages}
    for docs in by_cell.values():
        for stage in stages:
            for p in (docs.get(stage) or {}).get("parameters", {}):
                if p not in parameter_columns[stage]:
                    parameter_columns[stage].append(p)
    metadata_columns = []
    for docs in by_cell.values():
        for doc in docs.values():
            metadata_columns += [k for k in doc.get("metadata", {}) if k not in metadata_columns]
    infer_stages = {s for s in stages if any("quantiles" in (docs.get(s) or {}) for docs in by_cell.values())}
    for cell, docs in by_cell.items():
        missing = [s for s in stages if s not in docs]
        if missing:
            raise ConfigError(f"cell {cell}: no result of stage {missing[0]} among the results given")
        first = docs[stages[0]]
        failing = next((docs[s] for s in stages if docs[s]["status"] != "ok"), None)
        row = {"cell": cell, "group": first.get("group", ""), "status": "ok" if failing is None else failing["status"],
               "reason": "" if failing is None else _reason(failing),
               "n_sweeps": first.get("n_sweeps")}
        for key in metadata_columns:
            row[key] = first.get("metadata", {}).get(key, "")
        for stage in stages:
            doc = docs[stage]
            ok = doc["status"] == "ok"
            row[f"{stage}.n_fitted"] = doc.get("n_fitted") if ok else None
            for p in parameter_columns[stage]:
                row[f"{stage}.{p}"] = doc["parameters"].get(p) if ok else None
            for key in STAGE_NUMBERS:
                row[f"{stage}.{key}"] = doc.get(key) if ok else None
            if stage in infer_stages:
                for p in parameter_columns[stage]:
                    for q in ("q05", "q95"):
                        row[f"{stage}.{p}.{q}"] = doc["quantiles"].get(p, {}).get(q) if ok and "quantiles" in doc \
                            else None
                for key in ("misspecified", "misspecification_p", "predictive_outside"):
                    row[f"{stage}.{key}"] = doc.get(key) if ok else None
        for label, names in (compare or {}).items():
            row[f"{label}.best_model"], row[f"{label}.criterion"] = best_model([docs[s] for s in names])
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("n_sweeps", *[f"{s}.n_fitted" for s in stages]):
        table[column] = table[column].astype("Int64")
    return table


def _reason(doc: dict) -> str:
    reason = doc.get("reason", "")
    if doc["status"] == "excluded":
        return f"excluded in the sheet: {reason}"
    return reason if reason.startswith("stage ") else f"stage {doc['stage']}: {reason}"


def table_bytes(table) -> bytes:
    """The table as CSV bytes (10 significant digits, empty for missing)."""
    return table.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode("utf-8")


def write_table(table, path) -> Path:
    """Write the table atomically as CSV."""
    return atomic_write_bytes(path, table_bytes(table))


def parameters_figure(table, stages: list, units: dict, title: str = ""):
    """One panel per (stage, parameter) of the ok cells: each cell a dot, by group (x), with each group's
    median as a bar. units: '<stage>.<parameter>' -> SI unit name (for display prefixes)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..plots import display_scale

    ok = table[table["status"] == "ok"]
    columns = [c for s in stages for c in table.columns if c.startswith(f"{s}.")
               and c.split(".", 1)[1] not in (*STAGE_NUMBERS, "n_fitted")]
    columns = [c for c in columns if ok[c].notna().any()] if len(ok) else []
    if not columns:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.01, 0.5, f"{title}\nno cell ended ok: no parameter to show", va="center", fontsize=9)
        return fig
    groups = sorted({g if isinstance(g, str) and g else "(none)" for g in ok["group"].fillna("")})
    n = len(columns)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        values = ok[column].to_numpy(dtype=float)
        label, scale = display_scale(values[np.isfinite(values)], units.get(column))
        for x, group in enumerate(groups):
            in_group = (ok["group"].fillna("").replace("", "(none)") == group).to_numpy()
            y = values[in_group] * scale
            jitter = (np.arange(y.size) - (y.size - 1) / 2) * 0.05
            ax.plot(x + jitter, y, "o", ms=4, alpha=0.8)
            if np.isfinite(y).any():
                ax.hlines(np.nanmedian(y), x - 0.25, x + 0.25, color="k", lw=1.5)
        ax.set_xticks(range(len(groups)), groups, fontsize=7)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(f"{column} ({label})" if label else column, fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    counts = table["status"].value_counts()
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES if counts.get(s, 0))
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=9)
    fig.tight_layout()
    return fig


def parameter_units(results: list) -> dict:
    """'<stage>.<parameter>' -> SI unit name, from the result documents."""
    units = {}
    for doc in results:
        for p, unit in (doc.get("units") or {}).items():
            units.setdefault(f"{doc['stage']}.{p}", unit)
    return units
