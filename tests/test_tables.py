"""Tables: layout, paper values beside ours, "not run" cells (memcap.analysis.tables and
memcap.analysis.run_view), LaTeX escaping (memcap.analysis.latex)."""

import json
import math

import pandas as pd
import pytest

from analysis_fixtures import make_record, search_records, synthetic_run, write_records
from memcap.analysis import latex, metrics, run_view, tables

# pytest -n: one worker runs this module, so it makes shared runs once
# (module fixtures written, searched)
pytestmark = [pytest.mark.xdist_group("tables")]


def read(paths, name):
    return pd.read_csv(paths[name], dtype=str, keep_default_na=False)


def cell(frame, column, **where):
    hit = frame
    for key, value in where.items():
        hit = hit[hit[key] == value]
    assert len(hit) == 1, where
    return hit.iloc[0][column]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    files = synthetic_run(root)
    # A job that wrote nothing still names its model and source.
    empty = root / "compress" / "mamba-130m" / "lee.jsonl"
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    return tables.write_tables([*files, empty], tables.table_paths(root / "tables"))


def test_every_file_is_written(written):
    assert set(written) == {"table1", "summary", "multivector", "pass_rate", "search", "capacity", "capacities"}
    for csv in written.values():
        assert csv.suffix == ".csv" and csv.stat().st_size > 0
        assert csv.with_suffix(".tex").read_text().strip()


def test_write_tables_writes_exactly_the_paths_it_is_given(tmp_path):
    """The workflow names every file (the rule's outputs); write_tables picks no name itself."""
    files = write_records(tmp_path, [make_record("pythia-160m", "lee", 64, "lee-0")])
    given = {
        key: tmp_path / "out" / key.rsplit("_", 1)[1] / f"my_{key}.txt"
        for key in tables.table_paths(tmp_path / "unused")
    }
    written = tables.write_tables(files, {k: str(p) for k, p in given.items()})
    assert written == {name: given[f"{name}_csv"] for name in tables.TABLE_NAMES}
    assert {p for p in (tmp_path / "out").rglob("*") if p.is_file()} == set(given.values())
    assert not (tmp_path / "unused").exists()
    default = tables.table_paths(tmp_path / "default")
    tables.write_tables(files, default)
    assert all(given[key].read_bytes() == default[key].read_bytes() for key in given)


def test_write_tables_names_the_allowed_keys(tmp_path):
    files = write_records(tmp_path, [make_record()])
    paths = tables.table_paths(tmp_path / "t")
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'table1_pdf'.*: table1_csv, table1_tex, "):
        tables.write_tables(files, {**paths, "table1_pdf": tmp_path / "t" / "table1.pdf"})
    del paths["summary_tex"]  # one half of a table
    with pytest.raises(ValueError, match=r"missing key\(s\) 'summary_tex'.*summary_csv, summary_tex"):
        tables.write_tables(files, paths)
    with pytest.raises(TypeError, match="mapping"):  # a folder is not enough
        tables.write_tables(files, tmp_path / "t")
    assert not (tmp_path / "t").exists()  # nothing written


def test_table1_values_and_paper_beside_ours(written):
    t1 = read(written, "table1")
    assert list(t1.columns[:3]) == ["Source", "Metric", "Values"]
    assert cell(t1, "pythia-160m", Source="lee", Metric="Max tokens", Values="this run") == "80"
    assert cell(t1, "tiny_model.v2", Source="lee", Metric="Max tokens", Values="this run") == "<32"
    # random text has paper values for pythia-160m (65) and llama-3.2-1b (316)
    assert cell(t1, "pythia-160m", Source="random", Metric="Max tokens", Values="paper") == "65"
    ours = int(cell(t1, "pythia-160m", Source="random", Metric="Max tokens", Values="this run"))
    diff = cell(t1, "pythia-160m", Source="random", Metric="Max tokens", Values="difference")
    assert int(diff) == ours - 65
    assert cell(t1, "llama-3.2-1b", Source="random", Metric="Token gain", Values="paper") == "294.9 ± 64.8"
    assert cell(t1, "tiny_model.v2", Source="random", Metric="Token gain", Values="paper") == "n/a"
    # lee is not one of the paper's sources: no paper rows for it
    assert set(t1[t1.Source == "lee"]["Values"]) == {"this run"}
    assert cell(t1, "mamba-130m", Source="lee", Metric="Max tokens", Values="this run") == "not run"


