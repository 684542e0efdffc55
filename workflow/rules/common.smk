# Helpers shared by the stages (which studies run, their files, their targets); no rules here.

from neurofit.cli.main import is_user_error, one_line
from neurofit.workflow.batch import BatchStudy, group_folder, row_fingerprint
from neurofit.workflow.fit_section import FitSection, refine_enabled, run_names
from neurofit.workflow.infer_section import (
    CALIBRATION_FILES,
    INFERENCE_FILES,
    check_infer_section,
)
from neurofit.workflow.provenance import MANIFEST_SUFFIX
from neurofit.workflow.rate_section import OUTPUTS as RATE_OUTPUTS, rate_settings
from neurofit.workflow.reduction_section import (
    FIGURES as REDUCTION_FIGURES,
    FILES as REDUCTION_FILES,
    ReductionSection,
)
from neurofit.workflow.study import Study
from neurofit.workflow.snakefile import (
    config_error,
    config_file_argument,
    merged_config_files,
    put_command_on_path,
    section_fingerprint,
    study_config_files,
    study_pattern,
)

RESULTS = "results"
put_command_on_path()  # rules call `neurofit`: the one next to the Python running Snakemake

RUN = config["run"] if config.get("run") is not None else list(config["studies"])

for _name in RUN:
    if _name not in config["studies"]:
        config_error(
            f"config: run: no study '{_name}' under studies (studies: {', '.join(config['studies'])})"
        )

# The package checks each section once more, still before any job: model choice and built-in names; with
# the model (built once per study), the recordings' units, initial values (quantities and expressions), fit
# parameters, bounds, metric features and optimizer names, the infer prior and feature names, and sizes
# against the memory available. No data file is read and nothing is simulated; a rate section's ranges and
# chunks need nothing. A user's mistake is one line "config: <key path>: <what is wrong>".
REDUCTIONS = {}
BATCHES = {}  # batch study -> its BatchStudy
SHEET_CELLS = {}  # batch study -> its cells (the sheet's rows), read once here
try:
    STUDIES = {
        name: Study.from_config(config, name, "config") for name in config["studies"]
    }
    for _study in STUDIES.values():
        _model = _study.model() if _study.section.get("model") is not None else None
        _study.check(_model)
        if _study.section.get("fit") is not None:
            FitSection(_study, _model)
        if _study.section.get("rate") is not None:
            rate_settings(_study)
        if _study.section.get("reduction") is not None:
            REDUCTIONS[_study.name] = ReductionSection(_study)
        if _study.section.get("infer") is not None:
            check_infer_section(_study, _model)
        if _study.section.get("sheet") is not None:
            BATCHES[_study.name] = BatchStudy(_study)
            SHEET_CELLS[_study.name] = BATCHES[_study.name].cells()
            if any(
                BATCHES[_study.name].amortized(n) for n in BATCHES[_study.name].names
            ):
                BATCHES[_study.name].groups(
                    SHEET_CELLS[_study.name]
                )  # labels name folders
    # The one hand-off from the config to the jobs: the prepare job of a study reads it from the config files
    # that define it (--config FILE..., merged in Snakemake's order) and writes the frozen
    # results/<study>/study.yaml; every other job reads that file (--config results/<study>/study.yaml). No
    # study travels as text on a command line: a study the files do not give (changed with `snakemake --config
    # ...`) is refused here.
    _files = {
        path: CONFIG_DOCS[path]
        for path in merged_config_files(workflow, DEFAULT_CONFIG)
    }
    STUDY_CONFIG_FILES = {
        name: [config_file_argument(path) for path in paths]
        for name, paths in study_config_files(_files, STUDIES).items()
    }
except Exception as err:
    if not is_user_error(err):
        raise
    config_error(f"config: {one_line(err)}")

# Studies with a model read recordings (prepare writes data.npz); the others (rate, reduction) have none
# (prepare_config writes only study.yaml). The two rules call `neurofit prepare`; each takes its own studies.
DATA_STUDIES = study_pattern(
    n for n, s in STUDIES.items() if s.section.get("model") is not None
)
NO_DATA_STUDIES = study_pattern(
    n for n, s in STUDIES.items() if s.section.get("model") is None
)

# Each stage appends a function (study name -> list of its final outputs); the target rule collects them.
TARGETS = []


wildcard_constraints:
    study="[A-Za-z0-9][A-Za-z0-9_-]*",
    optimizer="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed="[0-9]+",
    chunk="[0-9]+",


