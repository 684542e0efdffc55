# neurofit workflow: `snakemake --cores N` runs every study of the config (default: config/config.yaml).
# Each stage lives in workflow/rules/<stage>.smk; every rule is a thin call of a `neurofit` subcommand.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from neurofit.study import SCHEMA_PATH, describe_validation_error

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# Fill in defaults and fail before any job, naming the key path, when the config does not match the schema.
# The schema ships with the package (neurofit/schemas/config.schema.yaml; workflow/schemas/ links to it):
# the `neurofit` commands check a study against the same file.
try:
    validate(config, str(SCHEMA_PATH))
except WorkflowError as err:
    cause = err.__cause__ or err.__context__  # the jsonschema ValidationError
    if not hasattr(cause, "absolute_path"):
        raise
    raise WorkflowError(describe_validation_error(cause)) from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/rate.smk"
include: "workflow/rules/reduction.smk"
include: "workflow/rules/infer.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_targets(),
