"""Report: LaTeX escaping, the PDF build, numbers in the PDF equal to the CSVs, partial runs."""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from analysis_fixtures import make_record, needs_latex, search_records, synthetic_run, write_records
from memcap.analysis import figures, report, tables

# pytest -n: one worker runs this module, so it builds its shared runs and reports once
# (module fixtures partial_run, search_files, search_run)
pytestmark = [pytest.mark.xdist_group("report")]


def pdf_text(path, layout=True):
    args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return text.replace("\u2212", "-")  # typeset minus back to ASCII, as in the CSVs


def row_pattern(cells):
    """Cells in order on one line, any spacing between and inside them."""
    words = [re.escape(w) for c in cells for w in str(c).split()]
    return r"[ \t]+".join(words)


def assert_row(text, cells):
    assert re.search(row_pattern(cells), text), f"row {cells} not in the PDF"


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """The synthetic run without llama-3.2-1b on random, plus a job that wrote nothing."""
    root = tmp_path_factory.mktemp("report")
    files = [f for f in synthetic_run(root) if f.parent.name != "llama-3.2-1b" or f.stem != "random"]
    (root / "compress" / "llama-3.2-1b" / "random.jsonl").unlink()
    empty = root / "compress" / "mamba-130m" / "lee.jsonl"
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    files.append(empty)
    table_files, figure_files = tables.table_paths(root / "tables"), figures.figure_paths(root / "figures")
    csvs = tables.write_tables(files, table_files)
    figures.write_figures(files, figure_files)
    return root, files, csvs, table_files, figure_files


@pytest.fixture(scope="module")
def built(partial_run):
    root, files, csvs, table_files, figure_files = partial_run
    pdf = report.build_report(
        table_files,
        figure_files,
        files,
        root / "report" / "report.pdf",
        run_name="partial_run",
        extra={"config": "config/x_y.yaml"},
    )
    return pdf, csvs


def test_render_escapes_data_strings(tmp_path):
    records = [make_record("odd_model&co%", "my_data#1", 64, "s-0")]
    context = report.report_context(write_records(tmp_path, records), run_name="run_1", extra={"a_b": "50%"})
    source = report.render_report(context)
    assert r"odd\_model\&co\%" in source and r"my\_data\#1" in source
    assert "odd_model&co%" not in source and r"run\_1" in source and r"50\%" in source


def test_context_numbers_come_from_the_records(partial_run):
    _, files, *_ = partial_run
    context = report.report_context(files)
    best = {h["dataset"]: h for h in context["highlights"]}
    assert best["lee"]["model"] == "llama-3.2-1b" and best["lee"]["capacity"] == "128"
    assert {"model": "llama-3.2-1b", "dataset": "random"} in context["not_run_cells"]
    assert {"model": "mamba-130m", "dataset": "lee"} in context["not_run_cells"]
    assert context["n_failed"] == 3 and context["failed_statuses"] == {"nan": 3}
    llama_random = [c for c in context["comparison"] if c["model"] == "llama-3.2-1b" and c["source"] == "random"]
    assert llama_random[0]["capacity"] == "not run" and llama_random[0]["paper_capacity"] == "316"
    assert ("learning rate", "0.01") in context["optims"][0]
    assert ("betas", "0.9, 0.9") in context["optims"][0]


@pytest.mark.slow
@needs_latex
def test_pdf_builds_with_tex_and_log_beside(built):
    pdf, _ = built
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (pdf.parent / "report.tex").exists() and (pdf.parent / "report.log").exists()


