"""Rules precision and precision_summary: rounded [mem] vectors scored again (memcap.stages.precision),
then their tables, figure and summary (memcap.analysis.precision_summary)."""

from memcap.stages.script import start_job, start_model_job

if snakemake.rule == "precision":
    # before transformers is imported (and before CUDA starts: the job's card is chosen here)
    start_model_job(snakemake.log[0], snakemake.params.cache_dir, gpu=snakemake.resources.get("gpu", 0))

    from memcap.stages.precision import run_stage

    p = snakemake.params
    run_stage(
        snakemake.wildcards.model,
        list(snakemake.input.records),
        dict(zip(p.datasets, snakemake.input.texts, strict=True)),
        snakemake.output.records,
        formats=list(p.formats),
        pca=list(p.pca),
        max_samples=p.max_samples,
        device=p.device,
        models_file=p.models_file,
        threads=snakemake.threads,
    )
else:
    start_job(snakemake.log[0])

    from memcap.analysis.precision_summary import summary_stage

    summary_stage(
        list(snakemake.input.precision),
        list(snakemake.input.records),
        dict(snakemake.output.items()),  # the rule's named outputs are the files written
        baselines_rows=snakemake.input.get("baselines_rows"),
        baselines_summary=snakemake.input.get("baselines_summary"),
    )
