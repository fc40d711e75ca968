# Acoustic scenes and other labelled clips: acquire the configured data set, then cut every
# clip into fixed-length units. scenes.dataset: auto is resolved here too, so that the rules
# rerun when the resolution changes (a DCASE 2016 copy appears or goes away).
from spectnet.config import ScenesConfig
from spectnet.datasets.scenes import choose_dataset


rule fetch_scenes:
    output:
        directory("data/raw/scenes"),
    params:
        config=step_params("fetch_scenes"),
        dataset=choose_dataset(ScenesConfig.from_dict(config["scenes"])).dataset,
    log:
        "logs/fetch_scenes.log",
    shell:
        "spectnet scenes fetch --out {output} --params {params.config:q} --log {log}"


rule preprocess_scenes:
    input:
        "data/raw/scenes",
    output:
        directory("data/processed/scenes-units"),
    params:
        config=step_params("preprocess_scenes"),
    threads: 8  # capped at --cores by Snakemake
    log:
        "logs/preprocess_scenes.log",
    shell:
        "spectnet scenes preprocess --raw {input} --out {output} "
        "--params {params.config:q} --workers {threads} --log {log}"
