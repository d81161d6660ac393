"""Rule tables: CSV and LaTeX tables over all records (memcap.tables.write_tables)."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.tables import write_tables

write_tables(
    [Path(p) for p in snakemake.input.records], Path(snakemake.output.table1_csv).parent
)
