# DVC's one metrics file: the headline numbers of every run of Tables II and III (mean over
# seeds and folds), so that `dvc exp show --param-deps` and `dvc metrics diff` compare
# those; each run's own JSON holds the rest.


rule headline_metrics:
    input:
        heart=rules.table2_physionet.input.metrics,
        scenes=rules.table_scenes.input.metrics,
        code=code("workflow metrics"),
    output:
        "results/metrics.json",
    log:
        "logs/headline_metrics.log",
    shell:
        "spectnet workflow metrics --out {output} --log {log} {input.heart} {input.scenes}"
