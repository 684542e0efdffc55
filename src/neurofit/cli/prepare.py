"""``neurofit prepare``: check a study, freeze its config, load its recordings into data.npz.

The checks never build a full population: units and sizes are checked against the model and the memory
available before data are read or generated, and each optimizer is tried on a tiny population.

The frozen config (``--output-config``, results/<study>/study.yaml in the workflow) holds the study's section
with every default filled in, without its description (``workflow.snakefile.NOT_FROZEN``): every later step
reads it, and it does not change when only the description does. A study without a model (rate, reduction)
has no data: give no --output-data."""
from __future__ import annotations

from .common import add_study_arguments, config_inputs, load_study, say, stopwatch

HELP = "check a study's config, model and data; write the frozen config and data.npz"


def register(subparsers) -> None:
    p = subparsers.add_parser("prepare", help=HELP, description=HELP + ". Every later step reads these two files.")
    add_study_arguments(p)
    p.add_argument("--output-config", required=True, metavar="YAML",
                   help="where to write the study's config section (defaults filled in, description left out)")
    p.add_argument("--output-data", metavar="NPZ",
                   help="where to write the dataset (SI units); required for a study with a model, not allowed "
                        "for one without (rate, reduction)")
    p.set_defaults(func=run)


def run(args) -> int:
    import yaml

    from ..data.files import atomic_write_text
    from ..errors import ConfigError
    from ..workflow.provenance import write_manifest
    from ..workflow.snakefile import frozen_section

    with stopwatch() as elapsed:
        study = load_study(args)
        has_model = study.section.get("model") is not None
        if has_model and not args.output_data:
            raise ConfigError(f"study '{study.name}' has a model and data: give --output-data NPZ")
        if not has_model and args.output_data:
            raise ConfigError(f"study '{study.name}' has no model and no data: --output-data is not for it")
        model = dataset = None
        if has_model:
            model = study.model()
            study.check(model)  # units, initial values, synthetic sizes: before reading or generating data
            dataset = study.dataset(model)
        if study.section.get("simulate") is not None:
            study.simulation_settings(model, dataset)  # fail here, before any simulation job, on bad settings
        if study.section.get("fit") is not None:
            from ..workflow.fit_section import FitSection
            FitSection(study, model).check(dataset)  # ... and before any fit job (data, metric, every optimizer)
        if study.section.get("infer") is not None:
            from ..workflow.infer_section import check_infer_section, inferencer_from_config
            check_infer_section(study, model)  # ... and before any training job (feature names, sizes,
            _ = inferencer_from_config(study, dataset)[0].x_o  # prior, features of the data)
        if study.section.get("rate") is not None:
            from ..workflow.rate_section import rate_settings
            rate_settings(study, check_optimizer=True)  # ... before any chunk job (ranges, chunks, fit.method)
        if study.section.get("reduction") is not None:
            from ..workflow.reduction_section import ReductionSection
            ReductionSection(study)  # ... and before the reduce job (protocol, target, models, bounds, loss)
        if study.section.get("validation") is not None:
            from ..workflow.validation import heldout_dataset
            heldout_dataset(study, dataset)  # ... and the held-out sweeps (selected, none of them fitted)
        if study.section.get("sheet") is not None:
            from ..workflow.batch import BatchStudy
            BatchStudy(study).cells()  # ... and before any cell job (stages, their models and fits, the sheet)
        section = frozen_section(study.section)
        frozen = yaml.safe_dump({"studies": {study.name: section}}, sort_keys=False, default_flow_style=False,
                                allow_unicode=True)
        atomic_write_text(args.output_config, frozen)
        if dataset is not None:
            dataset.save_npz(args.output_data)
    inputs = config_inputs(args) + study.source_files
    common = dict(study=study.name, config=section, inputs=inputs, wall_time=elapsed())
    write_manifest(args.output_config, **common)
    if dataset is None:
        kinds = [k for k in ('rate', 'reduction') if study.section.get(k)] + \
            (["batch over the cells of " + study.section["sheet"]] if study.section.get("sheet") else [])
        say(f"study '{study.name}': {', '.join(kinds)} (no data of its own) -> {args.output_config}")
        return 0
    write_manifest(args.output_data, **common, extra={"n_traces": dataset.n_traces, "n_steps": dataset.n_steps,
                                                        "dt": dataset.dt, "units": dataset.units})
    say(f"study '{study.name}': {model!r}; data {dataset.n_traces} traces x {dataset.n_steps} samples, "
        f"dt {dataset.dt:g} s -> {args.output_data}")
    return 0
