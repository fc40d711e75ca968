"""The experiment grids by name: which runs Tables II and III hold, with which seeds and
folds, and which figures the heart-sound grid draws. Only names, computed from the
parameters; this module imports no torch, so that building the workflow's DAG (which asks
for these names) stays fast, and every layer (experiments, reporting, workflow) can use it.

A run name is one of

- ``static-N``: SpectNet-N (front-end frozen at its initialisation) + CNN, stage 1;
- ``learnable-N``: the same network fine-tuned end to end from ``static-N``'s selected
  model, stage 2;
- ``static-N-control``: its same-budget control: stage 2 from the same model, the same
  steps and batches, with the front-end kept frozen. ``learnable-N`` against
  ``static-N-control`` is what separates learned filters from more training;
- a task's baseline (``gammatone-1d``, ``gammatone-2d``): one stage, as its authors trained it.

Example:
    >>> from spectnet.config import Params
    >>> params = Params.from_dict({"heart_sounds": {"frontend": {"n_filters": [4]},
    ...                                             "learnable": {"n_filters": [4]}}})
    >>> heart_sound_runs(params)
    ['gammatone-1d', 'gammatone-2d', 'static-4', 'static-4-control', 'learnable-4']
    >>> parse_run("static-16-control")
    Run(kind='control', n_filters=16)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spectnet.config import Params
from spectnet.errors import SpectNetError

__all__ = ["Run", "parse_run", "BASELINES", "heart_sound_runs", "scene_runs", "in_comparison",
           "run_seeds",
           "heart_sound_jobs", "scene_jobs", "trained_frontend_runs",
           "heart_sound_figure_names", "scene_figure_names"]

#: The heart-sound baselines, each one stage.
BASELINES = ("gammatone-1d", "gammatone-2d")
_RUN = re.compile(r"^(?:(static|learnable)-(\d+)(-control)?|(gammatone-(?:1d|2d)))$")


@dataclass(frozen=True)
class Run:
    """One configuration of a grid: ``kind`` is ``static``, ``learnable``, ``control`` or
    a baseline's name; ``n_filters`` the SpectNet filter count (a baseline's own count)."""
    kind: str
    n_filters: int

    @property
    def name(self) -> str:
        if self.kind == "control":
            return f"static-{self.n_filters}-control"
        return self.kind if self.kind in BASELINES else f"{self.kind}-{self.n_filters}"

    @property
    def init_run(self) -> str | None:
        """The run whose selected model a stage-2 run starts from (``None``: from scratch)."""
        return f"static-{self.n_filters}" if self.kind in ("learnable", "control") else None


def parse_run(name: str, baseline_filters: int = 4) -> Run:
    """``"static-16"`` -> ``Run("static", 16)``; raises for a name that is no run."""
    match = _RUN.match(name)
    if not match or (match.group(1) == "learnable" and match.group(3)):
        raise SpectNetError(f"unknown run {name!r}: expected static-N, learnable-N, "
                            f"static-N-control or one of {', '.join(BASELINES)}")
    if match.group(4):
        return Run(match.group(4), baseline_filters)
    return Run("control" if match.group(3) else match.group(1), int(match.group(2)))


def _stage_runs(static: tuple[int, ...], learnable: tuple[int, ...]) -> list[str]:
    return ([f"static-{n}" for n in static]
            + [name for n in learnable for name in (f"static-{n}-control", f"learnable-{n}")])


def heart_sound_runs(params: Params) -> list[str]:
    """Every run of the Table II grid, in the table's order."""
    heart = params.heart_sounds
    return list(BASELINES) + _stage_runs(heart.frontend.n_filters, heart.learnable.n_filters)


def scene_runs(params: Params) -> list[str]:
    """Every run of the Table III grid, in the table's order."""
    return _stage_runs(params.scenes.frontend.n_filters, params.scenes.learnable.n_filters)


def in_comparison(name: str, learnable_filters) -> bool:
    """Whether a run belongs to a learnable comparison: ``static-N``, ``learnable-N`` and
    ``static-N-control`` for N in ``learnable_filters`` (the rest of the grid does not)."""
    run = parse_run(name)
    if run.kind in BASELINES:
        return False
    return run.kind != "static" or run.n_filters in learnable_filters


def run_seeds(name: str, seeds, comparison_seeds, learnable_filters) -> tuple[int, ...]:
    """The seeds of a run: ``comparison_seeds`` for the runs of a learnable comparison,
    ``seeds`` for the rest of the grid."""
    return tuple(comparison_seeds if in_comparison(name, learnable_filters) else seeds)


def heart_sound_jobs(params: Params) -> list[tuple[str, int]]:
    """Every (run, seed) of Table II at the active scale."""
    budget = params.active_scale.heart_sounds
    learnable = params.heart_sounds.learnable.n_filters
    return [(run, seed) for run in heart_sound_runs(params)
            for seed in run_seeds(run, budget.seeds, budget.comparison_seeds, learnable)]


def scene_jobs(params: Params) -> list[tuple[str, int, int]]:
    """Every (run, fold, seed) of Table III at the active scale."""
    budget = params.active_scale.scenes
    learnable = params.scenes.learnable.n_filters
    return [(run, fold, seed) for run in scene_runs(params) for fold in budget.folds
            for seed in run_seeds(run, budget.seeds, budget.comparison_seeds, learnable)]


def trained_frontend_runs(params: Params) -> list[str]:
    """The heart-sound runs whose filters learn: learnable-N, and the baselines when they
    train theirs."""
    learns = params.heart_sounds.baselines.learn_filters
    return [run for run in heart_sound_runs(params)
            if run.startswith("learnable") or (run in BASELINES and learns)]


def heart_sound_figure_names(params: Params) -> list[str]:
    """The figures ``spectnet physionet figures`` writes (names without suffix)."""
    return (["beat-spectrogram", "learning-curves", "per-subset-metrics", "confusion-matrices"]
            + [f"filterbank-learnable-{n}" for n in params.heart_sounds.learnable.n_filters]
            + [f"frontend-trajectories-{run}" for run in trained_frontend_runs(params)])


def scene_figure_names(params: Params) -> list[str]:
    """The figures ``spectnet scenes figures`` writes (names without suffix)."""
    return ["scene-learning-curves"] + [
        name for n in params.scenes.learnable.n_filters for name in (
            f"scene-filterbank-learnable-{n}", f"scene-frontend-trajectories-learnable-{n}",
            f"scene-confusion-matrices-{n}")]
