"""One amortized posterior per sheet group: train it on the group's protocol, condition each cell on it.

An infer stage of a batch study with ``amortize: group`` trains once per group of the sample sheet instead of
once per cell. ``train_group_posterior`` takes the group's cells (each one's stage study and dataset, as a cell
job would build them), finds the group's protocol - the input traces and dt shared by the most cells (ties:
the earliest in the sheet) - and refuses the cells recorded otherwise (other dt, sweep count or length, or
inputs differing by more than PROTOCOL_RTOL of the protocol's largest absolute input at some sample). The
observation noise is pooled over the protocol's cells' baselines (``pooled_noise``) where infer.noise is
auto, the training simulations run on the protocol's first cell (``infer.n_samples``, ``infer.seed``), and
the amortized posterior (one round) is written with its training features (for the misspecification check)
and the protocol::

    doc = train_group_posterior(cells, refused, folder, stage="passive", group="L5")   # folder/group.json's content
    fields = condition_cell(study, model, dataset, "cell_07", doc, folder, out)        # seconds, no training

``condition_cell`` checks the cell against the protocol, loads the posterior and the training features into an
Inferencer built on the cell's own recording, and returns the cell's posterior (``infer_population``: mean and
5 / 50 / 95 % quantiles, seeded draws), its misspecification check and the posterior predictive check of its
features (``out``: samples.parquet, predictive_check.json and .png).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..data.files import atomic_save_npz, atomic_write_bytes, atomic_write_json
from ..errors import NeurofitError
from .infer_section import AUTO, PREDICTIVE_SEED_OFFSET, PREDICTIVE_SIMULATIONS, InferSection, sbi_settings

GROUP_FORMAT = "neurofit.group_posterior"
GROUP_VERSION = 1
#: Files a group's training writes beside group.json.
GROUP_FILES = ("posterior.pt", "training.npz", "protocol.npz")
#: Largest difference between a cell's input and the protocol's at any sample, as a share of the protocol's
#: largest absolute input: command waveforms are equal; a recorded current differs by its noise.
PROTOCOL_RTOL = 0.01


class GroupPosteriorError(NeurofitError):
    """A cell that cannot use its group's posterior (the message says why in one line)."""


def protocol_of(dataset, inputs) -> dict:
    """The protocol of a cell's stage dataset: its dt (s) and the input traces the model reads,
    {input: (n_traces, n_steps) SI}. inputs: the model's input names."""
    return {"dt": float(dataset.dt), "inputs": {name: np.asarray(dataset.inputs[name], dtype=np.float64)
                                                for name in inputs}}


def _shape_text(protocol: dict) -> str:
    first = next(iter(protocol["inputs"].values()))
    return f"{first.shape[0]} sweeps x {first.shape[1]} samples at {protocol['dt'] * 1e3:g} ms"


def protocol_difference(protocol: dict, reference: dict) -> str | None:
    """None when ``protocol`` is ``reference`` (same dt, shapes, and inputs within PROTOCOL_RTOL of the
    reference's largest absolute input at every sample); otherwise what differs, as text."""
    if not np.isclose(protocol["dt"], reference["dt"], rtol=1e-9, atol=0):
        return f"dt {protocol['dt'] * 1e3:g} ms, the group's {reference['dt'] * 1e3:g} ms"
    for name, expected in reference["inputs"].items():
        found = protocol["inputs"].get(name)
        if found is None or found.shape != expected.shape:
            return f"{_shape_text(protocol)}, the group's {_shape_text(reference)}"
        scale = float(np.max(np.abs(expected))) or 1.0
        worst = float(np.max(np.abs(found - expected)))
        if worst > PROTOCOL_RTOL * scale:
            trace = int(np.argmax(np.max(np.abs(found - expected), axis=1)))
            return (f"input {name} of sweep {trace + 1} differs by up to {worst:.3g} (SI) from the group's, more than "
                    f"{PROTOCOL_RTOL:.0%} of its largest value {scale:.3g}")
    return None


def _clusters(protocols: dict) -> list:
    """Cells grouped by protocol (each cluster's first cell is its reference), in sheet order."""
    clusters: list = []
    for cell, protocol in protocols.items():
        for members in clusters:
            if protocol_difference(protocol, protocols[members[0]]) is None:
                members.append(cell)
                break
        else:
            clusters.append([cell])
    return clusters


