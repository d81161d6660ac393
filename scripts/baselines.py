"""Rule baselines: classical compressors and LM arithmetic coding (memcap.stages.baselines)."""

from memcap.stages.script import start_model_job

# before transformers is imported (and before CUDA starts: the job's card is chosen here)
start_model_job(snakemake.log[0], snakemake.params.cache_dir, gpu=snakemake.resources.get("gpu", 0))

from memcap.stages.baselines import run_stage

p = snakemake.params
run_stage(
    p.model,
    list(snakemake.input.records),
    dict(zip(p.datasets, snakemake.input.texts, strict=True)),
    dict(snakemake.output.items()),  # the rule's named outputs are the files written
    verify=p.verify,
    device=p.device,
    models_file=p.models_file,
    threads=snakemake.threads,
)
