"""Rule geometry_figures: Figures 7 and 8 and the report's numbers (memcap.geometry_figures)."""

from pathlib import Path

from memcap.script import start_job

start_job(snakemake.log[0])

from memcap.geometry_figures import draw_stage

draw_stage(
    snakemake.input.runs,
    snakemake.input.cosine,
    snakemake.input.interpolation,
    Path(snakemake.output.summary).parent,
    snakemake.output.summary,
)
