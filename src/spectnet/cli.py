"""``spectnet`` command line: every workflow step is a subcommand.

Snakemake rules and DVC stages call these commands and nothing else. Each step takes
its input and output paths explicitly and its parameters through ``--params``: either a
params file (DVC calls ``--params params.yaml``) or the inline JSON slice of the
parameters the step reads (Snakemake passes exactly that slice, so that editing an
unrelated key does not rerun the step).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

from spectnet import __version__
from spectnet.errors import SpectNetError

log = logging.getLogger("spectnet")

PARAMS_HELP = ("parameters: a params YAML file, or inline JSON holding the keys this "
               "step reads (default: params.yaml)")


def _setup_logging(log_file: str | None, verbose: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def _params(args):
    from spectnet.config import Params
    from spectnet.params import read_params_argument
    return Params.from_dict(read_params_argument(args.params))


def _device(args):
    """The torch device of a step (``--device``), with its CPU threads set (``--threads``)."""
    import torch
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return torch.device(args.device) if args.device else None


def _step(subparsers, name: str, func, help_text: str,
          description: str | None = None) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` that runs ``func``, with the options every step has."""
    p = subparsers.add_parser(name, help=help_text, description=description or help_text)
    p.set_defaults(func=func)
    p.add_argument("--log", metavar="FILE", help="also write the log to FILE")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _fetch_options(p: argparse.ArgumentParser) -> None:
    """--out, --cache-dir and --params of a fetch step."""
    p.add_argument("--out", required=True, type=Path, help="destination directory")
    p.add_argument("--cache-dir", type=Path, default=Path("data/cache"),
                   help="where downloads are kept (and resumed) (default: data/cache)")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)


