"""``neurofit plot-traces``: simulated traces over the recorded ones, one panel per trace."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "plot simulated traces (from 'neurofit simulate') over recorded data; write a PNG/SVG/PDF"


def register(subparsers) -> None:
    p = subparsers.add_parser("plot-traces", help=HELP, description=HELP + ".")
    p.add_argument("--simulation", required=True, metavar="NPZ", help="output of 'neurofit simulate'")
    p.add_argument("--data", metavar="NPZ", help="dataset from 'neurofit prepare' (default: the recordings named "
                                                  "in the config; none: plot the model alone)")
    p.add_argument("--output", required=True, metavar="FILE", help="figure file (.png, .svg or .pdf)")
    add_study_arguments(p, required=False)
    p.add_argument("--dpi", type=int, help="resolution (default: config figures.dpi, else 120)")
    p.add_argument("--max-traces", type=int, metavar="N", help="plot at most N traces (default: config, else 10)")
    p.add_argument("--title", help="figure title (default: study and model)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..data.dataset import Dataset
    from ..data.files import load_simulation
    from ..plots import plot_traces, save_figure
    from ..workflow import study as study_module
    from ..workflow.provenance import write_manifest

    if (args.config or args.config_json) and not args.study:
        raise study_module.ConfigError("--study NAME is needed with --config/--config-json")
    if args.study and not (args.config or args.config_json):
        raise study_module.ConfigError("--study needs --config FILE or --config-json TEXT")
    if Path(args.output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise study_module.ConfigError(f"--output {args.output}: use a .png, .svg or .pdf file name")
    with stopwatch() as elapsed:
        study = load_study(args) if args.study else None
        figures = study.section["figures"] if study else {}
        sim = load_simulation(args.simulation)
        if args.data:
            dataset = Dataset.load_npz(args.data)
        elif study is not None:
            dataset = study.dataset()
        else:
            dataset = None
        units = dict(sim.meta.get("units") or {})
        data, inputs = {}, {}
        if dataset is not None:
            units.update(dataset.units)
            data = {v: dataset.outputs[v] for v in sim.traces if v in dataset.outputs}
            inputs = dataset.inputs
        title = args.title or _title(study, sim, units, bool(data))
        fig = plot_traces(sim.t, sim.traces, data=data, inputs=inputs, units=units,
                          max_traces=args.max_traces or figures.get("max_traces", 10), title=title)
        save_figure(fig, args.output, dpi=args.dpi or figures.get("dpi", 120))
    inputs_used = [args.simulation] + ([args.data] if args.data else (study.data_files if study else [])) \
        + config_inputs(args)
    write_manifest(args.output, study=study.name if study else None, config=study.section if study else None,
                   inputs=inputs_used, wall_time=elapsed())
    say(f"figure -> {args.output}")
    return 0


def _title(study, sim, units: dict, with_data: bool) -> str:
    from ..plots import format_quantity
    head = (f"{study.name}: " if study else "") + str(sim.meta.get("model", "model")) + \
        (" vs recorded data" if with_data else "")
    if sim.n_sets == 1 and sim.params:
        values = ", ".join(f"{p} = {format_quantity(v[0], units.get(p))}" for p, v in sim.params.items())
        return f"{head}\n{values}"
    return f"{head} ({sim.n_sets} parameter sets)" if sim.n_sets > 1 else head