def all_targets():
    return [path for study in RUN for stage in TARGETS for path in stage(study)]


def study_section(study):
    """The study's validated section (defaults filled in)."""
    return config["studies"][study]


def study_config(wildcards):
    """The config files (paths) the prepare job of a study reads it from."""
    return STUDY_CONFIG_FILES[wildcards.study]


def study_fingerprint(wildcards):
    """The prepare rule's trigger: the hash of the study's section without its description."""
    return section_fingerprint(study_section(wildcards.study))


def study_files(wildcards):
    """Recordings and equation files a study reads."""
    return STUDIES[wildcards.study].source_files


def manifest(path):
    return f"{path}{MANIFEST_SUFFIX}"


# Fits (used by fit.smk, refine.smk and figures.smk).
def fit_runs(study):
    """'<label>_<seed>' folder name of every fit job of a study (none without a fit section)."""
    section = study_section(study).get("fit")
    return [] if section is None else [f"{o}_{s}" for o, s in run_names(section)]


def fit_files(study, name):
    """The file `name` (fit.json, history.parquet, refined.json) of every fit run of a study."""
    return [f"{RESULTS}/{study}/fit/{run}/{name}" for run in fit_runs(study)]


def refined_files(study):
    """refined.json of every fit run of a study whose fits are refined."""
    section = study_section(study).get("fit")
    return (
        fit_files(study, "refined.json") if section and refine_enabled(section) else []
    )


FIT_FIGURES = ("convergence", "parameters", "traces")


def fit_summary_targets(study):
    if study_section(study).get("fit") is None:
        return []
    targets = [f"{RESULTS}/{study}/summary/fits.csv"]
    if study_section(study)["figures"]["fits"]:
        targets += [f"{RESULTS}/{study}/figures/fit_{kind}.png" for kind in FIT_FIGURES]
    return targets


def fit_results(wildcards):
    """fit.json, history.parquet and (if refined) refined.json of every fit run of the study."""
    return {
        "fits": fit_files(wildcards.study, "fit.json"),
        "histories": fit_files(wildcards.study, "history.parquet"),
        "refined": refined_files(wildcards.study),
    }


def fit_figure(kind, description):
    return report(
        f"{RESULTS}/{{study}}/figures/fit_{kind}.png",
        caption=f"../report/fit_{kind}.rst",
        category="Fits",
        subcategory="{study}",
        labels={"study": "{study}", "figure": description},
    )


# Rate-model study (used by rate.smk).
def rate_chunk_count(study):
    return study_section(study)["rate"]["bifurcation"]["n_chunks"]


def rate_chunk_files(study):
    """Every chunk of the study's bifurcation map (the scatter of rate_chunk, gathered by rate_study)."""
    return [
        f"{RESULTS}/{study}/rate/bifurcation/chunk_{i}.npz"
        for i in range(rate_chunk_count(study))
    ]


def rate_targets(study):
    if study_section(study).get("rate") is None:
        return []
    return [f"{RESULTS}/{study}/rate/{name}" for name in RATE_OUTPUTS]


def rate_figure(name, description):
    return report(
        f"{RESULTS}/{{study}}/rate/{name}.png",
        caption=f"../report/rate_{name}.rst",
        category="Rate model",
        subcategory="{study}",
        labels={"study": "{study}", "figure": description},
    )


# Model reduction (used by reduction.smk).
def reduction_data_files(study):
    """Recordings of a reduction whose target is data (inputs of the reduce job)."""
    plan = REDUCTIONS.get(study)
    return plan.data_files if plan is not None else []


def reduction_targets(study):
    if study_section(study).get("reduction") is None:
        return []
    return [f"{RESULTS}/{study}/reduction/{name}" for name in REDUCTION_FILES] + [
        f"{RESULTS}/{study}/figures/reduction_{kind}.png" for kind in REDUCTION_FIGURES
    ]


def reduction_figure(kind, description):
    return report(
        f"{RESULTS}/{{study}}/figures/reduction_{kind}.png",
        caption=f"../report/reduction_{kind}.rst",
        category="Model reduction",
        subcategory="{study}",
        labels={"study": "{study}", "figure": description},
    )


# Simulation-based inference (used by infer.smk).
def infer_section(study):
    return study_section(study).get("infer")