def _per_recording_options(p: argparse.ArgumentParser) -> None:
    """--params, --workers and -q of a step that works through recordings or clips."""
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    p.add_argument("--workers", type=int, default=None,
                   help="processes (default: all cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _torch_options(p: argparse.ArgumentParser, training: bool = False) -> None:
    """--params and --device for a step that runs a model; training steps add --threads
    and -q."""
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    if training:
        p.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------- params
def cmd_params_validate(args) -> None:
    """Check a params file against the schema."""
    from spectnet.params import load_params
    load_params(args.path)
    print(f"{args.path}: valid")


def cmd_params_show(args) -> None:
    """Print a params file with every default filled in."""
    from spectnet.params import load_params
    print(yaml.safe_dump(load_params(args.path), sort_keys=False), end="")


def _add_params_commands(sub) -> None:
    """spectnet params validate | show."""
    params = sub.add_parser("params", help="check and show parameters",
                            description="Validate params.yaml against the schema.")
    psub = params.add_subparsers(dest="params_command", required=True, metavar="ACTION")
    for name, func, text in [
            ("validate", cmd_params_validate, "validate a params file; exit 1 if invalid"),
            ("show", cmd_params_show, "print the params with every default filled in")]:
        p = _step(psub, name, func, text)
        p.add_argument("path", nargs="?", default="params.yaml")


# ----------------------------------------------------------------------------- workflow
def cmd_workflow_dvc_yaml(args) -> None:
    """Write dvc.yaml from the Snakefile (or, with --check, only compare)."""
    from spectnet.workflow import write_dvc_yaml
    current = write_dvc_yaml(".", check=args.check)
    print("dvc.yaml is current" if current else "dvc.yaml written")


def cmd_workflow_pull(args) -> None:
    """For a collaborator: `dvc pull` what dvc.lock records, then sync."""
    from spectnet.workflow import pull
    _print_sync(pull("."))


def cmd_workflow_sync(args) -> None:
    """After `dvc pull`: verify the data with DVC and mark them done for Snakemake."""
    from spectnet.workflow import sync
    _print_sync(sync("."))


def cmd_workflow_commit(args) -> None:
    """`dvc commit --force` of the named stages, each file parsed once."""
    from spectnet.workflow import commit_stages
    log.info("recorded in dvc.lock: %s", ", ".join(commit_stages(args.stages, ".")))


def _print_sync(result) -> None:
    total = len(result.marked) + len(result.not_marked)
    print(f"DVC verified the data against dvc.lock (every file hashed, the cache's objects "
          f"checked): {len(result.marked)} of {total} stages match and are marked up to "
          f"date for Snakemake")
    if result.not_marked:
        print(f"{len(result.not_marked)} stages do not match and will run:\n  "
              + "\n  ".join(result.not_marked))


def cmd_workflow_experiments(args) -> None:
    """`dvc exp show` of the active scale's params and the headline metrics."""
    from spectnet.workflow import show_experiments
    dvc_args = args.dvc_args[1:] if args.dvc_args[:1] == ["--"] else args.dvc_args
    if status := show_experiments(".", dvc_args):
        raise SpectNetError(f"`dvc exp show` failed (exit status {status})")


def cmd_workflow_metrics(args) -> None:
    """Write the headline metrics of every evaluated run (DVC's metrics file)."""
    from spectnet.workflow import write_headline_metrics
    headline = write_headline_metrics(args.runs, args.out)
    log.info("headline metrics of %d runs -> %s", sum(map(len, headline.values())), args.out)


def _add_workflow_commands(sub) -> None:
    """spectnet workflow dvc-yaml | commit | pull | sync | experiments | metrics."""
    wf = sub.add_parser("workflow", help="keep Snakemake and DVC in agreement",
                        description="The Snakefile is the one description of the DAG; "
                                    "dvc.yaml is generated from it. Run in the repository root.")
    wsub = wf.add_subparsers(dest="workflow_command", required=True, metavar="ACTION")
    p = _step(wsub, "dvc-yaml", cmd_workflow_dvc_yaml,
             "write dvc.yaml from the Snakefile's DAG (one stage per job)",
             "Write dvc.yaml from the Snakemake DAG of the default target: one stage per "
             "job, each running its job through Snakemake, with the job's inputs as deps, "
             "the params keys it reads and its outputs. Rerun after adding or changing a "
             "rule, or after editing `scale` (which changes the set of jobs).")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming the stages if dvc.yaml is not current")
    p = _step(wsub, "commit", cmd_workflow_commit,
              "record stages in dvc.lock (what `dvc commit --force STAGE...` does, faster)",
              "Hash the named stages' deps and outs, save the outs to DVC's cache and "
              "write their entries in dvc.lock, as `dvc commit --force` does, reading and "
              "writing dvc.yaml and dvc.lock once instead of once per stage. The workflow "
              "runs it after each Snakemake run for the jobs that ran.")
    p.add_argument("stages", nargs="+", metavar="STAGE", help="stage names of dvc.yaml")
    _step(wsub, "pull", cmd_workflow_pull,
             "`dvc pull` what dvc.lock records, then `sync`",
             "For a collaborator: `dvc pull` of every stage dvc.lock records (plain `dvc "
             "pull` also tries the outputs of stages not recorded yet, after a run that "
             "stopped part-way, and exits 1 on them), then what `sync` does.")
    _step(wsub, "sync", cmd_workflow_sync,
         "after `dvc pull`: verify the data with DVC, then bring Snakemake up to date",
         "After `dvc pull` (or `dvc checkout`, `dvc exp apply`): check that dvc.yaml is "
         "current and that the DVC cache's objects hash to their names, let DVC hash every "
         "output again and compare it with dvc.lock, then mark exactly the stages that "
         "match (and whose upstream stages match) up to date for Snakemake (`snakemake "
         "--touch`), so that `snakemake -n` runs only the others, which are listed with "
         "what differs. A corrupt cache object marks nothing.")

    p = _step(wsub, "experiments", cmd_workflow_experiments,
             "`dvc exp show` of the active scale's params and the headline metrics",
             "Compare experiments: `dvc exp show --param-deps` (the params the stages read) "
             "without the other scales' budgets, and DVC's one metrics file (the headline "
             "metrics of every run). Arguments after `--` go to `dvc exp show`.")
    p.add_argument("dvc_args", nargs=argparse.REMAINDER, metavar="DVC_ARGS",
                   help="after `--`: passed to `dvc exp show` (e.g. -- --csv)")

    p = _step(wsub, "metrics", cmd_workflow_metrics,
             "the headline metrics of every run, for `dvc exp show` and `dvc metrics diff`",
             "Average the headline numbers of each evaluated run over its seeds (and folds): "
             "recording-level MAcc, sensitivity and specificity for the heart sounds, "
             "clip-level accuracy and MACC for the scenes. Writes OUT (JSON), DVC's one "
             "metrics file.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_JSON",
                   help="metrics files of `physionet evaluate` / `scenes evaluate`")
    p.add_argument("--out", required=True, type=Path, help="the JSON file to write")


# ---------------------------------------------------------------------------- physionet
def cmd_physionet_fetch(args) -> None:
    """Acquire the PhysioNet 2016 training set and the fold lists."""
    from spectnet.datasets.physionet import acquire
    params = _params(args)
    acquire(params.physionet, args.out, cache_dir=args.cache_dir)


def cmd_physionet_preprocess(args) -> None:
    """Read, resample and filter every recording into one signal store."""
    from spectnet.preprocessing.heart_sounds import preprocess_dataset
    params = _params(args)
    manifest = preprocess_dataset(args.raw, args.out, params.preprocess,
                                  on_bad_record=params.physionet.on_bad_record,
                                  workers=args.workers, progress=not args.quiet)
    log.info("preprocessed %d recordings (%.2f h at %d Hz) into %s", len(manifest),
             manifest["duration_s"].sum() / 3600, params.preprocess.sample_rate, args.out)


def cmd_physionet_segment(args) -> None:
    """Segment every recording and write the beat dataset."""
    from spectnet.segmentation.beats import build_beat_dataset
    params = _params(args)
    recordings = build_beat_dataset(args.store, args.out, params.segmentation, params.beats,
                                    summary_path=args.summary, workers=args.workers,
                                    progress=not args.quiet)
    log.info("%d beats from %d recordings (%d failed, %d flagged) into %s",
             recordings["n_beats"].fillna(0).sum(), len(recordings),
             (recordings["status"] == "failed").sum(),
             (recordings["status"] == "flagged").sum(), args.out)


def cmd_physionet_train(args) -> None:
    """Train one run of the Table II grid."""
    from spectnet.experiments.heart_sounds import HeartSounds
    params = _params(args)
    HeartSounds(params, args.beats).train(args.run, params.heart_sounds.fold, args.seed,
                                          args.out, init_model=args.init,
                                          device=_device(args), progress=not args.quiet)


def cmd_physionet_evaluate(args) -> None:
    """Evaluate one trained heart-sound model on its reporting fold."""
    from spectnet.experiments.heart_sounds import HeartSounds
    HeartSounds(_params(args), args.beats).evaluate(args.model, args.out, args.metrics,
                                                    device=_device(args))


def cmd_physionet_table(args) -> None:
    """Write Table II and its comparisons."""
    from spectnet.experiments.heart_sounds import write_table_ii
    table = write_table_ii(_params(args), args.beats, args.metrics_dir, args.predictions_dir,
                           args.models_dir, args.out)
    log.info("Table II (%d runs) -> %s.{csv,md,tex}", table["run"].nunique(), args.out)


def cmd_physionet_figures(args) -> None:
    """Draw the heart-sound figures."""
    from spectnet.reporting.figures import draw_heart_sound_figures
    written = draw_heart_sound_figures(args.models_dir, args.runs_dir, args.beats, args.out_dir,
                                       _params(args))
    log.info("%d figures (PNG and PDF) -> %s", len(written) // 2, args.out_dir)


def _add_physionet_commands(sub) -> None:
    """spectnet physionet fetch | preprocess | segment | train | evaluate | table | figures."""
    physionet = sub.add_parser("physionet", help="PhysioNet/CinC 2016 heart-sound data steps",
                               description="Acquire and prepare the PhysioNet 2016 data.")
    phsub = physionet.add_subparsers(dest="physionet_command", required=True, metavar="STEP")

    p = _step(phsub, "fetch", cmd_physionet_fetch,
             "acquire the training set and fold lists (download or local copy)",
             "Materialise the PhysioNet 2016 training set in the official layout under "
             "OUT, with records.csv and folds/. Source and fold lists come from the "
             "`physionet` params: a local copy, or a verified, resumable download.")
    _fetch_options(p)

    p = _step(phsub, "preprocess", cmd_physionet_preprocess,
             "clip, resample, filter and de-spike every recording",
             "Preprocess every recording of RAW (REPRODUCTION.md §1.4) into one signal "
             "store at OUT: signals.npy (all signals, float64), manifest.csv (record, "
             "subset, label, durations, sample counts, exclusion, folds), skipped.csv.")
    p.add_argument("--raw", required=True, type=Path, help="output of `physionet fetch`")
    p.add_argument("--out", required=True, type=Path, help="store directory to write")
    _per_recording_options(p)

    p = _step(phsub, "segment", cmd_physionet_segment,
             "segment every recording into heart cycles and cut the beats",
             "Run Springer's LR-HSMM segmentation on every recording of STORE and cut "
             "S1-to-S1 cycles into fixed-length beats (REPRODUCTION.md §1.5). Writes OUT/"
             "beats.npy (float32, n_beats x beat_length), OUT/beats.csv (one row per beat) "
             "and OUT/recordings.csv (heart rate, beats, status and reason per recording). "
             "A recording that cannot be segmented is listed as failed, never fatal.")
    p.add_argument("--store", required=True, type=Path, help="output of `physionet preprocess`")
    p.add_argument("--out", required=True, type=Path, help="beat dataset directory to write")
    p.add_argument("--summary", type=Path, help="write summary metrics (JSON) here")
    _per_recording_options(p)

    p = _step(phsub, "train", cmd_physionet_train,
             "train one run of the Table II grid (resumable)",
             "Train RUN (static-N, learnable-N, static-N-control, gammatone-1d or "
             "gammatone-2d) on the beats of train{fold} without its inner split, scoring every "
             "epoch on the inner split (heart_sounds.selection). Writes OUT/best.pt and "
             "OUT/last.pt (self-describing model files), history.csv, frontend.csv, "
             "summary.json and dvclive/. A killed run started again resumes from its last "
             "completed epoch (kept beside OUT until the run ends).")
    p.add_argument("run", metavar="RUN",
                   help="static-N, learnable-N, static-N-control, gammatone-1d, gammatone-2d")
    p.add_argument("--seed", type=int, required=True, help="seed of initialisation, sampling, dropout")
    p.add_argument("--beats", required=True, type=Path, help="output of `physionet segment`")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument("--init", type=Path,
                   help="learnable-N, static-N-control: the static-N model file to start from")
    _torch_options(p, training=True)

    p = _step(phsub, "evaluate", cmd_physionet_evaluate,
             "evaluate a trained model on the validation fold",
             "Evaluate MODEL on the beats of validation{fold}: beat accuracy, recording-level "
             "majority vote (ties -> abnormal) with Se, Sp, precision, F1 and MAcc, bootstrap "
             "confidence intervals over recordings, per-subset metrics and confusion matrices. "
             "Writes the predictions to OUT/beats.csv and OUT/recordings.csv and the metrics "
             "to METRICS (JSON).")
    p.add_argument("--model", required=True, type=Path, help="a model file (best.pt / last.pt)")
    p.add_argument("--beats", required=True, type=Path, help="output of `physionet segment`")
    p.add_argument("--out", required=True, type=Path, help="predictions directory to write")
    p.add_argument("--metrics", required=True, type=Path, help="metrics file (JSON) to write")
    _torch_options(p)

    p = _step(phsub, "table", cmd_physionet_table,
             "Table II from the evaluated runs, beside the paper's numbers",
             "Aggregate the evaluated runs of the grid (params: runs and seeds at the active "
             "scale): per metric the mean and sd over seeds, a bootstrap interval over "
             "recordings, the paper's value and the difference, how each run trained and how "
             "far its filters moved; every learnable-N against its same-budget control and "
             "against static-N (McNemar on recordings, paired bootstrap intervals of the "
             "differences). Writes OUT.csv, OUT.md, OUT.tex and OUT-comparisons.csv.")
    p.add_argument("--beats", required=True, type=Path, help="output of `physionet segment`")
    p.add_argument("--metrics-dir", required=True, type=Path,
                   help="metrics of `physionet evaluate`, as RUN/seedK.json")
    p.add_argument("--predictions-dir", required=True, type=Path,
                   help="predictions of `physionet evaluate`, as RUN/seedK/")
    p.add_argument("--models-dir", required=True, type=Path,
                   help="run directories of `physionet train`, as RUN/seedK/")
    p.add_argument("--out", required=True, type=Path, help="output path without suffix")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)

    p = _step(phsub, "figures", cmd_physionet_figures,
             "the heart-sound figures: filterbanks, beat spectrograms, curves, metrics",
             "Draw the figures of the grid (params: runs and seeds at the active scale) as "
             "PNG and PDF in OUT_DIR: filterbank-learnable-N (frequency responses before and "
             "after learning, and each filter's change), beat-spectrogram (a normal and an "
             "abnormal validation beat through static-N's front-end), learning-curves, "
             "frontend-trajectories-RUN (filter parameters per epoch of each run that trains "
             "its filters), per-subset-metrics (MAcc, Se, Sp per subset a-f) and "
             "confusion-matrices (recording and beat level).")
    p.add_argument("--models-dir", required=True, type=Path,
                   help="run directories of `physionet train`, as RUN/seedK/")
    p.add_argument("--runs-dir", required=True, type=Path,
                   help="metrics of `physionet evaluate`, as RUN/seedK.json")
    p.add_argument("--beats", required=True, type=Path, help="output of `physionet segment`")
    p.add_argument("--out-dir", required=True, type=Path, help="where the figures go")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)


