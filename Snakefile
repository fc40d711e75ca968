# SpectNet reproduction workflow. Thin by design: parameters are validated against
# workflow/schemas/params.schema.yaml before the DAG is built, each rule gets only the
# parameter slice it reads (spectnet.params.STEP_PARAMS), and every rule body is one
# `spectnet` CLI call. This file is the one description of the DAG: dvc.yaml is generated
# from it (`spectnet workflow dvc-yaml`), one stage per job, each running its job through
# Snakemake; the handlers at the end record Snakemake's runs in DVC (spectnet/workflow.py).
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version

from spectnet.config import Params
from spectnet.params import ParamsError, changed_keys, load_params, params_slice

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


def step_params(step, wildcards=None):
    """The JSON slice of the params that `step` reads; a change in it reruns `step`.
    A rule whose STEP_PARAMS keys name wildcards passes
    `config=lambda wildcards: step_params("rule", wildcards)`."""
    wildcards = dict(wildcards.items()) if wildcards else None
    return json.dumps(params_slice(config, step, wildcards), sort_keys=True)


def code(*paths):
    """The package sources a rule's command runs (under src/spectnet; a directory stands
    for its files): inputs of the rule, so that Snakemake and DVC both rerun it when they
    change (Snakemake compares checksums, so a new modification time alone does not)."""
    files = []
    for path in (Path("src/spectnet") / p for p in paths):
        found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix != ".pyc")
        files += [str(f) for f in found] if path.is_dir() else [str(path)]
    return files


include: "workflow/rules/physionet.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/heart_sounds.smk"
include: "workflow/rules/scenes.smk"


rule all:
    default_target: True
    input:
        rules.table2_physionet.output,
        rules.figures_physionet.output,
        rules.plot_segmentation_physionet.output,
        rules.table_scenes.output,
        rules.figures_scenes.output,


# Record in DVC what Snakemake ran (dvc commit of those jobs' stages), so that `dvc
# status` agrees after a run. Not after --touch, where nothing ran, nor after a run whose
# params --config changed (dvc.lock would pair params.yaml with other results); DVC stages
# run Snakemake with --no-hooks, and DVC records those itself.
def _record_run_in_dvc():
    if not workflow.touch:
        from spectnet.workflow import record_in_dvc

        record_in_dvc(workflow.dag.finished_jobs, overridden=_overridden)


_SCALES = {"full": "the paper's settings; needs a GPU",
           "quick": "a CPU run of the whole grid in about an hour",
           "smoke": "every step in minutes; numbers near chance"}


def _say_scale(when):
    scale = config["scale"]
    logger.info(f"SpectNet workflow {when} at the {scale} scale ({_SCALES[scale]}; set "
                f"`scale:` in params.yaml or --config scale=full|quick|smoke).")


onstart:
    _say_scale("running")


onsuccess:
    _record_run_in_dvc()
    _say_scale("finished")


onerror:
    _record_run_in_dvc()
