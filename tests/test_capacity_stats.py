"""Per-text capacities, their distribution, the saturation estimate of the paper's rule and
the headline capacity rule (memcap.analysis.capacity_stats, memcap.analysis.metrics), against
hand-computed values; and the tables, figures and rule scripts that take the rule."""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis_fixtures import make_record, write_records
from memcap.analysis import capacity_stats, metrics, tables
from memcap.analysis.capacity_stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    bootstrap_mean_ci,
    capacity_distribution,
    estimated_accuracies,
    paper_rule_estimate,
)

ROOT = Path(__file__).resolve().parents[1]


def load(tmp_path, records):
    return metrics.load_records(write_records(tmp_path, records))


def read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --- the distribution of per-text capacities ------------------------------------------------


def test_distribution_of_a_hand_made_group():
    d = capacity_distribution([64, 0, 128, 32, 64])  # sorted: 0, 32, 64, 64, 128
    assert d["n_texts"] == 5 and d["capacity_mean"] == pytest.approx(57.6)
    # linear interpolation between order statistics: positions 1, 2 and 3 of 0..4
    assert (d["capacity_q1"], d["capacity_median"], d["capacity_q3"]) == (32, 64, 64)
    assert (d["capacity_min"], d["capacity_max"]) == (0, 128)
    assert (d["n_at_min"], d["n_zero"]) == (1, 1)
    d = capacity_distribution([40, 10, 30, 20])  # positions 0.75, 1.5 and 2.25 of 0..3
    assert (d["capacity_q1"], d["capacity_median"], d["capacity_q3"]) == (17.5, 25.0, 32.5)
    assert d["capacity_mean"] == 25.0 and (d["n_at_min"], d["n_zero"]) == (1, 0)
    d = capacity_distribution([16, 16, 64, None])  # a missing value is no text
    assert (d["n_texts"], d["capacity_min"], d["n_at_min"], d["n_zero"]) == (3, 16, 2, 0)


def test_distribution_of_no_text():
    d = capacity_distribution([])
    assert (d["n_texts"], d["n_at_min"], d["n_zero"]) == (0, 0, 0)
    assert math.isnan(d["capacity_mean"]) and math.isnan(d["capacity_ci_low"])
    assert list(d) == capacity_stats.DISTRIBUTION_COLUMNS


def test_bootstrap_is_the_seeded_percentile_interval():
    values = [0, 32, 64, 64, 96, 128, 128, 128]
    low, high = bootstrap_mean_ci(values)
    # the documented recipe, by hand: 2000 resamples of the texts from a seeded Generator
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    assert (low, high) == tuple(np.quantile(means, [0.025, 0.975]))
    assert bootstrap_mean_ci(values) == (low, high)  # deterministic, to the last bit
    assert low < x.mean() < high and low >= 0 and high <= 128


def test_bootstrap_of_one_text_or_identical_capacities_is_the_mean():
    assert bootstrap_mean_ci([96]) == (96.0, 96.0)
    assert bootstrap_mean_ci([64, 64, 64]) == (64.0, 64.0)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))
    d = capacity_distribution([64, 64, 64])
    assert d["capacity_ci_low"] == d["capacity_mean"] == d["capacity_ci_high"] == 64
    assert d["n_at_min"] == 3


# --- the saturation estimate of the paper's rule --------------------------------------------


def attempts_frame(rows):
    return pd.DataFrame(rows, columns=["sample_id", "L", "acc", "n_correct"])


