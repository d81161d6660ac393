"""The workflow's plan: which compress and multivector jobs a config asks for, with which
lengths, and the config checks the schema cannot express (workflow/rules/common.smk).

    from memcap.stages import plan
    plan.check_config(config, plan.read_registry(config["models_file"]))  # PlanError names the key
    [(j.rule, j.model, j.dataset, j.K, j.lengths) for j in plan.model_jobs(config)]

`config` is the workflow's config after the schema filled in its defaults. File names are not
here: each is written once, in a rule's output (the workflow turns a Job into its records file).
The Snakefile imports this module at planning time, where memcap's dependencies (torch) may be
missing (Snakemake outside memcap's environment): standard library and yaml only at import;
check_results imports the torch half of memcap inside, and skips its check without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


class PlanError(ValueError):
    """A config the workflow cannot run; the message names the config key."""


def read_registry(path: str | Path) -> dict[str, dict]:
    """The model registry's entries by name (memcap.core.models.ModelSpec's keys), each checked
    against its schema (memcap.registry); a PlanError names the file, the entry and the key."""
    from memcap.registry import RegistryError
    from memcap.registry import read_registry as read_checked

    try:
        return read_checked(path)
    except RegistryError as err:
        raise PlanError(f"Invalid model registry {err}") from None


def schema_error(config: dict, schema_file: str | Path) -> str:
    """The config's first schema error as one line: the key, what is wrong, what is allowed
    (snakemake.utils.validate's own message buries the key in a schema dump)."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_file).read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if err is None:
        return "the config does not match workflow/schemas/config.schema.yaml"
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    sub = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and "properties" in sub:
        allowed = "allowed keys: " + ", ".join(sub["properties"])
    elif "enum" in sub:
        allowed = "allowed: " + ", ".join(map(str, sub["enum"]))
    elif "type" in sub:
        limits = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern")
        allowed = f"allowed: {sub['type']}" + "".join(f", {k} {sub[k]}" for k in limits if k in sub)
    else:
        allowed = ""
    what = " ".join(sub.get("description", "").split())
    message = f"Invalid config key {key!r}: {err.message}" + (f"; {allowed}" if allowed else "")
    return message + (f". ({what})" if what else "")


# --- the grids ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One compress job (the K = 1 grid, per model and dataset) or multivector job (per model
    and K). `lengths`: None for random text (each text carries its own sampled length);
    `lengths_key`: the config key they come from."""

    rule: str
    model: str
    dataset: str
    K: int
    lengths: list[int] | None
    mode: str
    lengths_key: str

    @property
    def wildcards(self) -> dict:
        """The wildcards of the job's rule (its records file's)."""
        if self.rule == "multivector":
            return {"model": self.model, "dataset": self.dataset, "K": self.K}
        return {"model": self.model, "dataset": self.dataset}


def is_random(config: dict, dataset: str) -> bool:
    return config["datasets"][dataset]["source"] == "random"


def natural_datasets(config: dict) -> list[str]:
    return [d for d, s in config["datasets"].items() if s["source"] != "random"]


def job_mode(config: dict, dataset: str) -> str:
    """grid or search; random text always runs the grid (one length per text)."""
    return "grid" if is_random(config, dataset) else config["compress"]["mode"]


def job_prior(config: dict, model: str, dataset: str) -> str | None:
    """The prior file of a compress job (`models.<model>.prior`): its search's fresh starts
    begin there (memcap.core.prior). Search jobs only; random text runs the grid."""
    prior = config["models"].get(model, {}).get("prior")
    return prior if prior and job_mode(config, dataset) == "search" else None


def model_lengths(config: dict, model: str) -> list[int]:
    """The natural-text length grid of one model (K = 1): the lengths up to its max_length."""
    cap = config["models"][model]["max_length"]
    return [L for L in sorted(config["lengths"]) if cap is None or L <= cap]


def multivector_grid_lengths(config: dict, model: str, K: int) -> list[int]:
    """Lengths of one multi-vector cell: K <= L, K + L within the context, per-vector cap."""
    grid = config["multivector"][model]
    context, per_vector = grid["max_context"], grid["max_length_per_vector"]
    return [
        L
        for L in sorted(grid["lengths"] or config["lengths"])
        if K <= L and (context is None or K + L <= context) and (per_vector is None or L <= K * per_vector)
    ]


def k1_lengths(config: dict, model: str, dataset: str) -> tuple[list[int] | None, list[int]]:
    """The K = 1 lengths of one model and dataset: (the compress job's, the multivector K1 job's).

    The K = 1 grid (config models x datasets) and a multi-vector grid holding K = 1 on the same
    model and dataset share it, so that no (model, dataset, K = 1, L, sample) is computed
    twice: in grid mode the K1 job gets only the lengths the K = 1 grid lacks; in search mode
    there is no K1 job at all, since a text has one search per K: the compress job searches
    through both grids' lengths. The compress lengths are None for random text and where the
    model or dataset is not in the K = 1 grid; the K1 lengths are [] where there is no K1 job.
    """
    grid = config["multivector"].get(model)
    shared = grid is not None and grid["dataset"] == dataset and 1 in grid["K"]
    k1 = multivector_grid_lengths(config, model, 1) if shared else []
    if model not in config["models"] or dataset not in config["datasets"] or is_random(config, dataset):
        return None, k1
    own = set(model_lengths(config, model))
    if k1 and config["compress"]["mode"] == "search":
        return sorted(own | set(k1)), []
    return sorted(own), [L for L in k1 if L not in own]


def compress_lengths(config: dict, model: str, dataset: str) -> list[int] | None:
    """Lengths of one compress job (k1_lengths); None for random text."""
    return k1_lengths(config, model, dataset)[0]


def multivector_lengths(config: dict, model: str, K: int) -> list[int]:
    """Lengths of one multivector job; [] where it has none (no job)."""
    if K == 1:
        return k1_lengths(config, model, config["multivector"][model]["dataset"])[1]
    return multivector_grid_lengths(config, model, K)


def model_jobs(config: dict) -> list[Job]:
    """Every compress job, then every multivector job with at least one length."""
    jobs = [
        Job("compress", m, d, 1, compress_lengths(config, m, d), job_mode(config, d), "lengths")
        for m in config["models"]
        for d in config["datasets"]
    ]
    for model, grid in config["multivector"].items():
        key, dataset = f"multivector.{model}.lengths", grid["dataset"]
        for K in grid["K"]:
            lengths = multivector_lengths(config, model, K)
            if lengths:
                jobs.append(Job("multivector", model, dataset, K, lengths, job_mode(config, dataset), key))
    return jobs


# --- optional stages -------------------------------------------------------------------------


def stage_runs(config: dict, stage: str) -> bool:
    """Whether an optional stage runs: geometry and baselines when their model is set,
    precision when enabled."""
    if stage == "precision":
        return config["precision"]["enabled"]
    return config[stage]["model"] is not None


def geometry_dataset(config: dict) -> str | None:
    """The configured dataset, else the first natural one."""
    natural = natural_datasets(config)
    return config["geometry"]["dataset"] or (natural[0] if natural else None)


def geometry_optim(config: dict) -> dict:
    """optim with the geometry stage's own lr and max_steps where set."""
    g = config["geometry"]
    return config["optim"] | {k: g[k] for k in ("lr", "max_steps") if g[k] is not None}


