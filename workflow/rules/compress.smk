# One job per (model, dataset) for the K = 1 grid and per (model, K) for the multi-vector grid
# (memcap.stages.job.run_job). A job loads its model once, batches the samples of one length and
# keeps per-batch parts beside its records file (<records>.parts/, not a declared output), so a
# killed job resumes where it stopped. Without a GPU it runs on the CPU. compress.mode search finds
# each text's capacity instead (memcap.core.search); random text, one length per text, runs the grid.


rule compress:
    input:
        unpack(compress_input),
        unpack(prior_input),
    output:
        records=f"{RESULTS}/compress/{{model}}/{{dataset}}.jsonl",
    log:
        f"{RESULTS}/logs/compress/{{model}}/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compress/{{model}}/{{dataset}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=mem_mb,
        runtime=runtime,
    params:
        lengths=compress_lengths,
        K=[1],
        protocol=config["protocol"],
        optim=config["optim"],
        batch_size=config["resources"]["batch_size"],
        mode=lambda wildcards: job_mode(wildcards.dataset),
        device=config["resources"]["device"],
        cast_weights=config["compress"]["cast_weights"],
        search=config["compress"]["search"],
        prior=compress_prior,
        models_file=config["models_file"],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/compress.py"


# The same job per (model, K); unlisted params are inherited from compress (`use rule`
# replaces params one keyword at a time, every other directive whole).
use rule compress as multivector with:
    input:
        unpack(compress_input),
    output:
        records=f"{RESULTS}/multivector/{{model}}/{{dataset}}/K{{K}}.jsonl",
    log:
        f"{RESULTS}/logs/multivector/{{model}}/{{dataset}}/K{{K}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/multivector/{{model}}/{{dataset}}/K{{K}}.tsv"
    params:
        lengths=lambda wildcards: multivector_lengths(wildcards.model, int(wildcards.K)),
        K=lambda wildcards: [int(wildcards.K)],
        # a prior is one K's (K = 1): more vectors start from the random init
        prior=lambda wildcards: None,
