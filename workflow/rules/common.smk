# What the rules share: their params slices, their code inputs, report items, and the
# handlers that record each run in DVC. Functions only (Snakemake's linter wants them apart
# from the rules).
import json
from pathlib import Path

from snakemake.logging import logger

from spectnet.params import params_slice
from spectnet.sources import command_sources


def step_params(step, wildcards=None):
    """The JSON slice of the params that `step` reads; a change in it reruns `step`.
    A rule whose STEP_PARAMS keys name wildcards passes
    `config=lambda wildcards: step_params("rule", wildcards)`."""
    wildcards = dict(wildcards.items()) if wildcards else None
    return json.dumps(params_slice(config, step, wildcards), sort_keys=True)


def code(command):
    """The package sources that `spectnet COMMAND` runs, from its import graph
    (spectnet.sources): inputs of the rule, so that Snakemake and DVC both rerun it when
    one changes (Snakemake compares checksums, so a new modification time alone does not).
    A test checks that each rule names the command its shell runs."""
    return command_sources(command)


def figure_in_report(directory, name, captions, category):
    """`directory/name.png` as a report item, captioned by workflow/report/<caption>.rst,
    where `captions` maps the start of a figure's name to its caption."""
    caption = next(c for start, c in captions.items() if name.startswith(start))
    return report(f"{directory}/{name}.png", caption=f"../report/{caption}.rst",
                  category=category, labels={"figure": name})


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


def _start():
    from spectnet.workflow import honour_slurm_no_account

    honour_slurm_no_account(workflow)
    _say_scale("running")


onstart:
    _start()


onsuccess:
    _record_run_in_dvc()
    _say_scale("finished")


onerror:
    _record_run_in_dvc()
