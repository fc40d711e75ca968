# Acoustic scenes and other labelled clips: acquire the configured data set, cut every clip
# into fixed-length units, then Table III: one training job per run, fold and seed
# (static-N with the front-end frozen; learnable-N fine-tunes the static-N model of the
# same fold and seed, static-N-control continues it for the same steps with the front-end
# frozen), one evaluation per trained run, and the table. scenes.dataset: auto
# is resolved here, so that the rules rerun when the resolution changes (a DCASE 2016
# copy appears or goes away), and the outputs of each data set live apart. A killed
# training job resumes when run again (its checkpoint lives beside the output).
from spectnet.datasets.scenes import choose_dataset
from spectnet.grid import scene_figure_names, scene_jobs

SCENE_DATASET = choose_dataset(PARAMS.scenes).dataset
SCENE_UNITS = "data/processed/scenes-units"
SCENE_MODELS = f"models/scenes/{SCENE_DATASET}"
SCENE_PREDICTIONS = f"data/predictions/scenes/{SCENE_DATASET}"
SCENE_RESULTS = f"results/scenes/{SCENE_DATASET}"
#: Every run/fold/seed of the Table III grid at the active scale.
SCENE_JOBS = [f"{run}/fold{fold}/seed{seed}" for run, fold, seed in scene_jobs(PARAMS)]


rule fetch_scenes:
    input:
        code=code("scenes fetch"),
    output:
        directory("data/raw/scenes"),
    params:
        config=step_params("fetch_scenes"),
        dataset=SCENE_DATASET,
    log:
        "logs/fetch_scenes.log",
    shell:
        "spectnet scenes fetch --out {output} --params {params.config:q} --log {log}"


rule preprocess_scenes:
    input:
        raw="data/raw/scenes",
        code=code("scenes preprocess"),
    output:
        directory(SCENE_UNITS),
    params:
        config=step_params("preprocess_scenes"),
    threads: 8  # capped at --cores by Snakemake
    log:
        "logs/preprocess_scenes.log",
    shell:
        "spectnet scenes preprocess --raw {input.raw} --out {output} "
        "--params {params.config:q} --workers {threads} --log {log}"


rule train_static_scenes:
    input:
        units=SCENE_UNITS,
        code=code("scenes train"),
    output:
        directory(f"{SCENE_MODELS}/static-{{n}}/fold{{fold}}/seed{{seed}}"),
    params:
        config=step_params("train_static_scenes"),
    wildcard_constraints:
        n=r"\d+",
        fold=r"\d+",
        seed=r"\d+",
    threads: 8  # torch threads; capped at --cores
    log:
        f"logs/scenes/{SCENE_DATASET}/train/static-{{n}}-fold{{fold}}-seed{{seed}}.log",
    shell:
        "spectnet scenes train static-{wildcards.n} --fold {wildcards.fold} "
        "--seed {wildcards.seed} --units {input.units} --out {output} --threads {threads} "
        "--params {params.config:q} --log {log} -q"


rule train_learnable_scenes:
    input:
        units=SCENE_UNITS,
        static=f"{SCENE_MODELS}/static-{{n}}/fold{{fold}}/seed{{seed}}",
        code=code("scenes train"),
    output:
        directory(f"{SCENE_MODELS}/learnable-{{n}}/fold{{fold}}/seed{{seed}}"),
    params:
        config=step_params("train_learnable_scenes"),
    wildcard_constraints:
        n=r"\d+",
        fold=r"\d+",
        seed=r"\d+",
    threads: 8
    log:
        f"logs/scenes/{SCENE_DATASET}/train/learnable-{{n}}-fold{{fold}}-seed{{seed}}.log",
    shell:
        "spectnet scenes train learnable-{wildcards.n} --fold {wildcards.fold} "
        "--seed {wildcards.seed} --units {input.units} --init {input.static}/best.pt "
        "--out {output} --threads {threads} --params {params.config:q} --log {log} -q"


rule train_control_scenes:
    input:
        units=SCENE_UNITS,
        static=f"{SCENE_MODELS}/static-{{n}}/fold{{fold}}/seed{{seed}}",
        code=code("scenes train"),
    output:
        directory(f"{SCENE_MODELS}/static-{{n}}-control/fold{{fold}}/seed{{seed}}"),
    params:
        config=step_params("train_control_scenes"),
    wildcard_constraints:
        n=r"\d+",
        fold=r"\d+",
        seed=r"\d+",
    threads: 8
    log:
        f"logs/scenes/{SCENE_DATASET}/train/static-{{n}}-control-fold{{fold}}-seed{{seed}}.log",
    shell:
        "spectnet scenes train static-{wildcards.n}-control --fold {wildcards.fold} "
        "--seed {wildcards.seed} --units {input.units} --init {input.static}/best.pt "
        "--out {output} --threads {threads} --params {params.config:q} --log {log} -q"