def _group_noise(section: InferSection, datasets: dict, protocol: dict) -> tuple[dict, list]:
    """({output: SD} for the group's training, the outputs whose SD was pooled from the cells' baselines):
    infer.noise auto (or an output's 'auto') pools the baselines of every cell in ``datasets``; given SDs are
    kept as given."""
    from ..inference.amortized import pooled_noise
    from ..units import to_si

    noise = section.noise()
    outputs = [v for v in next(iter(datasets.values())).outputs]
    wanted = dict.fromkeys(outputs, AUTO) if noise == AUTO else dict(noise or {})
    pooled = [v for v, sd in wanted.items() if isinstance(sd, str) and sd.strip().lower() == AUTO]
    found = pooled_noise(datasets, protocol["dt"], protocol["inputs"], outputs=pooled) if pooled else {}
    given = {v: to_si(sd, name=f"noise['{v}']") for v, sd in wanted.items() if v not in pooled}
    return {**given, **found}, pooled


def train_group_posterior(cells: dict, refused: dict, folder, stage: str, group: str, log=None) -> dict:
    """Train one amortized posterior for a sheet group and write it into ``folder``.

    cells: cell id -> (its stage's Study, the model, its Dataset) for every cell of the group whose sweeps could
    be read, in sheet order; refused: cell id -> reason for the others; stage, group: names for the document;
    log: a function taking one line of progress. Writes ``folder``/posterior.pt (the posterior, loadable
    without running code), training.npz (theta and features of the training simulations) and protocol.npz (dt
    and the protocol's inputs). Returns the group document (group.json's content): status ``ok`` or
    ``failed`` (no cell to train on; the reason names one cell's), the reference cell, the cells that share
    the protocol, the refused cells with reasons, the noise SDs used (SI) and which were pooled, and the
    training's size. Numbers only: the same cells and settings give the same bytes.
    """
    folder = Path(folder)
    doc = {"format": GROUP_FORMAT, "version": GROUP_VERSION, "stage": stage, "group": group}
    refused = dict(refused)
    if not cells:
        example = next(iter(refused.items()), None)
        reason = "the group has no cell" if example is None else \
            f"no cell of the group can be used (e.g. cell {example[0]}: {example[1]})"
        return {**doc, "status": "failed", "reason": reason, "reference_cell": None, "cells": [],
                "refused": dict(sorted(refused.items()))}
    protocols = {cell: protocol_of(dataset, model.inputs) for cell, (_, model, dataset) in cells.items()}
    clusters = _clusters(protocols)
    members = max(clusters, key=len)  # max keeps the first of equal lengths: the earliest in the sheet
    reference = members[0]
    for cluster in clusters:
        if cluster is not members:
            for cell in cluster:
                refused[cell] = (f"recorded with another protocol than group {group}'s amortized posterior: "
                                 f"{protocol_difference(protocols[cell], protocols[reference])} (reference cell "
                                 f"{reference})")
    study, model, dataset = cells[reference]
    section = InferSection(study, model)
    noise, pooled = _group_noise(section, {c: cells[c][2] for c in members}, protocols[reference])
    inferencer, _ = section.inferencer(dataset, noise=noise)
    infer = section.settings
    if log:
        log(f"group {group}, stage {stage}: training on {len(members)} cells' protocol ({_shape_text(protocols[reference])}), "
            f"noise {', '.join(f'{v} {sd:.3g}' for v, sd in noise.items()) or 'none'}, {infer['n_samples']} simulations")
    theta, x = inferencer.simulate_training_chunk(infer["n_samples"], 0, 1)
    inferencer.infer(theta=theta, x=x, **sbi_settings(infer))
    inferencer.save_posterior(folder / "posterior.pt")
    inferencer.save_summary_statistics(folder / "training.npz", theta, x)
    atomic_save_npz(folder / "protocol.npz", {"dt": np.array(protocols[reference]["dt"]),
                                              **protocols[reference]["inputs"]})
    return {**doc, "status": "ok", "reason": "", "reference_cell": reference, "cells": list(members),
            "refused": dict(sorted(refused.items())),
            "noise": {v: float(sd) for v, sd in sorted(noise.items())}, "noise_pooled": sorted(pooled),
            "n_simulations": int(theta.shape[0]), "n_invalid": int((~np.all(np.isfinite(x), axis=1)).sum()),
            "param_names": list(inferencer.param_names), "feature_names": list(inferencer.feature_names),
            "protocol": {"dt": protocols[reference]["dt"], "n_traces": int(inferencer.n_traces),
                         "n_steps": int(inferencer.n_steps)}}


def read_protocol(path) -> dict:
    """The protocol written by ``train_group_posterior`` (protocol.npz, read without unpickling)."""
    with np.load(path, allow_pickle=False) as f:
        return {"dt": float(f["dt"]), "inputs": {k: f[k] for k in f.files if k != "dt"}}


