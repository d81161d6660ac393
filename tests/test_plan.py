"""The workflow's plan (memcap.stages.plan), in-process: the grids, the K = 1 grid shared with a
multi-vector grid, the config checks and the check of existing results.

The Snakemake side (the same plans and messages through a dry run) is in tests/test_workflow.py.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from conftest import ROOT
from job_fixtures import job_json
from memcap.stages import plan
from memcap.stages.plan import Job, PlanError

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
REGISTRY = plan.read_registry(ROOT / "config/models.yaml")


def config(base="smoke", **changes) -> dict:
    """config/<base>.yaml with `changes` (top-level keys), every default filled in as the
    Snakefile's schema validation does."""
    cfg = yaml.safe_load((ROOT / "config" / f"{base}.yaml").read_text())
    cfg["models_file"] = str(ROOT / "config/models.yaml")
    cfg.update(copy.deepcopy(changes))
    validate(cfg, str(SCHEMA))
    return cfg


def multi(K, lengths=None, dataset="lee", **grid):
    """A multivector block for tiny-gpt-neox."""
    return {"tiny-gpt-neox": {"dataset": dataset, "K": K, "lengths": lengths, **grid}}


# --- the grids ------------------------------------------------------------------------------


def test_smoke_plans_one_compress_job_per_dataset_and_one_multivector_job():
    jobs = plan.model_jobs(config())
    assert jobs == [
        Job("compress", "tiny-gpt-neox", "lee", 1, [4, 8], "grid", "lengths"),
        Job("compress", "tiny-gpt-neox", "random", 1, None, "grid", "lengths"),
        Job("multivector", "tiny-gpt-neox", "lee", 2, [4, 8], "grid", "multivector.tiny-gpt-neox.lengths"),
    ]
    assert jobs[0].wildcards == {"model": "tiny-gpt-neox", "dataset": "lee"}
    assert jobs[2].wildcards == {"model": "tiny-gpt-neox", "dataset": "lee", "K": 2}


def test_search_mode_searches_natural_text_and_runs_the_grid_on_random_text():
    cfg = config(compress={"mode": "search"})
    assert [(j.dataset, j.mode) for j in plan.model_jobs(cfg)] == [
        ("lee", "search"),
        ("random", "grid"),
        ("lee", "search"),
    ]


def test_a_models_max_length_caps_its_lengths_and_duplicates_count_once():
    cfg = config(lengths=[16, 4, 8, 32], models={"tiny-gpt-neox": {"max_length": 16}})
    assert plan.model_lengths(cfg, "tiny-gpt-neox") == [4, 8, 16]
    assert plan.compress_lengths(cfg, "tiny-gpt-neox", "lee") == [4, 8, 16]
    assert plan.compress_lengths(cfg, "tiny-gpt-neox", "random") is None


@pytest.mark.parametrize(
    "grid, K, expected",
    [
        ({}, 4, [4, 8, 16, 32]),
        ({}, 16, [16, 32]),  # K <= L
        ({"max_context": 24}, 8, [8, 16]),  # K + L within the context
        ({"max_length_per_vector": 4}, 2, [4, 8]),  # L <= K * per-vector cap
        ({"lengths": [64, 2]}, 2, [2, 64]),  # the grid's own lengths, sorted
    ],
)
def test_multivector_grid_lengths(grid, K, expected):
    cfg = config(lengths=[32, 4, 8, 16], multivector=multi([K], **grid))
    assert plan.multivector_grid_lengths(cfg, "tiny-gpt-neox", K) == expected


@pytest.mark.parametrize(
    "mode, compress, k1",
    [
        ("grid", [4, 8], [16]),  # the K1 job takes only the lengths the K = 1 grid lacks
        ("search", [4, 8, 16], []),  # one search per text: the compress job's, through both
    ],
)
def test_k1_in_a_multivector_grid_is_shared_with_the_k1_grid(mode, compress, k1):
    cfg = config(compress={"mode": mode}, multivector=multi([1, 2], lengths=[4, 8, 16]))
    assert plan.k1_lengths(cfg, "tiny-gpt-neox", "lee") == (compress, k1)
    assert plan.compress_lengths(cfg, "tiny-gpt-neox", "lee") == compress
    assert plan.multivector_lengths(cfg, "tiny-gpt-neox", 1) == k1
    assert plan.multivector_lengths(cfg, "tiny-gpt-neox", 2) == [4, 8, 16]
    jobs = {(j.rule, j.dataset, j.K): j.lengths for j in plan.model_jobs(cfg)}
    expected = {
        ("compress", "lee", 1): compress,
        ("compress", "random", 1): None,
        ("multivector", "lee", 2): [4, 8, 16],
    }
    assert jobs == expected | ({("multivector", "lee", 1): k1} if k1 else {})


