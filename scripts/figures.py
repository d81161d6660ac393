"""Rule figures: PDF and PNG figures over all records (memcap.figures.write_figures)."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.figures import write_figures

write_figures(
    [Path(p) for p in snakemake.input.records], Path(snakemake.output.capacity_pdf).parent
)
