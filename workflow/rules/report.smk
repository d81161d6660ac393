# The PDF report (memcap.report): paper/ templates rendered with our tables and figures.


rule report:
    input:
        tables=rules.tables.output,
        figures=rules.figures.output,
        records=all_records(),
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
        settings=report_settings(),
    script:
        "../../scripts/report.py"
