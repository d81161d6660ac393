"""The baselines stage (memcap.stages.baselines): the texts the vectors carried; their ratios and
the table (memcap.analysis.baselines).

pytest tests/test_baselines.py
"""

import functools
import json
import math

import pandas as pd
import pytest

from memcap.analysis.baselines import CLASSICAL_CODECS, summarise
from memcap.analysis.metrics import load_records
from memcap.core.models import load_model, load_registry
from memcap.corpora import lee_articles
from memcap.stages import baselines


@functools.cache
def tiny(name):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


def _records(tmp_path, lm, rows):
    """Records as a compress job writes them (the keys mem_texts and load_records use)."""
    path = tmp_path / "records.jsonl"
    with path.open("w") as f:
        for sample_id, L, acc in rows:
            f.write(
                json.dumps(
                    {
                        "model": "tiny-gpt-neox",
                        "dataset": "lee",
                        "sample_id": sample_id,
                        "protocol": "paper",
                        "K": 1,
                        "L": L,
                        "status": "ok",
                        "scored": L - 1,
                        "max_accuracy": acc,
                        "mem_dim": lm.mem_dim,
                        "baseline_loss_sum": 1.0,
                        "baseline_correct": 0,
                        "min_loss_sum": 0.5,
                        "max_correct": 1,
                    }
                )
                + "\n"
            )
    return load_records([path])


def test_run_baselines_takes_each_samples_longest_lossless_length(tmp_path):
    lm = tiny("tiny-gpt-neox")
    texts = [{"id": f"lee-{i:04d}", "text": t} for i, t in enumerate(lee_articles()[:3])]
    records = _records(
        tmp_path,
        lm,
        [
            ("lee-0000", 8, 1.0),
            ("lee-0000", 16, 1.0),
            ("lee-0000", 24, 0.5),
            ("lee-0001", 8, 1.0),
            ("lee-0001", 16, 0.8),
            ("lee-0002", 8, 0.4),
            ("lee-0002", 16, 0.2),  # never lossless: shortest, flagged
        ],
    )
    rows = baselines.rows_frame(baselines.run_baselines(lm, records, texts, "lee"))
    assert list(zip(rows.sample_id, rows.L, rows.lossless, strict=True)) == [
        ("lee-0000", 16, True),
        ("lee-0001", 8, True),
        ("lee-0002", 8, False),
    ]
    expected = lm.tokenizer.decode(lm.tokenize(texts[0]["text"])[:16]).encode()
    assert rows.n_bytes[0] == len(expected)
    assert rows.arithmetic_exact.all()
    assert (rows.mem_bytes == lm.mem_dim * 2).all()  # K * d * 16 bits
    summary = summarise(rows)
    assert summary.texts[0] == 2 and summary.lossless[0] == 2  # the failure is left out
    assert summary["mem"][0] == pytest.approx(rows.n_bytes[:2].mean() / (lm.mem_dim * 2))
    assert summary.zlib[0] == pytest.approx((rows.n_bytes / rows.zlib)[:2].mean())


def test_summary_without_lossless_texts_has_no_mem_ratio():
    rows = pd.DataFrame(
        [
            {
                "dataset": "x",
                "sample_id": "a",
                "L": 4,
                "lossless": False,
                "n_bytes": 20,
                "zlib": 10,
                "bz2": 10,
                "lzma": 10,
                "huffman": 10,
                "arithmetic": 5,
                "arithmetic_exact": True,
                "mem_bytes": 128,
            }
        ]
    )
    summary = summarise(rows)
    assert summary.texts[0] == 1 and math.isnan(summary["mem"][0]) and summary.zlib[0] == 2.0


def test_the_analysis_lists_the_stages_classical_codecs():
    """memcap.analysis.baselines names the codecs itself (it must not import the stage's torch)."""
    from memcap.stages.codecs import CODECS

    assert CLASSICAL_CODECS == CODECS


def test_outputs_put_the_papers_ratios_beside_ours(tmp_path):
    lm = tiny("tiny-gpt-neox")
    texts = [{"id": "lee-0000", "text": lee_articles()[0]}]
    records = _records(tmp_path, lm, [("lee-0000", 8, 1.0)])
    paths = baselines.write_outputs(
        baselines.run_baselines(lm, records, texts, "lee"), baselines.output_paths(tmp_path / "out")
    )
    table = pd.read_csv(paths["table"], dtype=str, keep_default_na=False)
    assert list(table.Values) == ["this run", "paper", "paper", "paper"]
    paper = table.set_index("Source")
    assert paper.loc["PG-19", "Arithmetic"] == "6.77" and paper.loc["random", "zlib"] == "1.80"
    assert paper.loc["fanfics", "[mem]"] == "n/a"
    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and "6.77" in tex and r"[mem]" in tex
    rows = pd.read_csv(paths["rows"])
    assert rows.zlib_ratio[0] == pytest.approx(rows.n_bytes[0] / rows.zlib[0])
    # no records: header-only table with the paper's rows
    empty = baselines.write_outputs([], baselines.output_paths(tmp_path / "empty"))
    assert pd.read_csv(empty["table"]).Values.eq("paper").all()


def test_outputs_are_exactly_the_paths_given(tmp_path):
    """The rule names every file (baselines' outputs); nothing else is written, and a wrong
    or a missing key says which keys are allowed before anything is written."""
    paths = {key: tmp_path / "out" / f"{key}-file{path.suffix}" for key, path in baselines.output_paths("").items()}
    assert baselines.write_outputs([], paths, "m") == paths and set(paths) == set(baselines.OUTPUTS)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    assert r"\toprule" in paths["tex"].read_text()
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'pdf'.*: rows, table, tex, summary"):
        baselines.write_outputs([], {**paths, "pdf": tmp_path / "x.pdf"})
    with pytest.raises(ValueError, match=r"missing key\(s\) 'summary'.*: rows, table, tex, summary"):
        baselines.run_stage("tiny-gpt-neox", [], {}, {k: p for k, p in paths.items() if k != "summary"})
    with pytest.raises(TypeError, match="takes a mapping"):
        baselines.write_outputs([], tmp_path / "folder")
    assert not (tmp_path / "folder").exists() and not (tmp_path / "x.pdf").exists()


def test_report_section_includes_the_table_or_says_not_run(tmp_path):
    from analysis_fixtures import make_record, write_records
    from memcap.analysis import report

    files = write_records(tmp_path, [make_record("pythia-160m", "lee", 64, "lee-0")])
    facts = {
        "model": "tiny-gpt-neox",
        "datasets": ["lee"],
        "texts": 3,
        "lossless": 2,
        "arithmetic_exact": 3,
        "verified": True,
    }
    source = report.render_report(report.report_context(files, baselines=facts))
    assert r"\input{tables/baselines.tex}" in source and "3 of 3" in source
    unverified = report.render_report(report.report_context(files, baselines=facts | {"verified": False}))
    assert "not decoded again" in unverified
    absent = report.render_report(report.report_context(files))
    assert "Not run: set \\texttt{baselines.model}" in absent and "baselines.tex" not in absent