def test_k1_of_a_model_without_the_k1_grid_runs_every_length():
    cfg = config(
        compress={"mode": "search"},
        multivector={"tiny-llama": {"dataset": "lee", "K": [1], "lengths": [4, 8, 16]}},
    )
    assert plan.k1_lengths(cfg, "tiny-llama", "lee") == (None, [4, 8, 16])
    assert plan.compress_lengths(cfg, "tiny-gpt-neox", "lee") == [4, 8]
    assert plan.model_jobs(cfg)[-1] == Job(
        "multivector", "tiny-llama", "lee", 1, [4, 8, 16], "search", "multivector.tiny-llama.lengths"
    )


def test_a_multivector_job_without_lengths_is_not_planned():
    cfg = config(multivector=multi([1, 2, 16], lengths=[4, 8]))  # K1: the K = 1 grid has both
    assert [(j.rule, j.K) for j in plan.model_jobs(cfg)] == [("compress", 1), ("compress", 1), ("multivector", 2)]


def test_the_optional_stages_settings():
    cfg = config()
    assert plan.geometry_dataset(cfg) == "lee"
    assert plan.geometry_dataset(config(geometry={"model": "tiny-gpt-neox"})) == "lee"  # the first natural one
    assert plan.geometry_optim(cfg) == cfg["optim"] | {"lr": 0.1, "max_steps": 100}
    assert plan.baselines_datasets(cfg) == ["lee", "random"]
    assert plan.baselines_datasets(config(baselines={"model": "tiny-gpt-neox", "datasets": ["lee"]})) == ["lee"]
    cfg = config(multivector={"tiny-llama": {"dataset": "lee", "K": [2]}})
    assert plan.precision_models(cfg) == ["tiny-gpt-neox", "tiny-llama"]
    assert plan.stage_runs(cfg, "precision") and plan.stage_runs(cfg, "geometry")
    cfg = config(precision={}, geometry={})
    assert plan.precision_models(cfg) == [] and not plan.stage_runs(cfg, "precision")
    assert not plan.stage_runs(cfg, "geometry")


# --- the config checks ----------------------------------------------------------------------


def test_the_shipped_configs_pass_the_checks():
    for name in ("smoke", "demo", "config"):
        plan.check_config(config(name), REGISTRY)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"models": {"gpt-17": {}}},
            "Invalid config key 'models.gpt-17': unknown model 'gpt-17'; known models (",
        ),
        ({"multivector": {"gpt-17": {"dataset": "lee"}}}, "Invalid config key 'multivector.gpt-17': unknown model"),
        (
            {"datasets": {"noise": {"source": "random", "vocab": "nope"}}},
            "Invalid config key 'datasets.noise.vocab': unknown vocabulary 'nope'; defined under vocab: wordfreq",
        ),
        (
            {"datasets": {"mine": {"source": "file", "path": "no/such/texts.txt"}}},
            "Invalid config key 'datasets.mine.path': no such file 'no/such/texts.txt' (looked for ",
        ),
        (
            {"lengths": [1, 4]},
            "Invalid config key 'lengths': length 1 is too short for protocol 'paper', which never scores the "
            "first token; allowed: lengths >= 2",
        ),
        (
            {"multivector": multi([1], lengths=[4, 1])},
            "Invalid config key 'multivector.tiny-gpt-neox.lengths': length 1 is too short for protocol 'paper'",
        ),
        (
            {"multivector": multi([2], dataset="random")},
            "Invalid config key 'multivector.tiny-gpt-neox.dataset': 'random' is not a natural dataset; allowed: lee",
        ),
        ({"geometry": {"model": "gpt-17"}}, "Invalid config key 'geometry.model': unknown model 'gpt-17'; known"),
        (
            {"geometry": {"model": "tiny-llama", "dataset": "random"}},
            "Invalid config key 'geometry.dataset': 'random' is not a natural dataset; allowed: lee",
        ),
        (
            {"baselines": {"model": "tiny-llama"}},
            "Invalid config key 'baselines.model': 'tiny-llama' is not under models (its K = 1 records choose the "
            "texts); allowed: tiny-gpt-neox",
        ),
        (
            {"baselines": {"model": "tiny-gpt-neox", "datasets": ["pg19"]}},
            "Invalid config key 'baselines.datasets': unknown dataset 'pg19'; allowed: lee, random",
        ),
    ],
)
def test_config_errors_name_the_key(changes, message):
    with pytest.raises(PlanError) as err:
        plan.check_config(config(**changes), REGISTRY)
    assert str(err.value).startswith(message), str(err.value)


