"""Rule download: snapshot one Hugging Face model into the cache (memcap.stages.download)."""

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.stages.download import download_model

download_model(
    snakemake.wildcards.model,
    snakemake.params.models_file,
    snakemake.params.cache_dir,
    snakemake.output.model,
)
