# The PDF report (memcap.analysis.report): paper/ templates rendered with our tables and figures.

# What the report shows of each optional stage: its rule's outputs by name (the names
# memcap.analysis.report.build_report reads); empty when the stage does not run.
REPORT_STAGES = {
    "geometry": named_outputs(rules.geometry_figures, "geometry"),
    "baselines": named_outputs(rules.baselines, "baselines"),
    "precision": named_outputs(rules.precision_summary, "precision"),
}


rule report:
    input:
        tables=rules.tables.output,
        figures=rules.figures.output,
        records=all_records(),
        geometry=list(REPORT_STAGES["geometry"].values()),
        baselines=list(REPORT_STAGES["baselines"].values()),
        precision=list(REPORT_STAGES["precision"].values()),
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
        capacity_rule=config["report"]["capacity_rule"],
        # the settings table is built in the job (memcap.analysis.report.workflow_settings), so
        # planning needs no memcap import
        random_max_length={m: random_max_length(m) for m in config["models"]},
        # the inputs by the names their rules give them (memcap.analysis.report.build_report)
        tables=named_outputs(rules.tables),
        figures=named_outputs(rules.figures),
        geometry=REPORT_STAGES["geometry"],
        baselines=REPORT_STAGES["baselines"],
        precision=REPORT_STAGES["precision"],
    script:
        "../../scripts/report.py"
