"""The paper's tables from per-sample records, as CSV and LaTeX (booktabs) side by side.

Usage::

    from memcap.analysis.tables import table_paths, write_tables
    files = table_paths(Path("results/demo/tables"))
    # {"table1_csv": .../table1.csv, "table1_tex": .../table1.tex, "summary_csv": ..., ...}
    csvs = write_tables(record_files, files, capacity_rule="paper")  # writes exactly `files`
    # {"table1": .../table1.csv, "summary": ..., "multivector": ..., "pass_rate": ...,
    #  "search": ..., "capacity": ..., "capacities": ...}; the .tex fragments need booktabs,
    #  adjustbox, longtable.

``write_tables`` takes the path of every file: "<name>_csv" and "<name>_tex" for each name
in TABLE_NAMES, as the workflow's rule tables names its outputs
(workflow/rules/analysis.smk); ``table_paths`` gives them all in one folder.

Tables (at K = 1 except the multi-vector, search and capacity tables):

* ``table1``: the paper's Table 1: per source, rows Max tokens, Token gain, Information
  gain (nats and bits), each as "this run", "paper" and "difference" rows; models as
  columns.
* ``summary``: per model params, d, vocabulary, Eq. 1 capacity, and per source the
  decoding capacity and capacity utilisation, with the paper's row beside ours.
* ``multivector``: capacity, token gain and information gain by number of vectors K.
* ``pass_rate``: per length the share of lossless samples (random text in length bins,
  since each sampled length has about one sample), with the failed records and the
  records of texts shorter than the length (left out of every number); grid-mode
  records only.
* ``search``: per (model, source, K) run in search mode, the method (the optimiser preset,
  and the parametrisation where it is not full: memcap.analysis.metrics), the number of samples, the
  decoding capacity (the headline rule), the per-sample capacities' mean, median, min and
  max, the attempts and the optimiser steps (in all and per sample). Empty when no run used
  search mode.
* ``capacity``: per (model, source, protocol, K), the mode and method that found it, the headline
  decoding capacity and its rule,
  the capacity under the paper's rule (a search's saturation estimate marked "(est.)") and
  under the per-sample rule, and the per-text capacities' distribution: texts, mean with its
  bootstrap 95 % interval, quartiles, min, the texts at the min and those with capacity 0
  (memcap.analysis.metrics.capacity_statistics).
* ``capacities``: one row per text (model, dataset, protocol, K, sample_id, capacity, mode),
  its own capacity (memcap.analysis.metrics.text_capacities).

The headline decoding capacity ("Max tokens", "Capacity") follows the rule ``capacity_rule``
names (memcap.analysis.capacity_stats: "paper", the default, or "per_sample"; docs/method.md
section 4.3). A capacity computed from a search is marked "(search)" wherever it appears; a
grid capacity is unmarked. A mapping must name RULE_TABLES (the first five); the capacity
tables are written when it names them too, as the workflow's rule tables does.

The CSV cells hold exactly the text the LaTeX shows (numbers already rounded), so the two
always agree; the LaTeX is written with memcap.analysis.latex. Paper values come from
paper/reference.yaml (memcap.analysis.reference) and are labelled "paper"; a model or source
without records shows "not run", a paper cell without a value "n/a". Models, sources and the
paper's rows are those of the run's view (memcap.analysis.run_view), as in the figures and
the report.

Whether a dataset is natural or random text comes from its records' ``kind``
(memcap.analysis.metrics), never from its name; the name only maps a natural dataset to the paper's
natural source (pg19, fanfics) for the paper's values (memcap.analysis.reference.paper_source), and
every random dataset compares with the paper's random text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from memcap.analysis import metrics
from memcap.analysis.latex import latex_boxed, latex_empty_note, latex_tabular
from memcap.analysis.reference import paper_value
from memcap.analysis.run_view import RunView
from memcap.io import check_named_paths, named_paths

NOT_RUN = "not run"
SEARCH_MARK = "(search)"  # follows a capacity that comes from a capacity search (fmt_row_capacity)
ESTIMATE_MARK = "(est.)"  # follows the saturation estimate of the paper's rule (a search)
RULE_LABELS = {"paper": "paper", "per_sample": "per-sample"}  # capacity_stats.CAPACITY_RULES
NO_VALUE = "n/a"
OURS, PAPER, DIFF = "this run", "paper", "difference"
# Bin edges for random text (the paper's length grid, then doubling): (64, 80] -> "65-80".
LENGTH_BINS = [
    0,
    8,
    16,
    32,
    64,
    80,
    96,
    128,
    160,
    192,
    256,
    384,
    512,
    768,
    1024,
    1280,
    1568,
    2048,
    2560,
    3072,
    4096,
    6144,
    8192,
    12288,
    16384,
    32768,
    65536,
]
MODELS_PER_TABULAR = 5  # wider Table 1 blocks are split so they stay legible in print

# --- number formatting (one place, so CSV and LaTeX agree) ---------------------------


def fmt_number(value, digits: int = 1) -> str:
    """Rounded number, or n/a for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    return f"{value:.{digits}f}"