def test_table1_token_gain_matches_metrics(written, tmp_path):
    df = metrics.load_records(sorted(written["table1"].parents[1].glob("compress/*/*.jsonl")))
    row = metrics.summarise(df).set_index(["model", "dataset", "K"]).loc[("pythia-160m", "lee", 1)]
    t1 = read(written, "table1")
    expected = f"{row.token_gain_mean:.1f} ± {row.token_gain_std:.1f}"
    assert cell(t1, "pythia-160m", Source="lee", Metric="Token gain", Values="this run") == expected
    bits = cell(t1, "pythia-160m", Source="lee", Metric="Information gain (bits)", Values="this run")
    assert bits.startswith(f"{row.info_gain_nats_mean / math.log(2):.1f} ± ")


def test_summary_has_eq1_and_paper_row(written):
    s = read(written, "summary")
    assert cell(s, "L_th (Eq. 1)", Model="pythia-160m", Values="this run") == "787"
    assert cell(s, "L_th (Eq. 1)", Model="llama-3.2-1b", Values="paper") == "1931"
    assert cell(s, "Utilisation random", Model="pythia-160m", Values="paper") == "0.078"
    assert cell(s, "Capacity lee", Model="mamba-130m", Values="this run") == "not run"
    assert "tiny_model.v2" in set(s.Model) and len(s[s.Model == "tiny_model.v2"]) == 1


def test_pass_rate_bins_random_lengths(written):
    p = read(written, "pass_rate")
    lee = p[(p.Model == "pythia-160m") & (p.Source == "lee") & (p.K == "1")]
    assert list(lee.Lengths) == ["32", "64", "80", "96", "128", "160"]
    assert cell(lee, "Failed", Lengths="64") == "1"
    assert cell(lee, "Pass rate", Lengths="80") == "1.00"
    assert all("-" in value for value in p[p.Source == "random"]["Lengths"])


def test_capacity_formats_bounds():
    assert tables.fmt_capacity(96, 64, 128) == "96"
    assert tables.fmt_capacity(128, 64, 128) == ">=128"
    assert tables.fmt_capacity(float("nan"), 64, 128) == "<64"


def test_multivector_without_paper_source_has_no_paper_columns(written):
    mv = read(written, "multivector")
    assert list(mv.K) == ["1", "2", "4"]
    assert "Max tokens (paper)" not in mv.columns


def test_multivector_on_pg19_quotes_paper(tmp_path):
    records = [
        make_record("pythia-160m", "pg19", L, f"pg19-{i}", K=K) for K in (1, 2) for L in (64, 128) for i in range(2)
    ]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))
    mv = read(paths, "multivector")
    assert cell(mv, "Max tokens (paper)", K="2") == "192"
    assert cell(mv, "Max tokens diff", K="2") == f"{128 - 192:+d}"
    # every length tried passed: the capacity is only a lower bound
    assert cell(mv, "Max tokens", K="1") == ">=128"
    t1 = read(paths, "table1")
    assert cell(t1, "pythia-160m", Source="pg19", Metric="Max tokens", Values="paper") == "80"
    # all samples lossless: no saturated sample, no gain
    assert cell(t1, "pythia-160m", Source="pg19", Metric="Token gain", Values="this run") == "all lossless"


