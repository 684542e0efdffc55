"""``neurofit simulate``: simulate a study's model with given parameters on its recorded inputs, or
(``--chunk I --of N``) chunk I of the training data of its ``infer`` section."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "simulate a study's model with the parameters of its 'simulate' section; write traces (.npz)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help=HELP,
        description=HELP + " with spike times and invalid flags. With --chunk I --of N: simulate chunk I of the "
                           "training data of the study's 'infer' section instead and write its parameter sets "
                           "and features (theta, x); 'neurofit infer --chunks ...' gathers the N chunks into "
                           "exactly the arrays of one unchunked run.")
    add_study_arguments(p)
    p.add_argument("--data", metavar="NPZ", help="dataset written by 'neurofit prepare' (default: read the "
                                                  "recordings named in the config)")
    p.add_argument("--output", required=True, metavar="NPZ", help="where to write the simulation (or the chunk)")
    p.add_argument("--threads", type=int, metavar="N", help="threads for the simulation (default: from config)")
    p.add_argument("--backend", choices=("auto", "numpy", "c"), help="override the config's backend")
    p.add_argument("--dtype", choices=("float64", "float32"), help="override the config's dtype")
    p.add_argument("--chunk", type=int, metavar="I", help="training data: index of this chunk, 0 .. N-1")
    p.add_argument("--of", type=int, metavar="N", help="training data: number of chunks (default: the study's "
                                                        "infer.n_chunks)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..workflow.study import ConfigError
    if args.chunk is None and args.of is not None:
        raise ConfigError("--of needs --chunk (the index of the training-data chunk to simulate)")
    return run_training_chunk(args) if args.chunk is not None else run_simulation(args)


def _dataset(args, study):
    from ..data.dataset import Dataset
    return Dataset.load_npz(args.data) if args.data else study.dataset()


def _inputs(args, study) -> list:
    return config_inputs(args) + ([args.data] if args.data else study.source_files)


def run_simulation(args) -> int:
    from ..data.files import save_simulation
    from ..simulate import simulate
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        study = load_study(args)
        model = study.model()
        dataset = _dataset(args, study)
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
    n_invalid = int(result.invalid.sum())
    write_manifest(args.output, study=study.name, config=study.section, seeds={"simulate": settings["seed"]},
                   inputs=_inputs(args, study), backend=result.backend, dtype=result.dtype, wall_time=elapsed(),
                   extra={"method": result.method, "threads": settings["threads"], "invalid": n_invalid})
    n_sets, n_traces = result.invalid.shape
    say(f"simulated {n_sets} parameter set(s) x {n_traces} trace(s) x {result.n_steps} steps "
        f"({result.method}, backend {result.backend}, {result.dtype}); {n_invalid} diverged -> {args.output}")
    return 0


def run_training_chunk(args) -> int:
    from ..inference.inferencer import chunk_range
    from ..workflow.infer_section import InferSection, read_chunk_meta
    from ..workflow.infer_section import run_training_chunk as simulate_chunk
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        study = load_study(args)
        infer = InferSection.settings_of(study)  # --chunk simulates the training data of the 'infer' section
        of = args.of if args.of is not None else infer["n_chunks"]
        chunk_range(infer["n_samples"], args.chunk, of)  # a bad --chunk/--of fails before any simulation
        for key in ("threads", "backend", "dtype"):
            if getattr(args, key) is not None:
                target = infer if key == "threads" else study.section.setdefault("simulate", {})
                target[key] = getattr(args, key)
        simulate_chunk(study, args.chunk, of, args.output, dataset=_dataset(args, study) if args.data else None)
    meta = read_chunk_meta(args.output)
    write_manifest(args.output, study=study.name, config=study.section, seeds={"infer": infer["seed"]},
                   inputs=_inputs(args, study), backend=meta.get("backend"), dtype=meta.get("dtype"),
                   wall_time=elapsed(),
                   extra={k: meta[k] for k in ("chunk", "n_chunks", "start", "stop", "n_invalid")})
    say(f"study '{study.name}': training data chunk {args.chunk} of {of} (simulations {meta['start']} .. "
        f"{meta['stop'] - 1} of {infer['n_samples']}; {meta['n_invalid']} invalid, {elapsed():.2f} s) -> {args.output}")
    return 0
