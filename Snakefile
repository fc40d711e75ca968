# SpectNet reproduction workflow. Thin by design: parameters are validated against
# workflow/schemas/params.schema.yaml before the DAG is built, each rule gets only the
# parameter slice it reads (spectnet.params.STEP_PARAMS), and every rule body is one
# `spectnet` CLI call. This file is the one description of the DAG: dvc.yaml is generated
# from it (`spectnet workflow dvc-yaml`), one stage per job, each running its job through
# Snakemake; the handlers in workflow/rules/common.smk record its runs in DVC.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from spectnet.config import Params
from spectnet.params import ParamsError, changed_keys, load_params

min_version("9.0")


report: "workflow/report/workflow.rst"


# params.yaml is read by spectnet's loader, not by a `configfile:` directive, so that
# Snakemake, the CLI and the tests give a file the same verdict (syntax errors with line
# and column); `config` holds only the --config overrides, merged over the file here.
try:
    _validated = load_params("params.yaml", overrides=config)
    # Keys --config set to other values than params.yaml: such a run is not DVC's to record.
    _overridden = changed_keys(load_params("params.yaml"), _validated) if config else []
except ParamsError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_validated)
#: The same parameters, typed, for the rules that derive their jobs from them.
PARAMS = Params.from_dict(_validated)


include: "workflow/rules/common.smk"
include: "workflow/rules/physionet.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/heart_sounds.smk"
include: "workflow/rules/scenes.smk"
include: "workflow/rules/metrics.smk"


rule all:
    default_target: True
    input:
        rules.table2_physionet.output,
        rules.figures_physionet.output,
        rules.plot_segmentation_physionet.output,
        rules.table_scenes.output,
        rules.figures_scenes.output,
        rules.headline_metrics.output,