def test_nothing_multivector_gives_empty_valid_files(tmp_path):
    records = [make_record("pythia-160m", "lee", 64, "lee-0")]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))
    mv = pd.read_csv(paths["multivector"])
    assert mv.empty and "Max tokens" in mv.columns
    assert "No multi-vector runs" in paths["multivector"].with_suffix(".tex").read_text()


def test_only_empty_records_files(tmp_path):
    empty = tmp_path / "compress" / "pythia-160m" / "lee.jsonl"
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    paths = tables.write_tables([empty], tables.table_paths(tmp_path / "t"))
    t1 = read(paths, "table1")
    assert set(t1["pythia-160m"]) == {"not run"}


def test_failed_only_cell_is_marked(tmp_path):
    records = [
        make_record("pythia-160m", "lee", 64, "lee-0"),
        make_record("pythia-160m", "random", 64, "random-0", status="oom"),
    ]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))
    t1 = read(paths, "table1")
    assert cell(t1, "pythia-160m", Source="random", Metric="Max tokens", Values="this run") == "failed (1)"
    assert cell(t1, "pythia-160m", Source="random", Metric="Max tokens", Values="difference") == "n/a"


def test_mixed_protocols_get_separate_columns(tmp_path):
    records = [make_record("pythia-160m", "lee", 64, "lee-0", protocol=p) for p in ("paper", "strict")]
    t1 = read(tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t")), "table1")
    assert {"pythia-160m [paper]", "pythia-160m [strict]"} <= set(t1.columns)


def test_latex_escape():
    assert latex.latex_escape("a_b.c 50% & $x# {y} ~^\\") == (
        r"a\_b.c 50\% \& \$x\# \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert latex.latex_escape("<32") == r"\textless{}32"
    assert latex.cell_to_latex("-17") == "$-$17"
    assert latex.cell_to_latex("1.5 ± 0.2") == r"1.5 $\pm$ 0.2"
    assert latex.latex_escape("naïve") == "naive"


def test_latex_fragments_are_escaped(written):
    tex = written["table1"].with_suffix(".tex").read_text()
    assert r"tiny\_model.v2" in tex and "tiny_model" not in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"\begin{longtable}" in written["pass_rate"].with_suffix(".tex").read_text()


def test_expected_cells_from_empty_files(tmp_path):
    compress = tmp_path / "compress" / "pythia-160m" / "lee.jsonl"
    multi = tmp_path / "multivector" / "llama-3.2-1b" / "pg19" / "K4.jsonl"
    for path in (compress, multi):
        path.parent.mkdir(parents=True)
        path.write_text("\n")
    assert run_view.expected_cells([compress, multi]) == {("pythia-160m", "lee"), ("llama-3.2-1b", "pg19")}


def test_wide_table1_is_split_into_blocks(tmp_path):
    records = [make_record(f"model-{i}", "lee", 64, "lee-0") for i in range(7)]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))
    tex = paths["table1"].with_suffix(".tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2  # 5 + 2 model columns
    assert len(pd.read_csv(paths["table1"]).columns) == 3 + 7


def test_all_failed_cell_in_every_table(tmp_path):
    records = [make_record("pythia-160m", "lee", 64, "lee-0", status="nan")]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))
    t1 = read(paths, "table1")
    assert cell(t1, "pythia-160m", Source="lee", Metric="Max tokens", Values="this run") == "failed (1)"
    assert cell(read(paths, "pass_rate"), "Failed", Lengths="64") == "1"


