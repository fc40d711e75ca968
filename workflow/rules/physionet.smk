# PhysioNet/CinC 2016: acquire the training set, then preprocess every recording.


rule fetch_physionet:
    input:
        code=code("physionet fetch"),
    output:
        directory("data/raw/physionet2016"),
    params:
        config=step_params("fetch_physionet"),
    log:
        "logs/fetch_physionet.log",
    shell:
        "spectnet physionet fetch --out {output} --params {params.config:q} --log {log}"


rule preprocess_physionet:
    input:
        raw="data/raw/physionet2016",
        code=code("physionet preprocess"),
    output:
        directory("data/interim/physionet2016"),
    params:
        config=step_params("preprocess_physionet"),
    threads: 8  # capped at --cores by Snakemake
    log:
        "logs/preprocess_physionet.log",
    shell:
        "spectnet physionet preprocess --raw {input.raw} --out {output} "
        "--params {params.config:q} --workers {threads} --log {log}"
