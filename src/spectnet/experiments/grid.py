"""The experiment grids by name: which runs Tables II and III hold and which figures the
heart-sound grid draws. Only names, computed from the parameters; this module imports no
torch, so that building the workflow's DAG (which asks for these names) stays fast.

Example:
    >>> from spectnet.config import Params
    >>> params = Params.from_dict({"heart_sounds": {"static_filters": [4], "learnable_filters": [4]}})
    >>> heart_sound_runs(params)
    ['gammatone-1d', 'gammatone-2d', 'static-4', 'learnable-4']
"""

from __future__ import annotations

from spectnet.config import Params

__all__ = ["heart_sound_runs", "scene_runs", "trained_frontend_runs",
           "heart_sound_figure_names"]


def heart_sound_runs(params: Params) -> list[str]:
    """Every run of the Table II grid, in the table's order."""
    heart = params.heart_sounds
    return (["gammatone-1d", "gammatone-2d"] + [f"static-{n}" for n in heart.static_filters]
            + [f"learnable-{n}" for n in heart.learnable_filters])


def scene_runs(params: Params) -> list[str]:
    """Every run of the Table III grid, in the table's order."""
    frontend = params.scenes.frontend
    return [f"static-{n}" for n in frontend.n_filters] + [
        f"learnable-{frontend.learnable_n_filters}"]


def trained_frontend_runs(params: Params) -> list[str]:
    """The heart-sound runs whose filters learn: learnable-N, and the baselines when they
    train theirs."""
    learns = params.heart_sounds.baselines.learnable_filters
    return [run for run in heart_sound_runs(params)
            if run.startswith("learnable") or (run.startswith("gammatone") and learns)]


def heart_sound_figure_names(params: Params) -> list[str]:
    """The figures ``spectnet physionet figures`` writes (names without suffix)."""
    return (["beat-spectrogram", "learning-curves", "per-subset-metrics", "confusion-matrices"]
            + [f"filterbank-learnable-{n}" for n in params.heart_sounds.learnable_filters]
            + [f"frontend-trajectories-{run}" for run in trained_frontend_runs(params)])
