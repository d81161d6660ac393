"""Rule geometry_figures: Figures 7 and 8 and the numbers the report quotes."""

from pathlib import Path

from memcap.script import start_job

start_job(snakemake.log[0])

from memcap.geometry import draw_stage

draw_stage(
    snakemake.input.runs,
    snakemake.input.cosine,
    snakemake.input.interpolation,
    Path(snakemake.output.summary).parent,
    snakemake.output.summary,
)
