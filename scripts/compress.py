"""Rules compress and multivector: one records file (memcap.job.run_job)."""

import logging
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

from memcap.download import use_cache

use_cache(snakemake.params.cache_dir, offline=True)  # models come from rule download's cache

from memcap.job import run_job

run_job(
    snakemake.wildcards.model,
    snakemake.input.texts,
    snakemake.output.records,
    lengths=snakemake.params.lengths,
    vectors=snakemake.params.vectors,
    protocol=snakemake.params.protocol,
    optim=dict(snakemake.params.optim),
    batch_size=snakemake.params.batch_size,
    device=snakemake.params.device,
    models_file=snakemake.params.models_file,
    dataset=snakemake.wildcards.dataset,
    threads=snakemake.threads,
    progress=False,
    mode=snakemake.params.mode,
)
