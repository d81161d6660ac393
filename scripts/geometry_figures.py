"""Rule geometry_figures: Figures 7 and 8 and the report's numbers (memcap.analysis.geometry_figures)."""

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.analysis.geometry_figures import draw_stage

# the rule's named outputs ("summary", "cosine_pdf", ...) are the files written
draw_stage(
    snakemake.input.runs,
    snakemake.input.cosine,
    snakemake.input.interpolation,
    dict(snakemake.output.items()),
)
