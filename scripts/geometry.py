"""Rule geometry: many [mem] solutions per text, cosines and interpolation (memcap.stages.geometry)."""

from memcap.stages.script import start_model_job

# before transformers is imported (and before CUDA starts: the job's card is chosen here)
start_model_job(snakemake.log[0], snakemake.params.cache_dir, gpu=snakemake.resources.get("gpu", 0))

from memcap.stages.geometry import run_stage

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
    points=p.points,
    protocol=p.protocol,
    optim=dict(p.optim),
    batch_size=p.batch_size,
    device=p.device,
    models_file=p.models_file,
    threads=snakemake.threads,
)
