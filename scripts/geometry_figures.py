"""Rule geometry_figures: Figures 7 and 8 and the numbers the report quotes."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.geometry import draw_stage

draw_stage(
    snakemake.input.runs,
    snakemake.input.cosine,
    snakemake.input.interpolation,
    Path(snakemake.output.summary).parent,
    snakemake.output.summary,
)