def fmt_mean_std(mean, std, digits: int = 1) -> str:
    """'70.9 ± 11.0'; one sample has no std; no saturated sample has no gain."""
    if mean is None or pd.isna(mean):
        return "all lossless"
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_diff(ours, paper, digits: int = 1) -> str:
    """Signed difference ours - paper, n/a when either is missing."""
    if ours is None or paper is None or pd.isna(ours) or pd.isna(paper):
        return NO_VALUE
    return f"{ours - paper:+.{digits}f}"


def fmt_capacity(capacity, min_length, max_length=None) -> str:
    """Largest passing length; '<L' when even the shortest length tried failed, '>=L' when
    the longest length tried passed (the capacity is then only a lower bound)."""
    if pd.isna(capacity):
        return f"<{int(min_length)}" if pd.notna(min_length) else NO_VALUE
    if max_length is not None and pd.notna(max_length) and capacity >= max_length:
        return f">={int(capacity)}"
    return f"{int(capacity)}"


def fmt_row_capacity(row, method: bool = True) -> str:
    """A summary row's capacity (fmt_capacity), marked "(search)" for a search group and, with
    `method`, by the method that found it where that is not the paper's optimiser:
    "32 (search, fast)", "24 (fast + low_rank r=64 (pca))". Tables with a Method column pass
    method=False."""
    text = fmt_capacity(row["capacity"], row["min_L"], row["max_L"])
    marks = ["search"] if row.get("mode") == "search" else []
    found_by = row.get("method") if method else None
    if isinstance(found_by, str) and found_by != "paper":
        marks.append(found_by)
    return f"{text} ({', '.join(marks)})" if marks else text


def fmt_params(params) -> str:
    """Parameter count as 162M or 1.24B."""
    if params is None or pd.isna(params):
        return NO_VALUE
    if params >= 1e9:
        return f"{params / 1e9:.2f}B"
    return f"{params / 1e6:.0f}M" if params >= 1e7 else f"{params / 1e6:.2g}M"


def _ours(row, formatter) -> str:
    if row is None:
        return NOT_RUN
    if row["n_samples"] == 0:
        if row.get("n_short", 0):  # every text was shorter than the lengths it was run at
            return f"no usable sample ({int(row['n_failed'])} failed, {int(row['n_short'])} short)"
        return f"failed ({row['n_failed']})"
    return formatter(row)


# --- the tables as DataFrames of display strings ------------------------------------

