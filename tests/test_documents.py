"""Natural texts chosen by document index (`datasets.<name>.documents`), the demo on the
validation texts, and the report's statement of a paper-budget reference that is not
bracketed on every text yet.

pytest tests/test_documents.py     # a few seconds, one Snakemake dry run
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml
from snakemake.utils import validate

from analysis_fixtures import make_record, write_records
from conftest import ROOT, plan, write_config
from job_fixtures import job_json
from memcap.analysis import report
from memcap.stages import plan as planning
from memcap.stages import texts
from memcap.stages.plan import PlanError

SCHEMA_FILE = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())
REGISTRY = planning.read_registry(ROOT / "config/models.yaml")
LEE = {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor"}
VALIDATION = ROOT / "benchmarks/validation"
TUNING = ROOT / "benchmarks/reference"


def config(base="smoke", **datasets) -> dict:
    """config/<base>.yaml with `datasets` added or replaced, defaults filled in as the Snakefile does."""
    cfg = yaml.safe_load((ROOT / "config" / f"{base}.yaml").read_text())
    cfg["models_file"] = str(ROOT / "config/models.yaml")
    cfg["datasets"].update(copy.deepcopy(datasets))
    validate(cfg, str(SCHEMA_FILE))
    return cfg


def indices(folder) -> list[int]:
    """The document indices of a benchmark set's texts (ids lee-NNNN)."""
    return [int(row["id"].removeprefix("lee-")) for row in texts.read_texts(folder / "texts.jsonl")]


# --- the config key ---------------------------------------------------------------------------


def test_the_key_is_in_the_schema_with_a_description_and_a_null_default():
    key = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]["documents"]
    assert key["default"] is None and "index" in key["description"]
    assert config()["datasets"]["lee"]["documents"] is None  # filled in: today's behaviour
    assert config(lee=dict(LEE, documents=[8, 9, 12]))["datasets"]["lee"]["documents"] == [8, 9, 12]


@pytest.mark.parametrize("bad", [[], [-1], [8, 8], ["lee-0008"], [1.5], 8])
def test_the_schema_refuses_what_is_no_list_of_distinct_indices(bad):
    cfg = config()
    cfg["datasets"]["lee"]["documents"] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(cfg)
    message = planning.schema_error(cfg, SCHEMA_FILE)
    assert message.startswith("Invalid config key 'datasets.lee.documents")
    assert "document index" in message or "by index" in message  # its description says what is allowed


# --- the texts --------------------------------------------------------------------------------


def test_the_selected_texts_are_the_validation_sets_byte_for_byte():
    rows = texts.natural_texts("lee", dict(LEE, documents=indices(VALIDATION), samples=50))
    assert [r["id"] for r in rows] == ["lee-0008", "lee-0009", "lee-0012", "lee-0014", "lee-0017", "lee-0019"]
    written = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert written == (VALIDATION / "texts.jsonl").read_text(encoding="utf-8")


def test_the_tuning_texts_too_and_the_order_given_is_kept():
    tuning = texts.read_texts(TUNING / "texts.jsonl")  # written before rows had `kind`
    rows = texts.natural_texts("lee", dict(LEE, documents=indices(TUNING)))
    assert [(r["id"], r["text"], r["source"]) for r in rows] == [(t["id"], t["text"], t["source"]) for t in tuning]
    backwards = texts.natural_texts("lee", dict(LEE, documents=[12, 8]))
    assert [r["id"] for r in backwards] == ["lee-0012", "lee-0008"]


def test_a_local_file_counts_documents_not_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("One. Two.\n\nThree. Four.\nFive. Six.\n")
    (row,) = texts.natural_texts("mine", {"source": "file", "path": str(path), "documents": [1]})
    assert (row["id"], row["text"], row["source"]) == ("mine-0001", "Four.", "file:docs.txt#2")
    assert row == texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 2})[1]


def test_an_index_the_source_lacks_names_the_key_the_index_and_the_range(tmp_path):
    with pytest.raises(ValueError) as err:
        texts.natural_texts("lee", dict(LEE, documents=[8, 300, 400]))
    assert str(err.value) == (
        "Invalid config key 'datasets.lee.documents': document 300 does not exist; allowed: 0 to 299 "
        "(the source has 300 documents)"
    )
    # the workflow says it before any job starts
    with pytest.raises(PlanError) as err:
        planning.check_config(config(lee=dict(LEE, documents=[8, 300])), REGISTRY)
    assert str(err.value) == (
        "Invalid config key 'datasets.lee.documents': document 300 does not exist; allowed: 0 to 299 "
        "(the source has 300 documents)"
    )
    path = tmp_path / "two.txt"
    path.write_text("A. B.\nC. D.\n")
    with pytest.raises(ValueError, match=r"'datasets.two.documents': document 2 does not exist; allowed: 0 to 1 "):
        texts.natural_texts("two", {"source": "file", "path": str(path), "documents": [2]})


