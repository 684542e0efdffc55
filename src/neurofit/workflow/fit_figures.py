"""Figures of a study's fits, beside ``fit_section`` whose files they read: the best error so far vs
evaluations (one colour per optimizer, one line style per seed, stars after refine), every run's parameters
after fit and refine (vs the ground truth when the study gives it), and the best run's model traces over the
recorded ones. ``neurofit plot-fit`` parses its arguments, calls ``write_fit_figures`` and writes the
provenance of each figure.
"""
from __future__ import annotations

import time

from .fit_section import (
    FitSection,
    best_run,
    final_params,
    history_path_of,
    pair_runs,
    read_fit,
    read_history,
    read_refined,
    summarize,
)
from .section import Output
from .study import ConfigError

KINDS = ("convergence", "parameters", "traces", "pareto")
_SQUARED = {"volt": "V²", "amp": "A²", "siemens": "S²", "1": "1"}


def write_fit_figures(section: FitSection, fit_paths, refined_paths, outputs: dict, data=None,
                      dpi: int | None = None) -> list[Output]:
    """Each figure of ``outputs`` (kind of ``KINDS`` → file) from the fit.json files ``fit_paths`` and the
    refined.json files ``refined_paths``; ``data``: the dataset written by ``neurofit prepare`` (default: the
    study's recordings); ``dpi``: default the study's figures.dpi. An ``Output`` per figure (the files it read
    besides the config)."""
    from ..plots import save_figure

    study = section.study
    unknown = [kind for kind in outputs if kind not in KINDS]
    if unknown:
        raise ConfigError(f"fit figure '{unknown[0]}': unknown (kinds: {', '.join(KINDS)})")
    fits = [read_fit(f) for f in fit_paths]
    refined = [read_refined(f) for f in refined_paths]
    dpi = dpi or study.section["figures"]["dpi"]
    written = []
    for kind, path in outputs.items():
        start = time.perf_counter()
        extra_inputs = []
        if kind == "convergence":
            histories = [history_path_of(f) for f in fits]
            extra_inputs = [str(h) for h in histories]
            fig = convergence_figure(section, fits, refined, [read_history(h) for h in histories])
        elif kind == "parameters":
            fig = parameters_figure(section, fits, refined)
        elif kind == "pareto":
            fit, _ = best_run(fits, refined)
            extra_inputs = [str(history_path_of(fit))]
            fig = pareto_figure(section, fit, read_history(history_path_of(fit)))
        else:
            from ..data.dataset import Dataset

            dataset = Dataset.load_npz(data) if data else study.dataset()
            fig = traces_figure(section, fits, refined, dataset)
            extra_inputs = [data] if data else study.data_files
        save_figure(fig, path, dpi=dpi)
        written.append(Output(str(path), [*map(str, fit_paths), *map(str, refined_paths), *map(str, extra_inputs)],
                              time.perf_counter() - start))
    return written


def convergence_figure(section: FitSection, fits: list, refined: list, histories: list):
    """Best error so far vs evaluations of every run (``histories``: their history tables)."""
    from ..plots import plot_fit_convergence
    from ..units import to_si

    metric = section.metric_settings
    scale = None
    if metric["name"] == "mse":  # refine's cost and the noise floor on the scale of the fit's error
        scale = 1.0 / to_si(metric["normalization"], name="normalization") ** 2
    runs = []
    for (fit, ref), history in zip(pair_runs(fits, refined), histories):
        runs.append({"label": fit["optimizer"]["label"], "seed": fit["seed"], "errors": history["error"].to_numpy(),
                     "refined": ref["mse"] * scale if ref and scale and ref["mse"] is not None else None})
    floor = section.noise_floor * scale if section.noise_floor and scale else None
    label = {"mse": "MSE", "gamma": "1 - gamma factor", "feature": "feature error",
             "spikes": "spike + subthreshold error"}[metric["name"]]
    unit = None
    if scale == 1:  # MSE in the outputs' units squared
        units = {_SQUARED.get(fits[0]["units"].get(o)) for o in fits[0].get("outputs", [])}
        unit = units.pop() if len(units) == 1 and None not in units else None
    elif scale:
        label += " (normalized)"
    title = f"{section.study.name}: {section.kind} fit of {', '.join(section.parameters)} " \
            f"({section.settings['n_samples']} samples per round)"
    return plot_fit_convergence(runs, noise_floor=floor, title=title, error_label=label, error_unit=unit)


