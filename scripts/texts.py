"""Rule texts: one natural dataset's texts file (memcap.stages.texts.write_texts)."""

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.stages.download import use_cache

use_cache(snakemake.params.cache_dir)  # datasets' cache; before datasets is imported

from memcap.stages.texts import write_texts

write_texts(snakemake.wildcards.dataset, snakemake.params.spec, snakemake.output.texts)