# ------------------------------------------------------------------------------- scenes
def cmd_scenes_fetch(args) -> None:
    """Acquire the labelled clips of the configured scene data set."""
    from spectnet.datasets.scenes import acquire
    params = _params(args)
    acquire(params.scenes, args.out, cache_dir=args.cache_dir, progress=not args.quiet)


def cmd_scenes_preprocess(args) -> None:
    """Cut the clips into fixed-length units: the unit store."""
    from spectnet.preprocessing.clips import preprocess_clips
    params = _params(args)
    clips = preprocess_clips(args.raw, args.out, params.scenes, workers=args.workers,
                             progress=not args.quiet)
    ok = clips["status"] == "ok"
    log.info("%d units from %d clips (%d failed) at %d Hz into %s", clips["n_units"].sum(),
             ok.sum(), (~ok).sum(), params.scenes.sample_rate, args.out)


def cmd_scenes_train(args) -> None:
    """Train one run of the Table III grid on one fold."""
    from spectnet.experiments.scenes import Scenes
    Scenes(_params(args), args.units).train(args.run, args.fold, args.seed, args.out,
                                            init_model=args.init, device=_device(args),
                                            progress=not args.quiet)


def cmd_scenes_evaluate(args) -> None:
    """Evaluate one trained scene model on its fold's evaluation clips."""
    from spectnet.experiments.scenes import Scenes
    Scenes(_params(args), args.units).evaluate(args.model, args.out, args.metrics,
                                               device=_device(args))


