"""Capacity metrics against hand-computed values."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis_fixtures import make_record, search_records, synthetic_run, write_records
from memcap.analysis import metrics
from memcap.records import accuracy_is_lossless

# (d, vocab, L_th) of all 14 models: the paper's values (paper/reference.yaml; Eq. 1, docs/method.md section 4.6).
PAPER_EQ1 = {
    "Pythia-160M": (768, 50304, 787),
    "Pythia-410M": (1024, 50304, 1049),
    "Pythia-1.4B": (2048, 50304, 2098),
    "Pythia-2.8B": (2560, 50304, 2623),
    "OPT-1.3B": (2048, 50272, 2098),
    "OLMo-1B": (2048, 50304, 2098),
    "Sheared-LLaMA-1.3B": (2048, 32000, 2190),
    "Llama-3.2-1B": (2048, 128256, 1931),
    "Llama-3.2-3B": (3072, 128256, 2897),
    "Llama-3.1-8B": (4096, 128256, 3862),
    "Mamba-130M": (768, 50280, 787),
    "Mamba-370M": (1024, 50280, 1049),
    "Mamba-790M": (1536, 50280, 1574),
    "Mamba-1.4B": (2048, 50280, 2098),
}


def load(tmp_path, records):
    return metrics.load_records(write_records(tmp_path, records))


@pytest.mark.parametrize("name", sorted(PAPER_EQ1))
def test_eq1_reproduces_paper_theoretical_capacity(name):
    d, vocab, expected = PAPER_EQ1[name]
    assert round(metrics.theoretical_capacity(d, vocab)) == expected


def test_utilisation_matches_paper_example(capacity_frame, tmp_path):
    """summarise's utilisation: mean token gain over round(L_th), as in the paper (70.89 / 787)."""
    row = metrics.summarise(capacity_frame).iloc[0]  # d 768, |V| 50304: L_th 786.8, Pythia-160M's
    assert row["l_th"] == pytest.approx(786.8, abs=0.05) and row["l_th_rounded"] == 787
    assert row["utilisation"] == pytest.approx(row["token_gain_mean"] / 787)
    # the paper's worked example: Pythia-160M's mean token gain 70.89 over 787 is 0.090. 100
    # saturated samples gaining 71 tokens (89 of them) or 70 (11) have that mean gain (strict:
    # every token scored, so the gain is not rescaled from L - 1 positions to L)
    gains = [71] * 89 + [70] * 11
    example = [
        make_record("pythia-160m", "pg19", 128, f"pg19-{i:04d}", protocol="strict", max_correct=20 + gain)
        for i, gain in enumerate(gains)
    ]
    paper = metrics.summarise(load(tmp_path, example)).iloc[0]
    assert paper["token_gain_mean"] == pytest.approx(70.89) and paper["l_th_rounded"] == 787
    assert round(paper["utilisation"], 3) == 0.090
    two = capacity_frame.assign(K=2)  # two vectors hold twice the values: twice Eq. 1's bound
    row2 = metrics.summarise(two).iloc[0]
    assert row2["l_th"] == pytest.approx(2 * row["l_th"]) and row2["l_th_rounded"] == 1574
    assert row2["utilisation"] == pytest.approx(row2["token_gain_mean"] / 1574)


def test_one_lossless_rule_for_the_metrics_and_the_search():
    from memcap.records import lossless

    assert accuracy_is_lossless(99 / 100) and not accuracy_is_lossless(98 / 100)
    assert list(accuracy_is_lossless(np.array([0.5, 0.99, 1.0]))) == [False, True, True]
    assert lossless("ok", 98, 99, 100, "paper") and not lossless("ok", 98, 99, 100, "strict")
    # the search imports the rule without pandas (memcap.records is standard library only)
    code = "import sys, memcap.core.search; assert 'pandas' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_paper_protocol_totals_scale_mean_by_L(tmp_path):
    rec = make_record(
        L=64,
        scored=63,
        baseline_loss_sum=126.0,
        baseline_correct=21,
        min_loss_sum=63.0,
        max_correct=42,
        loss_sum=99.0,
        correct=30,
    )
    row = load(tmp_path, [rec]).iloc[0]
    assert row["ce_orig"] == pytest.approx(128.0)
    assert row["ce_mem"] == pytest.approx(64.0)
    assert row["c_orig"] == pytest.approx(21 / 63 * 64)
    assert row["c_mem"] == pytest.approx(42 / 63 * 64)
    assert row["acc"] == pytest.approx(42 / 63)
    assert row["d_ce"] == pytest.approx(64.0)
    assert row["d_tok"] == pytest.approx(21 / 63 * 64)


