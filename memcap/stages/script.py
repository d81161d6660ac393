"""What every rule script (scripts/*.py) does first, before it imports the rest of memcap.

    from memcap.stages.script import start_job, start_model_job
    start_job(snakemake.log[0])                                     # a script that runs no model
    start_model_job(snakemake.log[0], snakemake.params.cache_dir,   # one that does
                    gpu=snakemake.resources.get("gpu", 0))

Snakemake keeps a rule script's output only where the script puts it, so both send stdout and
stderr, line-buffered, to the rule's log file. A model job also logs its records there, reads
models offline from rule download's cache, and claims a GPU of its own when its `gpu`
resource asks for one; it must start before transformers is imported (the cache variables
are read once, at import) and before CUDA starts (the card is chosen here).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from memcap.stages.download import use_cache


def start_job(log_path: str | Path) -> None:
    """Send this process's stdout and stderr to the rule's log file, line by line."""
    sys.stderr = sys.stdout = open(log_path, "w", buffering=1)


def start_model_job(log_path: str | Path, cache_dir: str | Path, gpu: int = 0) -> None:
    """start_job, then log records at INFO into that file, models only from the download
    cache (offline), and a free card of its own (memcap.stages.gpu_slots) when `gpu` is set."""
    start_job(log_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    use_cache(cache_dir, offline=True)
    if gpu:
        from memcap.stages.gpu_slots import claim_gpu

        claim_gpu()