rule evaluate_scenes:
    input:
        units=SCENE_UNITS,
        run=f"{SCENE_MODELS}/{{run}}/fold{{fold}}/seed{{seed}}",
        code=code("scenes evaluate"),
    output:
        predictions=directory(f"{SCENE_PREDICTIONS}/{{run}}/fold{{fold}}/seed{{seed}}"),
        metrics=f"{SCENE_RESULTS}/runs/{{run}}/fold{{fold}}/seed{{seed}}.json",
    params:
        config=step_params("evaluate_scenes"),
        model=PARAMS.scenes.evaluation.model,
    wildcard_constraints:
        run=r"(static|learnable)-\d+|static-\d+-control",
        fold=r"\d+",
        seed=r"\d+",
    threads: 8
    log:
        f"logs/scenes/{SCENE_DATASET}/evaluate/{{run}}-fold{{fold}}-seed{{seed}}.log",
    shell:
        "spectnet scenes evaluate --model {input.run}/{params.model}.pt --units {input.units} "
        "--out {output.predictions} --metrics {output.metrics} "
        "--params {params.config:q} --log {log}"


rule table_scenes:
    input:
        units=SCENE_UNITS,
        metrics=[f"{SCENE_RESULTS}/runs/{job}.json" for job in SCENE_JOBS],
        predictions=[f"{SCENE_PREDICTIONS}/{job}" for job in SCENE_JOBS],
        models=[f"{SCENE_MODELS}/{job}" for job in SCENE_JOBS],
        code=code("scenes table"),
    output:
        report(f"{SCENE_RESULTS}/table3.csv", caption="../report/table3.rst",
               category="Table III"),
        report(f"{SCENE_RESULTS}/table3-comparisons.csv",
               caption="../report/table3_comparisons.rst", category="Table III"),
        report(f"{SCENE_RESULTS}/table3-classes.json", caption="../report/table3_classes.rst",
               category="Table III"),
        multiext(f"{SCENE_RESULTS}/table3", ".md", ".tex", "-units.csv", "-units.md",
                 "-units.tex"),
    params:
        config=step_params("table_scenes"),
        results=lambda wildcards, output: Path(output[0]).parent,
        predictions=lambda wildcards, input: Path(input.predictions[0]).parents[2],
        models=lambda wildcards, input: Path(input.models[0]).parents[2],
    log:
        f"logs/scenes/{SCENE_DATASET}/table3.log",
    shell:
        "spectnet scenes table --units {input.units} --metrics-dir {params.results}/runs "
        "--predictions-dir {params.predictions} --models-dir {params.models} "
        "--out {params.results}/table3 --params {params.config:q} --log {log}"


# The scene figures, drawn from the run directories and the evaluations.
SCENE_FIGURES = f"{SCENE_RESULTS}/figures"
#: The caption (workflow/report/<caption>.rst) of each scene figure, by the start of its name.
SCENE_FIGURE_CAPTIONS = {
    "scene-learning-curves": "figure_scene_learning_curves",
    "scene-filterbank-": "figure_filterbank",
    "scene-frontend-trajectories-": "figure_frontend_trajectories",
    "scene-confusion-matrices-": "figure_scene_confusion_matrices",
}


rule figures_scenes:
    input:
        runs=[f"{SCENE_MODELS}/{job}" for job in SCENE_JOBS],
        metrics=[f"{SCENE_RESULTS}/runs/{job}.json" for job in SCENE_JOBS],
        code=code("scenes figures"),
    output:
        png=[figure_in_report(SCENE_FIGURES, name, SCENE_FIGURE_CAPTIONS, "Scene figures")
             for name in scene_figure_names(PARAMS)],
        pdf=[f"{SCENE_FIGURES}/{name}.pdf" for name in scene_figure_names(PARAMS)],
    params:
        config=step_params("figures_scenes"),
        # the trees the inputs lie in: RUN/foldK/seedS below each
        models=lambda wildcards, input: Path(input.runs[0]).parents[2],
        runs=lambda wildcards, input: Path(input.metrics[0]).parents[2],
        figures=lambda wildcards, output: Path(output.png[0]).parent,
    log:
        f"logs/scenes/{SCENE_DATASET}/figures.log",
    shell:
        "spectnet scenes figures --models-dir {params.models} --runs-dir {params.runs} "
        "--out-dir {params.figures} --params {params.config:q} --log {log}"