def test_a_schema_error_names_the_key_and_what_is_allowed():
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    assert plan.schema_error(cfg, SCHEMA) == "the config does not match workflow/schemas/config.schema.yaml"
    message = plan.schema_error(cfg | {"protocol": "lax"}, SCHEMA)
    assert message.startswith("Invalid config key 'protocol': 'lax' is not one of ['paper', 'strict']; allowed: ")
    assert "allowed: paper, strict. (" in message
    message = plan.schema_error(cfg | {"optim": {"max_step": 10}}, SCHEMA)
    assert message.startswith("Invalid config key 'optim': Additional properties are not allowed ('max_step' was")
    assert "; allowed keys: preset, lr, beta1" in message
    message = plan.schema_error(cfg | {"optim": {"beta1": 1.0}}, SCHEMA)
    assert message.startswith("Invalid config key 'optim.beta1': 1.0 is greater than or equal to the maximum of 1")
    assert "; allowed: ['number', 'null'], minimum 0, exclusiveMaximum 1. (AdamW beta1" in message


# --- existing results ------------------------------------------------------------------------


def fingerprint(cfg, job, registry=REGISTRY, **changes):
    """job_fixtures.job_json with this module's registry."""
    return job_json(cfg, job, registry, **changes)


def results(tmp_path, cfg, made_with=None):
    """(records file, Job) of every job of `cfg` under tmp_path; the parts folders of those in
    `made_with` ({index: job.json}) exist."""
    jobs = [(tmp_path / f"{j.rule}-{j.model}-{j.dataset}-K{j.K}.jsonl", j) for j in plan.model_jobs(cfg)]
    for index, stored in (made_with or {}).items():
        parts = jobs[index][0].with_suffix(".parts")
        parts.mkdir()
        (parts / "job.json").write_text(json.dumps(stored))
    return jobs


def test_no_results_or_the_same_settings_pass(tmp_path):
    cfg = config()
    plan.check_results(cfg, REGISTRY, results(tmp_path, cfg))
    jobs = plan.model_jobs(cfg)
    made_with = {i: fingerprint(cfg, job) for i, job in enumerate(jobs)}
    plan.check_results(cfg, REGISTRY, results(tmp_path, cfg, made_with))


def test_other_optimiser_settings_name_the_key_and_the_values(tmp_path):
    cfg = config(optim={"max_steps": 30, "patience": 10, "lr": 0.1})
    then = config(optim={"max_steps": 30, "patience": 10, "lr": 0.01})
    jobs = plan.model_jobs(cfg)
    made_with = {0: fingerprint(then, jobs[0]), 2: fingerprint(then, jobs[2])}
    with pytest.raises(PlanError) as err:
        plan.check_results(cfg, REGISTRY, results(tmp_path, cfg, made_with))
    parts = tmp_path / "compress-tiny-gpt-neox-lee-K1.parts"
    assert str(err.value) == (
        f"Invalid config key 'optim.lr': {parts} holds results made with other settings "
        "(optim.lr: 0.01 then, 0.1 now) (and 1 more results folder(s)). Resuming would mix them, so no "
        "job was started and nothing was removed. Allowed: the settings those results were made with; or "
        f"another run name (key 'run') for the new settings; or delete {parts} and its records file to "
        "start over"
    )


