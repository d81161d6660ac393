"""The Snakemake workflow: plans, lint, format (snakefmt, ruff), config schema, smoke run, resume after a kill.

pytest tests/test_workflow.py -m "not slow"     # dry runs, schema, lint (about 30 s)
pytest tests/test_workflow.py                   # plus the smoke run and the kill test
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT, plan, snakemake, write_config

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def schema_keys(node, path=""):
    """(path, subschema) of every key the schema defines, nested ones included."""
    for key, sub in node.get("properties", {}).items():
        yield f"{path}{key}", sub
        yield from schema_keys(sub, f"{path}{key}.")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_keys(node["additionalProperties"], f"{path}*.")


def test_every_schema_key_has_type_description_default():
    keys = list(schema_keys(SCHEMA))
    assert len(keys) > 40
    for path, sub in keys:
        missing = [k for k in ("type", "description", "default") if k not in sub]
        assert not missing, f"schema key {path} lacks {missing}"
        # the default itself must be valid for the key
        jsonschema.Draft202012Validator({k: v for k, v in sub.items() if k != "default"}).validate(sub["default"])


@pytest.mark.parametrize("name", ["config", "demo", "smoke"])
def test_configs_match_schema(name):
    cfg = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(cfg)


def test_paper_plan_has_the_full_grid():
    """Dry run of config/config.yaml: one compress job per model and dataset, each with the
    model's lengths; multi-vector jobs per K with K <= L and K + L within the context."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    jobs = plan(ROOT / "config/config.yaml")
    counts = Counter(j["rule"] for j in jobs)
    models, datasets = cfg["models"], cfg["datasets"]
    assert len(models) == 14
    assert counts["compress"] == len(models) * len(datasets) == 42
    assert counts["download"] == 14  # every paper model comes from the hub, downloaded once
    assert counts["report"] == counts["tables"] == counts["figures"] == counts["all"] == 1
    compress = {(j["wildcards"]["model"], j["wildcards"]["dataset"]): j for j in jobs if j["rule"] == "compress"}
    assert set(compress) == {(m, d) for m in models for d in datasets}
    for (model, dataset), job in compress.items():
        assert job["params"]["K"] == [1]
        assert job["params"]["protocol"] == "paper"
        assert job["params"]["optim"]["max_steps"] == 5000
        assert job["resources"]["gpu"] == 1 and job["threads"] == 4
        if dataset == "random":
            assert job["params"]["lengths"] is None  # each random text has its own length
            up = models[model].get("random_max_length") or cfg["random_max_length"]
            assert any(p.endswith(f"texts/random-{up}.jsonl") for p in job["input"])
        else:
            cap = models[model]["max_length"]
            assert job["params"]["lengths"] == [L for L in cfg["lengths"] if L <= cap]
            assert any(p.endswith(f"models/{model}.json") for p in job["input"])
    assert compress["pythia-160m", "pg19"]["params"]["lengths"][-1] == 512
    assert compress["llama-3.1-8b", "pg19"]["params"]["lengths"][-1] == 3072
    # bigger models ask for more host memory
    assert (
        compress["llama-3.1-8b", "pg19"]["resources"]["mem_mb"] > compress["pythia-160m", "pg19"]["resources"]["mem_mb"]
    )

    multi = {
        (j["wildcards"]["model"], int(j["wildcards"]["K"])): j["params"]["lengths"]
        for j in jobs
        if j["rule"] == "multivector"
    }
    assert {K for m, K in multi if m == "pythia-160m"} == {2, 4, 8, 16, 32, 64, 128}
    assert {K for m, K in multi if m == "llama-3.2-1b"} == {2, 4, 8, 16}
    for (model, K), lengths in multi.items():
        assert lengths and all(K <= L for L in lengths)
        if model == "pythia-160m":
            assert all(K + L <= 2048 for L in lengths)
    assert max(multi["pythia-160m", 32]) == 2016
    assert max(multi["llama-3.2-1b", 16]) == 9216


