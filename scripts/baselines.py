"""Rule baselines: classical compressors and LM arithmetic coding (memcap.baselines)."""

from pathlib import Path

from memcap.download import start_model_job

start_model_job(snakemake.log[0], snakemake.params.cache_dir)  # before transformers is imported

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
