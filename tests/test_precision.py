"""Precision of the [mem] vectors: rounding and scoring (memcap.stages.precision), the tables and
the summary (memcap.analysis.precision_summary), the report.

    pytest tests/test_precision.py

A real compress job on a tiny random-weight Llama makes lossless vectors (lr 0.3 reaches
accuracy 1.0 at 4 tokens in tens of steps); the stage rounds and re-scores them.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open

from analysis_fixtures import needs_latex
from job_fixtures import write_texts
from memcap.analysis import figures, metrics, precision_summary, report, tables
from memcap.core import engine
from memcap.core.models import load_model, load_registry
from memcap.stages import precision
from memcap.stages.job import run_job

# pytest -n: one worker runs this module, so it makes one loaded model and stage run once
# (module fixtures lm, stage)
pytestmark = [pytest.mark.xdist_group("precision")]

MODELS = Path(__file__).resolve().parents[1] / "config" / "models.yaml"
QUICK = {"lr": 0.3, "max_steps": 200, "patience": 200}


@pytest.fixture(scope="module")
def lm():
    return load_model(load_registry(MODELS)["tiny-llama"], "cpu")


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """A real K = 1 job (3 Lee texts, L = 4 and 8) and the precision records of its lossless samples."""
    root = tmp_path_factory.mktemp("precision")
    texts = write_texts(root / "lee.jsonl", n=3)
    records = run_job(
        "tiny-llama",
        texts,
        root / "compress" / "lee.jsonl",
        lengths=[4, 8],
        optim=QUICK,
        models_file=MODELS,
        dataset="lee",
        progress=False,
    )
    out = precision.run_stage(
        "tiny-llama",
        [records],
        {"lee": texts},
        root / "precision" / "tiny-llama.jsonl",
        pca=[1, 2],
        models_file=MODELS,
        device="cpu",
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return root, records, texts, rows


def test_every_lossless_sample_is_scored_at_every_precision(stage):
    _, records, _, rows = stage
    source = [json.loads(line) for line in records.read_text().splitlines()]
    lossless = {(r["L"], r["sample_id"]): r for r in source if r["max_accuracy"] >= 0.99}
    assert lossless, "the job made no lossless vector: the fixture needs another budget"
    assert {(r["L"], r["sample_id"]) for r in rows} == set(lossless)
    for row in rows:
        assert list(row["precisions"]) == ["float32", "bfloat16", "float16", "int8", "int4", "pca2", "pca1"]
        ref = row["precisions"]["float32"]
        # float32 is the stored vector itself: the compress job's own numbers come back
        assert ref["accuracy"] == lossless[row["L"], row["sample_id"]]["accuracy"]
        assert ref["exact"] == lossless[row["L"], row["sample_id"]]["greedy_exact"]
        assert ref["bits"] == 32 and row["precisions"]["bfloat16"]["bytes"] == 2 * row["mem_dim"]
        assert row["precisions"]["int4"]["bits"] == pytest.approx(4 + 32 / row["mem_dim"])
        for p in row["precisions"].values():
            assert p["lossless"] == (p["accuracy"] >= 0.99) and 0 <= p["prefix"] <= row["scored"]
            assert p["exact"] == (p["prefix"] == row["scored"])


def test_a_vector_rounded_to_4_bits_is_scored_exactly_as_the_stage_records_it(stage, lm):
    root, records, texts, rows = stage
    row = next(r for r in rows if r["precisions"]["float32"]["exact"])  # decodes at float32
    with safe_open(str(Path(row["records_file"]).parent / row["vectors"]), framework="pt") as f:
        stored = f.get_tensor(row["vectors_key"])
    q, scale = precision.to_int(stored, 4)  # symmetric, one scale per vector
    assert q.abs().max() == 7 and torch.allclose(scale[:, 0], stored.abs().amax(dim=1) / 7)
    rounded = q.float() * scale
    text = next(
        json.loads(x)["text"] for x in texts.read_text().splitlines() if json.loads(x)["id"] == row["sample_id"]
    )
    ids_list = lm.tokenize(text)[: row["L"]]
    ids = torch.tensor([ids_list])
    first = engine.first_scored(row["protocol"])
    with torch.no_grad():
        loss, correct = engine.score(lm, rounded[None], lm.embeddings(ids), ids, torch.tensor([len(ids_list)]), first)
    decoded = engine.greedy_decode(lm, rounded[None], len(ids_list) - first, ids[:, :first])[0]
    prefix = int((decoded == ids[0, first:]).int().cumprod(0).sum())
    recorded = row["precisions"]["int4"]
    assert recorded["correct"] == int(correct[0])
    assert recorded["accuracy"] == int(correct[0]) / row["scored"]
    assert recorded["prefix"] == prefix and recorded["exact"] == (prefix == row["scored"])
    assert recorded["loss_sum"] == pytest.approx(loss[0].item(), rel=1e-5, abs=1e-6)


def test_rounding_formats():
    v = torch.tensor([[0.5, -2.0, 1.0, 0.01], [0.0, 0.0, 0.0, 0.0]])
    q, scale = precision.to_int(v, 8)
    assert scale[0, 0] == pytest.approx(2.0 / 127) and scale[1, 0] == 1.0  # a zero vector keeps scale 1
    assert int(q[0, 1]) == -127 and (q[1] == 0).all()
    back = precision.quantise(v, "int8")
    assert ((back - v).abs() <= scale / 2 + 1e-7).all()
    assert torch.equal(precision.quantise(v, "bfloat16"), v.to(torch.bfloat16).float())
    assert torch.equal(precision.quantise(v, "float32"), v)
    assert set(precision.quantise(v, "int2").unique().tolist()) <= {-2.0, 0.0, 2.0}  # 3 levels
    # bytes: K x d values, the integers' scales beside each vector
    assert precision_summary.vector_bytes("float16", 2, 64) == 256
    assert precision_summary.vector_bytes("int4", 2, 64) == 2 * (32 + 4)
    assert precision_summary.vector_bytes("int3", 1, 5) == 2 + 4  # 15 bits round up to 2 bytes
    assert precision_summary.vector_bytes("pca8", 2, 64) == 32
    with pytest.raises(ValueError, match="int4"):
        precision.quantise(v, "int9")


def test_pca_projection_uses_only_the_other_vectors_basis():
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 3, generator=gen))[0].T  # 3 orthonormal directions
    others = torch.randn(10, 3, generator=gen) @ basis + 1.0
    inside = torch.randn(1, 3, generator=gen) @ basis + 1.0
    projected, rank = precision.pca_project(inside, others, 8)
    assert rank == 3 and torch.allclose(projected, inside, atol=1e-2)  # 16-bit coefficients
    assert precision.pca_project(inside, others, 2)[1] == 2
    assert precision.pca_project(inside, others[:2], 8)[1] == 1  # 2 points span one direction
    assert precision.pca_project(inside, others[:0], 8)[1] == 0


def test_the_stage_leaves_each_text_out_of_its_own_basis(stage):
    _, _, _, rows = stage
    texts = {r["sample_id"] for r in rows}
    for row in rows:
        others = sum(1 for r in rows if r["sample_id"] != row["sample_id"])
        assert row["precisions"]["pca2"]["rank"] <= max(others - 1, 0)
    if len(texts) == 1:  # one text alone has no basis to be projected on
        assert all(r["precisions"]["pca1"]["rank"] == 0 for r in rows)


def _row(sample_id, L, n_bytes, lossless_at, d=8, vocab=256):
    """A hand-made precision record: accuracy 1.0 at the formats in lossless_at, else 0.5."""
    return {
        "model": "m",
        "dataset": "lee",
        "protocol": "paper",
        "K": 1,
        "kind": "natural",
        "sample_id": sample_id,
        "L": L,
        "mem_dim": d,
        "vocab_size": vocab,
        "n_bytes": n_bytes,
        "precisions": {
            name: {
                "bits": 8 * precision_summary.vector_bytes(name, 1, d) / d,
                "bytes": precision_summary.vector_bytes(name, 1, d),
                "accuracy": 1.0 if name in lossless_at else 0.5,
                "exact": name in lossless_at,
                "lossless": name in lossless_at,
            }
            for name in ("float32", "float16", "int8", "int4")
        },
    }


def test_shares_smallest_precision_ratios_and_eq1():
    rows = [
        _row("a", 4, 10, {"float32", "float16", "int8", "int4"}),
        _row("a", 8, 30, {"float32", "float16", "int8"}),
        _row("b", 4, 12, {"float32", "float16", "int8"}),
    ]
    long = precision_summary.long_frame(rows)
    frame = precision_summary.shares(long).set_index("format")
    assert list(frame.index) == ["float32", "float16", "int8", "int4"]
    assert frame.loc["int4", "share_lossless"] == pytest.approx(1 / 3)
    assert frame.loc["int8", "bits"] == 12  # d = 8: 8 bytes and a 4-byte scale
    # per text the longest length still lossless: a carries 30 bytes at int8, 10 at int4
    assert frame.loc["int8", "ratio"] == pytest.approx((30 / 12 + 12 / 12) / 2)
    assert frame.loc["int4", "ratio"] == pytest.approx((10 / 8 + 0) / 2)
    best = precision_summary.smallest(precision_summary.shares(long))
    assert best.iloc[0]["format"] == "int8" and best.iloc[0]["bits"] == 12
    summary = pd.DataFrame([{"model": "m", "dataset": "lee", "protocol": "paper", "K": 1, "token_gain_mean": 3.0}])
    th = precision_summary.theory(best, long, summary).iloc[0]
    assert th["l_th_16"] == pytest.approx(metrics.theoretical_capacity(8, 256)) == 16
    assert th["l_th_b"] == pytest.approx(metrics.theoretical_capacity(8, 256, bits=12)) == 12
    assert th["utilisation_b"] == pytest.approx(3 / 12) and th["utilisation_16"] == pytest.approx(3 / 16)
    assert th["ratio_16"] == pytest.approx((30 / 16 + 12 / 16) / 2)
    # no rounding keeps 99 %: no smallest precision, and Eq. 1 has no b
    none = precision_summary.smallest(
        precision_summary.shares(precision_summary.long_frame([_row("c", 4, 5, {"float32"}), _row("d", 4, 5, set())]))
    )
    assert none.iloc[0]["format"] is None and math.isnan(none.iloc[0]["bits"])


@pytest.mark.slow  # the stage fixture compresses and scores, then LaTeX builds the PDF
@needs_latex
def test_the_report_shows_the_precision_table_figure_and_eq1(stage):
    import subprocess

    root, records, _, rows = stage
    paths = precision_summary.summary_stage(
        [root / "precision" / "tiny-llama.jsonl"], [records], precision_summary.output_paths(root / "precision")
    )
    table_files, figure_files = tables.table_paths(root / "tables"), figures.figure_paths(root / "figures")
    tables.write_tables([records], table_files)
    figures.write_figures([records], figure_files)
    stage_files = {key: paths[key] for key in ("summary", "table_tex", "ratio_tex", "figure_pdf")}
    pdf = report.build_report(
        table_files,
        figure_files,
        [records],
        root / "report" / "report.pdf",
        run_name="precision",
        precision=stage_files,
    )
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Precision of the vectors (this project" in text  # pdftotext gives a typeset apostrophe
    shown = pd.read_csv(root / "precision" / "table.csv", dtype=str, keep_default_na=False).iloc[0]
    assert f"{shown['Smallest (>= 99 %)']}" in text
    assert "Eq. 1 at the measured precision" in text
    tex = (root / "report" / "report.tex").read_text()
    assert r"\input{tables/precision.tex}" in tex and "figures/precision.pdf" in tex
    # without the stage the section says how to turn it on
    context = report.report_context([records])
    assert context["precision"] is None and not context["figures"]["precision"]


def test_a_run_without_lossless_samples_says_so(stage, tmp_path):
    _, records, _, _ = stage
    paths = precision_summary.write_outputs([], precision_summary.output_paths(tmp_path))
    facts = json.loads(paths["summary"].read_text())
    assert facts["samples"] == 0 and facts["groups"] == []
    assert "No lossless sample" in paths["table_tex"].read_text() and paths["figure_pdf"].is_file()
    source = report.render_report(report.report_context([records], precision=facts))
    assert "has no lossless sample" in source and r"\input{tables/precision.tex}" not in source


def test_the_summary_writes_exactly_the_paths_it_is_given(stage, tmp_path):
    """The rule names every file (precision_summary's outputs); nothing else is written, and a
    wrong or a missing key says which keys are allowed before anything is written."""
    root, records, _, _ = stage
    names = {key: f"{key}-file{Path(name).suffix}" for key, name in precision_summary.output_paths("").items()}
    paths = {key: tmp_path / "out" / name for key, name in names.items()}
    written = precision_summary.summary_stage([root / "precision" / "tiny-llama.jsonl"], [records], paths)
    assert written == paths
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names.values())
    assert set(precision_summary.OUTPUTS) == set(names) and json.loads(paths["summary"].read_text())["samples"] > 0
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'figure_svg'.*: shares, table_csv, table_tex, "):
        precision_summary.write_outputs([], {**paths, "figure_svg": tmp_path / "x.svg"})
    with pytest.raises(ValueError, match=r"missing key\(s\) 'ratio_tex'.*figure_pdf, figure_png, summary"):
        precision_summary.summary_stage([], [], {k: p for k, p in paths.items() if k != "ratio_tex"})
    with pytest.raises(TypeError, match="takes a mapping"):
        precision_summary.write_outputs([], tmp_path / "folder")
    assert not (tmp_path / "folder").exists() and not (tmp_path / "x.svg").exists()


def test_the_classical_ratios_come_from_the_baselines_files_given(stage, tmp_path):
    """The baselines stage's rows and summary (whose model labels them) are read from the
    paths given, whatever their names."""
    from memcap.stages import baselines

    root, records, _, _ = stage
    row = baselines.BaselineRow("lee", "lee-0000", 4, True, 20, 10, 10, 10, 10, 5, 4, 30.0, True, 128)
    base = {key: tmp_path / "base" / f"b-{key}{p.suffix}" for key, p in baselines.output_paths("").items()}
    baselines.write_outputs([row], base, "tiny-llama")
    out = precision_summary.output_paths(tmp_path / "with")
    precision_summary.summary_stage(
        [root / "precision" / "tiny-llama.jsonl"], [records], out, base["rows"], base["summary"]
    )
    ratio = pd.read_csv(out["ratio_csv"], dtype=str, keep_default_na=False)
    assert (ratio.loc[ratio.K == "1", "zlib"] == "2.00").all() and (ratio.K == "1").any()
    assert json.loads(out["summary"].read_text())["baselines"] is True
    # without the summary the rows have no model to stand beside
    alone = precision_summary.output_paths(tmp_path / "alone")
    precision_summary.summary_stage([root / "precision" / "tiny-llama.jsonl"], [records], alone, base["rows"])
    ratio = pd.read_csv(alone["ratio_csv"], dtype=str, keep_default_na=False)
    assert not (ratio.zlib == "2.00").any()
