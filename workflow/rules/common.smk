# Helpers shared by the rules: config checks beyond the schema, which files and params a config
# asks for, and job resources (the report's settings table: memcap.analysis.report.workflow_settings).
# Functions only (no rules); they read `config` after the Snakefile validated it.

import functools
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger


def config_error(schema_file):
    """The config's first schema error as one line: the key, what is wrong, what is allowed.

    Called after snakemake.utils.validate failed; its message buries the key in a schema dump.
    """
    import jsonschema

    with open(schema_file) as f:
        schema = yaml.safe_load(f)
    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(config)
    )
    if err is None:
        return "the config does not match workflow/schemas/config.schema.yaml"
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    sub = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and "properties" in sub:
        allowed = "allowed keys: " + ", ".join(sub["properties"])
    elif "enum" in sub:
        allowed = "allowed: " + ", ".join(map(str, sub["enum"]))
    elif "type" in sub:
        allowed = f"allowed: {sub['type']}" + "".join(
            f", {k} {sub[k]}"
            for k in (
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "pattern",
            )
            if k in sub
        )
    else:
        allowed = ""
    what = " ".join(sub.get("description", "").split())
    return (
        f"Invalid config key {key!r}: {err.message}"
        + (f"; {allowed}" if allowed else "")
        + (f". ({what})" if what else "")
    )


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
    """Model registry entries by name (plain YAML: no torch import at planning time)."""
    with open(config["models_file"]) as f:
        return yaml.safe_load(f) or {}


def check_config():
    """Cross-key checks the schema cannot express; each error names the key."""
    known = registry()
    grids = {"models": config["models"], "multivector": config["multivector"]}
    for key, models in grids.items():
        for model in models:
            if model not in known:
                raise WorkflowError(
                    f"Invalid config key '{key}.{model}': unknown model {model!r}; known models "
                    f"({config['models_file']}): {', '.join(known)}"
                )
    for name, spec in config["datasets"].items():
        if spec["source"] == "random" and spec["vocab"] not in config["vocab"]:
            raise WorkflowError(
                f"Invalid config key 'datasets.{name}.vocab': unknown vocabulary "
                f"{spec['vocab']!r}; defined under vocab: {', '.join(config['vocab']) or 'none'}"
            )
        if spec["source"] == "file" and not Path(spec["path"]).is_file():
            raise WorkflowError(
                f"Invalid config key 'datasets.{name}.path': no such file "
                f"{spec['path']!r} (looked for {Path(spec['path']).absolute()}); allowed: an "
                f"existing local text file, one document per line (a relative path is "
                f"relative to the working directory)"
            )
    check_lengths()
    for model, grid in config["multivector"].items():
        dataset = config["datasets"].get(grid["dataset"])
        if dataset is None or dataset["source"] == "random":
            natural = [
                d for d, s in config["datasets"].items() if s["source"] != "random"
            ]
            raise WorkflowError(
                f"Invalid config key 'multivector.{model}.dataset': {grid['dataset']!r} is not "
                f"a natural dataset; allowed: {', '.join(natural) or 'none'}"
            )
    check_geometry()
    check_baselines()


def check_lengths():
    """Every length a job would get is one the protocol can score (paper: L >= 2)."""
    shortest = 2 if config["protocol"] == "paper" else 1
    grids = {"lengths": config["lengths"]}
    grids |= {
        f"multivector.{model}.lengths": grid["lengths"]
        for model, grid in config["multivector"].items()
        if grid["lengths"]
    }
    for key, lengths in grids.items():
        if min(lengths) < shortest:
            raise WorkflowError(
                f"Invalid config key {key!r}: length {min(lengths)} is too short for protocol "
                f"{config['protocol']!r}, which never scores the first token; allowed: "
                f"lengths >= {shortest}"
            )


