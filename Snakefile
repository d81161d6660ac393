# memcap: how much text can a frozen LM decode from K trainable [mem] vectors?
#
#   snakemake --cores 8 --use-conda                            # the paper's grid (config/config.yaml)
#   snakemake --cores 2 --configfile config/demo.yaml          # offline CPU demo, minutes
#   snakemake --cores 2 --configfile config/smoke.yaml         # tiny random model, seconds
#
# Stages (workflow/rules): data (vocab, texts), models (download), compress (K = 1 grid and
# multi-vector grid), analysis (tables, figures), geometry (Figures 7-8), baselines (classical
# compressors, Appendix F), precision (bits per vector value, this project's extension),
# report (PDF). All outputs: results/<run>/.

from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile replaces config/config.yaml instead of merging into it: Snakemake merges
# nested keys, which would add the paper's 14 models to the demo's one.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
migrate_config()  # renamed keys (memcap.config_keys): moved to their new names, with a warning
try:
    validate(config, SCHEMA)  # also fills in every default
except WorkflowError:
    raise WorkflowError(config_error(SCHEMA)) from None
check_config()

RESULTS = f"results/{config['run']}"


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    max_length=r"\d+",
    K=r"\d+",
    model="[^/]+",
    vocab="[^/]+",


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/precision.smk"
include: "workflow/rules/report.smk"


# existing results made with other settings: stop before any job (the rules name the files)
check_results()


# Under a cluster executor (snakemake --profile slurm) only compress and multivector jobs are
# submitted; these rules are light or need the internet (downloads) and run where Snakemake runs.
localrules:
    vocab,
    texts,
    random_texts,
    download,
    tables,
    figures,
    geometry_figures,
    precision_summary,
    report,


rule all:
    default_target: True
    input:
        pdf=rules.report.output.pdf,