def test_paper_dry_run_cli():
    proc = snakemake("--dry-run", "--quiet", "rules", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert stats["compress"] == "42" and stats["download"] == "14"


@pytest.mark.parametrize("name", ["demo", "smoke"])
def test_offline_plans(name, tmp_path):
    # planned in an empty folder: a user's own results/ must not change (or refuse) the plan
    jobs = plan(write_config(name, tmp_path / "config.yaml"), workdir=tmp_path)
    rules = Counter(j["rule"] for j in jobs)
    assert rules["download"] == 0  # gguf and random models need no download
    assert rules["compress"] == 2
    compress = [j for j in jobs if j["rule"] == "compress"]
    assert all(j["resources"]["gpu"] == 0 for j in compress)
    # --configfile replaces config/config.yaml: the paper's 14 models are not merged in
    assert {j["wildcards"]["model"] for j in compress} == {"smollm2-135m" if name == "demo" else "tiny-gpt-neox"}


def test_cast_weights_reach_every_model_job_and_default_to_off(tmp_path):
    jobs = plan(ROOT / "config" / "smoke.yaml")
    model_jobs = [j for j in jobs if j["rule"] in ("compress", "multivector")]
    assert model_jobs and all(j["params"]["cast_weights"] is False for j in model_jobs)
    on = dict(compress={"cast_weights": True})
    jobs = plan(write_config("smoke", tmp_path / "c.yaml", **on))
    assert all(j["params"]["cast_weights"] is True for j in jobs if j["rule"] in ("compress", "multivector"))


SEARCH_K12 = dict(
    compress={"mode": "search"},
    multivector={"tiny-gpt-neox": {"dataset": "lee", "K": [1, 2], "lengths": [4, 8, 16]}},
)


@pytest.mark.parametrize("mode", ["search", "grid"])
def test_multivector_k1_beside_the_k1_grid_computes_each_cell_once(tmp_path, mode):
    """K = 1 in a multi-vector grid of a model that also runs the K = 1 grid: in grid mode the
    multivector K1 job takes the lengths the K = 1 grid lacks; in search mode a text has one
    K = 1 search, the compress job's, through both grids' lengths, and no K1 job runs."""
    changes = dict(SEARCH_K12, compress=dict(SEARCH_K12["compress"], mode=mode))
    jobs = plan(write_config("smoke", tmp_path / "c.yaml", **changes))
    compress = {j["wildcards"]["dataset"]: j["params"] for j in jobs if j["rule"] == "compress"}
    multi = {int(j["wildcards"]["K"]): j["params"] for j in jobs if j["rule"] == "multivector"}
    assert compress["random"]["mode"] == "grid" and compress["random"]["lengths"] is None
    assert compress["lee"]["mode"] == mode and multi[2]["lengths"] == [4, 8, 16]
    if mode == "search":
        assert compress["lee"]["lengths"] == [4, 8, 16] and set(multi) == {2}
    else:
        assert compress["lee"]["lengths"] == [4, 8] and multi[1]["lengths"] == [16]


def test_lint_is_clean():
    proc = snakemake("--lint", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout


def test_snakefmt_is_clean():
    proc = subprocess.run(
        ["timeout", "60", str(BIN / "snakefmt"), "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def ruff(*args) -> subprocess.CompletedProcess:
    """ruff (a test dependency, pinned in pyproject.toml) from the repository root, its settings there."""
    return subprocess.run(
        ["timeout", "60", str(BIN / "ruff"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_ruff_check_is_clean():
    proc = ruff("check", "--no-cache", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_ruff_format_is_clean():
    proc = ruff("format", "--check", "--no-cache", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stderr + proc.stdout + "(`make format` formats them)"


@pytest.mark.parametrize(
    "changes, expected",
    [
        # a misspelled key names itself and the allowed keys
        (
            {"optim": {"max_step": 10}},
            ["'optim'", "'max_step' was unexpected", "allowed keys: preset, lr, beta1"],
        ),
        (
            {"models": {"tiny-gpt-neox": {"max_lenght": 4}}},
            ["'models.tiny-gpt-neox'", "'max_lenght' was unexpected", "max_length"],
        ),
        # a wrong type names the key and the type allowed
        ({"optim": {"max_steps": "many"}}, ["'optim.max_steps'", "not of type 'integer'"]),
        ({"protocol": "lax"}, ["'protocol'", "allowed: paper, strict"]),
        ({"optim": {"preset": "quick"}}, ["'optim.preset'", "allowed: paper, fast, max"]),
        ({"optim": {"schedule": "linear"}}, ["'optim.schedule'", "constant", "cosine"]),
        # an unknown model names the known ones
        ({"models": {"gpt-17": {}}}, ["'models.gpt-17'", "unknown model 'gpt-17'", "tiny-gpt-neox"]),
        ({"multivector": {"gpt-17": {"dataset": "lee"}}}, ["'multivector.gpt-17'", "unknown model"]),
        ({"geometry": {"model": "gpt-17"}}, ["'geometry.model'", "unknown model 'gpt-17'"]),
        ({"geometry": {"model": "tiny-llama", "dataset": "random"}}, ["'geometry.dataset'", "allowed: lee"]),
        ({"baselines": {"model": "tiny-llama"}}, ["'baselines.model'", "allowed: tiny-gpt-neox"]),
        (
            {"datasets": {"lee": {"source": "package", "package": "gensim", "file": "x", "samples": 0}}},
            ["'datasets.lee.samples'", "minimum 1"],
        ),
        # the engine's own limits are the schema's: AdamW needs beta < 1
        ({"optim": {"beta1": 1.0}}, ["'optim.beta1'", "exclusiveMaximum 1"]),
        ({"optim": {"beta2": 1}}, ["'optim.beta2'", "exclusiveMaximum 1"]),
        # a local file that is not there, before any job reads it
        (
            {"datasets": {"mine": {"source": "file", "path": "no/such/texts.txt"}}},
            ["'datasets.mine.path'", "no such file 'no/such/texts.txt'", "allowed: an existing local text file"],
        ),
        # the paper protocol never scores the first token: a length of 1 has nothing to score
        ({"lengths": [1, 4]}, ["'lengths'", "allowed: lengths >= 2"]),
        # a renamed key (memcap.config_keys) in both spellings, and a misspelled new block key
        (
            {"compress": {"threads": 2}, "resources": {"threads": 1}},
            ["'compress.threads'", "deprecated name of 'resources.threads', which is set too"],
        ),
        ({"resources": {"thread": 1}}, ["'resources'", "'thread' was unexpected", "allowed keys: device"]),
    ],
)
def test_config_errors_name_the_key(tmp_path, changes, expected):
    cfg = write_config("smoke", tmp_path / "bad.yaml", **changes)
    proc = snakemake("--dry-run", "--configfile", cfg, timeout=60)
    assert proc.returncode != 0
    message = next((line for line in proc.stdout.splitlines() if "Invalid config key" in line), "")
    for part in expected:
        assert part in message, proc.stdout[-3000:]


def test_old_key_names_plan_the_same_jobs_and_warn_naming_the_new_ones(tmp_path):
    """Keys renamed in this release (memcap.config_keys) keep working: the same plan, params
    included (so the same job fingerprints), and one warning per old key."""
    from test_config_keys import old_spelling

    new = write_config("smoke", tmp_path / "new.yaml")
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(old_spelling(yaml.safe_load(new.read_text())), sort_keys=False))
    assert "vectors" in old.read_text() and "resources" not in old.read_text()
    assert plan(old) == plan(new)
    proc = snakemake("--dry-run", "--configfile", old, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for was, now in [("compress.threads", "resources.threads"), ("compress.batch_size", "resources.batch_size"),
                     ("multivector.tiny-gpt-neox.vectors", "multivector.tiny-gpt-neox.K"),
                     ("geometry.steps", "geometry.points")]:  # fmt: skip
        assert f"Config key '{was}' is deprecated: use '{now}' instead" in proc.stdout, proc.stdout[-3000:]
    proc = snakemake("--dry-run", "--configfile", new, timeout=120)
    assert proc.returncode == 0 and "is deprecated" not in proc.stdout


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke config run to its PDF in a folder of its own: (folder, config file). Shared by
    the tests marked xdist_group("smoke_run"), which only read it or leave it as it was."""
    work = tmp_path_factory.mktemp("smoke")
    cfg = write_config("smoke", work / "smoke.yaml")
    proc = snakemake(
        "--cores", "2", "--snakefile", ROOT / "Snakefile", "--directory", work,
        "--configfile", cfg, cwd=work, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    return work, cfg


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_run")
def test_smoke_runs_to_a_pdf(smoke_run):
    tmp_path, cfg = smoke_run
    out = tmp_path / "results/smoke"
    pdf = out / "report/report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    for name in ("table1", "summary", "multivector", "pass_rate"):
        assert (out / f"tables/{name}.csv").is_file()
    for name in ("capacity", "ce_scatter", "utilisation", "accuracy_vs_length", "multivector"):
        assert (out / f"figures/{name}.png").is_file()
    records = [json.loads(x) for x in (out / "compress/tiny-gpt-neox/lee.jsonl").read_text().splitlines()]
    assert sorted((r["L"], r["sample_id"]) for r in records) == [
        (4, "lee-0000"), (4, "lee-0001"), (8, "lee-0000"), (8, "lee-0001"),
    ]  # fmt: skip
    random = [json.loads(x) for x in (out / "compress/tiny-gpt-neox/random.jsonl").read_text().splitlines()]
    texts = [json.loads(x) for x in (out / "texts/random-8.jsonl").read_text().splitlines()]
    assert sorted(r["L"] for r in random) == sorted(t["length"] for t in texts)
    multi = [json.loads(x) for x in (out / "multivector/tiny-gpt-neox/lee/K2.jsonl").read_text().splitlines()]
    assert {r["K"] for r in multi} == {2} and len(multi) == 4
    # geometry (Figures 7, 8) and classical baselines (Appendix F), both in the report
    runs = pd.read_csv(out / "geometry/runs.csv")
    assert len(runs) == 2 * 3 and runs.converged.any()
    assert (out / "geometry/geometry_interpolation.png").is_file()
    table = pd.read_csv(out / "baselines/table.csv", dtype=str, keep_default_na=False)
    assert list(table.Source[table.Values == "this run"]) == ["lee", "random"]
    assert json.loads((out / "baselines/summary.json").read_text())["arithmetic_exact"] == 5
    tex = (out / "report/report.tex").read_text()
    assert r"figures/geometry\_cosine.pdf" in tex and "tables/baselines.tex" in tex
    # precision: 30 steps leave the tiny model nothing lossless, so the stage scores no sample
    assert json.loads((out / "precision/summary.json").read_text())["samples"] == 0
    assert "has no lossless sample" in tex and (out / "precision/precision.png").is_file()
    for bench in (
        "texts/lee",
        "random_texts/random-8",
        "vocab/wordfreq",
        "compress/tiny-gpt-neox/lee",
        "multivector/tiny-gpt-neox/lee/K2",
        "tables",
        "figures",
        "report",
        "geometry",
        "baselines",
        "precision/tiny-gpt-neox",
        "precision_summary",
    ):
        assert (out / f"benchmarks/{bench}.tsv").is_file(), bench
    assert (out / "logs/compress/tiny-gpt-neox/lee.log").is_file()
    # the HTML report of snakemake --report shows the figures with their captions
    html = tmp_path / "report.html"
    proc = snakemake(
        "--snakefile", ROOT / "Snakefile", "--directory", tmp_path, "--configfile", cfg,
        "--report", html, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "accuracy_vs_length.png" in html.read_text(errors="replace")


def test_precision_plans_one_job_per_model_and_is_skipped_when_off(tmp_path):
    on = plan(write_config("smoke", tmp_path / "on.yaml", multivector={"tiny-llama": {"dataset": "lee", "K": [2]}}))
    jobs = {j["wildcards"]["model"]: j for j in on if j["rule"] == "precision"}
    assert set(jobs) == {"tiny-gpt-neox", "tiny-llama"}
    assert jobs["tiny-gpt-neox"]["params"]["datasets"] == ["lee", "random"]
    assert jobs["tiny-gpt-neox"]["params"]["formats"] == ["bfloat16", "float16", "int8", "int4"]
    assert any(p.endswith("texts/random-8.jsonl") for p in jobs["tiny-gpt-neox"]["input"])
    assert [p for p in jobs["tiny-llama"]["input"] if p.endswith(".jsonl") and "texts" not in p] == [
        "results/smoke/multivector/tiny-llama/lee/K2.jsonl"]  # fmt: skip
    summary = next(j for j in on if j["rule"] == "precision_summary")
    assert "results/smoke/baselines/rows.csv" in summary["input"]  # the classical ratios beside
    off = plan(write_config("smoke", tmp_path / "off.yaml", precision={}))
    assert not {"precision", "precision_summary"} & {j["rule"] for j in off}


def test_the_report_reads_the_files_of_its_input_rules_by_their_names(tmp_path):
    """Each file name is written once, in a rule's output: the report's params name the files
    of the tables, figures and optional stages' rules as those rules do; a stage that is off
    adds nothing."""
    jobs = {j["rule"]: j for j in plan(write_config("smoke", tmp_path / "on.yaml"), workdir=tmp_path)}
    report = jobs["report"]
    for param, rule in [
        ("tables", "tables"),
        ("figures", "figures"),
        ("geometry", "geometry_figures"),
        ("baselines", "baselines"),
        ("precision", "precision_summary"),
    ]:
        assert sorted(report["params"][param].values()) == sorted(jobs[rule]["output"]), param
        assert set(jobs[rule]["output"]) <= set(report["input"]), param
    assert report["params"]["tables"]["table1_tex"] == "results/smoke/tables/table1.tex"
    assert report["params"]["geometry"]["cosine_pdf"] == "results/smoke/geometry/geometry_cosine.pdf"
    assert report["params"]["baselines"]["tex"] == "results/smoke/baselines/table.tex"
    assert report["params"]["precision"]["ratio_tex"] == "results/smoke/precision/ratio.tex"
    # the stages' functions take exactly these names; their default files are the rule's
    from memcap.analysis import geometry_figures, precision_summary
    from memcap.stages import baselines

    for stage, module in [("geometry", geometry_figures), ("baselines", baselines), ("precision", precision_summary)]:
        files = report["params"][stage]
        assert set(files) == set(module.OUTPUTS), stage
        assert module.output_paths(f"results/smoke/{stage}") == {k: Path(v) for k, v in files.items()}, stage
    off = plan(write_config("smoke", tmp_path / "off.yaml", geometry={}, baselines={}, precision={}), workdir=tmp_path)
    report = next(j for j in off if j["rule"] == "report")
    assert report["params"]["geometry"] == report["params"]["baselines"] == report["params"]["precision"] == {}
    assert not {"geometry_figures", "baselines", "precision_summary"} & {j["rule"] for j in off}


@pytest.mark.slow
def test_precision_stage_on_lossless_vectors_runs_to_the_report(tmp_path):
    """A budget that lets tiny-llama decode 4-token texts: the stage rounds real lossless
    vectors, and the report shows its tables beside the classical compressors."""
    cfg = write_config(
        "smoke", tmp_path / "precision.yaml", run="precision", lengths=[4, 8], models={"tiny-llama": {}},
        datasets={"lee": {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor",
                          "samples": 3}},
        multivector={}, geometry={}, baselines={"model": "tiny-llama"},
        optim={"lr": 0.3, "max_steps": 200, "patience": 200}, precision={"enabled": True, "pca": [1]},
    )  # fmt: skip
    proc = snakemake("--cores", "2", "--snakefile", ROOT / "Snakefile", "--directory", tmp_path,
                     "--configfile", cfg, cwd=tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    out = tmp_path / "results/precision"
    source = [json.loads(x) for x in (out / "compress/tiny-llama/lee.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (out / "precision/tiny-llama.jsonl").read_text().splitlines()]
    lossless = sorted((r["L"], r["sample_id"]) for r in source if r["max_accuracy"] >= 0.99)
    assert lossless and sorted((r["L"], r["sample_id"]) for r in rows) == lossless
    assert all(list(r["precisions"]) == ["float32", "bfloat16", "float16", "int8", "int4", "pca1"] for r in rows)
    shares = pd.read_csv(out / "precision/shares.csv")
    assert (shares[shares.format == "float32"].share_lossless == 1.0).all()
    ratio = pd.read_csv(out / "precision/ratio.csv", dtype=str, keep_default_na=False).iloc[0]
    assert ratio["lzma"] != "n/a"  # the baselines stage's ratio on the same model and source
    tex = (out / "report/report.tex").read_text()
    assert r"\input{tables/precision_ratio.tex}" in tex and "figures/precision.pdf" in tex


@pytest.mark.slow
def test_search_with_k1_in_the_multivector_grid_runs_to_tables_and_figures(tmp_path):
    cfg = write_config("smoke", tmp_path / "search.yaml", run="searchk", geometry={}, baselines={}, **SEARCH_K12)
    out = tmp_path / "results/searchk"
    targets = ["results/searchk/tables/search.csv", "results/searchk/figures/multivector.png"]
    proc = snakemake(*targets, "--cores", "2", "--snakefile", ROOT / "Snakefile", "--directory", tmp_path,
                     "--configfile", cfg, cwd=tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert not (out / "multivector/tiny-gpt-neox/lee/K1.jsonl").exists()
    records = [json.loads(x) for x in (out / "compress/tiny-gpt-neox/lee.jsonl").read_text().splitlines()]
    last = Counter(r["sample_id"] for r in records if r["capacity"] is not None)
    assert last == {"lee-0000": 1, "lee-0001": 1}  # one search per text at K = 1
    search = pd.read_csv(out / "tables/search.csv", dtype=str)
    assert list(search.K) == ["1", "2"] and set(search.Samples) == {"2"}


@pytest.mark.slow
def test_random_text_named_noise_and_short_texts_in_a_real_run(tmp_path):
    """A `source: random` dataset named `noise` is random text in every table and the report;
    a local file of texts shorter than L = 8 tokens (5 and 6 tokens, the tiny tokenizer's
    count) leaves L = 8 without samples instead of letting it look lossless."""
    (tmp_path / "short.txt").write_text("Dogs ran. We ate.\nThe sun set. Night came.\n")
    datasets = {
        "lee": {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor", "samples": 2},
        "noise": {"source": "random", "vocab": "wordfreq", "samples": 3, "seed": 0},
        "shorty": {"source": "file", "path": "short.txt", "samples": 2},
    }
    cfg = write_config("smoke", tmp_path / "noise.yaml", run="noise", datasets=datasets, multivector={},
                       geometry={}, baselines={})  # fmt: skip
    proc = snakemake(
        "--cores", "2", "--snakefile", ROOT / "Snakefile", "--directory", tmp_path, "--configfile", cfg,
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    out = tmp_path / "results/noise"
    texts = [json.loads(x) for x in (out / "texts/noise-8.jsonl").read_text().splitlines()]
    records = [json.loads(x) for x in (out / "compress/tiny-gpt-neox/noise.jsonl").read_text().splitlines()]
    assert {t["kind"] for t in texts} == {r["kind"] for r in records} == {"random"}
    p = pd.read_csv(out / "tables/pass_rate.csv", dtype=str, keep_default_na=False)
    assert list(p[p.Source == "noise"].Lengths) == ["1-8"]  # random text: a length bin
    assert list(p[p.Source == "lee"].Lengths) == ["4", "8"]
    shorty = p[p.Source == "shorty"].set_index("Lengths")
    assert shorty.loc["4", "Samples"] == "2" and shorty.loc["4", "Short"] == "0"
    assert shorty.loc["8", "Samples"] == "0" and shorty.loc["8", "Short"] == "2"
    assert shorty.loc["8", "Pass rate"] == "n/a"
    t1 = pd.read_csv(out / "tables/table1.csv", dtype=str, keep_default_na=False)
    assert list(dict.fromkeys(t1.Source)) == ["lee", "shorty", "noise"]  # random text last
    capacity = t1[(t1.Source == "shorty") & (t1.Metric == "Max tokens") & (t1.Values == "this run")]
    assert capacity["tiny-gpt-neox"].iloc[0] in (">=4", "<4")  # never 8: only 4 has samples
    tex = (out / "report/report.tex").read_text()
    assert "noise & random & random" in tex and "shorty & natural & none" in tex
    assert "2 records of texts shorter than their length" in tex


def snapshot(folder):
    """{path: bytes} of every file under `folder`."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_run")
def test_a_refused_settings_change_removes_nothing(smoke_run, tmp_path):
    """After a finished run, other optimiser settings (or another registry entry) for the same
    run: refused before any job starts, naming the key; every file is as it was."""
    work, cfg = smoke_run
    opts = ["--cores", "2", "--snakefile", ROOT / "Snakefile", "--directory", work]
    targets = ["results/smoke/report/report.pdf"]
    out = work / "results/smoke"
    before = snapshot(out)
    assert {"compress/tiny-gpt-neox/lee.jsonl", "compress/tiny-gpt-neox/random.jsonl", "tables/table1.csv"} <= {
        str(p) for p in before
    }

    lr = write_config("smoke", tmp_path / "lr.yaml", optim={"max_steps": 30, "patience": 10, "lr": 0.1})
    for dry in ([], ["--dry-run"]):
        proc = snakemake(*targets, *opts, "--configfile", lr, *dry, cwd=work, timeout=300)
        assert proc.returncode != 0
        message = next(line for line in proc.stdout.splitlines() if "Invalid config key" in line)
        assert message.startswith("Invalid config key 'optim.lr': results/smoke/compress/tiny-gpt-neox/")
        assert "optim.lr: 0.01 then, 0.1 now" in message and "nothing was removed" in message
        assert "another run name (key 'run')" in message
        assert snapshot(out) == before

    models = yaml.safe_load((ROOT / "config/models.yaml").read_text())
    models["tiny-gpt-neox"]["hidden_size"] = 32
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    registry = write_config("smoke", tmp_path / "registry.yaml")
    changed = yaml.safe_load(registry.read_text()) | {"models_file": str(tmp_path / "models.yaml")}
    registry.write_text(yaml.safe_dump(changed))
    proc = snakemake(*targets, *opts, "--configfile", registry, cwd=work, timeout=300)
    assert proc.returncode != 0
    assert f"'{tmp_path}/models.yaml: tiny-gpt-neox.hidden_size'" in proc.stdout
    assert "64 then, 32 now" in proc.stdout
    assert snapshot(out) == before

    # the settings the results were made with: nothing to do, and nothing changes
    proc = snakemake(*targets, *opts, "--configfile", cfg, cwd=work, timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    assert snapshot(out) == before


@pytest.mark.slow
def test_killed_compress_job_resumes_without_recomputing(tmp_path):
    """SIGKILL the whole Snakemake process group mid-job; the rerun keeps finished batches."""
    cfg = write_config(
        "smoke", tmp_path / "kill.yaml", run="kill", lengths=[4, 6, 8, 10, 12, 14],
        multivector={}, optim={"max_steps": 150, "patience": 150},
        resources={"batch_size": 1, "device": "cpu", "gpu": 0, "threads": 1},
    )  # fmt: skip
    target = "results/kill/compress/tiny-gpt-neox/lee.jsonl"
    opts = ["--snakefile", ROOT / "Snakefile", "--directory", tmp_path, "--configfile", cfg]  # last: nargs
    cmd = ["timeout", "-k", "30", "300", str(BIN / "snakemake"), target, "--cores", "1", *map(str, opts)]
    parts = tmp_path / "results/kill/compress/tiny-gpt-neox/lee.parts"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while len(list(parts.glob("*.jsonl"))) < 3:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no parts appeared"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group: timeout, snakemake and the job
        proc.wait()
    assert not (tmp_path / target).exists(), "the job finished before the kill: make it longer"
    before = {}
    for part in parts.glob("*.jsonl"):
        for line in part.read_text().splitlines():
            r = json.loads(line)
            before[r["K"], r["L"], r["sample_id"]] = (r["wall_s"], r["seed"], r["steps"])
    assert 3 <= len(before) < 12

    snakemake("--unlock", *opts, cwd=tmp_path, timeout=60, check=True)  # SIGKILL left the lock
    proc2 = snakemake(target, "--cores", "1", "--rerun-incomplete", *opts, cwd=tmp_path, timeout=300)
    assert proc2.returncode == 0, proc2.stdout[-5000:]
    records = [json.loads(x) for x in (tmp_path / target).read_text().splitlines()]
    keys = Counter((r["K"], r["L"], r["sample_id"]) for r in records)
    assert len(keys) == 12 and set(keys.values()) == {1}  # each (K, L, sample) once
    for r in records:
        key = (r["K"], r["L"], r["sample_id"])
        if key in before:  # finished before the kill: taken over, not recomputed
            assert (r["wall_s"], r["seed"], r["steps"]) == before[key]
    job_log = (tmp_path / "results/kill/logs/compress/tiny-gpt-neox/lee.log").read_text()
    done, todo = map(int, re.findall(r"(\d+) samples done before, (\d+) to do", job_log)[-1])
    assert done >= len(before) and done + todo == 12  # the rerun computed only the rest