def test_strict_protocol_uses_exact_sums_of_saved_vectors(tmp_path):
    rec = make_record(
        L=64,
        protocol="strict",
        scored=64,
        baseline_loss_sum=128.0,
        baseline_correct=20,
        min_loss_sum=40.0,
        max_correct=45,
        loss_sum=50.0,
        correct=40,
    )
    row = load(tmp_path, [rec]).iloc[0]
    assert (row["ce_orig"], row["ce_mem"], row["c_orig"], row["c_mem"]) == (128, 50, 20, 40)
    assert row["acc"] == pytest.approx(40 / 64)
    assert (row["d_ce"], row["d_tok"]) == (78, 20)


def test_duplicates_are_rejected(tmp_path):
    rec = make_record()
    paths = write_records(tmp_path / "a", [rec]) + write_records(tmp_path / "b", [rec])
    with pytest.raises(ValueError, match="share a"):
        metrics.load_records(paths)


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2"):
        metrics.load_records([path])


def test_empty_input_gives_empty_frames(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    df = metrics.load_records([path])
    assert df.empty
    assert metrics.summarise(df).empty
    assert metrics.pass_rate_by_length(df).empty


def _strict(L, sample, correct, **kw):
    # scored = 100 makes accuracy = correct / 100 exactly
    return make_record(
        L=L, sample_id=f"lee-{sample:04d}", protocol="strict", scored=100, max_correct=correct, correct=correct, **kw
    )


@pytest.fixture
def capacity_frame(tmp_path):
    records = [
        _strict(64, 0, 100),
        _strict(64, 1, 100),
        _strict(80, 0, 100),
        _strict(80, 1, 98),  # mean exactly 0.99: passes
        _strict(96, 0, 50, baseline_correct=10, baseline_loss_sum=300.0, loss_sum=200.0),
        _strict(96, 1, 50, baseline_correct=20, baseline_loss_sum=300.0, loss_sum=250.0),
        _strict(128, 0, 100),
        _strict(128, 1, 100),  # passes after a failing length
        _strict(160, 0, 99),
        _strict(160, 1, 97),  # mean 0.98: fails
        make_record(L=160, sample_id="lee-0002", protocol="strict", status="nan"),
    ]
    return load(tmp_path, records)


def test_capacity_is_largest_passing_length(capacity_frame):
    cap = metrics.decoding_capacity(capacity_frame).iloc[0]
    assert cap["capacity"] == 128
    assert (cap["min_L"], cap["max_L"]) == (64, 160)


def test_pass_rate_per_length_and_failed_counted(capacity_frame):
    table = metrics.pass_rate_by_length(capacity_frame).set_index("L")
    assert table.loc[80, "pass_rate"] == 0.5 and table.loc[80, "passes"]
    assert table.loc[96, "pass_rate"] == 0.0 and not table.loc[96, "passes"]
    assert table.loc[160, "n"] == 2 and table.loc[160, "n_failed"] == 1
    assert table.loc[160, "pass_rate"] == 0.5  # 0.99 counts as lossless
    assert table.loc[64, "n_greedy_exact"] == 2


def test_gains_pool_saturated_samples_over_lengths(capacity_frame):
    # saturated (acc < 0.99): L=80 #1 (0.98), L=96 #0, #1 (0.5), L=160 #1 (0.97)
    d_tok = np.array([98 - 20, 50 - 10, 50 - 20, 97 - 20], dtype=float)
    d_ce = np.array([200 - 10, 300 - 200, 300 - 250, 200 - 10], dtype=float)
    stats = metrics.gain_stats(capacity_frame).iloc[0]
    assert stats["n_saturated"] == 4
    assert stats["token_gain_mean"] == pytest.approx(d_tok.mean())
    assert stats["token_gain_std"] == pytest.approx(d_tok.std(ddof=1))
    assert stats["info_gain_nats_mean"] == pytest.approx(d_ce.mean())
    assert stats["info_gain_bits_mean"] == pytest.approx(d_ce.mean() / math.log(2))
    assert stats["info_gain_bits_std"] == pytest.approx(d_ce.std(ddof=1) / math.log(2))


def test_ce_fit_and_lossless_threshold(capacity_frame):
    # b = mean(CE_mem - CE_orig) over the saturated samples = -mean(d_ce)
    assert metrics.fit_offset(capacity_frame) == pytest.approx(-np.mean([190, 100, 50, 190]))
    assert metrics.lossless_ce_threshold(capacity_frame) == pytest.approx(10.0)


def test_summary_row(capacity_frame):
    row = metrics.summarise(capacity_frame).iloc[0]
    assert row["capacity"] == 128 and row["n_failed"] == 1 and row["n_samples"] == 10
    assert row["l_th_rounded"] == 787
    assert row["utilisation"] == pytest.approx(row["token_gain_mean"] / 787)
    assert row["n_lengths"] == 5


def test_no_passing_length_gives_nan_capacity(tmp_path):
    df = load(tmp_path, [_strict(64, 0, 50)])
    assert pd.isna(metrics.decoding_capacity(df).iloc[0]["capacity"])


def test_synthetic_run_summary(tmp_path):
    df = metrics.load_records(synthetic_run(tmp_path))
    summary = metrics.summarise(df).set_index(["model", "dataset", "K"])
    assert summary.loc[("pythia-160m", "lee", 1), "capacity"] == 80
    assert summary.loc[("llama-3.2-1b", "lee", 1), "capacity"] == 128
    assert summary.loc[("pythia-160m", "lee", 2), "capacity"] == 128
    assert summary.loc[("pythia-160m", "lee", 1), "n_failed"] == 1
    assert (~df["ok"]).sum() == 3


def test_job_wall_time_sums_slowest_sample_per_batch(tmp_path):
    parts = ["K1_L64-64_a", "K1_L64-64_a", "K1_L64-64_b"]  # batches {3, 5} and {2}
    records = [
        make_record(L=64, sample_id=f"lee-{i:04d}", wall_s=w, batch_size=2, vectors=f"lee.parts/{part}.safetensors")
        for i, (w, part) in enumerate(zip([3.0, 5.0, 2.0], parts, strict=True))
    ]
    records.append(
        make_record(L=80, sample_id="lee-0000", wall_s=7.0, batch_size=2, vectors="lee.parts/K1_L80-80_c.safetensors")
    )
    table = metrics.job_wall_time(load(tmp_path, records))
    assert table.iloc[0]["wall_s"] == pytest.approx(5.0 + 2.0 + 7.0)
    assert table.iloc[0]["n_records"] == 4


def test_job_wall_time_without_parts_batches_consecutive_records_of_one_length(tmp_path):
    records = [
        make_record(L=64, sample_id=f"lee-{i:04d}", wall_s=w, batch_size=2, vectors=None)
        for i, w in enumerate([3.0, 5.0, 2.0])
    ]  # batches {3, 5} and {2}
    records.append(make_record(L=80, sample_id="lee-0000", wall_s=7.0, batch_size=2, vectors=None))
    assert metrics.job_wall_time(load(tmp_path, records)).iloc[0]["wall_s"] == pytest.approx(14.0)


def test_job_wall_time_of_random_text_takes_the_slowest_of_each_mixed_length_batch(tmp_path):
    """Random texts each have their own length; one batch mixes them (memcap.stages.job sorts them
    by length and cuts batches of batch_size), and every wall_s runs from that batch's start."""
    lengths, walls = [3, 5, 6, 8, 9, 12], [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]
    parts = ["K1_L3-8_aaaa"] * 4 + ["K1_L9-12_bbbb"] * 2
    records = [
        make_record(
            dataset="noise",
            L=L,
            sample_id=f"noise-{i:04d}",
            wall_s=w,
            batch_size=4,
            vectors=f"noise.parts/{part}.safetensors",
            kind="random",
        )
        for i, (L, w, part) in enumerate(zip(lengths, walls, parts, strict=True))
    ]
    table = metrics.job_wall_time(load(tmp_path, records))
    assert table.iloc[0]["wall_s"] == pytest.approx(4.0 + 6.0)  # not the sum, 21


# --- search mode: one record per attempt, capacity from per-sample capacities ----------


def test_search_capacity_comes_from_per_sample_capacities_not_per_length_means(tmp_path):
    # lee-0002 fails at 64, so only lee-0000 and lee-0001 are ever attempted at 96 and 128,
    # and both are lossless there: the per-length mean would say 128.
    records = search_records({"lee-0000": 128, "lee-0001": 128, "lee-0002": 32})
    df = load(tmp_path, records)
    per_length = metrics.pass_rate_by_length(df).set_index("L")
    assert per_length.loc[128, "passes"] and per_length.loc[128, "n"] == 2  # the trap
    assert set(per_length["mode"]) == {"search"}
    cap = metrics.decoding_capacity(df).iloc[0]
    assert cap["mode"] == "search"
    assert cap["capacity"] == 32  # lossless for all three texts only up to 32
    assert (cap["min_L"], cap["max_L"]) == (32, 128)
    row = metrics.summarise(df).iloc[0]
    assert row["mode"] == "search" and row["capacity"] == 32


def test_search_capacity_is_nan_when_a_sample_has_none(tmp_path):
    df = load(tmp_path, search_records({"lee-0000": 128, "lee-0001": 0}))
    assert pd.isna(metrics.decoding_capacity(df).iloc[0]["capacity"])


@pytest.mark.parametrize(
    "capacities, expected",
    [
        ([128] * 99 + [32], 128),  # 99 % reach 128
        ([128] * 98 + [32] * 2, 32),  # 98 % reach 128: fails; 100 % reach 32
        ([128] * 98 + [64, 32], 64),  # 98 % reach 128, 99 % reach 64
        ([64] * 198 + [16] * 2, 64),  # 2 of 200 may fall short
        ([64] * 197 + [16] * 3, 16),
        ([96] * 99 + [0], 96),  # a sample with nothing lossless is 1 %
        ([96] * 98 + [0] * 2, math.nan),  # 2 %: no length holds for 99 %
        ([80, 96, 128], 80),  # under 100 samples: the minimum
        ([], math.nan),
    ],
)
def test_capacity_from_samples_fraction_rule(capacities, expected):
    got = metrics.capacity_from_samples(capacities)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_search_capacity_rule_on_records_with_100_samples(tmp_path):
    caps = {f"lee-{i:04d}": 128 for i in range(99)} | {"lee-0099": 64}
    df = load(tmp_path, search_records(caps))
    assert metrics.decoding_capacity(df).iloc[0]["capacity"] == 128
    caps["lee-0098"] = 64  # now 2 of 100 stop at 64: 128 holds for 98 % only
    df = load(tmp_path / "b", search_records(caps))
    assert metrics.decoding_capacity(df).iloc[0]["capacity"] == 64


def test_search_summary_counts_attempts_and_steps(tmp_path):
    df = load(tmp_path, search_records({"lee-0000": 128, "lee-0001": 96, "lee-0002": 32}, steps=10))
    # attempts: 4 (32..128, no longer length), 3 + 1 failing at 128, 1 + 1 failing at 64
    row = metrics.search_capacity_summary(df).iloc[0]
    assert row["n_samples"] == 3 and row["capacity"] == 32
    assert row["capacity_mean"] == pytest.approx((128 + 96 + 32) / 3)
    assert (row["capacity_median"], row["capacity_min"], row["capacity_max"]) == (96, 32, 128)
    assert row["n_attempts"] == 4 + 4 + 2 and row["steps"] == 100
    assert row["steps_per_sample"] == pytest.approx(100 / 3)
    assert (row["min_L"], row["max_L"]) == (32, 128)
    per_sample = metrics.search_capacities(df).set_index("sample_id")
    assert per_sample.loc["lee-0001", "n_attempts"] == 4
    assert per_sample.loc["lee-0002", "capacity"] == 32


def test_search_gains_pool_failing_attempts(tmp_path):
    records = search_records({"lee-0000": 128, "lee-0001": 96, "lee-0002": 32})
    df = load(tmp_path, records)
    assert len(df) == len(records) == 10  # attempts of one text are not duplicates
    failing = [r for r in records if r["max_correct"] < r["scored"]]
    assert [(r["sample_id"], r["L"]) for r in failing] == [("lee-0001", 128), ("lee-0002", 64)]
    d_tok = [(r["max_correct"] - r["baseline_correct"]) / r["scored"] * r["L"] for r in failing]
    stats = metrics.gain_stats(df).iloc[0]
    assert stats["n_saturated"] == 2
    assert stats["token_gain_mean"] == pytest.approx(np.mean(d_tok))
    assert stats["token_gain_std"] == pytest.approx(np.std(d_tok, ddof=1))


def test_mixed_grid_and_search_group_is_an_error(tmp_path):
    grid = [make_record(L=L, sample_id="lee-0009", mode="grid", warm_start=None, capacity=None) for L in (32, 64)]
    search = search_records({"lee-0000": 64})
    with pytest.raises(ValueError, match=r"'pythia-160m'.*'lee'.*K=1 mixes grid and search"):
        load(tmp_path, grid + search)
    # records without a mode (written before search mode) are grid records
    grid = [make_record(L=L, sample_id="lee-0009") for L in (32, 64)]
    assert "mode" not in grid[0]
    with pytest.raises(ValueError, match="2 grid, 3 search records"):
        load(tmp_path / "b", grid + search)
    # the check also guards frames that were not read by load_records
    ok = load(tmp_path / "c", search)
    mixed = pd.concat([ok, load(tmp_path / "d", grid)], ignore_index=True)
    with pytest.raises(ValueError, match="mixes grid and search"):
        metrics.summarise(mixed)


def test_modes_may_differ_between_groups(tmp_path):
    grid = [make_record(L=L, sample_id=f"lee-{i:04d}", K=2) for L in (32, 64) for i in range(2)]
    df = load(tmp_path, grid + search_records({"lee-0000": 64, "lee-0001": 96}))
    summary = metrics.summarise(df).set_index("K")
    assert summary.loc[1, "mode"] == "search" and summary.loc[1, "capacity"] == 64
    assert summary.loc[2, "mode"] == "grid" and summary.loc[2, "capacity"] == 64
    assert metrics.search_capacity_summary(df)["K"].tolist() == [1]


def test_grid_records_have_grid_mode_and_no_search_summary(capacity_frame):
    assert set(capacity_frame["mode"]) == {"grid"}
    assert metrics.search_capacity_summary(capacity_frame).empty
    assert metrics.summarise(capacity_frame).iloc[0]["mode"] == "grid"


def test_unfinished_search_is_an_error(tmp_path):
    records = search_records({"lee-0000": 64, "lee-0001": 96})
    records[-1]["capacity"] = None  # lee-0001's last attempt lost its capacity
    with pytest.raises(ValueError, match="lee-0001"):
        metrics.decoding_capacity(load(tmp_path, records))


def test_search_attempts_with_extra_keys_and_retries_load(tmp_path):
    records = search_records({"lee-0000": 64})
    retry = dict(records[-1], retry=1, capacity=64)  # a second try at the failing length
    records[-1]["capacity"] = None
    for rec in records[:-1]:
        rec["retry"] = 0
    df = load(tmp_path, [*records, retry])
    assert len(df) == 4 and metrics.decoding_capacity(df).iloc[0]["capacity"] == 64


def test_job_wall_time_of_a_search_sums_its_parts(tmp_path):
    records = search_records({"lee-0000": 64, "lee-0001": 32})
    # rounds (parts): {32, 32}, {64, 64 failing}, {96 failing}
    for rec, wall in zip(records, [1.0, 2.0, 3.0, 4.0, 5.0], strict=True):
        rec["wall_s"] = wall  # lee-0000: 32, 64, 96; lee-0001: 32, 64
    table = metrics.job_wall_time(load(tmp_path, records))
    assert table.iloc[0]["wall_s"] == pytest.approx(max(1, 4) + max(2, 5) + 3)


# --- method -----------------------------------------------------------------------------

FAST = {"lr": 0.3, "max_steps": 250, "patience": 150, "fresh_lr": 0.01, "fresh_max_steps": 300, "preset": "fast"}


def test_each_record_and_group_names_its_method(tmp_path):
    """The preset, with the parametrisation, rank and basis where it is not full; records
    made before presets or parametrisations existed keep 'paper' (as before); a group of
    two methods lists both, comma-joined."""
    low_rank = {**FAST, "parametrisation": "low_rank", "rank": 64}  # the pca basis is left out
    records = [make_record(L=64, sample_id="old")]  # no preset, no parametrisation
    records.append(make_record(dataset="pg19", L=64, sample_id="low", preset="fast", optim=low_rank))
    mixed = [make_record(dataset="pg19", K=2, L=64, sample_id="full", preset="fast", optim=FAST)]
    random = {**low_rank, "rank": 8, "basis": "random"}
    mixed.append(make_record(dataset="pg19", K=2, L=64, sample_id="random", preset="fast", optim=random))
    df = load(tmp_path, records + mixed)
    assert dict(zip(df.sample_id, df.method, strict=True)) == {
        "old": "paper",
        "low": "fast + low_rank r=64 (pca)",
        "full": "fast",
        "random": "fast + low_rank r=8 (random)",
    }
    summary = metrics.summarise(df).set_index(["dataset", "K"])["method"]
    assert summary.to_dict() == {
        ("lee", 1): "paper",
        ("pg19", 1): "fast + low_rank r=64 (pca)",
        ("pg19", 2): "fast, fast + low_rank r=8 (random)",
    }
    assert "preset" not in metrics.SUMMARY_COLUMNS  # one word: the method holds the preset


def test_a_search_group_names_its_method(tmp_path):
    low_rank = {**FAST, "parametrisation": "low_rank", "rank": 4}
    df = load(tmp_path, search_records({"lee-0": 64, "lee-1": 32}, preset="fast", optim=low_rank))
    (method,) = metrics.search_capacity_summary(df)["method"]
    assert method == "fast + low_rank r=4 (pca)"