def test_estimated_accuracies_cover_every_case():
    """strict protocol: scored(L) = L. t1 is lossless at 10 and 40 (capacity 40), never tried
    at 20; t2 is lossless at 10, fails twice at 20 (best 15 of 20); t3 has no usable attempt
    and capacity 0; t4 was only tried at 40, with 39 correct, and has capacity 0."""
    attempts = attempts_frame(
        [
            ("t1", 10, 1.0, 10),
            ("t1", 40, 1.0, 40),
            ("t2", 10, 1.0, 10),
            ("t2", 20, 0.5, 10),
            ("t2", 20, 0.75, 15),
            ("t4", 40, 0.975, 39),
        ]
    )
    caps = pd.Series({"t1": 40, "t2": 10, "t3": 0, "t4": 0})
    acc = estimated_accuracies(attempts, caps, "strict")
    assert list(acc.columns) == [10, 20, 40] and list(acc.index) == ["t1", "t2", "t3", "t4"]
    assert list(acc.loc["t1"]) == [1.0, 1.0, 1.0]  # 20: not tried, at most its capacity
    assert list(acc.loc["t2"]) == [1.0, 0.75, 15 / 40]  # best at 20; 40: 15 tokens of 40
    assert list(acc.loc["t3"]) == [0.0, 0.0, 0.0]  # never got a position right
    assert list(acc.loc["t4"]) == [1.0, 1.0, 0.975]  # min(1, 39 / 10), min(1, 39 / 20)
    paper = estimated_accuracies(attempts, caps, "paper")  # scored(L) = L - 1
    assert paper.loc["t2", 40] == 15 / 39 and paper.loc["t4", 20] == 1.0
    assert math.isnan(paper_rule_estimate(acc))  # t3 keeps every mean below 0.99
    assert paper_rule_estimate(acc.drop(index="t3")) == 10  # 20: (1 + 0.75 + 1) / 3
    assert paper_rule_estimate(acc.drop(index=["t2", "t3"])) == 20  # 40: (1 + 0.975) / 2
    assert paper_rule_estimate(acc.loc[["t1"]]) == 40
    none = estimated_accuracies(attempts_frame([]), pd.Series({"t9": 0}), "paper")
    assert none.empty and math.isnan(paper_rule_estimate(none))


def search_attempt(sample_id, L, correct, *, capacity=None, retry=0, protocol="paper"):
    scored = L - 1 if protocol == "paper" else L
    return make_record(
        "pythia-160m",
        "pg19",
        L,
        sample_id,
        protocol=protocol,
        scored=scored,
        max_correct=correct,
        mode="search",
        warm_start=None,
        retry=retry,
        capacity=capacity,
        vectors=f"pg19.parts/search_{L}_{retry}.safetensors",
    )


def hard_text_records():
    """Five texts searched over 32, 64, 96, 128 (paper protocol: scored(L) = L - 1): a, b and c
    lossless everywhere (capacity 128); d lossless up to 64, then at 96 70 and, retried,
    80 of 95 positions (capacity 64); z fails at once with 30 of 31 (capacity 0)."""
    records = []
    for text in ("a", "b", "c"):
        records += [search_attempt(text, L, L - 1, capacity=128 if L == 128 else None) for L in (32, 64, 96, 128)]
    records += [search_attempt("d", 32, 31), search_attempt("d", 64, 63), search_attempt("d", 96, 70)]
    records.append(search_attempt("d", 96, 80, retry=1, capacity=64))
    records.append(search_attempt("z", 32, 30, capacity=0))
    return records


# Estimated accuracies of hard_text_records, by hand:
#   L=32:  a b c d 1, z 30/31            mean (4 + 30/31) / 5 = 0.9935  >= 0.99
#   L=64:  a b c d 1, z 30/63            mean 0.895
#   L=96:  a b c 1, d 80/95 (the retry), z 30/95
#   L=128: a b c 1, d 80/127 (its most correct, 80, over 127), z 30/127
HAND_ACCURACY = {
    32: [1, 1, 1, 1, 30 / 31],
    64: [1, 1, 1, 1, 30 / 63],
    96: [1, 1, 1, 80 / 95, 30 / 95],
    128: [1, 1, 1, 80 / 127, 30 / 127],
}


def test_the_estimate_counts_a_hard_text_by_its_accuracy_not_its_capacity(tmp_path):
    df = load(tmp_path, hard_text_records())
    attempts = metrics.search_attempts(df)
    caps = metrics.search_capacities(df).set_index("sample_id")["capacity"]
    acc = estimated_accuracies(attempts, caps, "paper")
    for L, expected in HAND_ACCURACY.items():
        assert list(acc[L]) == pytest.approx(expected), L
    stats = metrics.capacity_statistics(df).iloc[0]
    assert stats["capacity_paper"] == 32  # the paper's rule, estimated: a positive length
    assert math.isnan(stats["capacity_per_sample"])  # z has capacity 0: the per-sample rule says none
    assert stats["capacity_rule"] == "paper" and stats["capacity"] == 32
    assert (stats["n_texts"], stats["n_at_min"], stats["n_zero"], stats["capacity_min"]) == (5, 1, 1, 0)
    assert stats["capacity_mean"] == pytest.approx((3 * 128 + 64 + 0) / 5)
    assert (stats["capacity_q1"], stats["capacity_median"], stats["capacity_q3"]) == (64, 128, 128)
    assert stats["capacity_ci_low"] <= stats["capacity_mean"] <= stats["capacity_ci_high"]


