# Helpers shared by the stages (which studies run, their files, their targets); no rules here.
from snakemake.exceptions import WorkflowError

from neurofit.study import ConfigError, Study, config_json
from neurofit.workflow import put_command_on_path

RESULTS = "results"
put_command_on_path()  # rules call `neurofit`: the one next to the Python running Snakemake

RUN = config["run"] if config.get("run") is not None else list(config["studies"])

for _name in RUN:
    if _name not in config["studies"]:
        raise WorkflowError(
            f"config: run: no study '{_name}' under studies (studies: {', '.join(config['studies'])})"
        )

# The package checks each section once more (model choice, built-in names): still before any job.
try:
    STUDIES = {
        name: Study.from_config(config, name, "config") for name in config["studies"]
    }
except ConfigError as err:
    raise WorkflowError(f"config: {err}")

# Each stage appends a function (study name -> list of its final outputs); the target rule collects them.
TARGETS = []


wildcard_constraints:
    study="[A-Za-z0-9][A-Za-z0-9_-]*",


def all_targets():
    return [path for study in RUN for stage in TARGETS for path in stage(study)]


def study_section(study):
    """The study's validated section (defaults filled in)."""
    return config["studies"][study]


def study_json(wildcards):
    """The config document holding only this study, as compact JSON for --config-json."""
    return config_json({"studies": {wildcards.study: study_section(wildcards.study)}})


def study_files(wildcards):
    """Recordings and equation files a study reads."""
    study = STUDIES[wildcards.study]
    return study.data_files + study.model_files


def manifest(path):
    return f"{path}.manifest.json"