def cmd_scenes_table(args) -> None:
    """Write Table III and its comparisons."""
    from spectnet.experiments.scenes import write_table_iii
    table = write_table_iii(_params(args), args.units, args.metrics_dir, args.predictions_dir,
                            args.models_dir, args.out)
    log.info("Table III (%d runs, %s) -> %s.{csv,md,tex}", table["run"].nunique(),
             table["dataset"].iloc[0], args.out)


def cmd_scenes_figures(args) -> None:
    """Draw the scene figures."""
    from spectnet.reporting.figures import draw_scene_figures
    written = draw_scene_figures(args.models_dir, args.runs_dir, args.out_dir, _params(args))
    log.info("%d figures (PNG and PDF) -> %s", len(written) // 2, args.out_dir)


def _add_scenes_commands(sub) -> None:
    """spectnet scenes fetch | preprocess | train | evaluate | table | figures."""
    scenes = sub.add_parser("scenes", help="acoustic scenes and other labelled clips",
                            description="Acquire labelled clips (DCASE 2016, ESC-10, ESC-50, "
                                        "a folder per class or a CSV), cut them into units, "
                                        "train and evaluate the Table III grid per fold and "
                                        "write the table.")
    scsub = scenes.add_subparsers(dest="scenes_command", required=True, metavar="STEP")

    p = _step(scsub, "fetch", cmd_scenes_fetch,
             "acquire the configured clip data set (download or local copy)",
             "Choose the data set (`scenes.dataset`; auto = DCASE 2016 when its local copy "
             "exists, else ESC-10), read it with its folds and materialise it under OUT: the "
             "audio (hard links or copies), clips.csv (clip, path, label, fold, train<k>, "
             "evaluate<k>), classes.json, dataset.json (which data set and why), "
             "acquire_report.csv and, for DCASE, errors.csv. DCASE 2016 downloads are "
             "MD5-verified and resumable.")
    _fetch_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = _step(scsub, "preprocess", cmd_scenes_preprocess,
             "mono mix, resample and cut every clip into fixed-length units",
             "Decode every clip of RAW, mix it to mono, resample it to scenes.sample_rate "
             "and cut it into units (scenes.units). Writes OUT/units.npy (float32, n_units x "
             "unit_samples), OUT/units.csv (one row per unit: clip, unit, label, class, "
             "fold, train<k>, evaluate<k>, ...), OUT/clips.csv (status and reason per clip), "
             "classes.json and dataset.json.")
    p.add_argument("--raw", required=True, type=Path, help="output of `scenes fetch`")
    p.add_argument("--out", required=True, type=Path, help="unit store directory to write")
    _per_recording_options(p)

    p = _step(scsub, "train", cmd_scenes_train,
             "train one run of the Table III grid on one fold (resumable)",
             "Train RUN (static-N, learnable-N or static-N-control) on the units of fold K's "
             "training set without its inner split, scoring every epoch on the inner split "
             "(clip-level MACC selects the best epoch; scenes.selection). Writes OUT/best.pt and OUT/last.pt (self-describing model files), "
             "history.csv, frontend.csv, summary.json and dvclive/. A killed run started "
             "again resumes from its last completed epoch (kept beside OUT until the run ends).")
    p.add_argument("run", metavar="RUN", help="static-N, learnable-N or static-N-control")
    p.add_argument("--fold", type=int, required=True, help="the fold (train{K} / evaluate{K})")
    p.add_argument("--seed", type=int, required=True, help="seed of initialisation, sampling")
    p.add_argument("--units", required=True, type=Path, help="output of `scenes preprocess`")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument("--init", type=Path,
                   help="learnable-N, static-N-control: the model file of static-N trained "
                        "on the same fold")
    _torch_options(p, training=True)

    p = _step(scsub, "evaluate", cmd_scenes_evaluate,
             "evaluate a trained scene model on its fold's evaluation set",
             "Evaluate MODEL on the evaluation units of the fold it was trained on: clip-level "
             "(mean of the unit posteriors) and unit-level accuracy, macro sensitivity, "
             "specificity and precision, both F1 definitions and MACC, with bootstrap "
             "intervals over clips; per-class metrics and confusion matrices. Writes "
             "OUT/units.csv and OUT/clips.csv (predictions and probabilities) and METRICS.")
    p.add_argument("--model", required=True, type=Path, help="a model file (best.pt / last.pt)")
    p.add_argument("--units", required=True, type=Path, help="output of `scenes preprocess`")
    p.add_argument("--out", required=True, type=Path, help="predictions directory to write")
    p.add_argument("--metrics", required=True, type=Path, help="metrics JSON file to write")
    _torch_options(p)

    p = _step(scsub, "table", cmd_scenes_table,
             "Table III from the evaluated runs, beside the paper's numbers",
             "Aggregate the evaluated runs of the grid (params: runs, folds and seeds at the "
             "active scale): per metric the mean and sd over folds and seeds, a bootstrap "
             "interval over clips, the paper's value and the difference; the table says which "
             "data set, scale and folds produced the numbers and what was left out; every "
             "learnable-N against its same-budget control and against static-N (McNemar on "
             "clips, paired bootstrap intervals). Writes OUT.{csv,md,tex} (clip level), "
             "OUT-units.{csv,md,tex} (unit level), OUT-comparisons.csv and OUT-classes.json "
             "(per-class metrics and summed confusion matrices).")
    p.add_argument("--units", required=True, type=Path, help="output of `scenes preprocess`")
    p.add_argument("--metrics-dir", required=True, type=Path,
                   help="metrics of `scenes evaluate`, as RUN/foldK/seedS.json")
    p.add_argument("--predictions-dir", required=True, type=Path,
                   help="predictions of `scenes evaluate`, as RUN/foldK/seedS/")
    p.add_argument("--models-dir", required=True, type=Path,
                   help="run directories of `scenes train`, as RUN/foldK/seedS/")
    p.add_argument("--out", required=True, type=Path, help="output path without suffix")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)

    p = _step(scsub, "figures", cmd_scenes_figures,
             "the scene figures: learning curves, filterbanks, confusion matrices",
             "Draw the scene figures of the grid (params: runs, folds and seeds at the active "
             "scale) as PNG and PDF in OUT_DIR: scene-learning-curves (every run), and per "
             "learnable N: scene-filterbank-learnable-N (frequency responses before and after "
             "learning, each filter's change), scene-frontend-trajectories-learnable-N and "
             "scene-confusion-matrices-N (clip level: static-N, its control, learnable-N).")
    p.add_argument("--models-dir", required=True, type=Path,
                   help="run directories of `scenes train`, as RUN/foldK/seedS/")
    p.add_argument("--runs-dir", required=True, type=Path,
                   help="metrics of `scenes evaluate`, as RUN/foldK/seedS.json")
    p.add_argument("--out-dir", required=True, type=Path, help="where the figures go")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)


