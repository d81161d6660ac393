"""Rule geometry: many [mem] solutions per text, cosines and interpolation (memcap.geometry)."""

import logging
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

from memcap.download import use_cache

use_cache(snakemake.params.cache_dir, offline=True)  # models come from rule download's cache

from memcap.geometry import run_stage

p = snakemake.params
run_stage(
    p.model,
    snakemake.input.texts,
    p.dataset,
    dict(snakemake.output),
    texts=p.texts,
    inits=p.inits,
    length=p.length,
    K=p.K,
    steps=p.steps,
    protocol=p.protocol,
    optim=dict(p.optim),
    batch_size=p.batch_size,
    device=p.device,
    models_file=p.models_file,
    threads=snakemake.threads,
)