def test_the_estimate_under_strict_scores_every_position(tmp_path):
    # strict: scored(L) = L. x is lossless up to 64; y stops at 32 with 31 of 32 at 64.
    records = [search_attempt("x", L, L, protocol="strict", capacity=64 if L == 64 else None) for L in (32, 64)]
    records += [search_attempt("y", 32, 32, protocol="strict"), search_attempt("y", 64, 31, protocol="strict")]
    records[-1].update(correct=31, capacity=32)  # strict reads `correct` and `accuracy`
    records[-1]["accuracy"] = 31 / 64
    df = load(tmp_path, records)
    acc = estimated_accuracies(metrics.search_attempts(df), pd.Series({"x": 64, "y": 32}), "strict")
    assert list(acc[64]) == [1.0, 31 / 64]
    assert metrics.capacity_statistics(df).iloc[0]["capacity_paper"] == 32


# --- the headline rule --------------------------------------------------------------------


def test_capacity_rule_switches_the_headline(tmp_path):
    df = load(tmp_path, hard_text_records())
    paper = metrics.summarise(df).iloc[0]
    assert (paper["capacity_rule"], paper["capacity"]) == ("paper", 32)
    per_sample = metrics.summarise(df, "per_sample").iloc[0]
    assert per_sample["capacity_rule"] == "per_sample" and math.isnan(per_sample["capacity"])
    assert per_sample["capacity_paper"] == 32 and per_sample["n_zero"] == 1  # both rules stay visible
    assert metrics.search_capacity_summary(df).iloc[0]["capacity"] == 32
    assert math.isnan(metrics.search_capacity_summary(df, "per_sample").iloc[0]["capacity"])
    with pytest.raises(ValueError, match="'median' is not one of paper, per_sample"):
        metrics.summarise(df, "median")


def grid_records():
    """strict, scored 100 (accuracy = correct / 100). g0 and g1 lossless at 32 and 64, g2 lossless
    at 32 and 98 % at 64 (mean 0.993: 64 passes); g3 lossless at 32 but short at 64 (N 40: no
    sample of 64, though decoded); g4 only failed."""

    def rec(L, sample, correct, **kw):
        return make_record(L=L, sample_id=sample, protocol="strict", scored=100, max_correct=correct, **kw)

    records = [rec(L, s, 100) for L in (32, 64) for s in ("g0", "g1")]
    records += [rec(32, "g2", 100), rec(64, "g2", 98), rec(32, "g3", 100)]
    records += [rec(64, "g3", 100, N=40, short=True), rec(32, "g4", None, status="nan")]
    return records


def test_grid_per_text_capacities_leave_out_short_records(tmp_path):
    df = load(tmp_path, grid_records())
    caps = metrics.text_capacities(df).set_index("sample_id")
    assert caps["capacity"].to_dict() == {"g0": 64, "g1": 64, "g2": 32, "g3": 32}  # g4: no usable record
    assert set(caps["mode"]) == {"grid"}
    stats = metrics.capacity_statistics(df).iloc[0]
    assert stats["capacity_paper"] == 64  # the paper's rule: mean accuracy 0.9933 at 64
    assert stats["capacity_per_sample"] == 32  # fewer than 100 texts: the smallest, g2's and g3's
    assert (stats["n_texts"], stats["n_at_min"], stats["n_zero"]) == (4, 2, 0)
    assert metrics.summarise(df, "per_sample").iloc[0]["capacity"] == 32
    assert metrics.summarise(df).iloc[0]["capacity"] == 64


# --- tables, figures and the rule scripts ----------------------------------------------------


