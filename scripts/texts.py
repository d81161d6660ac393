"""Rule texts: one natural dataset's texts file (memcap.texts.write_texts)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.download import use_cache

use_cache(snakemake.params.cache_dir)  # datasets' cache; before datasets is imported

from memcap.texts import write_texts

write_texts(snakemake.wildcards.dataset, snakemake.params.spec, snakemake.output.texts)
