# Hugging Face models are downloaded once, at their pinned revision, into the shared cache
# (memcap.stages.download); compress jobs then read that cache offline. gguf and random models need
# no download.


rule download:
    output:
        model=f"{RESULTS}/models/{{model}}.json",
    log:
        f"{RESULTS}/logs/download/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{model}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    resources:
        runtime=240,
    params:
        models_file=config["models_file"],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/download.py"