def result_jobs():
    """(records file, model, dataset, mode, lengths, the config key of the lengths) of every
    compress and multivector job."""
    from types import SimpleNamespace

    jobs = []
    for model in config["models"]:
        for dataset in config["datasets"]:
            cell = SimpleNamespace(model=model, dataset=dataset)
            lengths = compress_lengths(cell)
            jobs.append(
                (
                    f"{RESULTS}/compress/{model}/{dataset}.jsonl",
                    model,
                    dataset,
                    job_mode(dataset),
                    lengths,
                    "lengths",
                )
            )
    for model, grid in config["multivector"].items():
        for K in grid["K"]:
            lengths = multivector_lengths(model, K)
            if lengths:
                jobs.append(
                    (
                        f"{RESULTS}/multivector/{model}/{grid['dataset']}/K{K}.jsonl",
                        model,
                        grid["dataset"],
                        job_mode(grid["dataset"]),
                        lengths,
                        f"multivector.{model}.lengths",
                    )
                )
    return jobs


def job_mode(dataset):
    """grid or search; random text always runs the grid (one length per text)."""
    return "grid" if is_random(dataset) else config["compress"]["mode"]


@functools.cache
def model_specs():
    from memcap.core.models import load_registry

    try:
        return load_registry(config["models_file"])
    except ValueError as err:
        raise WorkflowError(
            f"Invalid model registry {config['models_file']}: {err}"
        ) from None


def _config_key(setting, model, lengths_key):
    """The config key (or registry entry) a fingerprint setting comes from."""
    top = setting.split(".")[0]
    if top == "model":
        return f"{config['models_file']}: {model}.{setting.split('.', 1)[1]}"
    return {
        "mode": "compress.mode",
        "lengths": lengths_key,
        "cast_weights": "compress.cast_weights",
        "search": f"compress.{setting}",
    }.get(top, setting)


def check_results():
    """Settings that differ from those of existing results stop the run before any job starts.

    A compress or multivector job refuses to resume over parts made with other settings
    (memcap.stages.store); but Snakemake deletes a job's records file before running it, so a
    refusal inside the job would remove results. Compared here, before any job, with the
    fingerprint the job computes (memcap.stages.job.job_fingerprint). memcap (and torch) is
    imported only when some results exist; where it cannot be imported (Snakemake outside
    memcap's environment) the jobs still refuse, but only once they run.
    """
    existing = [
        job
        for job in result_jobs()
        if Path(job[0]).with_suffix(".parts").joinpath("job.json").is_file()
    ]
    if not existing:
        return
    try:
        from memcap.core.engine import OptimConfig
        from memcap.stages.job import job_fingerprint
        from memcap.core.models import resolve_model
        from memcap.stages.store import changed_settings, stored_fingerprint
    except ImportError:
        return
    optim = OptimConfig.from_dict(config["optim"])
    clashes = []
    for records, model, dataset, mode, lengths, lengths_key in existing:
        parts = Path(records).with_suffix(".parts")
        spec = resolve_model(model, model_specs())
        now = job_fingerprint(
            spec,
            config["protocol"],
            optim,
            dataset,
            mode,
            lengths or [],
            config["compress"]["cast_weights"],
            config["compress"]["search"],
        )
        changed = changed_settings(stored_fingerprint(parts), now)
        # a preset changes many values at once: name the key that was set, first
        changed.sort(key=lambda change: change[0] != "optim.preset")
        if changed:
            clashes.append((parts, model, lengths_key, changed))
    if not clashes:
        return
    parts, model, lengths_key, changed = clashes[0]
    keys = [_config_key(setting, model, lengths_key) for setting, _, _ in changed]
    diffs = "; ".join(
        f"{key}: {old!r} then, {new!r} now" for key, (_, old, new) in zip(keys, changed)
    )
    more = (
        f" (and {len(clashes) - 1} more results folder(s))" if len(clashes) > 1 else ""
    )
    raise WorkflowError(
        f"Invalid config key {keys[0]!r}: {parts} holds results made with other settings "
        f"({diffs}){more}. Resuming would mix them, so no job was started and nothing was "
        f"removed. Allowed: the settings those results were made with; or another run "
        f"name (key 'run') for the new settings; or delete {parts} and its records file "
        f"to start over"
    )


def is_hf(model):
    return registry()[model].get("source", "hf") == "hf"


def model_lengths(model):
    """The natural-text length grid of one model (K = 1)."""
    cap = config["models"][model]["max_length"]
    return [L for L in sorted(config["lengths"]) if cap is None or L <= cap]


def random_max_length(model):
    """L_up of random text for one model."""
    own = config["models"].get(model, {}).get("random_max_length")
    return own or config["random_max_length"]