def baselines_datasets(config: dict) -> list[str]:
    return config["baselines"]["datasets"] or list(config["datasets"])


def precision_models(config: dict) -> list[str]:
    """Every model with records, when the stage runs: the K = 1 grid's and the multi-vector grids'."""
    if not config["precision"]["enabled"]:
        return []
    return list(dict.fromkeys([*config["models"], *config["multivector"]]))


# --- checks ----------------------------------------------------------------------------------


def check_config(config: dict, registry: dict) -> None:
    """Cross-key checks the schema cannot express; a PlanError names the key."""
    known, models_file = ", ".join(registry), config["models_file"]
    for key in ("models", "multivector"):
        for model in config[key]:
            if model not in registry:
                raise PlanError(
                    f"Invalid config key '{key}.{model}': unknown model {model!r}; known models "
                    f"({models_file}): {known}"
                )
    for name, spec in config["datasets"].items():
        if spec["source"] == "random" and spec["vocab"] not in config["vocab"]:
            raise PlanError(
                f"Invalid config key 'datasets.{name}.vocab': unknown vocabulary "
                f"{spec['vocab']!r}; defined under vocab: {', '.join(config['vocab']) or 'none'}"
            )
        if spec["source"] == "file" and not Path(spec["path"]).is_file():
            raise PlanError(
                f"Invalid config key 'datasets.{name}.path': no such file "
                f"{spec['path']!r} (looked for {Path(spec['path']).absolute()}); allowed: an "
                f"existing local text file, one document per line (a relative path is "
                f"relative to the working directory)"
            )
        check_documents(name, spec)
    for model, options in config["models"].items():
        prior = options.get("prior")
        if prior and not Path(prior).is_file():
            raise PlanError(
                f"Invalid config key 'models.{model}.prior': no such file {prior!r} (looked for "
                f"{Path(prior).absolute()}); allowed: a prior file `memcap prior` wrote for this model, or null"
            )
        if prior and config["compress"]["mode"] != "search":
            raise PlanError(
                f"Invalid config key 'models.{model}.prior': a prior is where the capacity search's fresh starts "
                f"begin; compress.mode is {config['compress']['mode']!r}, allowed with a prior: 'search'"
            )
    check_lengths(config, registry)
    natural = ", ".join(natural_datasets(config)) or "none"
    for model, grid in config["multivector"].items():
        if grid["dataset"] not in config["datasets"] or is_random(config, grid["dataset"]):
            raise PlanError(
                f"Invalid config key 'multivector.{model}.dataset': {grid['dataset']!r} is not "
                f"a natural dataset; allowed: {natural}"
            )
    check_geometry(config, registry)
    check_baselines(config)


