# The PDF report (memcap.report): paper/ templates rendered with our tables and figures.


rule report:
    input:
        tables=rules.tables.output,
        figures=rules.figures.output,
        records=all_records(),
        geometry=list(geometry_outputs().values()),
        baselines=list(baselines_outputs().values()),
        precision=list(precision_outputs().values()),
        budget_reference=config["budget_reference"],
    output:
        pdf=report(
            f"{RESULTS}/report/report.pdf",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        run=config["run"],
        # the settings table is built in the job (memcap.report.workflow_settings), so
        # planning needs no memcap import
        random_max_length={m: random_max_length(m) for m in config["models"]},
        geometry=geometry_outputs(),
        baselines=baselines_outputs(),
        precision=precision_outputs(),
    script:
        "../../scripts/report.py"