_TABLE1_METRICS = [
    # (label, our formatter, paper key, paper formatter, diff of (ours, paper))
    ("Max tokens", fmt_row_capacity, "capacity", lambda p: f"{p}", lambda r, p: fmt_diff(r["capacity"], p, 0)),
    (
        "Token gain",
        lambda r: fmt_mean_std(r["token_gain_mean"], r["token_gain_std"]),
        "token_gain",
        lambda p: fmt_mean_std(*p),
        lambda r, p: fmt_diff(r["token_gain_mean"], p[0]),
    ),
    (
        "Information gain (nats)",
        lambda r: fmt_mean_std(r["info_gain_nats_mean"], r["info_gain_nats_std"]),
        "info_gain_nats",
        lambda p: fmt_mean_std(*p),
        lambda r, p: fmt_diff(r["info_gain_nats_mean"], p[0]),
    ),
    (
        "Information gain (bits)",
        lambda r: fmt_mean_std(r["info_gain_bits_mean"], r["info_gain_bits_std"]),
        "info_gain_nats",
        lambda p: fmt_mean_std(p[0] / metrics.LN2, p[1] / metrics.LN2),
        lambda r, p: fmt_diff(r["info_gain_bits_mean"], p[0] / metrics.LN2),
    ),
]


def table1_frame(run: RunView) -> pd.DataFrame:
    """Table 1: rows (source, metric, this run/paper/difference), models as columns."""
    cols = run.columns()
    rows = []
    for dataset in run.datasets:
        source = run.source(dataset)
        for label, ours_fmt, key, paper_fmt, diff_fmt in _TABLE1_METRICS:
            paper = {c: paper_value(run.reference, run.paper_row[m], key, source) for c, m, _ in cols}
            ours = {c: run.row(m, dataset, p) for c, m, p in cols}
            rows.append(
                {
                    "Source": dataset,
                    "Metric": label,
                    "Values": OURS,
                    **{c: _ours(ours[c], ours_fmt) for c, _, _ in cols},
                }
            )
            if any(v is not None for v in paper.values()):  # the paper has this source
                rows.append(
                    {
                        "Source": dataset,
                        "Metric": label,
                        "Values": PAPER,
                        **{c: NO_VALUE if paper[c] is None else paper_fmt(paper[c]) for c, _, _ in cols},
                    }
                )
                rows.append(
                    {
                        "Source": dataset,
                        "Metric": label,
                        "Values": DIFF,
                        **{
                            c: NO_VALUE
                            if paper[c] is None or ours[c] is None or ours[c]["n_samples"] == 0
                            else diff_fmt(ours[c], paper[c])
                            for c, _, _ in cols
                        },
                    }
                )
    return pd.DataFrame(rows, columns=["Source", "Metric", "Values", *[c for c, _, _ in cols]])


def _model_meta(run: RunView, model: str) -> dict:
    s = run.summary[run.summary.model == model]
    if s.empty:
        return {}
    first = s.iloc[0]
    return {k: first[k] for k in ("params", "mem_dim", "vocab_size", "l_th_rounded")}


