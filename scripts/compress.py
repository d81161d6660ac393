"""Rules compress and multivector: one records file (memcap.stages.job.run_job)."""

from memcap.stages.script import start_model_job

# before transformers is imported (and before CUDA starts: the job's card is chosen here)
start_model_job(snakemake.log[0], snakemake.params.cache_dir, gpu=snakemake.resources.get("gpu", 0))

from memcap.stages.job import run_job

run_job(
    snakemake.wildcards.model,
    snakemake.input.texts,
    snakemake.output.records,
    lengths=snakemake.params.lengths,
    K=snakemake.params.K,
    protocol=snakemake.params.protocol,
    optim=dict(snakemake.params.optim),
    batch_size=snakemake.params.batch_size,
    device=snakemake.params.device,
    models_file=snakemake.params.models_file,
    dataset=snakemake.wildcards.dataset,
    threads=snakemake.threads,
    progress=False,
    mode=snakemake.params.mode,
    cast_weights=snakemake.params.cast_weights,
    search=dict(snakemake.params.search),
    prior=snakemake.params.prior,
)