def test_random_text_has_no_documents_and_a_short_chosen_one_is_an_error():
    cfg = config(random={"source": "random", "vocab": "wordfreq", "documents": [1]})
    with pytest.raises(PlanError, match=r"^Invalid config key 'datasets.random.documents': \[1\], but random text"):
        planning.check_config(cfg, REGISTRY)
    with pytest.raises(ValueError, match=r"'datasets.lee.documents': document 2 keeps \d+ words, fewer than min_words"):
        texts.natural_texts("lee", dict(LEE, documents=[2], min_words=60))  # lee-0002 is what min_words skips
    with pytest.raises(ValueError, match=r"'datasets.lee.documents': \[-1\] is not a list of document indices"):
        texts.natural_texts("lee", dict(LEE, documents=[-1]))


# --- nothing changes at the default -----------------------------------------------------------


def without_documents(cfg: dict) -> dict:
    """`cfg` as the schema of before the key filled it in."""
    old = copy.deepcopy(cfg)
    for spec in old["datasets"].values():
        del spec["documents"]
    return old


def test_the_default_keeps_the_texts_and_every_job_fingerprint(tmp_path):
    for name in ("smoke", "config"):
        cfg = config(name)
        old = without_documents(cfg)
        assert planning.model_jobs(cfg) == planning.model_jobs(old)
        made = []
        for i, job in enumerate(planning.model_jobs(old)):
            parts = tmp_path / name / f"{i}.parts"
            parts.mkdir(parents=True)
            (parts / "job.json").write_text(json.dumps(job_json(old, job, REGISTRY)))
            made.append((parts.with_suffix(".jsonl"), job))
        planning.check_results(cfg, REGISTRY, made)  # results of before the key resume
    now, before = config()["datasets"]["lee"], without_documents(config())["datasets"]["lee"]
    assert texts.natural_texts("lee", now) == texts.natural_texts("lee", before)


def test_the_texts_rules_params_have_the_key_only_where_it_is_set(tmp_path):
    """A dry run: at the default the texts rules get the same params as before the key existed,
    so Snakemake (which reruns a job whose params changed) rebuilds no texts file."""
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    changes = {"datasets": {**cfg["datasets"], "val": dict(LEE, documents=[8, 9])}}
    jobs = plan(write_config("smoke", tmp_path / "config.yaml", **changes), workdir=tmp_path)
    specs = {j["wildcards"]["dataset"]: j["params"]["spec"] for j in jobs if j["rule"] in ("texts", "random_texts")}
    assert set(specs) == {"lee", "random", "val"}
    assert "documents" not in specs["lee"] and "documents" not in specs["random"]
    assert specs["val"]["documents"] == [8, 9]


# --- the demo ---------------------------------------------------------------------------------


def test_the_demo_runs_on_the_first_validation_texts_and_quotes_their_reference():
    cfg = config("demo")
    rows = texts.natural_texts("lee", cfg["datasets"]["lee"])
    assert rows == texts.read_texts(VALIDATION / "texts.jsonl")[:3]
    assert cfg["budget_reference"] == ["benchmarks/validation/lee.jsonl"]
    settings = report.workflow_settings(cfg, {"smollm2-135m": 16})
    assert settings["dataset lee"] == "gensim: lee_background.cor, documents 8, 9, 12"


# --- the report's reference statement ---------------------------------------------------------


def grid(sample, cells):
    """Paper-budget grid records of one text: (L, lossless) pairs."""
    return [
        make_record("pythia-160m", "lee", L, sample, max_correct=(L - 1) if ok else L // 2, steps=100)
        for L, ok in cells
    ]


def reference_statement(tmp_path, reference, ours_ids, folder="validation"):
    ref_file = tmp_path / folder / "lee.jsonl"
    ref_file.parent.mkdir(parents=True)
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in reference))
    ours = write_records(tmp_path / "run", [make_record("pythia-160m", "lee", 16, i, steps=10) for i in ours_ids])
    context = report.report_context(ours, "documents", budget_reference=[ref_file])
    (b,) = context["budget_reference"]
    return b, " ".join(report.render_report(context).split())


def test_an_unbracketed_text_makes_the_value_a_lower_bound_and_is_marked(tmp_path):
    # lee-0008 bracketed at 16; lee-0009 passed 8 so far and may still pass 12, 16, ...
    reference = grid("lee-0008", [(8, True), (16, True), (24, False), (32, False)]) + grid("lee-0009", [(8, True)])
    b, text = reference_statement(tmp_path, reference, ["lee-0008", "lee-0009"], folder="validation3")
    assert (b["capacity"], b["capacities_marked"], b["n_bracketed"], b["n_texts"]) == (">= 8", "16, ≥8", 1, 2)
    assert not b["settled"] and b["set_name"] == "validation"
    assert "the validation set: texts on which no optimiser or search setting was tuned" in text
    # the first validation set judged a claim and then joined the tuning texts: it says so
    former, text = reference_statement(tmp_path / "former", reference, ["lee-0008", "lee-0009"])
    assert former["set_name"] == "first validation" and "fresh\\_after\\_stuck was chosen on them" in text
    assert r"decodes \textbf{\textgreater{}= 8 tokens}" in text
    assert r"(per-text capacities 16, $\geq$8; 1 of 2 texts bracketed so far: " in text
    assert "so the value is a lower bound" in text and "on the same 2 texts as this run" in text


