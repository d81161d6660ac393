# Geometry of the [mem] solutions (memcap.stages.geometry, the paper's Figures 7 and 8): one job
# compresses each text from several random inits and scores the lines between solutions;
# a light rule draws the figures (memcap.analysis.geometry_figures). Runs only when geometry.model
# is set (memcap.stages.plan.stage_runs). Each rule's named outputs are the files its script writes
# (geometry_figures: memcap.analysis.geometry_figures.OUTPUTS, draw_stage) and the report reads.


rule geometry:
    input:
        unpack(geometry_input),
    output:
        runs=f"{RESULTS}/geometry/runs.csv",
        vectors=f"{RESULTS}/geometry/vectors.safetensors",
        cosine=f"{RESULTS}/geometry/cosine.csv",
        interpolation=f"{RESULTS}/geometry/interpolation.csv",
    log:
        f"{RESULTS}/logs/geometry.log",
    benchmark:
        f"{RESULTS}/benchmarks/geometry.tsv"
    conda:
        "../../envs/memcap.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=lambda wildcards: mem_mb(stage_model("geometry")),
        runtime=lambda wildcards: runtime(stage_model("geometry")),
    params:
        model=config["geometry"]["model"],
        dataset=plan.geometry_dataset(config),
        texts=config["geometry"]["texts"],
        inits=config["geometry"]["inits"],
        length=config["geometry"]["length"],
        K=config["geometry"]["K"],
        points=config["geometry"]["points"],
        protocol=config["protocol"],
        optim=plan.geometry_optim(config),
        batch_size=config["resources"]["batch_size"],
        device=config["resources"]["device"],
        models_file=config["models_file"],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/geometry.py"


rule geometry_figures:
    input:
        runs=rules.geometry.output.runs,
        cosine=rules.geometry.output.cosine,
        interpolation=rules.geometry.output.interpolation,
    output:
        summary=f"{RESULTS}/geometry/summary.json",
        cosine_pdf=f"{RESULTS}/geometry/geometry_cosine.pdf",
        cosine_png=report(
            f"{RESULTS}/geometry/geometry_cosine.png",
            caption="../report/geometry_cosine.rst",
            category="Figures",
            labels={"figure": "geometry_cosine"},
        ),
        interpolation_pdf=f"{RESULTS}/geometry/geometry_interpolation.pdf",
        interpolation_png=report(
            f"{RESULTS}/geometry/geometry_interpolation.png",
            caption="../report/geometry_interpolation.rst",
            category="Figures",
            labels={"figure": "geometry_interpolation"},
        ),
    log:
        f"{RESULTS}/logs/geometry_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/geometry_figures.tsv"
    conda:
        "../../envs/memcap.yaml"
    script:
        "../../scripts/geometry_figures.py"
