# Table II: the heart-sound grid, one job per run and seed. static-N trains with the
# front-end frozen; learnable-N fine-tunes static-N's selected model of the same seed and
# static-N-control continues it for the same steps with the front-end frozen; the two
# Gammatone baselines train in one stage. Each run is then evaluated on the validation
# fold. A killed training job resumes when run again (its checkpoint lives beside the
# output, which Snakemake does not delete).

from spectnet.grid import heart_sound_figure_names, heart_sound_jobs

BEATS = "data/processed/physionet2016-beats"
MODELS = "models/physionet2016"


wildcard_constraints:
    n=r"\d+",
    seed=r"\d+",
    dim=r"1d|2d",
    run=r"(static|learnable)-\d+|static-\d+-control|gammatone-(1d|2d)",


rule train_static_physionet:
    input:
        beats=BEATS,
        code=code("physionet train"),
    output:
        directory(f"{MODELS}/static-{{n}}/seed{{seed}}"),
    params:
        config=step_params("train_static_physionet"),
    threads: 8  # torch threads; capped at --cores
    log:
        "logs/physionet2016/train/static-{n}-seed{seed}.log",
    shell:
        "spectnet physionet train static-{wildcards.n} --seed {wildcards.seed} "
        "--beats {input.beats} --out {output} --threads {threads} "
        "--params {params.config:q} --log {log} -q"


rule train_learnable_physionet:
    input:
        beats=BEATS,
        static=f"{MODELS}/static-{{n}}/seed{{seed}}",
        code=code("physionet train"),
    output:
        directory(f"{MODELS}/learnable-{{n}}/seed{{seed}}"),
    params:
        config=step_params("train_learnable_physionet"),
    threads: 8
    log:
        "logs/physionet2016/train/learnable-{n}-seed{seed}.log",
    shell:
        "spectnet physionet train learnable-{wildcards.n} --seed {wildcards.seed} "
        "--beats {input.beats} --init {input.static}/best.pt --out {output} "
        "--threads {threads} --params {params.config:q} --log {log} -q"


rule train_control_physionet:
    input:
        beats=BEATS,
        static=f"{MODELS}/static-{{n}}/seed{{seed}}",
        code=code("physionet train"),
    output:
        directory(f"{MODELS}/static-{{n}}-control/seed{{seed}}"),
    params:
        config=step_params("train_control_physionet"),
    threads: 8
    log:
        "logs/physionet2016/train/static-{n}-control-seed{seed}.log",
    shell:
        "spectnet physionet train static-{wildcards.n}-control --seed {wildcards.seed} "
        "--beats {input.beats} --init {input.static}/best.pt --out {output} "
        "--threads {threads} --params {params.config:q} --log {log} -q"


rule train_baseline_physionet:
    input:
        beats=BEATS,
        code=code("physionet train"),
    output:
        directory(f"{MODELS}/gammatone-{{dim}}/seed{{seed}}"),
    params:
        config=step_params("train_baseline_physionet"),
    threads: 8
    log:
        "logs/physionet2016/train/gammatone-{dim}-seed{seed}.log",
    shell:
        "spectnet physionet train gammatone-{wildcards.dim} --seed {wildcards.seed} "
        "--beats {input.beats} --out {output} --threads {threads} "
        "--params {params.config:q} --log {log} -q"


rule evaluate_physionet:
    input:
        beats=BEATS,
        run=f"{MODELS}/{{run}}/seed{{seed}}",
        code=code("physionet evaluate"),
    output:
        predictions=directory("data/predictions/physionet2016/{run}/seed{seed}"),
        metrics="results/physionet2016/runs/{run}/seed{seed}.json",
    params:
        config=step_params("evaluate_physionet"),
        model=config["heart_sounds"]["evaluation"]["model"],
    log:
        "logs/physionet2016/evaluate/{run}-seed{seed}.log",
    shell:
        "spectnet physionet evaluate --model {input.run}/{params.model}.pt "
        "--beats {input.beats} --out {output.predictions} --metrics {output.metrics} "
        "--params {params.config:q} --log {log}"


#: Every (run, seed) of the Table II grid at the active scale.
HEART_RUNS = heart_sound_jobs(PARAMS)


rule table2_physionet:
    input:
        beats=BEATS,
        metrics=[f"results/physionet2016/runs/{run}/seed{seed}.json"
                 for run, seed in HEART_RUNS],
        predictions=[f"data/predictions/physionet2016/{run}/seed{seed}"
                     for run, seed in HEART_RUNS],
        summaries=[f"{MODELS}/{run}/seed{seed}" for run, seed in HEART_RUNS],
        code=code("physionet table"),
    output:
        csv=report("results/physionet2016/table2.csv", caption="../report/table2.rst",
                   category="Table II"),
        markdown="results/physionet2016/table2.md",
        latex="results/physionet2016/table2.tex",
        comparisons=report("results/physionet2016/table2-comparisons.csv",
                           caption="../report/table2_comparisons.rst", category="Table II"),
    params:
        config=step_params("table2_physionet"),
        # the trees the inputs lie in: RUN/seedS below each
        metrics=lambda wildcards, input: Path(input.metrics[0]).parents[1],
        predictions=lambda wildcards, input: Path(input.predictions[0]).parents[1],
        models=lambda wildcards, input: Path(input.summaries[0]).parents[1],
    log:
        "logs/physionet2016/table2.log",
    shell:
        "spectnet physionet table --beats {input.beats} --metrics-dir {params.metrics} "
        "--predictions-dir {params.predictions} --models-dir {params.models} "
        "--out results/physionet2016/table2 --params {params.config:q} --log {log}"


# The figures of the grid, drawn from the run directories and the evaluations.
FIGURES = "results/physionet2016/figures"
#: The caption (workflow/report/<caption>.rst) of each figure, by the start of its name.
FIGURE_CAPTIONS = {
    "filterbank-": "figure_filterbank",
    "beat-spectrogram": "figure_beat_spectrogram",
    "learning-curves": "figure_learning_curves",
    "frontend-trajectories-": "figure_frontend_trajectories",
    "per-subset-metrics": "figure_subset_metrics",
    "confusion-matrices": "figure_confusion_matrices",
}


#: The figure names of the grid at the active scale (without suffix).
HEART_FIGURES = heart_sound_figure_names(PARAMS)


rule figures_physionet:
    input:
        beats=BEATS,
        runs=[f"{MODELS}/{run}/seed{seed}" for run, seed in HEART_RUNS],
        metrics=[f"results/physionet2016/runs/{run}/seed{seed}.json"
                 for run, seed in HEART_RUNS],
        code=code("physionet figures"),
    output:
        png=[figure_in_report(FIGURES, name, FIGURE_CAPTIONS, "Heart-sound figures")
             for name in HEART_FIGURES],
        pdf=[f"{FIGURES}/{name}.pdf" for name in HEART_FIGURES],
    params:
        config=step_params("figures_physionet"),
        models=lambda wildcards, input: Path(input.runs[0]).parents[1],
        figures=lambda wildcards, output: Path(output.png[0]).parent,
    log:
        "logs/physionet2016/figures.log",
    shell:
        "spectnet physionet figures --models-dir {params.models} "
        "--runs-dir results/physionet2016/runs --beats {input.beats} --out-dir {params.figures} "
        "--params {params.config:q} --log {log}"