def test_capacity_tables_show_the_distribution_and_every_text(tmp_path):
    files = write_records(tmp_path, hard_text_records())
    paths = tables.write_tables(files, tables.table_paths(tmp_path / "t"))
    row = read(paths["capacity"]).iloc[0]
    assert list(read(paths["capacity"]).columns) == tables.CAPACITY_COLUMNS
    assert (row["Mode"], row["Rule"], row["Capacity"]) == ("search", "paper", "32 (search)")
    assert (row["Paper rule"], row["Per-sample rule"]) == ("32 (est.)", "<32")
    assert (row["Texts"], row["Mean"], row["Median"], row["Q1"], row["Q3"]) == ("5", "89.6", "128.0", "64.0", "128.0")
    assert (row["Min"], row["At min"], row["Zero"]) == ("0", "1", "1")
    low, high = bootstrap_mean_ci([128, 128, 128, 64, 0])
    assert row["95% CI"] == f"[{low:.1f}, {high:.1f}]"
    texts = read(paths["capacities"])
    assert list(texts.columns) == ["model", "dataset", "protocol", "K", "sample_id", "capacity", "mode"]
    assert dict(zip(texts.sample_id, texts.capacity, strict=True)) == {
        "a": "128",
        "b": "128",
        "c": "128",
        "d": "64",
        "z": "0",
    }
    tex = (tmp_path / "t" / "capacity.tex").read_text()
    assert r"95\% CI" in tex and "32 (est.)" in tex and r"\textless{}32" in tex
    t1 = read(paths["table1"])
    assert t1.loc[(t1.Metric == "Max tokens") & (t1.Values == "this run"), "pythia-160m"].item() == "32 (search)"
    per_sample = tables.write_tables(files, tables.table_paths(tmp_path / "p"), capacity_rule="per_sample")
    row = read(per_sample["capacity"]).iloc[0]
    assert (row["Rule"], row["Capacity"], row["Paper rule"]) == ("per-sample", "<32 (search)", "32 (est.)")
    t1 = read(per_sample["table1"])
    assert t1.loc[(t1.Metric == "Max tokens") & (t1.Values == "this run"), "pythia-160m"].item() == "<32 (search)"


def test_the_rule_tables_may_leave_out_the_capacity_tables(tmp_path):
    """The workflow's rule tables names the first five tables (RULE_TABLES); the two capacity
    tables are written when the mapping names them."""
    files = write_records(tmp_path, hard_text_records())
    paths = {k: p for k, p in tables.table_paths(tmp_path / "t").items() if k.rsplit("_", 1)[0] in tables.RULE_TABLES}
    written = tables.write_tables(files, paths)
    assert set(written) == set(tables.RULE_TABLES) and not (tmp_path / "t" / "capacity.csv").exists()
    only_csv = {**paths, "capacities_csv": tmp_path / "t" / "capacities.csv"}
    assert set(tables.write_tables(files, only_csv)) == {*tables.RULE_TABLES, "capacities"}
    assert not (tmp_path / "t" / "capacities.tex").exists()


RUN_SCRIPT = textwrap.dedent(
    """
    import runpy, sys, types
    from pathlib import Path
    from snakemake.iocontainers import Namedlist
    script, log, records, out, rule = sys.argv[1:6]
    outputs = Namedlist(fromdict={
        f"{name}_{ext}": f"{out}/{name}.{ext}"
        for name in ("table1", "summary", "multivector", "pass_rate", "search", "capacity") for ext in ("csv", "tex")
    })
    params = Namedlist(fromdict={"capacity_rule": rule} if rule else {})
    snakemake = types.SimpleNamespace(
        log=[log], input=Namedlist(fromdict={"records": [records]}), output=outputs, params=params
    )
    runpy.run_path(script, init_globals={"snakemake": snakemake})
    """
)


@pytest.mark.parametrize("rule, expected", [("", "32 (search)"), ("per_sample", "<32 (search)")])
def test_the_tables_script_reads_the_rule_from_its_params(tmp_path, rule, expected):
    (records,) = write_records(tmp_path, hard_text_records())
    out = tmp_path / "tables"
    args = [str(ROOT / "scripts" / "tables.py"), str(tmp_path / "log"), str(records), str(out), rule]
    done = subprocess.run([sys.executable, "-c", RUN_SCRIPT, *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr + (tmp_path / "log").read_text()
    assert read(out / "capacity.csv").iloc[0]["Capacity"] == expected
    assert not (out / "capacities.csv").exists()  # not among the outputs named
