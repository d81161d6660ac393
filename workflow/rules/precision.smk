# Precision of the [mem] vectors (memcap.stages.precision), this project's extension beyond the
# paper: one job per model rounds the stored vectors of its lossless samples (bfloat16,
# float16, int8, int4, ...) and scores them again; a light rule makes the table, the figure
# and the numbers the report quotes. Runs only when precision.enabled is set. The named
# outputs of precision_summary are the files summary_stage writes
# (memcap.analysis.precision_summary.OUTPUTS).


rule precision:
    input:
        unpack(precision_input),
    output:
        records=f"{RESULTS}/precision/{{model}}.jsonl",
    log:
        f"{RESULTS}/logs/precision/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/precision/{{model}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=mem_mb,
        runtime=runtime,
    params:
        datasets=lambda wildcards: precision_datasets(wildcards.model),
        formats=config["precision"]["formats"],
        pca=config["precision"]["pca"],
        max_samples=config["precision"]["max_samples"],
        device=config["resources"]["device"],
        models_file=config["models_file"],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/precision.py"


rule precision_summary:
    input:
        unpack(precision_summary_input),
    output:
        shares=f"{RESULTS}/precision/shares.csv",
        table_csv=f"{RESULTS}/precision/table.csv",
        table_tex=f"{RESULTS}/precision/table.tex",
        ratio_csv=f"{RESULTS}/precision/ratio.csv",
        ratio_tex=f"{RESULTS}/precision/ratio.tex",
        figure_pdf=f"{RESULTS}/precision/precision.pdf",
        figure_png=report(
            f"{RESULTS}/precision/precision.png",
            caption="../report/precision.rst",
            category="Figures",
            labels={"figure": "precision"},
        ),
        summary=f"{RESULTS}/precision/summary.json",
    log:
        f"{RESULTS}/logs/precision_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/precision_summary.tsv"
    conda:
        "../../envs/memcap.yaml"
    script:
        "../../scripts/precision.py"
