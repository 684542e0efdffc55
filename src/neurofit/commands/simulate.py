"""``neurofit simulate``: simulate a study's model with given parameters on its recorded inputs."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "simulate a study's model with the parameters of its 'simulate' section; write traces (.npz)"


def register(subparsers) -> None:
    p = subparsers.add_parser("simulate", help=HELP, description=HELP + " with spike times and invalid flags.")
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--output", required=True, metavar="NPZ", help="where to write the simulation")
    p.add_argument("--threads", type=int, metavar="N", help="threads for the simulation (default: from config)")
    p.add_argument("--backend", choices=("auto", "numpy", "c"), help="override the config's backend")
    p.add_argument("--dtype", choices=("float64", "float32"), help="override the config's dtype")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import Dataset
    from ..io import save_simulation
    from ..provenance import write_manifest
    from ..simulate import simulate

    with stopwatch() as elapsed:
        study = load_study(args)
        model = study.model()
        dataset = Dataset.load_npz(args.data) if args.data else study.dataset()
        settings = study.simulation_settings(model, dataset)
        for key in ("threads", "backend", "dtype"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        result = simulate(model, **settings)
        named = [*result.traces, *settings["params"]]
        meta = {"study": study.name, "model": study.model_label, "model_repr": repr(model),
                "model_hash": model.content_hash,
                "units": {v: str(model.dimensions[v]) for v in named if v in model.dimensions}}
        save_simulation(args.output, result, settings["params"], meta=meta)
    inputs = config_inputs(args) + ([args.data] if args.data else study.data_files + study.model_files)
    n_invalid = int(result.invalid.sum())
    write_manifest(args.output, study=study.name, config=study.section, seeds={"simulate": settings["seed"]},
                   inputs=inputs, backend=result.backend, dtype=result.dtype, wall_time=elapsed(),
                   extra={"method": result.method, "threads": settings["threads"], "invalid": n_invalid})
    n_sets, n_traces = result.invalid.shape
    say(f"simulated {n_sets} parameter set(s) x {n_traces} trace(s) x {result.n_steps} steps "
        f"({result.method}, backend {result.backend}, {result.dtype}); {n_invalid} diverged -> {args.output}")
    return 0
