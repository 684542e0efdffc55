# neurofit workflow: `snakemake --cores N` runs every study of the config (default: config/config.yaml).
# Each stage lives in workflow/rules/<stage>.smk; every rule is a thin call of a `neurofit` subcommand and is named
# after it ('-' -> '_'; a second rule of one subcommand has a suffix: prepare_config, simulate_training). The
# prepare rules read the config files and write results/<study>/study.yaml, which every other rule reads.
# The test study: `snakemake --cores 2 --directory .test` (.test/config/config.yaml); config/README.md lists the
# config files.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from neurofit.workflow.study import (
    SCHEMA_PATH,
    ConfigError,
    describe_validation_error,
    read_config,
)
from neurofit.workflow.snakefile import config_error

min_version("9.0")

DEFAULT_CONFIG = "config/config.yaml"

# Snakemake reads config files with PyYAML, which keeps the last of two equal keys silently and reports a
# syntax error without its line: read them first with the package's strict loader, which fails with one line
# naming the file and line ("config/config.yaml line 12: duplicate key 'fit' ..."). The --configfile files
# are in workflow.configfiles; the default one is read by the directive below whenever it exists. (A syntax
# error in a --configfile file stops Snakemake before the Snakefile, with Snakemake's own message.)
# CONFIG_DOCS keeps each document: common.smk finds the files that define a study (its prepare job reads them).
CONFIG_DOCS = {}
for _path in dict.fromkeys([*map(str, workflow.configfiles), DEFAULT_CONFIG]):
    if os.path.isfile(_path):
        try:
            CONFIG_DOCS[_path] = read_config(_path)[0]
        except ConfigError as err:
            config_error(str(err))


configfile: DEFAULT_CONFIG


report: "workflow/report/workflow.rst"


# Fill in defaults and fail before any job, naming the key path, when the config does not match the schema.
# The schema ships with the package (neurofit/workflow/schemas/config.schema.yaml; workflow/schemas/ links to it):
# the `neurofit` commands check a study against the same file.
try:
    validate(config, str(SCHEMA_PATH))
except WorkflowError as err:
    cause = err.__cause__ or err.__context__  # the jsonschema ValidationError
    if not hasattr(cause, "absolute_path"):
        raise
    config_error(describe_validation_error(cause))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/rate.smk"
include: "workflow/rules/reduction.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/batch.smk"
include: "workflow/rules/validate.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_targets(),
