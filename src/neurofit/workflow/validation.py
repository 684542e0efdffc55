"""How a fitted model does on recorded sweeps, fitted and held out: the numbers and the figure.

Shared by the cell stages of batch studies (``cell_stage``) and by a study's ``validation`` section
(``neurofit validate``). For one parameter set on the sweeps of a dataset:

- ``score_sweeps``: per sweep the RMSE of the voltage (V; for a model with a spike condition over the samples
  away from every recorded and model spike, SPIKE_WINDOW, i.e. the subthreshold voltage) and, for a spiking
  model, the spike scores of ``neurofit.fitting.spike_scores.sweep_scores`` (counts, gamma within
  HELDOUT_DELTA, latency and ISI errors); recorded spikes are upward crossings of 0 mV
  (``selection.SPIKE_THRESHOLD``, the detector the sweep selectors use);
- ``summarize_scores``: over the sweeps of one role, ``<prefix>_rmse`` (root of the mean of the sweeps' mean
  squares), ``<prefix>_count_error`` (mean |model - recorded| spikes per sweep), ``<prefix>_gamma``;
- ``objective``: the fit's own metric on a dataset (e.g. the held-out sweeps);
- ``information_criteria``: AIC and BIC of a least-squares fit, from the fitted sweeps' scores;
- ``scores_figure``: the model over the recorded sweeps, each panel titled with its scores.
"""
from __future__ import annotations

import math

import numpy as np

from ..data.recordings.selection import SPIKE_THRESHOLD
from .fit_section import FitSection

#: Coincidence window of the gamma factor of the sweep scores (s).
HELDOUT_DELTA = 4e-3
#: Samples this long before / after a recorded or model spike are left out of a spiking model's RMSE (s).
SPIKE_WINDOW = (2e-3, 5e-3)


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


def information_criteria(plan: FitSection, scores: list[dict], n_free: int) -> dict:
    """AIC and BIC of a least-squares stage (trace fit, metric mse) from the ``score_sweeps`` rows of its fitted
    sweeps (their "sse" and "n_samples"): with Gaussian noise of unknown variance, -2 log L = n log(RSS / n) +
    const over the n recorded samples, k = n_free free parameters + 1 (the variance): AIC = n log(RSS/n) + 2k,
    BIC = n log(RSS/n) + k log n. None for other objectives (no likelihood). Returns {"n_samples", "rss" (V^2),
    "aic", "bic"}."""
    none = {"n_samples": None, "rss": None, "aic": None, "bic": None}
    if plan.kind != "trace" or plan.metric_settings["name"] != "mse":
        return none
    rows = [row for row in scores if row["role"] == "fitted"]
    n, rss, k = sum(row["n_samples"] for row in rows), math.fsum(row["sse"] for row in rows), n_free + 1
    if not (math.isfinite(rss) and rss > 0):
        return none
    return {"n_samples": int(n), "rss": rss, "aic": n * math.log(rss / n) + 2 * k,
            "bic": n * math.log(rss / n) + k * math.log(n)}


def score_sweeps(plan: FitSection, dataset, params: dict, seed: int, sweeps: list, role: str) -> list[dict]:
    """Per sweep of ``dataset`` (one row per ``Sweep.index`` of ``sweeps``): the model at ``params`` (the free
    parameters, SI) against the recording - ``rmse`` (V; for a spiking model over the samples away from every
    recorded and model spike, SPIKE_WINDOW) and, for a model with a spike condition, the spike scores of
    ``neurofit.fitting.spike_scores.sweep_scores`` (window HELDOUT_DELTA); "sse" (V^2, sum of squared differences
    over all the sweep's recorded samples) and "n_samples" (what ``information_criteria`` adds up). ``role``
    ("fitted" / "heldout") is copied into each row."""
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
        sse = float(np.sum(diff ** 2))
        rows.append({"sweep": int(sweep), "role": role, "rmse": value if value is None or math.isfinite(value) else None,
                     "sse": sse if math.isfinite(sse) else None, "n_samples": int(n)})
    if spiking:
        spikes = sweep_scores(model_trains, data_trains, [n * dataset.dt for n in lengths], dataset.dt, HELDOUT_DELTA)
        rows = [{**row, **score} for row, score in zip(rows, spikes)]
    return rows


def summarize_scores(scores: list[dict], role: str, prefix: str) -> dict:
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