# --- search mode ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """pythia-160m searched on pg19 (K=1) beside a grid run of llama-3.2-1b on pg19 and a
    pythia-160m multi-vector search at K=2 whose every sample reached the last length."""
    root = tmp_path_factory.mktemp("search")
    records = search_records({"pg19-0000": 128, "pg19-0001": 128, "pg19-0002": 32}, dataset="pg19", steps=10)
    records += [make_record("llama-3.2-1b", "pg19", L, f"pg19-{i:04d}") for L in (32, 64) for i in range(3)]
    files = write_records(root, records)
    multi = search_records({"pg19-0000": 128, "pg19-0001": 128}, dataset="pg19", K=2, steps=7)
    path = root / "multivector" / "pythia-160m" / "pg19" / "K2.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in multi))
    return tables.write_tables([*files, path], tables.table_paths(root / "tables"))


def test_search_capacity_cells_are_marked(searched):
    t1 = read(searched, "table1")
    # the texts reaching 96 and 128 were all lossless there, but pg19-0002 stopped at 32
    assert cell(t1, "pythia-160m", Source="pg19", Metric="Max tokens", Values="this run") == "32 (search)"
    assert cell(t1, "pythia-160m", Source="pg19", Metric="Max tokens", Values="difference") == f"{32 - 80:+d}"
    assert cell(t1, "llama-3.2-1b", Source="pg19", Metric="Max tokens", Values="this run") == ">=64"  # grid: unmarked
    s = read(searched, "summary")
    assert cell(s, "Capacity pg19", Model="pythia-160m", Values="this run") == "32 (search)"
    mv = read(searched, "multivector")
    assert cell(mv, "Max tokens", K="1") == "32 (search)"
    # every sample's capacity is the longest length tried: a lower bound
    assert cell(mv, "Max tokens", K="2") == ">=128 (search)"


def test_search_table_rows(searched):
    t = read(searched, "search")
    assert list(t.columns) == tables.SEARCH_COLUMNS
    assert list(zip(t.Model, t.Source, t.K, strict=True)) == [
        ("pythia-160m", "pg19", "1"),
        ("pythia-160m", "pg19", "2"),
    ]
    k1 = t[t.K == "1"].iloc[0]
    # attempts: 32, 64, 96, 128 for two texts; 32 and a failing 64 for the third
    assert k1["Method"] == "paper"  # the records predate presets: the paper's settings
    assert list(k1[4:]) == ["3", "32", "96.0", "128.0", "32", "128", "10", "100", "33.3"]
    k2 = t[t.K == "2"].iloc[0]
    assert (k2.Capacity, k2.Samples, k2.Attempts, k2.Steps) == (">=128", "2", "8", "56")
    tex = searched["search"].with_suffix(".tex").read_text()
    assert r"\begin{tabular}" in tex and "pythia-160m" in tex and "33.3" in tex


def test_every_table_names_the_method_that_found_a_capacity(tmp_path):
    """A low-rank search says so with its rank and basis (a Method column, or a mark on the
    capacity where a table has none); a grid run made before presets existed reads paper, as it
    always did."""
    optim = {"lr": 0.3, "max_steps": 250, "patience": 150, "preset": "fast", "parametrisation": "low_rank"}
    records = search_records({"pg19-0": 64, "pg19-1": 32}, dataset="pg19", preset="fast", optim={**optim, "rank": 64})
    records += [make_record("llama-3.2-1b", "pg19", L, f"pg19-{i}") for L in (32, 64) for i in range(2)]
    paths = tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "tables"))
    search = read(paths, "search")
    assert cell(search, "Method", Model="pythia-160m") == "fast + low_rank r=64 (pca)"
    capacity = read(paths, "capacity")
    assert list(capacity.columns[:5]) == ["Model", "Source", "K", "Mode", "Method"]
    assert cell(capacity, "Method", Model="pythia-160m") == "fast + low_rank r=64 (pca)"
    assert cell(capacity, "Method", Model="llama-3.2-1b") == "paper"
    tex = paths["search"].with_suffix(".tex").read_text()
    assert r"fast + low\_rank r=64 (pca)" in tex and r"\begin{tabular}{llrlrrrrrrrrr}" in tex
    # tables without a Method column mark the capacity with it; the paper's optimiser stays unmarked
    t1 = read(paths, "table1")
    ours = {"Source": "pg19", "Metric": "Max tokens", "Values": "this run"}
    assert cell(t1, "pythia-160m", **ours) == "32 (search, fast + low_rank r=64 (pca))"
    assert cell(t1, "llama-3.2-1b", **ours) == ">=64"
    summary = read(paths, "summary")
    assert (
        cell(summary, "Capacity pg19", Model="pythia-160m", Values="this run")
        == "32 (search, fast + low_rank r=64 (pca))"
    )
    assert cell(capacity, "Capacity", Model="pythia-160m") == "32 (search)"  # its Method column says the rest


def test_pass_rate_leaves_out_search_attempts(searched):
    p = read(searched, "pass_rate")
    assert set(p.Model) == {"llama-3.2-1b"}


def test_grid_only_run_has_an_empty_search_table(written):
    t = read(written, "search")
    assert t.empty and list(t.columns) == tables.SEARCH_COLUMNS
    assert "No search-mode runs" in written["search"].with_suffix(".tex").read_text()


def test_mixed_modes_in_one_group_stop_the_tables(tmp_path):
    records = search_records({"lee-0000": 64}) + [make_record(L=32, sample_id="lee-0001")]
    with pytest.raises(ValueError, match="mixes grid and search"):
        tables.write_tables(write_records(tmp_path, records), tables.table_paths(tmp_path / "t"))


# --- natural or random: the records' kind, never the dataset's name -------------------


def kinds_run(tmp_path, legacy=False):
    """pythia-160m on random words named `noise` (12 samples, one per sampled length) and on
    natural text named `random_news` (4 texts at 32 and 64 tokens); legacy: no `kind`."""
    records = []
    for i, L in enumerate([9, 12, 14, 20, 24, 30, 40, 50, 60, 70, 90, 100]):
        lossless = L <= 30
        records.append(
            make_record(
                "pythia-160m",
                "noise",
                L,
                f"noise-{i:04d}",
                kind="random",
                max_correct=None if lossless else (L - 1) // 2,
                vectors=f"noise.parts/K1_L9-100_{i // 4}.safetensors",
            )
        )
    for L in (32, 64):
        for i in range(4):
            records.append(
                make_record(
                    "pythia-160m",
                    "random_news",
                    L,
                    f"news-{i:04d}",
                    kind="natural",
                    max_correct=None if L == 32 else 20,
                )
            )
    if legacy:
        for r in records:
            r.pop("kind")
    return write_records(tmp_path, records)


def test_a_random_dataset_named_anything_is_random_text(tmp_path):
    paths = tables.write_tables(kinds_run(tmp_path), tables.table_paths(tmp_path / "t"))
    p = read(paths, "pass_rate")
    # random text in length bins (each sampled length has about one sample) ...
    assert list(p[p.Source == "noise"]["Lengths"]) == ["9-16", "17-32", "33-64", "65-80", "81-96", "97-128"]
    # ... natural text per length, whatever its name says
    assert list(p[p.Source == "random_news"]["Lengths"]) == ["32", "64"]
    t1 = read(paths, "table1")
    # natural first, random last; random text compares with the paper's random text (65)
    assert list(dict.fromkeys(t1.Source)) == ["random_news", "noise"]
    assert cell(t1, "pythia-160m", Source="noise", Metric="Max tokens", Values="this run") == "30"
    assert cell(t1, "pythia-160m", Source="noise", Metric="Max tokens", Values="paper") == "65"
    assert cell(t1, "pythia-160m", Source="noise", Metric="Max tokens", Values="difference") == "-35"
    assert set(t1[t1.Source == "random_news"]["Values"]) == {"this run"}  # no paper source
    s = read(paths, "summary")
    assert cell(s, "Utilisation noise", Model="pythia-160m", Values="paper") == "0.078"
    assert cell(s, "Capacity random_news", Model="pythia-160m", Values="paper") == "n/a"


def test_records_without_kind_fall_back_to_the_name(tmp_path):
    """Records written before `kind` existed: a dataset is random iff its name says so."""
    paths = tables.write_tables(kinds_run(tmp_path, legacy=True), tables.table_paths(tmp_path / "t"))
    p = read(paths, "pass_rate")
    assert list(p[p.Source == "noise"]["Lengths"])[:3] == ["9", "12", "14"]
    assert all("-" in v for v in p[p.Source == "random_news"]["Lengths"])


def test_a_dataset_with_both_kinds_is_an_error(tmp_path):
    records = [
        make_record("pythia-160m", "noise", 8, "noise-0", kind="random"),
        make_record("llama-3.2-1b", "noise", 8, "noise-0", kind="natural"),
    ]
    with pytest.raises(ValueError, match=r"dataset 'noise' has records of both text kinds"):
        metrics.load_records(write_records(tmp_path, records))


def test_an_unknown_kind_is_an_error(tmp_path):
    records = [make_record("pythia-160m", "noise", 8, "noise-0", kind="words")]
    with pytest.raises(ValueError, match=r"unknown text kind\(s\) \['words'\]"):
        metrics.load_records(write_records(tmp_path, records))


def test_old_records_of_a_dataset_take_the_kind_of_its_new_ones(tmp_path):
    old = make_record("pythia-160m", "noise", 8, "noise-0")
    new = make_record("pythia-160m", "noise", 9, "noise-1", kind="random")
    df = metrics.load_records(write_records(tmp_path, [old, new]))
    assert list(df["kind"]) == ["random", "random"]
    assert metrics.dataset_kinds(df) == {"noise": "random"}


# --- short texts: a text with N < L tokens is no sample of length L ---------------------


def short_run(tmp_path):
    """3 texts lossless at 16 tokens; at 32 two fail and one is long enough for 24 tokens
    only (N 24 < L 32, short) but decoded; at 64 all three are short and decoded."""
    records = [make_record("pythia-160m", "lee", 16, f"lee-{i}") for i in range(3)]
    records += [make_record("pythia-160m", "lee", 32, f"lee-{i}", max_correct=10) for i in range(2)]
    records += [make_record("pythia-160m", "lee", 32, "lee-2", N=24, short=True, scored=23)]
    records += [
        make_record("pythia-160m", "lee", 64, f"lee-{i}", N=24 + i, short=True, scored=23 + i) for i in range(3)
    ]
    return write_records(tmp_path, records)


def test_short_texts_never_make_a_length_look_lossless(tmp_path):
    paths = tables.write_tables(short_run(tmp_path), tables.table_paths(tmp_path / "t"))
    t1 = read(paths, "table1")
    # 64 was "decoded" only by texts that have 24-26 tokens: the capacity is 16
    assert cell(t1, "pythia-160m", Source="lee", Metric="Max tokens", Values="this run") == "16"
    p = read(paths, "pass_rate")
    assert cell(p, "Samples", Lengths="32") == "2" and cell(p, "Short", Lengths="32") == "1"
    assert cell(p, "Pass rate", Lengths="32") == "0.00"
    assert cell(p, "Mean accuracy", Lengths="32") == f"{10 / 31:.3f}"
    assert cell(p, "Samples", Lengths="64") == "0" and cell(p, "Short", Lengths="64") == "3"
    assert cell(p, "Pass rate", Lengths="64") == "n/a"
    assert cell(p, "Short", Lengths="16") == "0"


def test_short_texts_stay_out_of_the_gains_and_their_totals_are_over_n(tmp_path):
    df = metrics.load_records(short_run(tmp_path))
    short = df[df.short]
    assert len(short) == 4 and not metrics.usable(df).short.any()
    # paper protocol: a short text's totals are its per-position mean x N, not x L
    row = short[short.L == 64].iloc[0]
    assert row.ce_orig == pytest.approx(row.baseline_loss_sum / row.scored * row.N)
    s = metrics.summarise(df).iloc[0]
    assert s.n_samples == 5 and s.n_short == 4 and s.n_saturated == 2
    assert s.max_L == 32  # the lengths tried with a usable sample