# ---------------------------------------------------------------- models and recordings
def cmd_predict(args) -> None:
    """Classify heart-sound recordings with a model file: one JSON line per file."""
    import contextlib
    import json

    from spectnet.atomic import atomic_output
    from spectnet.prediction import HeartSoundClassifier
    if args.out is not None and args.out.is_dir():
        raise SpectNetError(f"{args.out}: is a directory; --out takes the file to write")
    classifier = HeartSoundClassifier(args.model, device=args.device)
    failed = 0
    with contextlib.ExitStack() as stack:
        out = sys.stdout
        if args.out:  # appears complete or not at all: a run stopped part-way keeps the old file
            out = stack.enter_context(open(stack.enter_context(atomic_output(args.out)), "w"))
        for result in classifier.predict_files(args.audio):
            failed += "error" in result
            print(json.dumps(result), file=out, flush=True)
            if "error" in result:
                log.error("%s: %s", result["file"], result["error"])
            elif "warning" in result:
                log.warning("%s: %s", result["file"], result["warning"])
    if failed:
        raise SpectNetError(f"{failed} of {len(args.audio)} files could not be classified")


def cmd_export(args) -> None:
    """Export a model file to ONNX or torch.export, checked against the model."""
    from spectnet.export import export_model
    out = args.out or args.model.with_suffix(f".{args.format}")
    export_model(args.model, out, args.format)
    log.info("%s -> %s (%s, dynamic batch, log-probabilities; checked against the model)",
             args.model, out, args.format)