def check_documents(name: str, spec: dict) -> None:
    """A dataset's `documents` (memcap.stages.texts.selected_documents): none for random
    text; for a package or file source, every index exists (the file is read, no model or
    download). A hub dataset's indices, and a package's where the package is not installed
    here (Snakemake outside memcap's environment), are checked when its texts are built."""
    documents = spec.get("documents")
    if documents is None:
        return
    if spec["source"] == "random":
        raise PlanError(
            f"Invalid config key 'datasets.{name}.documents': {documents!r}, but random text has no "
            "documents to choose from; allowed: null (leave the key out) on a random dataset"
        )
    if spec["source"] in ("package", "file"):
        from memcap.stages.texts import load_documents, missing_document  # standard library only

        try:
            n = len(load_documents(spec, max(documents) + 1))
        except (OSError, ValueError):  # no such package here, or an unreadable file: the texts job says so
            return
        missing = missing_document(name, documents, n)
        if missing:
            raise PlanError(missing)


def check_lengths(config: dict, registry: dict | None = None) -> None:
    """Every length a job would get is one the protocol can score (paper: L >= 2), a model's
    max_length leaves it some length, and K + L fits the model's context where the registry
    tells it without loading the model (random models: max_positions; the job checks the rest)."""
    shortest = 2 if config["protocol"] == "paper" else 1
    grids = {"lengths": config["lengths"]}
    grids |= {f"multivector.{m}.lengths": g["lengths"] for m, g in config["multivector"].items() if g["lengths"]}
    for key, lengths in grids.items():
        if min(lengths) < shortest:
            raise PlanError(
                f"Invalid config key {key!r}: length {min(lengths)} is too short for protocol "
                f"{config['protocol']!r}, which never scores the first token; allowed: "
                f"lengths >= {shortest}"
            )
    for model, options in config["models"].items():
        cap = options["max_length"]
        if cap is not None and cap < min(config["lengths"]):
            raise PlanError(
                f"Invalid config key 'models.{model}.max_length': {cap} is below every length of 'lengths' "
                f"({sorted(config['lengths'])}), so the model would have nothing to compress; allowed: "
                f"max_length >= {min(config['lengths'])}, or null for the whole grid"
            )
        longest = max(model_lengths(config, model))
        # every context in the registry holds 2048 positions: only a longer grid reads a file's
        context = known_context((registry or {}).get(model), read_files=1 + longest > SMALLEST_CONTEXT)
        if context is not None and 1 + longest > context:
            raise PlanError(
                f"Invalid config key 'lengths': {longest} tokens and 1 [mem] vector exceed the {context} "
                f"positions of model {model!r}; allowed: lengths <= {context - 1}, or set "
                f"models.{model}.max_length"
            )


SMALLEST_CONTEXT = 2048  # Pythia, OPT (the paper's smallest); random models' default max_positions


def known_context(entry: dict | None, read_files: bool = True) -> int | None:
    """A registry entry's context window where it is known without loading the model: a
    random model's max_positions, a GGUF file's context_length (its metadata, when
    `read_files`); None where it is not (a hub model: the job checks it once loaded)."""
    if not entry or entry.get("family") == "mamba":
        return None
    if entry.get("source") == "random":
        return int(entry.get("max_positions", 2048))  # memcap.core.models.ModelSpec's default
    if entry.get("source") == "gguf" and read_files:
        from gguf import GGUFReader

        from memcap.io import package_file

        fields = GGUFReader(package_file(entry["package"], entry["file"])).fields
        found = [f.parts[f.data[0]][0] for k, f in fields.items() if k.endswith(".context_length")]
        return int(found[0]) if found else None
    return None


