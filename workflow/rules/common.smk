# Helpers shared by the rules: the config checks beyond the schema, which files and params a
# config asks for, and job resources (the report's settings table:
# memcap.analysis.report.workflow_settings). Functions only (no rules); they read `config`
# after the Snakefile validated it. The plan itself (the grids, the checks) is
# memcap.stages.plan: these wrappers give it the config and turn its errors (PlanError, which
# names the config key) into WorkflowErrors. Each file name is written once, in a rule's
# output: the functions here derive paths from the rules (output_file).

import functools
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# standard library and yaml only at import (the torch half of memcap is imported lazily)
from memcap.stages import plan


def planned(function, *args):
    """function(config, *args) of memcap.stages.plan; its PlanError stops the workflow."""
    try:
        return function(config, *args)
    except plan.PlanError as err:
        raise WorkflowError(str(err)) from None


def config_error(schema_file):
    """The config's first schema error as one line (after snakemake.utils.validate failed)."""
    return plan.schema_error(config, schema_file)


def migrate_config():
    """Config keys renamed in this release (memcap.config_keys.RENAMED) keep working: each is
    moved to its new name, before the schema validates the config, with a warning naming both.

    memcap.config_keys needs only the standard library: the Snakefile's folder is on sys.path
    and memcap/__init__.py imports nothing, so this works outside memcap's environment too.
    """
    from memcap.config_keys import ConfigKeyError, migrate

    try:
        messages = migrate(config)
    except ConfigKeyError as err:
        raise WorkflowError(str(err)) from None
    for message in messages:
        logger.warning(message)


@functools.cache
def registry():
    """Model registry entries by name (config models_file), read once and checked (memcap.registry)."""
    try:
        return plan.read_registry(config["models_file"])
    except plan.PlanError as err:
        raise WorkflowError(str(err)) from None


def check_config():
    """Cross-key checks the schema cannot express (plan.check_config); each error names the key."""
    planned(plan.check_config, registry())


def check_results():
    """Existing results made with other settings stop the run before any job starts
    (plan.check_results); called once the rules (they name the records files) exist."""
    records = [(records_file(job), job) for job in model_jobs()]
    planned(plan.check_results, registry(), records)


# --- the compress and multivector jobs -----------------------------------------------------


def output_file(rule, name, **wildcards):
    """The output `name` of `rule` for these wildcards, as the rule names it."""
    return expand(getattr(rule.output, name), **wildcards)[0]


@functools.cache
def model_jobs():
    """Every compress and multivector job (plan.Job), in the order of the config."""
    return plan.model_jobs(config)


def records_file(job):
    return output_file(getattr(rules, job.rule), "records", **job.wildcards)


def all_records():
    """The records files of every compress and multivector job."""
    return [records_file(job) for job in model_jobs()]


def job_mode(dataset):
    """grid or search; random text always runs the grid (one length per text)."""
    return plan.job_mode(config, dataset)


def compress_lengths(wildcards):
    """K = 1 lengths (plan.k1_lengths); None for random text (each text has its own length)."""
    return plan.compress_lengths(config, wildcards.model, wildcards.dataset)


def multivector_lengths(model, K):
    """Lengths of one multivector job; K = 1 shares the K = 1 grid's (plan.k1_lengths)."""
    return plan.multivector_lengths(config, model, K)


def random_max_length(model):
    """L_up of random text for one model."""
    own = config["models"].get(model, {}).get("random_max_length")
    return own or config["random_max_length"]


def texts_path(dataset, model):
    """Texts a model compresses; random text depends on the model's L_up."""
    if plan.is_random(config, dataset):
        L = random_max_length(model)
        return output_file(rules.random_texts, "texts", dataset=dataset, max_length=L)
    return output_file(rules.texts, "texts", dataset=dataset)


def model_input(model):
    """The download record of a Hugging Face model; gguf and random models need none."""
    if registry()[model].get("source", "hf") != "hf":
        return {}
    return {"model": output_file(rules.download, "model", model=model)}


