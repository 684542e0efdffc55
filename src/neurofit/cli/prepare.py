"""``neurofit prepare``: check a study, freeze its config, load its recordings into data.npz.

The checks never build a full population: units and sizes are checked against the model and the memory
available before data are read or generated, and each optimizer is tried on a tiny population."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "check a study's config, model and data; write the frozen config and data.npz"


def register(subparsers) -> None:
    p = subparsers.add_parser("prepare", help=HELP, description=HELP + ". Every later step reads these two files.")
    add_study_arguments(p)
    p.add_argument("--output-config", required=True, metavar="YAML",
                   help="where to write the study's config section (defaults filled in)")
    p.add_argument("--output-data", required=True, metavar="NPZ", help="where to write the dataset (SI units)")
    p.set_defaults(func=run)


def run(args) -> int:
    import yaml

    from ..data.files import atomic_write_text
    from ..workflow.provenance import write_manifest

    with stopwatch() as elapsed:
        study = load_study(args)
        model = study.model()
        study.check(model)  # units, initial values, synthetic sizes: before reading or generating data
        dataset = study.dataset(model)
        if study.section.get("simulate") is not None:
            study.simulation_settings(model, dataset)  # fail here, before any simulation job, on bad settings
        if study.section.get("fit") is not None:
            from ..workflow.fit_section import FitPlan
            FitPlan(study, model).check(dataset)  # ... and before any fit job (data, metric, every optimizer)
        if study.section.get("infer") is not None:
            from ..workflow.infer_section import check_infer_section, inferencer_from_config
            check_infer_section(study, model)  # ... and before any training job (feature names, sizes,
            _ = inferencer_from_config(study, dataset)[0].x_o  # prior, features of the data)
        frozen = yaml.safe_dump(study.to_config(), sort_keys=False, default_flow_style=False, allow_unicode=True)
        atomic_write_text(args.output_config, frozen)
        dataset.save_npz(args.output_data)
    inputs = config_inputs(args) + study.source_files
    common = dict(study=study.name, config=study.section, inputs=inputs, wall_time=elapsed())
    write_manifest(args.output_config, **common)
    write_manifest(args.output_data, **common, extra={"n_traces": dataset.n_traces, "n_steps": dataset.n_steps,
                                                        "dt": dataset.dt, "units": dataset.units})
    say(f"study '{study.name}': {model!r}; data {dataset.n_traces} traces x {dataset.n_steps} samples, "
        f"dt {dataset.dt:g} s -> {args.output_data}")
    return 0