def summary_frame(run: RunView) -> pd.DataFrame:
    """Per model: params, d, |V|, Eq. 1 capacity; per source capacity and utilisation."""
    header = ["Model", "Values", "Params", "d", "Vocabulary", "L_th (Eq. 1)"]
    for ds in run.datasets:
        header += [f"Capacity {ds}", f"Utilisation {ds}"]
    rows = []
    for label, model, protocol in run.columns():
        meta = _model_meta(run, model)
        ref_row = run.paper_row[model]
        ref = run.reference["models"][ref_row] if ref_row else None
        ours = {"Model": label, "Values": OURS}
        if meta:
            ours.update(
                {
                    "Params": fmt_params(meta["params"]),
                    "d": fmt_number(meta["mem_dim"], 0),
                    "Vocabulary": fmt_number(meta["vocab_size"], 0),
                    "L_th (Eq. 1)": fmt_number(meta["l_th_rounded"], 0),
                }
            )
        else:
            ours.update({k: NOT_RUN for k in header[2:6]})
        paper = {"Model": label, "Values": PAPER}
        diff = {"Model": label, "Values": DIFF, "Params": NO_VALUE}
        if ref:
            paper.update(
                {
                    "Params": fmt_params(ref["params_b"] * 1e9),
                    "d": f"{ref['d']}",
                    "Vocabulary": f"{ref['vocab']}",
                    "L_th (Eq. 1)": f"{ref['l_th']}",
                }
            )
            diff.update(
                {
                    "d": fmt_diff(meta.get("mem_dim"), ref["d"], 0),
                    "Vocabulary": fmt_diff(meta.get("vocab_size"), ref["vocab"], 0),
                    "L_th (Eq. 1)": fmt_diff(meta.get("l_th_rounded"), ref["l_th"], 0),
                }
            )
        for ds in run.datasets:
            r = run.row(model, ds, protocol)
            source = run.source(ds)
            cap_p = paper_value(run.reference, ref_row, "capacity", source)
            util_p = paper_value(run.reference, ref_row, "utilisation", source)
            ours[f"Capacity {ds}"] = _ours(r, fmt_row_capacity)
            ours[f"Utilisation {ds}"] = _ours(r, lambda x: fmt_number(x["utilisation"], 3))
            paper[f"Capacity {ds}"] = NO_VALUE if cap_p is None else f"{cap_p}"
            paper[f"Utilisation {ds}"] = NO_VALUE if util_p is None else f"{util_p:.3f}"
            valid = r is not None and r["n_samples"] > 0
            diff[f"Capacity {ds}"] = fmt_diff(r["capacity"], cap_p, 0) if valid else NO_VALUE
            diff[f"Utilisation {ds}"] = fmt_diff(r["utilisation"], util_p, 3) if valid else NO_VALUE
        rows.append(ours)
        if ref:
            rows += [paper, diff]
    frame = pd.DataFrame(rows, columns=header)
    return frame.fillna(NO_VALUE)