def compress_input(wildcards):
    """Texts and model of a compress or multivector job."""
    texts = {"texts": texts_path(wildcards.dataset, wildcards.model)}
    return texts | model_input(wildcards.model)


def compress_prior(wildcards):
    """The prior file of a compress search job (models.<name>.prior), or None."""
    return plan.job_prior(config, wildcards.model, wildcards.dataset)


def prior_input(wildcards):
    """A compress job's prior file is its input: a new prior reruns the job."""
    prior = compress_prior(wildcards)
    return {"prior": prior} if prior else {}


def dataset_spec(wildcards):
    """A dataset's config entry as the texts rules get it (params): `documents` only where it
    is set, so that a config of before the key gives the same params and its texts are not
    rebuilt (Snakemake reruns a job whose params changed)."""
    spec = config["datasets"][wildcards.dataset]
    return {k: v for k, v in spec.items() if k != "documents" or v is not None}


def texts_input(wildcards):
    """A `source: file` dataset's file is the texts rule's input, so editing it rebuilds the texts."""
    spec = config["datasets"][wildcards.dataset]
    return {"source": spec["path"]} if spec["source"] == "file" else {}


def vocab_input(wildcards):
    vocab = config["datasets"][wildcards.dataset]["vocab"]
    return output_file(rules.vocab, "words", vocab=vocab)


def mem_mb(wildcards):
    """Host memory of a model job: a base plus fp32 weights per billion parameters."""
    params_b = registry()[wildcards.model].get("params_b") or 1.0
    per_b = config["resources"]["mem_mb_per_billion"]
    return int(config["resources"]["mem_mb"] + per_b * params_b)


def runtime(wildcards):
    """Minutes of a model job: the model's own, else a base plus minutes per billion parameters."""
    own = config["models"].get(wildcards.model, {}).get("runtime")
    params_b = registry()[wildcards.model].get("params_b") or 1.0
    per_b = config["resources"]["runtime_per_billion"]
    return own or int(config["resources"]["runtime"] + per_b * params_b)


# --- optional stages: geometry, baselines, precision ----------------------------------------


def named_outputs(rule, stage=None):
    """The output files of a rule by the names it gives them ({name -> path}); empty when
    the optional `stage` does not run (plan.stage_runs)."""
    if stage is not None and not plan.stage_runs(config, stage):
        return {}
    return {name: str(path) for name, path in rule.output.items()}


def stage_model(stage):
    """A stand-in for wildcards, so mem_mb() and runtime() size a stage's job by its model."""
    return SimpleNamespace(model=config[stage]["model"])


def geometry_input(wildcards):
    model = config["geometry"]["model"]
    texts = texts_path(plan.geometry_dataset(config), model)
    return {"texts": texts} | model_input(model)


def baselines_input(wildcards):
    model = config["baselines"]["model"]
    datasets = plan.baselines_datasets(config)
    return {
        "records": [
            output_file(rules.compress, "records", model=model, dataset=d)
            for d in datasets
        ],
        "texts": [texts_path(d, model) for d in datasets],
    } | model_input(model)


def precision_jobs(model):
    """The compress and multivector jobs of one model: the records its precision job reads."""
    return [job for job in model_jobs() if job.model == model]


def precision_datasets(model):
    return list(dict.fromkeys(job.dataset for job in precision_jobs(model)))


def precision_input(wildcards):
    model = wildcards.model
    return {
        "records": [records_file(job) for job in precision_jobs(model)],
        "texts": [texts_path(d, model) for d in precision_datasets(model)],
    } | model_input(model)


def precision_summary_input(wildcards):
    """Every model's precision records, the run's records (token gain for Eq. 1) and, when
    the baselines stage runs, its per-text ratios (the classical compressors beside ours).
    """
    inputs = {
        "precision": [
            output_file(rules.precision, "records", model=m)
            for m in plan.precision_models(config)
        ],
        "records": all_records(),
    }
    if plan.stage_runs(config, "baselines"):
        inputs["baselines_rows"] = rules.baselines.output.rows
        inputs["baselines_summary"] = rules.baselines.output.summary
    return inputs