def test_a_models_prior_goes_to_its_search_jobs_and_a_new_one_is_refused_over_old_results(tmp_path):
    """models.<name>.prior: the K = 1 search job of natural text takes it (random text runs the
    grid, multivector its own K); results made without it (or with another file) are not
    resumed with it, and the error names the key; a missing file or the grid fails at planning."""
    prior = tmp_path / "tiny.prior.safetensors"
    prior.write_bytes(b"a prior")  # planning only hashes it; the job checks what it holds
    search = {"mode": "search"}
    cfg = config(compress=search, models={"tiny-gpt-neox": {"prior": str(prior)}}, multivector=multi([2], [8]))
    plan.check_config(cfg, REGISTRY)
    jobs = plan.model_jobs(cfg)
    assert [(j.rule, j.dataset, plan.job_prior(cfg, j.model, j.dataset)) for j in jobs][:2] == [
        ("compress", "lee", str(prior)),
        ("compress", "random", None),
    ]
    before = config(compress=search, multivector=multi([2], [8]))
    made_with = {i: fingerprint(before, job) for i, job in enumerate(jobs)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plan.check_results(before, REGISTRY, results(tmp_path / "a", before, made_with))  # as they were made
    with pytest.raises(PlanError) as err:
        plan.check_results(cfg, REGISTRY, results(tmp_path / "b", cfg, made_with))
    assert str(err.value).startswith("Invalid config key 'models.tiny-gpt-neox.prior': ")
    assert "(models.tiny-gpt-neox.prior: None then, '" in str(err.value)  # the file's sha1 now
    for changes, says in (
        ({"models": {"tiny-gpt-neox": {"prior": "no/such.safetensors"}}}, "no such file 'no/such.safetensors'"),
        ({"models": {"tiny-gpt-neox": {"prior": str(prior)}}}, "compress.mode is 'grid', allowed with a prior"),
    ):
        with pytest.raises(PlanError, match=f"Invalid config key 'models.tiny-gpt-neox.prior': .*{says}"):
            plan.check_config(config(**changes), REGISTRY)


def test_a_preset_is_named_first(tmp_path):
    from memcap.core.engine import OptimConfig

    cfg = config(optim={"preset": "fast"})
    made_with = {0: fingerprint(cfg, plan.model_jobs(cfg)[0], optim=OptimConfig.from_dict({}))}
    with pytest.raises(
        PlanError, match=r"^Invalid config key 'optim.preset': .*\(optim.preset: None then, 'fast' now; "
    ):
        plan.check_results(cfg, REGISTRY, results(tmp_path, cfg, made_with))


def test_another_registry_entry_names_the_registry_file_and_the_model(tmp_path):
    cfg = config()
    registry = copy.deepcopy(REGISTRY)
    registry["tiny-gpt-neox"]["hidden_size"] = 32
    jobs = results(tmp_path, cfg, {1: fingerprint(cfg, plan.model_jobs(cfg)[1])})
    with pytest.raises(PlanError) as err:
        plan.check_results(cfg, registry, jobs)
    assert str(err.value).startswith(f"Invalid config key '{cfg['models_file']}: tiny-gpt-neox.hidden_size': ")
    assert f"({cfg['models_file']}: tiny-gpt-neox.hidden_size: 64 then, 32 now)" in str(err.value)
    registry["tiny-gpt-neox"]["hidden_sise"] = 32  # not a registry key
    with pytest.raises(PlanError, match=r"^Invalid model registry .*models.yaml: model 'tiny-gpt-neox': .*hidden_sise"):
        plan.check_results(cfg, registry, jobs)


SEARCH = dict(compress={"mode": "search"}, multivector=multi([2], lengths=[4, 8, 16]))


@pytest.mark.parametrize(
    "now, index, then, key",
    [
        (SEARCH, 2, {"lengths": [4, 8]}, "multivector.tiny-gpt-neox.lengths"),
        (SEARCH, 0, {"lengths": [4]}, "lengths"),
        (SEARCH, 0, {"search": {"fails": 5}}, "compress.search"),  # the defaults now: no search settings
        (
            {"compress": {"mode": "search", "search": {"fails": 3}}},
            0,
            {"search": {"fails": 5}},
            "compress.search.fails",
        ),
        (SEARCH, 0, {"mode": "grid"}, "lengths"),  # grid parts have neither mode nor lengths
        (SEARCH, 1, {"cast_weights": True}, "compress.cast_weights"),
    ],
)
def test_each_setting_names_its_config_key(tmp_path, now, index, then, key):
    cfg = config(**now)
    made_with = {index: fingerprint(cfg, plan.model_jobs(cfg)[index], **then)}
    with pytest.raises(PlanError, match=rf"^Invalid config key '{key}': "):
        plan.check_results(cfg, REGISTRY, results(tmp_path, cfg, made_with))


def test_without_memcap_s_torch_half_the_check_is_left_to_the_jobs(tmp_path, monkeypatch):
    cfg = config(optim={"lr": 0.1})
    made_with = {0: fingerprint(config(), plan.model_jobs(cfg)[0])}
    jobs = results(tmp_path, cfg, made_with)
    with pytest.raises(PlanError, match="optim.lr"):
        plan.check_results(cfg, REGISTRY, jobs)
    monkeypatch.setitem(sys.modules, "memcap.stages.job", None)  # its import raises ImportError
    plan.check_results(cfg, REGISTRY, jobs)


NO_TORCH = """
import sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "pandas", "transformers"):
            raise ImportError(name)


sys.meta_path.insert(0, NoTorch())
from memcap.stages import plan

config, registry = {config!r}, plan.read_registry({registry!r})
plan.check_config(config, registry)
jobs = [(f"{{j.rule}}-{{j.dataset}}-{{j.K}}.jsonl", j) for j in plan.model_jobs(config)]
plan.check_results(config, registry, jobs)  # no results: nothing imported
print(len(jobs))
"""


def test_planning_needs_no_torch(tmp_path):
    """The Snakefile imports the plan where memcap's dependencies may be missing."""
    source = NO_TORCH.format(config=config(), registry=str(ROOT / "config/models.yaml"))
    done = subprocess.run(
        [sys.executable, "-c", source], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.split() == ["3"], done.stderr[-3000:]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"models": {"tiny-gpt-neox": {"max_length": 3}}},
            "Invalid config key 'models.tiny-gpt-neox.max_length': 3 is below every length of 'lengths' ([4, 8])",
        ),
        (
            {"lengths": [4, 100000]},
            "Invalid config key 'lengths': 100000 tokens and 1 [mem] vector exceed the 2048 positions of model "
            "'tiny-gpt-neox'; allowed: lengths <= 2047",
        ),
    ],
)
def test_lengths_no_model_can_take_fail_at_planning(changes, message):
    with pytest.raises(PlanError) as err:
        plan.check_config(config(**changes), REGISTRY)
    assert str(err.value).startswith(message), str(err.value)
    plan.check_config(config(lengths=[4, 2047]), REGISTRY)  # the longest that fits