def pareto_figure(section: FitSection, fit: dict, history):
    """The Pareto front of a multi-objective fit (``fit``: its fit.json with "pareto"; ``history``: its
    history.parquet, one column per objective): every evaluated candidate, the front, the hall of fame and the
    compromise (``plots.plot_pareto_front``)."""
    from types import SimpleNamespace

    import numpy as np

    from ..plots import plot_pareto_front

    pareto = fit.get("pareto")
    if pareto is None:
        raise ConfigError(f"{fit.get('_path', 'fit.json')}: not a multi-objective fit (no Pareto front)")
    objectives = list(pareto["objectives"])
    result = SimpleNamespace(objectives=objectives, F=history[objectives].to_numpy(dtype=float),
                             on_front=history["on_front"].to_numpy(dtype=bool),
                             hall_of_fame_index=np.array([row["index"] for row in pareto["hall_of_fame"]], dtype=int),
                             compromise_index=pareto["compromise"]["index"] if pareto["compromise"] else None)
    return plot_pareto_front(result, title=f"{section.study.name}: Pareto front (NSGA-II, seed {fit['seed']}), "
                                           f"{len(pareto['front'])} candidates on it")


def parameters_figure(section: FitSection, fits: list, refined: list):
    """Every run's parameters after fit and refine (deviation from the ground truth when given)."""
    from ..plots import plot_fit_parameters

    table = summarize(fits, refined, section.ground_truth)
    return plot_fit_parameters(table, section.parameters, units=section.units, truth=section.ground_truth,
                               title=f"{section.study.name}: fitted parameters"
                                     + (" vs ground truth" if section.ground_truth else ""))


def traces_figure(section: FitSection, fits: list, refined: list, dataset):
    """The best run's model traces over the recorded ones of ``dataset``. For a model with a spike condition
    each panel gives the recorded and model spike counts, gamma and the subthreshold RMSE
    (``validation.score_sweeps``), not a residual in mV."""
    import numpy as np

    from ..plots import format_quantity, plot_traces

    study = section.study
    fit, ref = best_run(fits, refined)
    params = final_params(fit, ref)
    if section.model.threshold is not None:
        from .validation import score_sweeps, scores_figure

        sweeps = list((dataset.source.get("preprocessing") or {}).get("sweeps") or range(dataset.n_traces))
        doc = {"sweeps": sweeps, "heldout": [], "best_run": {"seed": fit["seed"]}, "units": section.units,
               "parameters": {**{p: float(v) for p, v in section.fixed.items()}, **params},
               "sweep_scores": score_sweeps(section, dataset, params, fit["seed"], sweeps, "fitted")}
        return scores_figure(section, dataset, None, params, doc, f"{study.name}: {'refined' if ref else 'fitted'} "
                             f"model ({fit['optimizer']['label']}, seed {fit['seed']}) vs data",
                             max_traces=study.section["figures"]["max_traces"])
    fitter = section.fitter(dataset, seed=fit["seed"])
    names = list(fitter.output)
    model = fitter.generate(output_var=names, params=params)
    units = dict(dataset.units)
    values = ", ".join(f"{p} = {format_quantity(v, section.units.get(p))}" for p, v in params.items())
    stage = "refined" if ref else "fitted"
    error = ""
    if ref and ref["mse"] is not None:
        error = f"; MSE {ref['mse']:.4g}"
        if ref.get("ratio_to_floor") is not None:
            error += f" = {ref['ratio_to_floor']:.4f} x noise floor"
    title = f"{study.name}: {stage} model ({fit['optimizer']['label']}, seed {fit['seed']}) vs data{error}\n" \
            f"{values}"
    return plot_traces(dataset.t, {v: np.asarray(model[v])[None] for v in names},
                       data={v: dataset.outputs[v] for v in names if v in dataset.outputs}, inputs=dataset.inputs,
                       units=units, max_traces=study.section["figures"]["max_traces"], title=title)
