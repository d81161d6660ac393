"""Rule download: snapshot one Hugging Face model into the cache (memcap.download)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.download import download_model

download_model(
    snakemake.wildcards.model,
    snakemake.params.models_file,
    snakemake.params.cache_dir,
    snakemake.output.model,
)
