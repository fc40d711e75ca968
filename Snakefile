# SpectNet reproduction workflow. Thin by design: parameters are validated against
# workflow/schemas/params.schema.yaml before the DAG is built, each rule gets only the
# parameter slice it reads (spectnet.params.STEP_PARAMS), and every rule body is one
# `spectnet` CLI call. dvc.yaml declares the same steps (tests/test_workflow.py checks).
import json

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from spectnet.params import ParamsError, params_slice, validate_params

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


try:
    _validated = validate_params(config, source="params.yaml (+ --config)")
except ParamsError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_validated)


def step_params(step):
    """The JSON slice of the params that `step` reads; a change in it reruns `step`."""
    return json.dumps(params_slice(config, step), sort_keys=True)


include: "workflow/rules/physionet.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/scenes.smk"


rule all:
    default_target: True
    input:
        rules.segment_physionet.output,
        rules.plot_segmentation_physionet.output,
        rules.table_scenes.output,