@pytest.mark.slow
@needs_latex
def test_pdf_tables_equal_csvs(built):
    pdf, csvs = built
    text = pdf_text(pdf)
    t1 = pd.read_csv(csvs["table1"], dtype=str, keep_default_na=False)
    models = list(t1.columns[3:])
    for _, row in t1.iterrows():  # every Table 1 row: its label and all model cells in order
        assert_row(text, [row["Values"], *row[models]])
    summary = pd.read_csv(csvs["summary"], dtype=str, keep_default_na=False)
    for _, row in summary.iterrows():
        assert_row(text, list(row))
    multivector = pd.read_csv(csvs["multivector"], dtype=str, keep_default_na=False)
    assert len(multivector) == 3
    for _, row in multivector.iterrows():
        assert_row(text, list(row))
    passes = pd.read_csv(csvs["pass_rate"], dtype=str, keep_default_na=False)
    for _, row in passes.iloc[[0, len(passes) // 2, -1]].iterrows():
        assert_row(text, list(row))


@pytest.mark.slow
@needs_latex
def test_pdf_shows_partial_results_as_not_run(built):
    pdf, csvs = built
    text = pdf_text(pdf)
    t1 = pd.read_csv(csvs["table1"], dtype=str, keep_default_na=False)
    assert (
        t1.loc[(t1.Source == "random") & (t1.Metric == "Max tokens") & (t1.Values == "this run"), "llama-3.2-1b"].item()
        == "not run"
    )
    assert "not run" in text and "mamba-130m" in text
    assert "Comparison with the paper" in text and "Kuratov" in text
    assert "config/x_y.yaml" in text and "partial_run" in text
    # a grid-only run says so instead of showing an empty search table
    assert pd.read_csv(csvs["search"]).empty
    assert "No search-mode runs" in pdf_text(pdf, layout=False)


@pytest.mark.slow
@needs_latex
def test_missing_tables_and_figures_do_not_break_the_build(tmp_path):
    records = [make_record("pythia-160m", "lee", 64, "lee-0")]
    files = write_records(tmp_path, records)
    (tmp_path / "t").mkdir()
    (tmp_path / "f").mkdir()
    pdf = report.build_report(
        tables.table_paths(tmp_path / "t"), figures.figure_paths(tmp_path / "f"), files, tmp_path / "r" / "r.pdf"
    )
    text = pdf_text(pdf, layout=False)
    assert "Table 1 was not produced" in text and "was not produced" in text


@needs_latex
def test_the_per_text_comparison_with_the_reference_reaches_the_pdf(tmp_path):
    """LaTeX takes the per-text statement (its >= of an unbracketed reference capacity too)."""
    reference = [
        make_record("pythia-160m", "lee", L, sample, max_correct=(L - 1) if L <= last else L // 2)
        for sample, last, lengths in [("lee-0", 64, (64, 80, 96)), ("lee-1", 80, (64, 80))]
        for L in lengths
    ]
    ref_file = tmp_path / "reference.jsonl"
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in reference))
    files = write_records(tmp_path / "run", [make_record("pythia-160m", "lee", 64, f"lee-{i}") for i in range(2)])
    pdf = report.build_report({}, {}, files, tmp_path / "r" / "r.pdf", budget_reference=[ref_file])
    text = one_line(pdf_text(pdf, layout=False)).replace("\u2019", "'")  # LaTeX's typographic apostrophe
    assert "this run's capacity against the reference's: lee-0 64 against 64, lee-1 64 against ≥80;" in text
    assert "2 of 2 texts are at least the reference's capacity minus one grid step (so far" in text


@pytest.mark.slow
@needs_latex
def test_the_report_includes_the_files_it_is_given_under_any_name(tmp_path):
    """The files are found by their names in the mappings (the rules' outputs), not by a
    folder and a file name; a table or figure left out of its mapping is "not produced"."""
    files = write_records(tmp_path, [make_record("pythia-160m", "lee", 64, f"lee-{i}") for i in range(2)])
    table_files = {key: tmp_path / "t" / f"my_{key}.{key.rsplit('_', 1)[1]}" for key in tables.table_paths(tmp_path)}
    figure_files = {key: tmp_path / "f" / f"my_{key}.{key.rsplit('_', 1)[1]}" for key in figures.figure_paths(tmp_path)}
    tables.write_tables(files, table_files)
    figures.write_figures(files, figure_files)
    del table_files["pass_rate_tex"], figure_files["ce_scatter_pdf"]
    pdf = report.build_report(table_files, figure_files, files, tmp_path / "r" / "r.pdf")
    text = one_line(pdf_text(pdf, layout=False))
    assert "Table 1 was not produced" not in text and "The pass-rate table was not produced" in text
    assert "Figure ce_scatter was not produced" in text and "Figure capacity was not" not in text
    tex = (tmp_path / "r" / "report.tex").read_text()
    assert r"\input{tables/table1.tex}" in tex and "figures/capacity.pdf" in tex


def test_build_report_refuses_unknown_names(tmp_path):
    files = write_records(tmp_path, [make_record()])
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'table9_tex'.*table1_csv, table1_tex"):
        report.build_report({"table9_tex": tmp_path / "x.tex"}, {}, files, tmp_path / "r.pdf")
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'capacity'.*capacity_pdf, capacity_png"):
        report.build_report({}, {"capacity": tmp_path / "x.pdf"}, files, tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists() and not (tmp_path / "report.tex").exists()


@pytest.mark.slow
@needs_latex
def test_latex_failure_raises_with_log_tail(tmp_path):
    template_dir = tmp_path / "paper"
    shutil.copytree(report.PAPER_DIR, template_dir)
    (template_dir / "report.tex.j2").write_text(
        "\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n"
    )
    files = write_records(tmp_path, [make_record()])
    with pytest.raises(report.ReportBuildError, match="Undefined control sequence"):
        report.build_report({}, {}, files, tmp_path / "out" / "report.pdf", template_dir=template_dir)


def test_optim_settings_accept_both_record_styles():
    engine = report._optim_settings({"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "new_knob": 3})
    assert engine == [("preset", "paper"), ("learning rate", "0.01"), ("betas", "0.9, 0.99"), ("new knob", "3")]
    documented = report._optim_settings({"betas": [0.9, 0.9], "eps": 1e-8})
    assert documented == [("preset", "paper"), ("betas", "0.9, 0.9"), ("eps", "1e-08")]
    fast = report._optim_settings({"preset": "fast", "lr": 0.1, "schedule": "cosine"})
    assert fast == [("preset", "fast"), ("learning rate", "0.1"), ("schedule", "cosine")]


def validated_config(name):
    """config/<name>.yaml with the schema's defaults, as the workflow sees it."""
    import yaml
    from snakemake.utils import validate

    root = report.PAPER_DIR.parent
    config = yaml.safe_load((root / "config" / f"{name}.yaml").read_text())
    validate(config, str(root / "workflow/schemas/config.schema.yaml"))
    return config


def test_workflow_settings_give_one_row_per_setting_in_config_order():
    rows = report.workflow_settings(validated_config("smoke"), {"tiny-gpt-neox": 8})
    assert rows == {
        "config": "smoke",
        "protocol": "paper",
        "models": "tiny-gpt-neox",
        "dataset lee": "gensim: lee_background.cor, 2 samples",
        "dataset random": "random words (wordfreq), seed 0, 3 samples",
        "lengths (K = 1)": "4, 8",
        "random L_up": "tiny-gpt-neox 8",
        "multi-vector tiny-gpt-neox": "lee, K in 2",
        "optimiser": "AdamW, preset paper; set in the config: max_steps 30, patience 10",
        "batch size, device": "4, cpu",
    }
    assert list(rows)[:3] == ["config", "protocol", "models"]
    paper = validated_config("config")
    rows = report.workflow_settings(paper, dict.fromkeys(paper["models"], 1280))
    assert rows["dataset pg19"] == "hf yurakuratov/pg19_valid_1k_chunks, 50 samples"
    assert rows["optimiser"].startswith("AdamW, preset paper; set in the config: lr 0.01, beta1 0.9,")
    assert report.workflow_settings(validated_config("demo"), {"smollm2-135m": 16})["optimiser"] == (
        "AdamW, preset fast"
    )


# --- a run with a capacity search -------------------------------------------------------


def one_line(text):
    return " ".join(text.split())


@pytest.fixture(scope="module")
def search_files(tmp_path_factory):
    """pythia-160m searched on pg19 (per-sample capacities 128, 128, 64; the texts that
    reach 96 and 128 are all lossless there, so per-length means would say 128) beside a
    grid run of llama-3.2-1b on pg19 with capacity 32: (records files, tables, table and figure paths)."""
    root = tmp_path_factory.mktemp("search_report")
    records = search_records({"pg19-0000": 128, "pg19-0001": 128, "pg19-0002": 64}, dataset="pg19", steps=25)
    records += [make_record("llama-3.2-1b", "pg19", 32, f"pg19-{i:04d}") for i in range(3)]
    records += [make_record("llama-3.2-1b", "pg19", 64, f"pg19-{i:04d}", max_correct=20) for i in range(3)]
    files = write_records(root, records)
    table_files, figure_files = tables.table_paths(root / "tables"), figures.figure_paths(root / "figures")
    return files, tables.write_tables(files, table_files), table_files, figure_files


@pytest.fixture(scope="module")
def search_run(search_files):
    """search_files built to a PDF: (records files, tables, pdf). Slow and needs LaTeX."""
    files, csvs, table_files, figure_files = search_files
    figures.write_figures(files, figure_files)
    root = files[0].parents[2]
    pdf = report.build_report(table_files, figure_files, files, root / "report" / "report.pdf", run_name="search_run")
    return files, csvs, pdf


def test_context_of_a_search_run(search_files):
    files, *_ = search_files
    context = report.report_context(files)
    assert context["search"] == [
        {"model": "pythia-160m", "dataset": "pg19", "protocol": "paper", "K": 1, "samples": 3, "capacity": "64"}
    ]
    best = context["highlights"][0]
    assert (best["model"], best["capacity"], best["search"]) == ("pythia-160m", "64", True)
    pythia = [c for c in context["comparison"] if c["model"] == "pythia-160m" and c["source"] == "PG-19"]
    assert pythia[0]["capacity"] == "64 (search)"


@pytest.mark.slow
@needs_latex
def test_pdf_shows_the_search_table_equal_to_the_csv(search_run):
    _, csvs, pdf = search_run
    text = pdf_text(pdf)
    search = pd.read_csv(csvs["search"], dtype=str, keep_default_na=False)
    # attempts: 32, 64, 96, 128 for two texts; 32, 64 and a failing 96 for the third
    assert list(search.iloc[0]) == [
        "pythia-160m",
        "pg19",
        "1",
        "paper",
        "3",
        "64",
        "106.7",
        "128.0",
        "64",
        "128",
        "11",
        "275",
        "91.7",
    ]
    for _, row in search.iterrows():
        assert_row(text, list(row))
    t1 = pd.read_csv(csvs["table1"], dtype=str, keep_default_na=False)
    for _, row in t1.iterrows():
        assert_row(text, [row["Values"], *row[list(t1.columns[3:])]])
    assert_row(text, ["this run", "64 (search)", "32"])  # Max tokens: pythia, llama
    summary = pd.read_csv(csvs["summary"], dtype=str, keep_default_na=False)
    for _, row in summary.iterrows():
        assert_row(text, list(row))
    # the pass-rate table keeps the grid run only
    passes = pd.read_csv(csvs["pass_rate"], dtype=str, keep_default_na=False)
    assert set(passes.Model) == {"llama-3.2-1b"}
    flat = one_line(pdf_text(pdf, layout=False))
    assert "decodes up to 64 tokens from a single vector (found by a capacity search" in flat
    assert (
        "the decoding capacity is the largest L such that the fraction of samples with capacity ≥ L is ≥ 0.99"
    ) in flat
    assert "No search-mode runs" not in flat


def test_context_knows_random_text_by_its_kind_not_its_name(tmp_path):
    """A random dataset named `noise` whose samples all fail: the report says no sampled text
    was decoded (not "even the shortest length"), and that noise is random text."""
    records = [
        make_record("pythia-160m", "noise", L, f"noise-{i}", kind="random", max_correct=2)
        for i, L in enumerate([9, 13, 21, 40])
    ]
    context = report.report_context(write_records(tmp_path, records))
    (dataset,) = context["datasets"]
    assert dataset["kind"] == "random" and dataset["paper_source"] == "random"
    (highlight,) = context["highlights"]
    assert highlight["kind"] == "random" and not highlight["passed"]
    assert (highlight["shortest"], highlight["longest"]) == (9, 40)
    tex = report.render_report(context)
    assert r"On \texttt{noise} (random text), no model decodes any sampled text (9 to 40 tokens)" in tex
    assert "noise & random & random" in tex  # the Sources table: text kind, paper's source


def test_the_paper_budget_reference_is_shown_beside_this_runs_capacity(tmp_path):
    ref = [
        make_record("pythia-160m", "lee", L, f"lee-{i}", max_correct=(L - 1) if ok else L // 2, steps=steps)
        for i, cells in enumerate(
            [[(64, True, 900), (80, False, 5000), (96, False, 5000)], [(64, True, 700), (80, True, 2100)]]
        )
        for L, ok, steps in cells
    ]
    ref_file = tmp_path / "reference.jsonl"
    ref_file.write_text("".join(json.dumps(r) + "\n" for r in ref))
    ours = write_records(
        tmp_path / "run",
        [make_record("pythia-160m", "lee", L, f"lee-{i}", steps=40, preset="fast") for i in range(2) for L in (64, 80)],
    )
    context = report.report_context(ours, "budget", budget_reference=[ref_file])
    (b,) = context["budget_reference"]
    assert (b["model"], b["dataset"], b["n_texts"], b["n_bracketed"]) == ("pythia-160m", "lee", 2, 1)
    assert b["capacity"] == "64" and b["capacities"] == "64, 80"  # text 1 may pass beyond 80, not lower the min
    assert b["steps"] == 900 + 5000 + 5000 + 700 + 2100 and b["ours_steps"] == 160
    assert b["ours"] == ">=80" and b["ours_method"] == "fast"  # lossless at the longest length tried
    text = one_line(report.render_report(context))
    assert "Reference at the paper's budget" in text and "1 of 2 texts bracketed" in text
    assert "which leaves the capacity over the texts as it is" in text and "method \\texttt{fast}" in text
    assert "on the same 2 texts as this run" in text
    # a run on one of the reference's texts is compared on that text alone
    one = write_records(tmp_path / "one", [make_record("pythia-160m", "lee", 64, "lee-0", steps=40)])
    (b,) = report.report_context(one, "budget", budget_reference=[ref_file])["budget_reference"]
    assert (b["n_texts"], b["capacity"], b["steps"], b["same_texts"]) == (1, "64", 900 + 5000 + 5000, True)


def test_a_low_rank_capacity_names_its_method_and_a_paper_one_does_not(tmp_path):
    low_rank = {"lr": 0.3, "max_steps": 250, "patience": 150, "preset": "fast", "parametrisation": "low_rank"}
    low_rank["rank"] = 64
    records = [
        make_record("pythia-160m", "lee", L, f"lee-{i}", preset="fast", optim=low_rank)
        for i in range(2)
        for L in (64, 80)
    ]
    records += [make_record("pythia-160m", "pg19", 64, f"pg19-{i}") for i in range(2)]  # before presets: paper
    context = report.report_context(write_records(tmp_path, records))
    methods = {h["dataset"]: h["method"] for h in context["highlights"]}
    assert methods == {"lee": "fast + low_rank r=64 (pca)", "pg19": None}
    text = one_line(report.render_report(context))
    lee = r"\textbf{\textgreater{}=80 tokens} from a single vector with method \texttt{fast + low\_rank r=64 (pca)};"
    assert lee in text
    assert r"\textbf{\textgreater{}=64 tokens} from a single vector (the paper reports 80" in text


def test_the_paper_budget_reference_counts_no_length_a_short_text_never_reached():
    from memcap.analysis.paper_budget import text_capacities

    cells = [
        make_record("pythia-160m", "lee", 64, "lee-0"),
        make_record("pythia-160m", "lee", 80, "lee-0", N=70, short=True, scored=69),
    ]
    (text,) = text_capacities(cells)
    assert text["capacity"] == 64 and text["bracketed"]  # the text ends at 70 tokens
    assert text["lengths"] == [64] and text["first_fail"] is None


# --- capacity statistics and the headline rule ---------------------------------------------


def test_the_report_names_the_headline_rule_and_the_estimator(tmp_path):
    from test_capacity_stats import hard_text_records

    files = write_records(tmp_path, hard_text_records())
    context = report.report_context(files)
    assert (context["capacity_rule"], context["estimator"]) == ("paper", "saturation estimate")
    (texts,) = context["capacity_lists"]
    assert (texts["n"], texts["capacities"], texts["zero"]) == (5, "0, 64, 128×3", "z")
    assert context["highlights"][0]["capacity"] == "32" and context["n_zero_groups"] == 1
    tex = one_line(report.render_report(context))
    assert "The headline decoding capacity of this report follows the paper's rule}" in tex
    assert "The per-sample rule lets one hard text set the capacity" in tex
    assert r"\emph{saturation estimate}" in tex and r"\label{tab:capacity}" in tex
    assert r"32 (est.) & \textless{}32 & 5 & 89.6" in tex  # the capacity table, escaped
    assert r"0, 64, 128$\times$3 & z" in tex  # the per-text capacities
    per_sample = report.report_context(files, capacity_rule="per_sample")
    assert per_sample["highlights"][0]["capacity"] == "<32" and not per_sample["highlights"][0]["passed"]
    tex = one_line(report.render_report(per_sample))
    assert "The headline decoding capacity of this report follows the per-sample rule}" in tex
    assert r"(\texttt{report.capacity\_rule}: \texttt{per\_sample})" in tex
    with pytest.raises(ValueError, match="not one of paper, per_sample"):
        report.report_context(files, capacity_rule="mean")


@pytest.mark.slow
@needs_latex
def test_pdf_capacity_statistics_equal_the_csv(built):
    pdf, csvs = built
    text = pdf_text(pdf)
    capacity = pd.read_csv(csvs["capacity"], dtype=str, keep_default_na=False)
    assert len(capacity) == 7  # every (model, source, K) of the partial run (llama-3.2-1b on random: not run)
    for _, row in capacity.iterrows():
        assert_row(text, list(row))
    flat = one_line(pdf_text(pdf, layout=False))
    assert "The per-sample rule lets one hard text set the capacity" in flat
    assert "Per-text capacities" in flat and "saturation estimate" in flat


@pytest.mark.slow
@needs_latex
def test_a_per_sample_report_builds_and_says_so(tmp_path):
    from test_capacity_stats import hard_text_records

    files = write_records(tmp_path, hard_text_records())
    table_files, figure_files = tables.table_paths(tmp_path / "t"), figures.figure_paths(tmp_path / "f")
    csvs = tables.write_tables(files, table_files, capacity_rule="per_sample")
    figures.write_figures(files, figure_files, capacity_rule="per_sample")
    pdf = report.build_report(table_files, figure_files, files, tmp_path / "r" / "r.pdf", capacity_rule="per_sample")
    flat = one_line(pdf_text(pdf, layout=False))
    assert "The headline decoding capacity of this report follows the per-sample rule" in flat
    assert "no model decodes even the shortest length tried (32 tokens) losslessly for 99 % of its texts" in flat
    capacity = pd.read_csv(csvs["capacity"], dtype=str, keep_default_na=False)
    assert_row(pdf_text(pdf), list(capacity.iloc[0]))
