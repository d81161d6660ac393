"""Rule report: the PDF report (memcap.analysis.report.build_report)."""

from pathlib import Path

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.analysis.report import build_report, workflow_settings

# params: the named outputs of the rules that wrote the report's inputs, and capacity_rule
# (config report.capacity_rule), the headline decoding capacity the tables and figures use
build_report(
    snakemake.params.tables,
    snakemake.params.figures,
    [Path(p) for p in snakemake.input.records],
    Path(snakemake.output.pdf),
    run_name=snakemake.params.run,
    extra=workflow_settings(snakemake.config, snakemake.params.random_max_length),
    geometry=snakemake.params.geometry or None,
    baselines=snakemake.params.baselines or None,
    precision=snakemake.params.precision or None,
    budget_reference=[Path(p) for p in snakemake.input.budget_reference],
    capacity_rule=getattr(snakemake.params, "capacity_rule", "paper"),
)
