"""Rule tables: CSV and LaTeX tables over all records (memcap.analysis.tables.write_tables)."""

from pathlib import Path

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.analysis.tables import write_tables

# the rule's named outputs ("table1_csv", "table1_tex", ...) are the files written; params
# capacity_rule (config report.capacity_rule) picks the headline decoding capacity
write_tables(
    [Path(p) for p in snakemake.input.records],
    dict(snakemake.output.items()),
    capacity_rule=getattr(snakemake.params, "capacity_rule", "paper"),
)