def cmd_plot_segmentation(args) -> None:
    """Draw every record that can be drawn; name the others; fail only if none was drawn
    (a failed workflow job loses its outputs, so one bad record must not cost the rest)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from spectnet.atomic import atomic_output
    from spectnet.errors import BadInputError
    from spectnet.segmentation import SegmentationError, segment_heart_cycles
    from spectnet.segmentation.plot import plot_segmentation
    from spectnet.datasets.store import SignalStore

    store = SignalStore(args.store)
    records = args.records or list(_params(args).segmentation.plot_records)
    not_drawn = [(r, f"not in the store {args.store}") for r in records if r not in store]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rates = store.manifest.set_index("record")["sample_rate"]
    for record in (r for r in records if r in store):
        x, rate = np.asarray(store[record]), int(rates[record])
        try:
            seg = segment_heart_cycles(x, rate)
        except SegmentationError as exc:
            not_drawn.append((record, f"cannot be segmented: {exc}"))
            continue
        fig, (whole, zoom) = plt.subplots(2, 1, figsize=(12, 6), constrained_layout=True)
        plot_segmentation(x, seg, rate, ax=whole, title=f"{record}: HR "
                          f"{seg.heart_rate_bpm:.1f} bpm, systole {seg.systolic_interval_s:.3f} s")
        plot_segmentation(x, seg, rate, ax=zoom, title=f"{record}: first 5 s",
                          t_range=(0, min(5.0, x.size / rate)))
        with atomic_output(args.out_dir / f"segmentation-{record}.png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        log.info("wrote %s", args.out_dir / f"segmentation-{record}.png")
    if len(not_drawn) == len(records):
        raise BadInputError("no segmentation figure could be drawn", not_drawn)
    for record, why in not_drawn:
        log.warning("%s: not drawn: %s", record, why)


def _add_model_commands(sub) -> None:
    """spectnet predict | export | plot-segmentation."""
    p = _step(sub, "predict", cmd_predict,
             "classify heart-sound recordings with a trained model",
             "Classify each AUDIO file (WAV, FLAC, OGG, ...; any sample rate; mono or stereo) "
             "as normal or abnormal with MODEL, going through the preprocessing and "
             "segmentation the model was trained with (recorded in the model file). The "
             "whole recording is classified: one longer than the training's "
             "max_duration_s (60 s) is cut into equal windows of at most that length whose "
             "beats vote together. Prints one JSON line per file: label, p_abnormal (mean "
             "beat posterior), abnormal_beats (fraction; >= 0.5 is abnormal), n_beats, "
             "heart_rate_bpm, duration_s, windows (and skipped: windows that could not be "
             "segmented; warning: clipped audio); or the file and an error (missing, a "
             "directory, unreadable, a sample rate below the model's band, too short to "
             "segment, no complete cycle) without stopping the others. MODEL may be a "
             "model file (.pt) or its export (.onnx: onnxruntime, faster on CPU; .pt2). "
             "Exit status 1 if any file failed.")
    p.add_argument("audio", nargs="+", type=Path, metavar="AUDIO", help="recordings to classify")
    p.add_argument("--model", required=True, type=Path,
                   help="a model file (best.pt) or its export (model.onnx, model.pt2)")
    p.add_argument("--out", type=Path, help="write the JSON lines to this file instead of stdout")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")

    p = _step(sub, "export", cmd_export,
             "export a trained model to ONNX or torch.export (.pt2)",
             "Export MODEL (a model file of `physionet train` or `scenes train`) as ONNX "
             "(dynamo exporter) or a torch.export program (.pt2): input (batch, n_samples) "
             "float32 waveforms at the model's sample rate, dynamic batch; output log class "
             "probabilities. The file carries the model's metadata (task, classes, sample "
             "rate, preprocessing, segmentation and beat or unit settings, architecture). "
             "The written file is checked against the model at two batch sizes (log-"
             "probabilities within 1e-4). Needs the `export` extra.")
    p.add_argument("model", type=Path, metavar="MODEL", help="a model file (best.pt)")
    p.add_argument("--format", required=True, choices=("onnx", "pt2"), help="file format")
    p.add_argument("--out", type=Path, help="file to write (default: MODEL with the format's suffix)")

    p = _step(sub, "plot-segmentation", cmd_plot_segmentation,
             "draw recordings with their S1/systole/S2/diastole segmentation",
             "Segment the given recordings of STORE and draw each waveform with its four "
             "states shaded and S1 onsets marked (whole recording and the first 5 s), "
             "one PNG per record, so that segmentation can be checked by eye. A record "
             "that cannot be drawn is named and left out; the command fails only when "
             "no record could be drawn.")
    p.add_argument("records", nargs="*", metavar="RECORD",
                   help="record names (default: segmentation.plot_records of --params)")
    p.add_argument("--store", type=Path, default=Path("data/interim/physionet2016"),
                   help="preprocessed signal store (default: data/interim/physionet2016)")
    p.add_argument("--out-dir", type=Path,
                   default=Path("results/physionet2016/figures/segmentation"),
                   help="where the PNGs go (default: results/physionet2016/figures/"
                        "segmentation, where the workflow puts them)")
    p.add_argument("--params", default="params.yaml", help=PARAMS_HELP)


# --------------------------------------------------------------- parser and entry point
def build_parser() -> argparse.ArgumentParser:
    """The ``spectnet`` parser: one group of subcommands per section above."""
    parser = argparse.ArgumentParser(
        prog="spectnet",
        description="SpectNet reproduction pipeline. Each subcommand is one workflow step; "
                    "`snakemake --cores all` runs them in order.")
    parser.add_argument("--version", action="version", version=f"spectnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in (_add_params_commands, _add_workflow_commands, _add_physionet_commands,
                         _add_scenes_commands, _add_model_commands):
        add_commands(sub)
    return parser


#: Commands whose big tensor temporaries run faster with glibc's malloc tuned.
_TUNED_COMMANDS = {"train", "evaluate", "predict"}


class _Terminated(BaseException):
    """SIGTERM (``scancel``, a workflow manager stopping its jobs), raised where the step is,
    so that it stops like on Ctrl-C: temporary outputs removed, worker pools terminated."""


def _raise_terminated(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and _TUNED_COMMANDS & {getattr(args, "physionet_command", None),
                                           getattr(args, "scenes_command", None),
                                           getattr(args, "command", None)}:
        from spectnet.runtime import reexec_with_tuned_malloc
        reexec_with_tuned_malloc()
    _setup_logging(getattr(args, "log", None), getattr(args, "verbose", False))
    started = time.perf_counter()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        args.func(args)
    except SpectNetError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except _Terminated:
        log.error("terminated (SIGTERM)")
        return 143
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    log.debug("done in %.1f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