def check_geometry(config: dict, registry: dict) -> None:
    model = config["geometry"]["model"]
    if model is None:
        return
    if model not in registry:
        raise PlanError(
            f"Invalid config key 'geometry.model': unknown model {model!r}; known "
            f"models ({config['models_file']}): {', '.join(registry)}"
        )
    dataset = geometry_dataset(config)
    if dataset not in config["datasets"] or is_random(config, dataset):
        raise PlanError(
            f"Invalid config key 'geometry.dataset': {dataset!r} is not a natural dataset; "
            f"allowed: {', '.join(natural_datasets(config)) or 'none'}"
        )


def check_baselines(config: dict) -> None:
    model = config["baselines"]["model"]
    if model is None:
        return
    if model not in config["models"]:
        raise PlanError(
            f"Invalid config key 'baselines.model': {model!r} is not under models "
            f"(its K = 1 records choose the texts); allowed: {', '.join(config['models'])}"
        )
    for dataset in baselines_datasets(config):
        if dataset not in config["datasets"]:
            raise PlanError(
                f"Invalid config key 'baselines.datasets': unknown dataset {dataset!r}; "
                f"allowed: {', '.join(config['datasets'])}"
            )


def _config_key(config: dict, setting: str, model: str, lengths_key: str) -> str:
    """The config key (or registry entry) a fingerprint setting comes from."""
    top, _, rest = setting.partition(".")
    if top == "model":
        return f"{config['models_file']}: {model}.{rest}"
    keys = {
        "mode": "compress.mode",
        "lengths": lengths_key,
        "cast_weights": "compress.cast_weights",
        "search": f"compress.{setting}",
        "prior": f"models.{model}.prior",
    }
    return keys.get(top, setting)


def check_results(config: dict, registry: dict, jobs: list[tuple[str | Path, Job]]) -> None:
    """Settings that differ from those of existing results stop the run before any job starts.

    `jobs`: (records file, Job) of every model job. A job refuses to resume over parts made
    with other settings (memcap.stages.store); but Snakemake deletes a job's records file
    before running it, so a refusal inside the job would remove results. Compared here, before
    any job, with the fingerprint the job computes (memcap.stages.job.job_fingerprint). memcap's
    torch half is imported only when some results exist; where it cannot be imported
    (Snakemake outside memcap's environment) the jobs still refuse, but only once they run.
    """
    existing = [(Path(r).with_suffix(".parts"), job) for r, job in jobs]
    existing = [(parts, job) for parts, job in existing if (parts / "job.json").is_file()]
    if not existing:
        return
    try:
        from memcap.core.engine import OptimConfig
        from memcap.core.models import ModelSpec, resolve_model
        from memcap.core.prior import file_sha
        from memcap.stages.job import job_fingerprint
        from memcap.stages.store import changed_settings, stored_fingerprint
    except ImportError:
        return
    optim = OptimConfig.from_dict(config["optim"])
    clashes = []
    for parts, job in existing:
        try:  # as the job resolves it: a registry entry, else a local directory or a hub id
            entry = {job.model: ModelSpec(name=job.model, **registry[job.model])} if job.model in registry else {}
            spec = resolve_model(job.model, entry)
        except (TypeError, ValueError) as err:
            raise PlanError(f"Invalid model registry {config['models_file']}: model {job.model!r}: {err}") from None
        prior = job_prior(config, job.model, job.dataset) if job.rule == "compress" else None
        now = job_fingerprint(
            spec,
            protocol=config["protocol"],
            optim=optim,
            dataset=job.dataset,
            mode=job.mode,
            lengths=job.lengths or [],
            cast_weights=config["compress"]["cast_weights"],
            search=config["compress"]["search"],
            prior=file_sha(prior) if prior else None,
        )
        changed = changed_settings(stored_fingerprint(parts), now)
        changed.sort(key=lambda change: change[0] != "optim.preset")  # a preset changes many values: name it first
        if changed:
            clashes.append((parts, job, changed))
    if not clashes:
        return
    parts, job, changed = clashes[0]
    keys = [_config_key(config, setting, job.model, job.lengths_key) for setting, _, _ in changed]
    diffs = "; ".join(f"{key}: {old!r} then, {new!r} now" for key, (_, old, new) in zip(keys, changed, strict=True))
    more = f" (and {len(clashes) - 1} more results folder(s))" if len(clashes) > 1 else ""
    raise PlanError(
        f"Invalid config key {keys[0]!r}: {parts} holds results made with other settings "
        f"({diffs}){more}. Resuming would mix them, so no job was started and nothing was "
        f"removed. Allowed: the settings those results were made with; or another run "
        f"name (key 'run') for the new settings; or delete {parts} and its records file "
        f"to start over"
    )