def condition_cell(study, model, dataset, cell: str, group_doc: dict, group_folder, out_folder) -> dict:
    """A cell's posterior from its group's amortized posterior: no training, its features only.

    study, model, dataset: the cell's stage study, model and Dataset (its sweeps of the stage); cell: its id;
    group_doc: the group's document (``train_group_posterior``); group_folder: the folder holding the group's
    files; out_folder: where the cell's samples.parquet (SI) and predictive check (predictive_check.json,
    .png) go. Returns the fields of the cell's result: ``quantiles`` (mean, q05, q50, q95 per parameter, SI),
    ``misspecification`` (the check's dict, or None), ``predictive_outside`` (features outside their 90 %
    predictive interval), ``noise`` (per output: the group's SD used, whether pooled, and the cell's own
    baseline estimate), ``n_simulations``, ``fixed`` and ``files`` (the paths written). Raises
    GroupPosteriorError (one line) when the group has no posterior, refused the cell, or the cell's protocol is
    not the group's.
    """
    import pandas as pd

    from ..inference import diagnostics
    from ..inference.amortized import infer_population
    from ..inference.inferencer import InferenceError, estimate_noise_sd
    from ..plots import save_figure
    from .infer_section import _feature_units

    group, group_folder, out_folder = group_doc["group"], Path(group_folder), Path(out_folder)
    if group_doc["status"] != "ok":
        raise GroupPosteriorError(f"group {group}: {group_doc['reason']}")
    if cell in group_doc["refused"]:
        raise GroupPosteriorError(group_doc["refused"][cell])
    if cell not in group_doc["cells"]:
        raise GroupPosteriorError(f"not among the cells group {group}'s posterior was trained for; train the group "
                                  f"again")
    difference = protocol_difference(protocol_of(dataset, model.inputs), read_protocol(group_folder / "protocol.npz"))
    if difference is not None:
        raise GroupPosteriorError(f"recorded with another protocol than group {group}'s amortized posterior: "
                                  f"{difference}")
    section = InferSection(study, model)
    infer = section.settings
    inferencer, _ = section.inferencer(dataset, noise=group_doc["noise"])
    inferencer.load_posterior(group_folder / "posterior.pt")
    inferencer.load_summary_statistics(group_folder / "training.npz")
    population = infer_population(inferencer, {cell: inferencer.x_o}, n_samples=infer["num_posterior_samples"],
                                  seed=infer["seed"], warn=False)
    samples = population.samples[cell]
    if samples.shape[0] == 0:
        raise GroupPosteriorError(f"group {group}'s posterior given this cell's features lies (almost) entirely "
                                  f"outside the prior; the model likely cannot produce this cell's data")
    seed = infer["seed"] + PREDICTIVE_SEED_OFFSET
    check = inferencer.predictive_check(PREDICTIVE_SIMULATIONS, seed=seed, samples=samples)
    buffer = io.BytesIO()
    pd.DataFrame(samples, columns=inferencer.param_names).to_parquet(buffer, index=False)
    atomic_write_bytes(out_folder / "samples.parquet", buffer.getvalue())
    atomic_write_json(out_folder / "predictive_check.json", {"seed": seed, **check.to_dict()})
    save_figure(diagnostics.plot_predictive_check(check, _feature_units(inferencer, dataset.units)),
                out_folder / "predictive_check.png")
    own = {}
    for var in group_doc["noise"]:
        try:
            own[var] = float(estimate_noise_sd(inferencer.output[var], inferencer.dt, inferencer.input))
        except InferenceError:  # no baseline before the stimulus
            own[var] = None
    row = population.table.iloc[0]
    misspecification = population.misspecification[cell]
    return {"quantiles": {p: {"mean": float(row[f"{p}.mean"]), "q05": float(row[f"{p}.q05"]),
                              "q50": float(row[f"{p}.q50"]), "q95": float(row[f"{p}.q95"])}
                          for p in inferencer.param_names},
            "misspecification": None if misspecification is None else misspecification.to_dict(),
            "predictive_outside": check.to_dict().get("n_outside"),
            "noise": {v: {"sd": float(sd), "pooled": v in group_doc["noise_pooled"], "cell_sd": own[v]}
                      for v, sd in group_doc["noise"].items()},
            "n_simulations": group_doc["n_simulations"], "fixed": dict(inferencer.fixed),
            "files": [out_folder / name for name in ("samples.parquet", "predictive_check.json", "predictive_check.png")]}