def scores_figure(plan: FitSection, dataset, heldout, params: dict, doc: dict, title: str, max_traces: int = 6):
    """The model at ``params`` (free parameters, SI) over the recorded sweeps of ``dataset`` (fitted) and
    ``heldout`` (None for none), each panel titled with its scores; the parameters in the title.

    doc: a mapping with "sweeps" and "heldout" (the Sweep.index values of both datasets, in order),
    "sweep_scores" (``score_sweeps`` rows, fitted then held out), "parameters" (every parameter, SI), "units"
    and "best_run" ({"seed": ...}); title: the figure's first line. At most ``max_traces`` panels, spread over
    the sweeps. Returns the matplotlib Figure."""
    from ..plots import format_quantity, plot_traces

    output = next(iter(dataset.outputs))
    sets = [(dataset, doc["sweeps"], "fitted")]
    if heldout is not None:
        sets.append((heldout, doc["heldout"], "held out"))
    n_steps = max(d.n_steps for d, _, _ in sets)
    model, recorded, current, labels = [], [], [], []
    for data, sweeps, label in sets:
        traces = simulator(plan, data, doc["best_run"]["seed"]).generate(output_var=output, params=params)
        model.append(_pad(traces, n_steps))
        recorded.append(_pad(data.outputs[output], n_steps))
        current.append(_pad(next(iter(data.inputs.values())), n_steps, edge=True))
        labels += [f"{label}: sweep {i}" for i in sweeps]
    model_all, data_all, input_all = (np.concatenate(arrays) for arrays in (model, recorded, current))
    order = _spread(model_all.shape[0], max_traces)
    values = ", ".join(f"{p} = {format_quantity(v, doc['units'].get(p))}" for p, v in doc["parameters"].items())
    fig = plot_traces(np.arange(n_steps) * dataset.dt, {output: model_all[order]}, data={output: data_all[order]},
                      inputs={"I": input_all[order]}, units=dict(dataset.units), max_traces=max_traces,
                      title=f"{title}: {values}")
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


VALIDATION_FORMAT = "neurofit.validation"


def heldout_settings(study) -> dict:
    """The data.recording settings of a study's held-out sweeps (its ``validation.sweeps``); ConfigError (one
    line, key path first) when the study has no recording to hold sweeps out of or gives no sweeps."""
    from .study import ConfigError

    where = study.where("validation", "sweeps")
    recording = (study.section.get("data") or {}).get("recording")
    if recording is None:
        raise ConfigError(f"{where}: held-out sweeps need a current-clamp recording (data.recording)")
    sweeps = study.section["validation"]["sweeps"]
    if sweeps is None:
        raise ConfigError(f"{where}: missing; give the held-out sweeps (e.g. [12, 14] or suprathreshold)")
    return dict(recording, sweeps=sweeps)


def heldout_dataset(study, dataset):
    """The held-out sweeps of a study (``validation.sweeps``) as a Dataset sampled like ``dataset`` (its fitted
    sweeps); ConfigError (one line) when one of them is also fitted or none is selected."""
    from ..data.recordings.from_settings import recording_dataset
    from .study import ConfigError

    heldout = recording_dataset(heldout_settings(study), dataset.dt, study.where("validation"))
    fitted = list(dataset.source["preprocessing"]["sweeps"])
    both = sorted(set(fitted) & set(heldout.source["preprocessing"]["sweeps"]))
    if both:
        raise ConfigError(f"{study.where('validation', 'sweeps')}: sweep {both[0]} is also fitted "
                          f"(data.recording.sweeps selects {', '.join(map(str, fitted))}); hold out others")
    return heldout


def validate_study(study, fit_docs: list, refined_docs: list, dataset=None) -> tuple[dict, object]:
    """Score the best run of a study's fits on its fitted and held-out sweeps: (validation document, figure).

    study: a ``Study`` with fit and validation sections and a data.recording; fit_docs / refined_docs: the
    fit.json / refined.json documents of its runs (``fit_section.read_fit`` / ``read_refined``); dataset: the
    fitted sweeps (default: read as the study reads them). The document holds the best run, every parameter,
    the fitted and held-out Sweep.index values, ``sweep_scores`` (``score_sweeps``), their summaries
    (``train_``/``heldout_`` rmse, count_error, gamma), the objective on the held-out sweeps and, for
    least-squares fits, AIC and BIC on the fitted ones. Raises ConfigError (one line) when a held-out sweep is
    also fitted or none is selected."""
    from .fit_section import best_run, final_params

    model = study.model()
    plan = FitSection(study, model)
    dataset = dataset if dataset is not None else study.dataset(model)
    heldout = heldout_dataset(study, dataset)
    fitted_sweeps = list(dataset.source["preprocessing"]["sweeps"])
    heldout_sweeps = list(heldout.source["preprocessing"]["sweeps"])
    fit, ref = best_run(fit_docs, refined_docs)
    free = final_params(fit, ref)
    params = {**{p: float(v) for p, v in plan.fixed.items()}, **free}
    seed = fit["seed"]
    scores = score_sweeps(plan, dataset, free, seed, fitted_sweeps, "fitted") + \
        score_sweeps(plan, heldout, free, seed, heldout_sweeps, "heldout")
    doc = {"format": VALIDATION_FORMAT, "version": 1, "study": study.name, "model": study.model_label,
           "best_run": {"optimizer": fit["optimizer"]["label"], "seed": seed, "refined": ref is not None},
           "sweeps": fitted_sweeps, "heldout": heldout_sweeps,
           "parameters": {p: params[p] for p in sorted(params)}, "units": {p: plan.units.get(p) for p in sorted(params)},
           "metric": plan.metric_settings["name"], "heldout_error": objective(plan, heldout, free, seed),
           **summarize_scores(scores, "fitted", "train"), **summarize_scores(scores, "heldout", "heldout"),
           **information_criteria(plan, scores, len(free)), "sweep_scores": scores}
    figure = scores_figure(plan, dataset, heldout, free, doc, f"{study.name} ({study.model_label})",
                           max_traces=study.section["figures"]["max_traces"])
    return doc, figure
