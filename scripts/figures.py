"""Rule figures: PDF and PNG figures over all records (memcap.analysis.figures.write_figures)."""

from pathlib import Path

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.analysis.figures import write_figures

# the rule's named outputs ("capacity_pdf", "capacity_png", ...) are the files written; params
# capacity_rule (config report.capacity_rule) picks the headline decoding capacity drawn
write_figures(
    [Path(p) for p in snakemake.input.records],
    dict(snakemake.output.items()),
    capacity_rule=getattr(snakemake.params, "capacity_rule", "paper"),
)
