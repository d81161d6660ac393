"""Rule baselines: classical compressors and LM arithmetic coding (memcap.baselines)."""

import logging
import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

from memcap.download import use_cache

use_cache(snakemake.params.cache_dir, offline=True)  # models come from rule download's cache

from memcap.baselines import run_stage

p = snakemake.params
run_stage(
    p.model,
    list(snakemake.input.records),
    dict(zip(p.datasets, snakemake.input.texts)),
    Path(snakemake.output.table).parent,
    verify=p.verify,
    device=p.device,
    models_file=p.models_file,
    threads=snakemake.threads,
)
