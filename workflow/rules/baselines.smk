# Classical compressors beside the [mem] vectors (memcap.stages.baselines, the paper's Appendix F):
# zlib, bz2, lzma, Huffman and arithmetic coding with the model's own predictions, on the
# texts its K = 1 vectors decoded losslessly. Runs only when baselines.model is set. The
# named outputs are the files run_stage writes (memcap.stages.baselines.OUTPUTS) and the report reads.


rule baselines:
    input:
        unpack(baselines_input),
    output:
        rows=f"{RESULTS}/baselines/rows.csv",
        table=f"{RESULTS}/baselines/table.csv",
        tex=f"{RESULTS}/baselines/table.tex",
        summary=f"{RESULTS}/baselines/summary.json",
    log:
        f"{RESULTS}/logs/baselines.log",
    benchmark:
        f"{RESULTS}/benchmarks/baselines.tsv"
    conda:
        "../../envs/memcap.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=lambda wildcards: mem_mb(stage_model("baselines")),
        runtime=lambda wildcards: runtime(stage_model("baselines")),
    params:
        model=config["baselines"]["model"],
        datasets=plan.baselines_datasets(config),
        verify=config["baselines"]["verify"],
        device=config["resources"]["device"],
        models_file=config["models_file"],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/baselines.py"
