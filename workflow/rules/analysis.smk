# Tables (memcap.analysis.tables) and figures (memcap.analysis.figures): pure functions over all records files.

# memcap.analysis.tables.TABLE_NAMES and memcap.analysis.figures.FIGURE_NAMES. The outputs, named
# "<name>_<ext>", are the files write_tables and write_figures write (scripts/tables.py,
# scripts/figures.py) and the report reads (report.smk). search.csv also goes into the HTML
# report (snakemake --report).
TABLES = [
    "table1",
    "summary",
    "multivector",
    "pass_rate",
    "search",
    "capacity",
    "capacities",
]
FIGURES = ["capacity", "ce_scatter", "utilisation", "accuracy_vs_length", "multivector"]


rule tables:
    input:
        records=all_records(),
    output:
        **{
            f"{name}_{ext}": f"{RESULTS}/tables/{name}.{ext}"
            for name in TABLES
            for ext in ("csv", "tex")
            if (name, ext) != ("search", "csv")
        },
        search_csv=report(
            f"{RESULTS}/tables/search.csv",
            caption="../report/search.rst",
            category="Tables",
            labels={"table": "search"},
        ),
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        # the headline decoding capacity: the paper's mean-accuracy rule or the per-sample rule
        capacity_rule=config["report"]["capacity_rule"],
    script:
        "../../scripts/tables.py"


rule figures:
    input:
        records=all_records(),
    output:
        **{f"{name}_pdf": f"{RESULTS}/figures/{name}.pdf" for name in FIGURES},
        **{
            f"{name}_png": report(
                f"{RESULTS}/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
                labels={"figure": name},
            )
            for name in FIGURES
        },
    log:
        f"{RESULTS}/logs/figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        capacity_rule=config["report"]["capacity_rule"],
    script:
        "../../scripts/figures.py"