def test_a_value_the_unbracketed_texts_cannot_change_is_shown_as_it_is(tmp_path):
    # the demo's case: one text at 0, bracketed, fixes the smallest capacity whatever the others reach
    reference = grid("lee-0008", [(8, True), (16, True), (24, True), (32, True)])
    reference += grid("lee-0012", [(8, False), (12, False)])
    b, text = reference_statement(tmp_path, reference, ["lee-0008", "lee-0012", "lee-0014"])
    assert (b["capacity"], b["capacities_marked"], b["settled"], b["complete"]) == ("0", "≥32, 0", True, False)
    assert r"decodes \textbf{0 tokens}" in text and "lower bound" in text
    assert "which leaves the capacity over the texts as it is" in text
    assert "so the value is a lower bound" not in text
    # this run's third text has no reference record yet: said, not counted as compared
    assert b["missing"] == ["lee-0014"]
    assert "on 2 of this run's 3 texts (the reference has not started lee-0014)" in text


def test_the_tuning_set_is_named_as_such(tmp_path):
    reference = grid("lee-0000", [(8, True), (12, False), (16, False)])
    b, text = reference_statement(tmp_path, reference, ["lee-0000"], folder="reference")
    assert (b["set_name"], b["capacity"], b["complete"]) == ("tuning", "8", True)
    assert "the tuning set: the texts on which memcap's optimiser and search settings were tuned" in text
    assert "lower bound" not in text


def test_each_shared_text_is_compared_with_the_reference_within_one_grid_step(tmp_path):
    """The statement lists this run's capacity beside the reference's per shared text and counts
    those at least the reference's minus one grid step (the reference's grid); a text at 0 where
    the reference passes a length is named, and an unbracketed reference makes the count so far."""
    reference = grid("lee-0008", [(8, True), (16, True), (24, True), (32, True), (40, False), (48, False)])
    reference += grid("lee-0009", [(8, True), (16, True), (24, True), (32, False), (40, False)])
    reference += grid("lee-0012", [(8, True), (16, True)])  # still running: 16 so far
    ref_file = tmp_path / "validation" / "lee.jsonl"
    ref_file.parent.mkdir(parents=True)
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in reference))
    ours = [make_record("pythia-160m", "lee", 16, i, steps=10) for i in ("lee-0008", "lee-0009", "lee-0012")]
    ours += [make_record("pythia-160m", "lee", 24, i, steps=10, max_correct=3) for i in ("lee-0008", "lee-0012")]
    ours += [make_record("pythia-160m", "lee", 24, "lee-0009", steps=10)]
    context = report.report_context(write_records(tmp_path / "run", ours), "documents", budget_reference=[ref_file])
    (b,) = context["budget_reference"]
    # lee-0008: 16 against 32, two grid steps below; lee-0009: 24 against 24; lee-0012: 16 against >=16
    assert b["per_text"] == "lee-0008 16 against 32, lee-0009 24 against 24, lee-0012 16 against ≥16"
    assert (b["n_compared"], b["n_within"], b["n_zero"], b["within_so_far"]) == (3, 2, 0, True)
    text = " ".join(report.render_report(context).split())
    assert "this run's capacity against the reference's: lee-0008 16 against 32, lee-0009 24 against 24," in text
    assert r"lee-0012 16 against $\geq$16; 2 of 3 texts are at least the reference's capacity minus one" in text
    assert "(so far: an unbracketed reference capacity can still rise)." in text
    # a text that decodes nothing where the reference passes 8 is said
    zero = [make_record("pythia-160m", "lee", L, "lee-0009", steps=10, max_correct=2) for L in (16, 24)]
    context = report.report_context(write_records(tmp_path / "zero", zero), "documents", budget_reference=[ref_file])
    (b,) = context["budget_reference"]
    assert (b["per_text"], b["n_within"], b["n_zero"], b["within_so_far"]) == ("lee-0009 0 against 24", 0, 1, False)
    assert "0 of 1 texts are at least the reference's capacity minus one grid step, and 1 decodes nothing" in " ".join(
        report.render_report(context).split()
    )
    # a run on other texts than the reference's has nothing to compare per text (and does not fail)
    other = write_records(tmp_path / "other", [make_record("pythia-160m", "lee", 16, "lee-0500", steps=10)])
    (b,) = report.report_context(other, "documents", budget_reference=[ref_file])["budget_reference"]
    assert (b["same_texts"], b["per_text"], b["n_compared"]) == (False, "", 0)