def infer_chunk_files(study):
    """Every chunk of the study's training data (the scatter of simulate_training, gathered by infer)."""
    return [
        f"{RESULTS}/{study}/infer/chunks/chunk_{i}.npz"
        for i in range(infer_section(study)["n_chunks"])
    ]


def infer_targets(study):
    section = infer_section(study)
    if section is None:
        return []
    names = list(INFERENCE_FILES)
    if section["sbc_simulations"] > 0:
        names += CALIBRATION_FILES
    return [f"{RESULTS}/{study}/infer/{name}" for name in names]


def infer_figure(name, description):
    return report(
        f"{RESULTS}/{{study}}/infer/{name}.png",
        caption=f"../report/infer_{name}.rst",
        category="Inference",
        subcategory="{study}",
        labels={"study": "{study}", "figure": description},
    )


# Batch studies over a sample sheet (used by batch.smk).
def sheet_cells(study):
    """The cells of a batch study's sheet, in row order (none for other studies)."""
    return SHEET_CELLS.get(study, [])


def cell_of(wildcards):
    cells = {cell.cell: cell for cell in sheet_cells(wildcards.study)}
    return cells[wildcards.cell]


def cell_fingerprint(wildcards):
    """prepare_cell's trigger: the hash of the cell's row (another row's change leaves it alone)."""
    return row_fingerprint(cell_of(wildcards))


def cell_recordings(wildcards):
    """The cell's recordings that exist: a file missing or renamed fails that cell (a status), not the DAG."""
    cell = cell_of(wildcards)
    found = [
        path for path in [*cell.files, *cell.current_files] if os.path.isfile(path)
    ]
    inside = [
        os.path.relpath(path) for path in found
    ]  # relative inside the working directory, as cell.json
    return [
        rel if not rel.startswith("..") else path for rel, path in zip(inside, found)
    ]


def stage_result(study, cell, stage):
    return f"{RESULTS}/{study}/cells/{cell}/{stage}/result.json"


def previous_stage_result(wildcards):
    """result.json of the stage this one takes parameters from (none for a stage without `from`)."""
    earlier = BATCHES[wildcards.study].required_stage(wildcards.stage)
    return (
        []
        if earlier is None
        else [stage_result(wildcards.study, wildcards.cell, earlier)]
    )


def cell_group(wildcards):
    """group.json of the cell's sheet group, for a stage with amortize: group (none otherwise, or for an
    excluded cell)."""
    batch = BATCHES[wildcards.study]
    cell = cell_of(wildcards)
    if not batch.amortized(wildcards.stage) or cell.exclude:
        return []
    group = group_folder(cell, batch.sheet)
    return [f"{RESULTS}/{wildcards.study}/groups/{group}/{wildcards.stage}/group.json"]


def group_cells(wildcards):
    return BATCHES[wildcards.study].groups(sheet_cells(wildcards.study))[
        wildcards.group
    ]


def group_cell_files(wildcards):
    """cell.json of every cell of a sheet group (not excluded), in sheet order."""
    return [
        f"{RESULTS}/{wildcards.study}/cells/{cell.cell}/cell.json"
        for cell in group_cells(wildcards)
    ]


def group_recordings(wildcards):
    """The recordings of a sheet group's cells that exist (a missing one fails its cell, not the group)."""
    found = [
        path
        for cell in group_cells(wildcards)
        for path in [*cell.files, *cell.current_files]
        if os.path.isfile(path)
    ]
    inside = [os.path.relpath(path) for path in found]
    return [
        rel if not rel.startswith("..") else path for rel, path in zip(inside, found)
    ]


def batch_results(wildcards):
    """result.json of every (cell, stage) of a batch study, cells in sheet order."""
    stages = BATCHES[wildcards.study].names
    return [
        stage_result(wildcards.study, cell.cell, stage)
        for cell in sheet_cells(wildcards.study)
        for stage in stages
    ]


def batch_targets(study):
    if study not in BATCHES:
        return []
    return [
        f"{RESULTS}/{study}/population/cells.csv",
        f"{RESULTS}/{study}/population/parameters.png",
    ] + [
        f"{RESULTS}/{study}/cells/{cell.cell}/{stage}/traces.png"
        for cell in sheet_cells(study)
        for stage in BATCHES[study].names
    ]


# Validation on held-out sweeps (used by validate.smk).
def validation_targets(study):
    if study_section(study).get("validation") is None:
        return []
    return [
        f"{RESULTS}/{study}/validation/validation.json",
        f"{RESULTS}/{study}/validation/validation.png",
    ]