def multivector_frame(run: RunView) -> pd.DataFrame:
    """Capacity and gains by K for every (model, source) run with some K > 1."""
    s = run.summary
    multi = s.groupby(["model", "dataset", "protocol"])["K"].transform("max") > 1
    s = s[multi].sort_values(["model", "dataset", "protocol", "K"])
    mixed = run.mixed
    rows = []
    for _, r in s.iterrows():
        ref_row = run.paper_row.get(r["model"])
        ref = run.reference.get("multivector", {}).get(ref_row)
        same_source = ref and run.source(r["dataset"]) == ref["source"]
        paper = {
            k: (ref[k].get(int(r["K"])) if same_source else None) for k in ("capacity", "token_gain", "info_gain_nats")
        }
        valid = r["n_samples"] > 0
        rows.append(
            {
                "Model": f"{r['model']} [{r['protocol']}]" if mixed else r["model"],
                "Source": r["dataset"],
                "K": f"{int(r['K'])}",
                "Max tokens": fmt_row_capacity(r) if valid else "failed",
                "Max tokens (paper)": NO_VALUE if paper["capacity"] is None else f"{paper['capacity']}",
                "Max tokens diff": fmt_diff(r["capacity"], paper["capacity"], 0),
                "Token gain": fmt_mean_std(r["token_gain_mean"], r["token_gain_std"]),
                "Token gain (paper)": fmt_number(paper["token_gain"]),
                "Token gain diff": fmt_diff(r["token_gain_mean"], paper["token_gain"]),
                "Information gain (nats)": fmt_mean_std(r["info_gain_nats_mean"], r["info_gain_nats_std"]),
                "Information gain (paper)": fmt_number(paper["info_gain_nats"]),
                "Information gain diff": fmt_diff(r["info_gain_nats_mean"], paper["info_gain_nats"]),
            }
        )
    columns = [
        "Model",
        "Source",
        "K",
        "Max tokens",
        "Max tokens (paper)",
        "Max tokens diff",
        "Token gain",
        "Token gain (paper)",
        "Token gain diff",
        "Information gain (nats)",
        "Information gain (paper)",
        "Information gain diff",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    paper_cols = [c for c in columns if "(paper)" in c or c.endswith("diff")]
    if frame[paper_cols].eq(NO_VALUE).all().all():  # nothing to compare with: drop them
        frame = frame.drop(columns=paper_cols)
    return frame


def _length_bin(length: int) -> tuple[int, int]:
    upper = next(edge for edge in LENGTH_BINS if edge >= length)
    lower = LENGTH_BINS[LENGTH_BINS.index(upper) - 1] + 1
    return lower, upper


PASS_RATE_COLUMNS = [
    "Model",
    "Source",
    "K",
    "Lengths",
    "Samples",
    "Lossless",
    "Pass rate",
    "Mean accuracy",
    "Greedy exact",
    "Failed",
    "Short",
]


def _in_run_order(table: pd.DataFrame, run: RunView, by: list[str]) -> pd.DataFrame:
    """`table` sorted by `by`: models and datasets in the run's order, other keys by value."""
    order = {m: i for i, m in enumerate(run.models)}
    dorder = {d: i for i, d in enumerate(run.datasets)}
    return table.sort_values(
        by,
        key=lambda c: c.map(order) if c.name == "model" else c.map(dorder) if c.name == "dataset" else c,
    )


def _pass_rate_groups(run: RunView, table: pd.DataFrame) -> pd.DataFrame:
    """Per-length counts summed per (model, dataset, protocol, K, length bin lo..hi)."""
    bins = [
        _length_bin(L) if run.kind(ds) == "random" else (L, L)
        for L, ds in zip(table["L"], table["dataset"], strict=True)
    ]
    table["lo"], table["hi"] = zip(*bins, strict=True)
    table["acc_sum"] = table["mean_acc"].fillna(0) * table["n"]
    grouped = (
        table.groupby(["model", "dataset", "protocol", "K", "lo", "hi"])
        .agg(
            n=("n", "sum"),
            n_lossless=("n_lossless", "sum"),
            acc_sum=("acc_sum", "sum"),
            greedy=("n_greedy_exact", lambda s: s.sum() if s.notna().any() else np.nan),
            failed=("n_failed", "sum"),
            short=("n_short", "sum"),
        )
        .reset_index()
    )
    return _in_run_order(grouped, run, ["model", "dataset", "protocol", "K", "lo"])


def _pass_rate_row(g, mixed: bool) -> dict:
    """One pass-rate row (a length bin of one group) as display strings."""
    n = int(g["n"])
    return {
        "Model": f"{g['model']} [{g['protocol']}]" if mixed else g["model"],
        "Source": g["dataset"],
        "K": f"{int(g['K'])}",
        "Lengths": f"{g['lo']}" if g["lo"] == g["hi"] else f"{g['lo']}-{g['hi']}",
        "Samples": f"{n}",
        "Lossless": f"{int(g['n_lossless'])}",
        "Pass rate": fmt_number(g["n_lossless"] / n, 2) if n else NO_VALUE,
        "Mean accuracy": fmt_number(g["acc_sum"] / n, 3) if n else NO_VALUE,
        "Greedy exact": NO_VALUE if pd.isna(g["greedy"]) else f"{int(g['greedy'])}",
        "Failed": f"{int(g['failed'])}",
        "Short": f"{int(g['short'])}",
    }


def pass_rate_frame(run: RunView) -> pd.DataFrame:
    """Share of lossless samples (accuracy >= 0.99) per length; random text per length bin.

    Samples are the usable records; failed records and records of texts shorter than the
    length (``short``, memcap.analysis.metrics) are counted in their own columns and in no other.

    Grid-mode records only: a search attempts a text at a length only after it was lossless
    at the shorter ones, so a search's per-length share would be over a self-selected subset
    and read as a much higher pass rate than the texts have; its numbers are in the search
    table.
    """
    table = metrics.pass_rate_by_length(run.df)
    table = table[table["mode"] == "grid"]
    if table.empty:
        return pd.DataFrame(columns=PASS_RATE_COLUMNS)
    grouped = _pass_rate_groups(run, table)
    rows = [_pass_rate_row(g, run.mixed) for _, g in grouped.iterrows()]
    return pd.DataFrame(rows, columns=PASS_RATE_COLUMNS)


SEARCH_COLUMNS = [
    "Model",
    "Source",
    "K",
    "Method",
    "Samples",
    "Capacity",
    "Mean",
    "Median",
    "Min",
    "Max",
    "Attempts",
    "Steps",
    "Steps per sample",
]


def search_frame(run: RunView) -> pd.DataFrame:
    """Per search-mode (model, source, K): the method, samples, the decoding capacity under the run's
    headline rule ('>=L' when it reached the longest length tried), the per-sample capacities'
    mean, median, min and max, the attempts and the optimiser steps, in all and per sample."""
    table = metrics.search_capacity_summary(run.df, run.capacity_rule)
    if table.empty:
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    table = _in_run_order(table, run, ["model", "dataset", "protocol", "K"])
    mixed = run.mixed
    rows = []
    for _, r in table.iterrows():
        rows.append(
            {
                "Model": f"{r['model']} [{r['protocol']}]" if mixed else r["model"],
                "Source": r["dataset"],
                "K": f"{int(r['K'])}",
                "Method": r["method"],
                "Samples": f"{int(r['n_samples'])}",
                "Capacity": fmt_capacity(r["capacity"], r["min_L"], r["max_L"]),
                "Mean": fmt_number(r["capacity_mean"]),
                "Median": fmt_number(r["capacity_median"]),
                "Min": f"{int(r['capacity_min'])}",
                "Max": f"{int(r['capacity_max'])}",
                "Attempts": f"{int(r['n_attempts'])}",
                "Steps": fmt_number(r["steps"], 0),
                "Steps per sample": fmt_number(r["steps_per_sample"]),
            }
        )
    return pd.DataFrame(rows, columns=SEARCH_COLUMNS)


CAPACITY_COLUMNS = [
    "Model",
    "Source",
    "K",
    "Mode",
    "Method",
    "Rule",
    "Capacity",
    "Paper rule",
    "Per-sample rule",
    "Texts",
    "Mean",
    "95% CI",
    "Q1",
    "Median",
    "Q3",
    "Min",
    "At min",
    "Zero",
]
CAPACITIES_COLUMNS = ["model", "dataset", "protocol", "K", "sample_id", "capacity", "mode"]


def fmt_interval(low, high, digits: int = 1) -> str:
    """'[54.3, 96.0]', or n/a when the interval is missing."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return NO_VALUE
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _count(value) -> str:
    return NO_VALUE if value is None or pd.isna(value) else f"{int(value)}"


def _capacity_row(r, mixed: bool) -> dict:
    """One capacity-statistics row (a summary row, metrics.summarise) as display strings."""
    search = r["mode"] == "search"
    paper = fmt_capacity(r["capacity_paper"], r["min_L"], r["max_L"])
    return {
        "Model": f"{r['model']} [{r['protocol']}]" if mixed else r["model"],
        "Source": r["dataset"],
        "K": f"{int(r['K'])}",
        "Mode": r["mode"],
        "Method": r["method"],
        "Rule": RULE_LABELS[r["capacity_rule"]],
        "Capacity": fmt_row_capacity(r, method=False),
        "Paper rule": f"{paper} {ESTIMATE_MARK}" if search else paper,
        "Per-sample rule": fmt_capacity(r["capacity_per_sample"], r["min_L"], r["max_L"]),
        "Texts": f"{int(r['n_texts'])}",
        "Mean": fmt_number(r["capacity_mean"]),
        "95% CI": fmt_interval(r["capacity_ci_low"], r["capacity_ci_high"]),
        "Q1": fmt_number(r["capacity_q1"]),
        "Median": fmt_number(r["capacity_median"]),
        "Q3": fmt_number(r["capacity_q3"]),
        "Min": _count(r["capacity_min"]),
        "At min": f"{int(r['n_at_min'])}",
        "Zero": f"{int(r['n_zero'])}",
    }


def capacity_frame(run: RunView) -> pd.DataFrame:
    """Per (model, source, protocol, K): the mode and method that found the capacity, the
    headline decoding capacity and the rule it follows, the capacity under each rule (the
    paper's rule; for a search its saturation estimate, marked "(est.)"; the per-sample rule),
    and the per-text capacities' distribution: texts, mean with its bootstrap 95 % interval,
    quartiles, min, the texts at the min and those with capacity 0
    (memcap.analysis.metrics.capacity_statistics)."""
    s = run.summary
    if s.empty:
        return pd.DataFrame(columns=CAPACITY_COLUMNS)
    s = _in_run_order(s, run, ["model", "dataset", "protocol", "K"])
    return pd.DataFrame([_capacity_row(r, run.mixed) for _, r in s.iterrows()], columns=CAPACITY_COLUMNS)


def capacities_frame(run: RunView) -> pd.DataFrame:
    """One row per text and group: its own capacity (memcap.analysis.metrics.text_capacities;
    0: nothing lossless) and the mode it comes from."""
    texts = metrics.text_capacities(run.df)
    if texts.empty:
        return pd.DataFrame(columns=CAPACITIES_COLUMNS)
    texts = _in_run_order(texts, run, ["model", "dataset", "protocol", "K", "sample_id"])
    return texts[CAPACITIES_COLUMNS].astype(str).reset_index(drop=True)


# every table; RULE_TABLES must be in every mapping, capacity and capacities are written when
# the mapping names them (the workflow's rule tables names all seven)
TABLE_NAMES = ["table1", "summary", "multivector", "pass_rate", "search", "capacity", "capacities"]
RULE_TABLES = TABLE_NAMES[:5]
TABLE_FORMATS = ["csv", "tex"]  # each table as CSV and as a LaTeX fragment


def table_paths(out_dir: Path) -> dict[str, Path]:
    """write_tables' files in one folder: {"table1_csv": out_dir/table1.csv, "table1_tex":
    out_dir/table1.tex, ...}. For tests and notebooks; the workflow names its own files."""
    return named_paths(out_dir, TABLE_NAMES, TABLE_FORMATS)


def build_tables(df: pd.DataFrame, models=(), datasets=(), capacity_rule: str = "paper") -> dict[str, pd.DataFrame]:
    """All tables (TABLE_NAMES) as DataFrames of display strings (module docstring)."""
    return tables_of(RunView(df, models, datasets, capacity_rule=capacity_rule))


def tables_of(run: RunView) -> dict[str, pd.DataFrame]:
    """All tables (TABLE_NAMES) of one run's view (memcap.analysis.run_view)."""
    return {
        "table1": table1_frame(run),
        "summary": summary_frame(run),
        "multivector": multivector_frame(run),
        "pass_rate": pass_rate_frame(run),
        "search": search_frame(run),
        "capacity": capacity_frame(run),
        "capacities": capacities_frame(run),
    }


# --- LaTeX ----------------------------------------------------------------------------


def table1_latex(frame: pd.DataFrame) -> str:
    """Table 1 as booktabs tabulars, at most MODELS_PER_TABULAR model columns each."""
    models = list(frame.columns[3:])
    if frame.empty or not models:
        return latex_empty_note("No records.")
    # Source and metric names only where they change, as in the paper's layout.
    shown = frame.copy()
    shown["Metric"] = frame["Metric"].where(frame["Values"] == OURS, "")
    shown["Source"] = frame["Source"].where(frame["Source"] != frame["Source"].shift(), "")
    blocks = []
    for start in range(0, len(models), MODELS_PER_TABULAR):
        chunk = models[start : start + MODELS_PER_TABULAR]
        tabular = latex_tabular(
            shown[["Source", "Metric", "Values", *chunk]],
            "lll" + "r" * len(chunk),
            groups=frame["Source"],
            header=["Source", "Metric", "", *chunk],
        )
        blocks.append(latex_boxed(tabular))
    return "\n\\par\\medskip\n".join(blocks)


def to_latex(name: str, frame: pd.DataFrame) -> str:
    """The LaTeX fragment of one table (tabular inside adjustbox; pass_rate a longtable)."""
    if name == "table1":
        return table1_latex(frame)
    if frame.empty:
        return latex_empty_note(
            {
                "multivector": "No multi-vector runs (K > 1) in this run.",
                "pass_rate": "No grid-mode records.",
                "summary": "No records.",
                "search": "No search-mode runs in this run.",
                "capacity": "No records.",
                "capacities": "No texts with a usable record.",
            }[name]
        )
    if name == "pass_rate":
        return latex_tabular(
            frame,
            "lll" + "r" * (len(frame.columns) - 3),
            env="longtable",
            groups=frame["Model"] + "/" + frame["Source"] + "/" + frame["K"],
        )
    if name == "capacities":
        return latex_tabular(
            frame, "lllrlrl", env="longtable", groups=frame["model"] + "/" + frame["dataset"] + "/" + frame["K"]
        )
    if name == "capacity":
        return latex_boxed(latex_tabular(frame, "llllll" + "r" * (len(frame.columns) - 6), groups=frame["Model"]))
    if name == "search":  # the method is a label: left-aligned
        return latex_boxed(latex_tabular(frame, "llrl" + "r" * (len(frame.columns) - 4), groups=frame["Model"]))
    align = "l" * 2 + "r" * (len(frame.columns) - 2)
    return latex_boxed(latex_tabular(frame, align, groups=frame["Model"]))


def write_tables(
    records: list[Path],
    paths: Mapping[str, str | Path],
    *,
    models=(),
    datasets=(),
    capacity_rule: str = "paper",
) -> dict[str, Path]:
    """Write the tables as CSV + LaTeX to `paths`.

    `records` are records .jsonl files; `paths` maps "<name>_csv" and "<name>_tex" of the
    names in TABLE_NAMES to the file to write (the rule's named outputs; table_paths: all in
    one folder). Every name of RULE_TABLES must be there; capacity and capacities are written
    in the formats named. An unknown or a missing key raises ValueError naming the allowed
    ones. `models`/`datasets` optionally name cells that should appear as "not run" even
    without any record. `capacity_rule` ("paper" or "per_sample", memcap.analysis.capacity_stats)
    picks the headline decoding capacity. Returns {name: csv path} of the tables written as
    CSV. Tables with nothing to show are written with their header only (CSV) and a one-line
    note (LaTeX).
    """
    paths = _checked_paths(paths)
    frames = tables_of(RunView.from_records(records, models, datasets, capacity_rule=capacity_rule))
    written = {}
    for name, frame in frames.items():
        csv, tex = paths.get(f"{name}_csv"), paths.get(f"{name}_tex")
        for path in (p for p in (csv, tex) if p is not None):
            path.parent.mkdir(parents=True, exist_ok=True)
        if csv is not None:
            frame.to_csv(csv, index=False)
            written[name] = csv
        if tex is not None:
            tex.write_text(to_latex(name, frame) + "\n", encoding="utf-8")
    return written


def _checked_paths(paths: Mapping[str, str | Path]) -> dict[str, Path]:
    """write_tables' `paths` as Paths: any key of TABLE_NAMES, every key of RULE_TABLES."""
    checked = check_named_paths(paths, TABLE_NAMES, TABLE_FORMATS, "write_tables", complete=False)
    check_named_paths(
        {k: p for k, p in checked.items() if k.rsplit("_", 1)[0] in RULE_TABLES},
        RULE_TABLES,
        TABLE_FORMATS,
        "write_tables",
    )
    return checked