def is_random(dataset):
    return config["datasets"][dataset]["source"] == "random"


def texts_path(dataset, model):
    """Texts a model compresses; random text depends on the model's L_up."""
    if is_random(dataset):
        return f"{RESULTS}/texts/{dataset}-{random_max_length(model)}.jsonl"
    return f"{RESULTS}/texts/{dataset}.jsonl"


def multivector_grid_lengths(model, K):
    """Lengths of one multi-vector cell: K <= L, K + L within the context, per-vector cap."""
    grid = config["multivector"][model]
    lengths = grid["lengths"] or config["lengths"]
    return [
        L
        for L in sorted(lengths)
        if K <= L
        and (grid["max_context"] is None or K + L <= grid["max_context"])
        and (
            grid["max_length_per_vector"] is None
            or L <= K * grid["max_length_per_vector"]
        )
    ]


def k1_joins_compress(model):
    """The K = 1 cell of a multi-vector grid is run by the model's compress job: the K = 1
    grid covers this model and dataset already (config models)."""
    grid = config["multivector"][model]
    return (
        1 in grid["K"]
        and model in config["models"]
        and grid["dataset"] in config["datasets"]
    )


def multivector_lengths(model, K):
    """Lengths of one multi-vector job (multivector_grid_lengths).

    When the K = 1 grid has the same model and dataset (k1_joins_compress), no
    (model, dataset, K = 1, L, sample) may be computed twice: in grid mode the K = 1 job
    gets only the lengths the K = 1 grid lacks; in search mode there is no K = 1 job at all,
    since a text has one search per K: the compress job searches through both grids'
    lengths (compress_lengths).
    """
    lengths = multivector_grid_lengths(model, K)
    if K == 1 and k1_joins_compress(model):
        if config["compress"]["mode"] == "search":
            return []
        done = set(model_lengths(model))
        return [L for L in lengths if L not in done]
    return lengths


def compress_records():
    """One records file per (model, dataset): the K = 1 grid."""
    return [
        f"{RESULTS}/compress/{model}/{dataset}.jsonl"
        for model in config["models"]
        for dataset in config["datasets"]
    ]


def multivector_records():
    """One records file per (model, K) of the multi-vector grids with at least one length."""
    return [
        f"{RESULTS}/multivector/{model}/{grid['dataset']}/K{K}.jsonl"
        for model, grid in config["multivector"].items()
        for K in grid["K"]
        if multivector_lengths(model, K)
    ]


def all_records():
    return compress_records() + multivector_records()


def model_input(model):
    """The download record of a Hugging Face model; gguf and random models need none."""
    return {"model": f"{RESULTS}/models/{model}.json"} if is_hf(model) else {}


def compress_input(wildcards):
    """Texts and model of a compress or multivector job."""
    texts = {"texts": texts_path(wildcards.dataset, wildcards.model)}
    return texts | model_input(wildcards.model)


def compress_lengths(wildcards):
    """K = 1 lengths; None for random text (each text carries its own sampled length).

    In search mode, with the model's multi-vector grid on this dataset holding K = 1, the
    one K = 1 search of a text goes through the lengths of both grids (multivector_lengths).
    """
    model, dataset = wildcards.model, wildcards.dataset
    if is_random(dataset):
        return None
    lengths = set(model_lengths(model))
    if (
        config["compress"]["mode"] == "search"
        and model in config["multivector"]
        and config["multivector"][model]["dataset"] == dataset
        and k1_joins_compress(model)
    ):
        lengths |= set(multivector_grid_lengths(model, 1))
    return sorted(lengths)


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


def vocab_input(wildcards):
    return f"{RESULTS}/vocab/{config['datasets'][wildcards.dataset]['vocab']}.txt"


# --- optional stages: geometry (Figures 7 and 8) and classical baselines (Appendix F) -----


def stage_runs(stage):
    """Whether an optional stage runs: geometry and baselines when their model is set,
    precision when enabled."""
    if stage == "precision":
        return config["precision"]["enabled"]
    return config[stage]["model"] is not None


def named_outputs(rule, stage=None):
    """The output files of a rule by the names it gives them ({name -> path}); empty when
    the optional `stage` does not run (stage_runs)."""
    if stage is not None and not stage_runs(stage):
        return {}
    return {name: str(path) for name, path in rule.output.items()}


