# Heart-cycle segmentation (Springer LR-HSMM) and the beat dataset.


rule segment_physionet:
    input:
        store="data/interim/physionet2016",
        code=code("physionet segment"),
    output:
        beats=directory("data/processed/physionet2016-beats"),
        summary=report(
            "results/physionet2016/segmentation.json",
            caption="../report/segmentation_summary.rst",
            category="Segmentation",
        ),
    params:
        config=step_params("segment_physionet"),
    threads: 8  # capped at --cores by Snakemake
    log:
        "logs/segment_physionet.log",
    shell:
        "spectnet physionet segment --store {input.store} --out {output.beats} "
        "--summary {output.summary} --params {params.config:q} --workers {threads} --log {log}"


rule plot_segmentation_physionet:
    input:
        store="data/interim/physionet2016",
        code=code("plot-segmentation"),
    output:
        report(
            directory("results/physionet2016/figures/segmentation"),
            patterns=["segmentation-{record}.png"],
            caption="../report/segmentation_figure.rst",
            category="Segmentation",
        ),
    params:
        config=step_params("plot_segmentation_physionet"),
    log:
        "logs/plot_segmentation_physionet.log",
    shell:
        "spectnet plot-segmentation --store {input.store} --out-dir {output} "
        "--params {params.config:q} --log {log}"
