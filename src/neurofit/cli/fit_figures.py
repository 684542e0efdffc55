"""``neurofit plot-fit``: figures of a study's fits (convergence, parameters, traces)."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "plot a study's fits: best error vs evaluations, fitted parameters vs ground truth, refined traces"
KINDS = ("convergence", "parameters", "traces")
_SQUARED = {"volt": "V²", "amp": "A²", "siemens": "S²", "1": "1"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot-fit", help=HELP,
        description=HELP + " (one process for all three: the workflow's figures of a study's fits).")
    add_study_arguments(p)
    p.add_argument("--fits", required=True, nargs="+", metavar="JSON", help="fit.json files of 'neurofit fit'")
    p.add_argument("--refined", nargs="*", default=[], metavar="JSON", help="refined.json files of 'neurofit refine'")
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (traces; default: the "
                                                  "recordings named in the config)")
    p.add_argument("--convergence", metavar="FILE",
                   help="figure of the best error so far vs evaluations, one colour per optimizer and one line style "
                        "per seed (stars: after refine)")
    p.add_argument("--parameters", metavar="FILE",
                   help="figure of every run's parameters after fit and refine (deviation from ground_truth in %% "
                        "when the study gives it)")
    p.add_argument("--traces", metavar="FILE", help="figure of the best run's model traces over the recorded ones")
    p.add_argument("--dpi", type=int, help="resolution (default: config figures.dpi)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..plots import save_figure
    from ..workflow.fit_section import FitPlan, history_path_of, read_fit, read_history, read_refined
    from ..workflow.provenance import write_manifest
    from ..workflow.study import ConfigError

    outputs = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind)}
    if not outputs:
        raise ConfigError("plot-fit: give at least one of --convergence, --parameters, --traces (figure files)")
    for kind, path in outputs.items():
        if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ConfigError(f"--{kind} {path}: use a .png, .svg or .pdf file name")
    study = load_study(args)
    plan = FitPlan(study)
    fits = [read_fit(f) for f in args.fits]
    refined = [read_refined(f) for f in args.refined]
    dpi = args.dpi or study.section["figures"]["dpi"]
    for kind, path in outputs.items():
        with stopwatch() as elapsed:
            extra_inputs = []
            if kind == "convergence":
                histories = [history_path_of(f) for f in fits]
                extra_inputs = [str(h) for h in histories]
                fig = _convergence(plan, fits, refined, [read_history(h) for h in histories])
            elif kind == "parameters":
                fig = _parameters(plan, fits, refined)
            else:
                fig = _traces(plan, study, fits, refined, args)
                extra_inputs = [args.data] if args.data else study.data_files
            save_figure(fig, path, dpi=dpi)
        write_manifest(path, study=study.name, config=study.section,
                       inputs=[*args.fits, *args.refined, *extra_inputs, *config_inputs(args)], wall_time=elapsed())
        say(f"figure ({kind}) -> {path}")
    return 0


def _convergence(plan, fits, refined, histories):
    from ..plots import plot_fit_convergence
    from ..units import to_si
    from ..workflow.fit_section import pair_runs

    metric = plan.metric_settings
    scale = None
    if metric["name"] == "mse":  # refine's cost and the noise floor on the scale of the fit's error
        scale = 1.0 / to_si(metric["normalization"], name="normalization") ** 2
    runs = []
    for (fit, ref), history in zip(pair_runs(fits, refined), histories):
        runs.append({"label": fit["optimizer"]["label"], "seed": fit["seed"], "errors": history["error"].to_numpy(),
                     "refined": ref["mse"] * scale if ref and scale and ref["mse"] is not None else None})
    floor = plan.noise_floor * scale if plan.noise_floor and scale else None
    label = {"mse": "MSE", "gamma": "1 - gamma factor", "feature": "feature error"}[metric["name"]]
    unit = None
    if scale == 1:  # MSE in the outputs' units squared
        units = {_SQUARED.get(fits[0]["units"].get(o)) for o in fits[0].get("outputs", [])}
        unit = units.pop() if len(units) == 1 and None not in units else None
    elif scale:
        label += " (normalized)"
    title = f"{plan.study.name}: {plan.kind} fit of {', '.join(plan.parameters)} ({plan.section['n_samples']} " \
            f"samples per round)"
    return plot_fit_convergence(runs, noise_floor=floor, title=title, error_label=label, error_unit=unit)


def _parameters(plan, fits, refined):
    from ..plots import plot_fit_parameters
    from ..workflow.fit_section import summarize

    table = summarize(fits, refined, plan.ground_truth)
    return plot_fit_parameters(table, plan.parameters, units=plan.units, truth=plan.ground_truth,
                               title=f"{plan.study.name}: fitted parameters"
                                     + (" vs ground truth" if plan.ground_truth else ""))


def _traces(plan, study, fits, refined, args):
    import numpy as np

    from ..data.dataset import Dataset
    from ..plots import format_quantity, plot_traces
    from ..workflow.fit_section import best_run, final_params

    dataset = Dataset.load_npz(args.data) if args.data else study.dataset()
    fit, ref = best_run(fits, refined)
    params = final_params(fit, ref)
    fitter = plan.fitter(dataset, seed=fit["seed"])
    if plan.kind == "spike":
        names = [(plan.section["outputs"] or list(dataset.outputs) or ["v"])[0]]
    else:
        names = list(fitter.output)
    model = fitter.generate(output_var=names, params=params)
    units = dict(dataset.units)
    values = ", ".join(f"{p} = {format_quantity(v, plan.units.get(p))}" for p, v in params.items())
    stage = "refined" if ref else "fitted"
    error = ""
    if ref and ref["mse"] is not None:
        error = f"; MSE {ref['mse']:.4g}"
        if ref.get("ratio_to_floor") is not None:
            error += f" = {ref['ratio_to_floor']:.4f} x noise floor"
    title = f"{plan.study.name}: {stage} model ({fit['optimizer']['label']}, seed {fit['seed']}) vs data{error}\n" \
            f"{values}"
    return plot_traces(dataset.t, {v: np.asarray(model[v])[None] for v in names},
                       data={v: dataset.outputs[v] for v in names if v in dataset.outputs}, inputs=dataset.inputs,
                       units=units, max_traces=study.section["figures"]["max_traces"], title=title)