def natural_datasets():
    return [d for d, s in config["datasets"].items() if s["source"] != "random"]


def geometry_dataset():
    """The configured dataset, else the first natural one."""
    natural = natural_datasets()
    return config["geometry"]["dataset"] or (natural[0] if natural else None)


def check_geometry():
    g = config["geometry"]
    if g["model"] is None:
        return
    if g["model"] not in registry():
        raise WorkflowError(
            f"Invalid config key 'geometry.model': unknown model {g['model']!r}; known "
            f"models ({config['models_file']}): {', '.join(registry())}"
        )
    dataset = geometry_dataset()
    if dataset not in config["datasets"] or is_random(dataset):
        raise WorkflowError(
            f"Invalid config key 'geometry.dataset': {dataset!r} is not a natural dataset; "
            f"allowed: {', '.join(natural_datasets()) or 'none'}"
        )


def geometry_input(wildcards):
    model = config["geometry"]["model"]
    return {"texts": texts_path(geometry_dataset(), model)} | model_input(model)


def geometry_optim():
    """optim with the geometry stage's own lr and max_steps where set."""
    g = config["geometry"]
    return config["optim"] | {k: g[k] for k in ("lr", "max_steps") if g[k] is not None}


def stage_model(stage):
    """A stand-in for wildcards, so mem_mb() and runtime() size a stage's job by its model."""
    from types import SimpleNamespace

    return SimpleNamespace(model=config[stage]["model"])


def baselines_datasets():
    return config["baselines"]["datasets"] or list(config["datasets"])


def check_baselines():
    b = config["baselines"]
    if b["model"] is None:
        return
    if b["model"] not in config["models"]:
        raise WorkflowError(
            f"Invalid config key 'baselines.model': {b['model']!r} is not under models "
            f"(its K = 1 records choose the texts); allowed: {', '.join(config['models'])}"
        )
    for dataset in baselines_datasets():
        if dataset not in config["datasets"]:
            raise WorkflowError(
                f"Invalid config key 'baselines.datasets': unknown dataset {dataset!r}; "
                f"allowed: {', '.join(config['datasets'])}"
            )


def baselines_input(wildcards):
    model = config["baselines"]["model"]
    datasets = baselines_datasets()
    return {
        "records": [f"{RESULTS}/compress/{model}/{d}.jsonl" for d in datasets],
        "texts": [texts_path(d, model) for d in datasets],
    } | model_input(model)


# --- optional stage: precision of the vectors (this project's extension) ------------------


def precision_models():
    """Every model with records: the K = 1 grid's and the multi-vector grids'."""
    if not config["precision"]["enabled"]:
        return []
    return list(dict.fromkeys([*config["models"], *config["multivector"]]))


def precision_records(model):
    """(records file, dataset) of every compress and multivector job of one model."""
    jobs = []
    if model in config["models"]:
        jobs += [
            (f"{RESULTS}/compress/{model}/{d}.jsonl", d) for d in config["datasets"]
        ]
    grid = config["multivector"].get(model)
    if grid:
        jobs += [
            (
                f"{RESULTS}/multivector/{model}/{grid['dataset']}/K{K}.jsonl",
                grid["dataset"],
            )
            for K in grid["K"]
            if multivector_lengths(model, K)
        ]
    return jobs


def precision_datasets(model):
    return list(dict.fromkeys(d for _, d in precision_records(model)))


def precision_input(wildcards):
    model = wildcards.model
    return {
        "records": [r for r, _ in precision_records(model)],
        "texts": [texts_path(d, model) for d in precision_datasets(model)],
    } | model_input(model)


def precision_summary_input(wildcards):
    """Every model's precision records, the run's records (token gain for Eq. 1) and, when
    the baselines stage runs, its per-text ratios (the classical compressors beside ours).
    """
    inputs = {
        "precision": [f"{RESULTS}/precision/{m}.jsonl" for m in precision_models()],
        "records": all_records(),
    }
    if stage_runs("baselines"):
        inputs["baselines_rows"] = rules.baselines.output.rows
        inputs["baselines_summary"] = rules.baselines.output.summary
    return inputs