def test_a_file_source_is_an_input_of_its_texts_rule(tmp_path):
    """Editing a `source: file` texts file rebuilds its texts (and so the jobs that read them)."""
    from conftest import plan as dry_run
    from conftest import write_config

    mine = tmp_path / "mine.txt"
    mine.write_text("One document on a line of its own, long enough to keep a second half. Two.\n" * 3)
    smoke = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    datasets = {**smoke["datasets"], "mine": {"source": "file", "path": str(mine), "samples": 2}}
    cfg = write_config("smoke", tmp_path / "file.yaml", datasets=datasets)
    texts = [j for j in dry_run(cfg, workdir=tmp_path) if j["rule"] == "texts"]
    inputs = {j["wildcards"]["dataset"]: j["input"] for j in texts}
    assert inputs == {"lee": [], "mine": [str(mine)]}


def test_a_models_prior_is_an_input_and_a_param_of_its_search_job_only(tmp_path):
    """models.<name>.prior: a new prior file reruns the K = 1 search job of natural text; the
    random-text grid and the multivector job (another K) neither read nor get it."""
    from conftest import plan as dry_run
    from conftest import write_config

    prior = tmp_path / "tiny.prior.safetensors"
    prior.write_bytes(b"a prior")
    models = {"tiny-gpt-neox": {"prior": str(prior)}}
    cfg = write_config("smoke", tmp_path / "prior.yaml", models=models, compress={"mode": "search"})
    jobs = [j for j in dry_run(cfg, workdir=tmp_path) if j["rule"] in ("compress", "multivector")]
    got = {(j["rule"], j["wildcards"]["dataset"]): (str(prior) in j["input"], j["params"]["prior"]) for j in jobs}
    assert got == {
        ("compress", "lee"): (True, str(prior)),
        ("compress", "random"): (False, None),
        ("multivector", "lee"): (False, None),
    }


@pytest.mark.slow
def test_a_grid_beyond_smollm2s_context_fails_at_planning():
    """A GGUF model's context comes from its file's metadata, read only for grids over 2048."""
    cfg = config("demo", lengths=[8, 9000])
    with pytest.raises(PlanError, match=r"9000 tokens and 1 \[mem\] vector exceed the 8192 positions"):
        plan.check_lengths(cfg, REGISTRY)
    plan.check_lengths(config("demo", lengths=[8, 8191]), REGISTRY)
