"""The LaTeX report: jinja2 templates in paper/ rendered with a run's numbers, built to PDF.

Usage::

    from memcap.analysis.figures import figure_paths
    from memcap.analysis.report import build_report
    from memcap.analysis.tables import table_paths
    build_report(table_paths(Path("results/demo/tables")),
                 figure_paths(Path("results/demo/figures")), record_files,
                 Path("results/demo/report/report.pdf"), run_name="demo",
                 capacity_rule="paper")   # the headline decoding capacity, as in the tables

``build_report`` takes the files write_tables and write_figures wrote, by the names they
take ("table1_tex", "capacity_pdf", ...: the rules' named outputs, or table_paths and
figure_paths of a folder). It renders paper/report.tex.j2 into <out_pdf dir>/report.tex,
copies it with the table fragments ("<name>_tex"), the figures ("<name>_pdf") and
paper/references.bib into a temporary build directory, runs ``latexmk -pdf`` there, and
copies the PDF to out_pdf and the LaTeX log to <out_pdf dir>/report.log. A failed build
raises ReportBuildError with the tail of the LaTeX log.

Templates use LaTeX-friendly jinja delimiters: ``\\VAR{x}`` for values, ``\\BLOCK{...}`` for
statements, ``\\#{...}`` for comments. Every value is LaTeX-escaped on output (data carry
'_', '%', '&' ...); values that already are LaTeX must be wrapped in ``markupsafe.Markup``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from memcap.analysis import capacity_stats, metrics, tables
from memcap.analysis.figures import FIGURE_FORMATS, FIGURE_NAMES
from memcap.analysis.geometry_figures import FIGURE_NAMES as GEOMETRY_FIGURES
from memcap.analysis.latex import latex_escape
from memcap.analysis.reference import (
    PAPER_DIR,
    dataset_kind,
    load_reference,
    paper_model,
    paper_source,
    paper_value,
)
from memcap.analysis.run_view import RunView
from memcap.io import check_named_paths
from memcap.records import LOSSLESS_ACCURACY

TEMPLATE = "report.tex.j2"
TABLE_NAMES = tables.TABLE_NAMES  # table1, summary, multivector, pass_rate, search
PRECISION_FIGURES = ["precision"]  # memcap.analysis.precision_summary
LATEXMK_TIMEOUT_S = 600
LOG_TAIL_LINES = 40


class ReportBuildError(RuntimeError):
    """latexmk failed; the message ends with the tail of the LaTeX log."""


def _escape_output(value) -> str:
    """jinja finalize hook: escape every value unless it is marked as LaTeX already."""
    if isinstance(value, Markup):
        return value
    return latex_escape("" if value is None else value)


def template_environment(template_dir: Path) -> jinja2.Environment:
    """A jinja2 environment whose syntax does not clash with LaTeX braces."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        finalize=_escape_output,
    )
    env.filters["tex"] = lambda v: Markup(_escape_output(v))
    env.filters["andjoin"] = _join
    return env


# --- what the template is told ----------------------------------------------------------


def _join(items) -> str:
    """'a', 'a and b', 'a, b and c' (the template's andjoin filter)."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items) or "none"
    return ", ".join(items[:-1]) + " and " + items[-1]


def _unique_dicts(series: pd.Series) -> list[dict]:
    seen = {}
    for value in series.dropna():
        if isinstance(value, dict):
            seen.setdefault(json.dumps(value, sort_keys=True), value)
    return list(seen.values())


_OPTIM_LABELS = [
    ("preset", "preset"),
    ("lr", "learning rate"),
    ("betas", "betas"),
    ("weight_decay", "weight decay"),
    ("eps", "eps"),
    ("max_steps", "max steps"),
    ("patience", "patience"),
]


def _optim_settings(optim: dict) -> list[tuple[str, str]]:
    """(label, value) pairs of a record's optimiser settings, known keys first."""
    optim = {"preset": "paper", **optim}  # records before presets existed: the paper's
    if "betas" not in optim and "beta1" in optim:  # the engine records beta1/beta2
        optim["betas"] = [optim.pop("beta1"), optim.pop("beta2", None)]
    pairs = []
    for key, label in _OPTIM_LABELS:
        if key in optim:
            value = optim.pop(key)
            pairs.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    pairs += [(key.replace("_", " "), str(value)) for key, value in sorted(optim.items())]
    return pairs


def workflow_settings(config: dict, random_max_length: dict[str, int]) -> dict[str, str]:
    """A workflow config's settings as short strings (one table row each) for the report's setup.

    `config` as the workflow validated it (defaults filled in); `random_max_length` is each
    model's L_up of random text, as the workflow resolved it.
    """
    o, c = config["optim"], config["resources"]
    rows = {"config": config["run"], "protocol": config["protocol"], "models": ", ".join(config["models"])}
    for name, spec in config["datasets"].items():
        if spec["source"] == "random":
            what = f"random words ({spec['vocab']}), seed {spec['seed']}"
        elif spec["source"] == "package":
            what = f"{spec['package']}: {spec['file'].rsplit('/', 1)[-1]}"
        else:
            what = f"{spec['source']} {spec['path']}"
        chosen = spec.get("documents")
        count = f"documents {', '.join(map(str, chosen))}" if chosen else f"{spec['samples']} samples"
        rows[f"dataset {name}"] = f"{what}, {count}"
    rows["lengths (K = 1)"] = ", ".join(map(str, sorted(config["lengths"])))
    rows["random L_up"] = ", ".join(f"{m} {random_max_length[m]}" for m in config["models"])
    for model, grid in config["multivector"].items():
        rows[f"multi-vector {model}"] = f"{grid['dataset']}, K in {', '.join(map(str, grid['K']))}"
    # the preset as named in the config; the Optimiser paragraph gives the records' values
    overrides = ", ".join(f"{k} {v}" for k, v in o.items() if k != "preset" and v is not None)
    rows["optimiser"] = f"AdamW, preset {o['preset']}" + (f"; set in the config: {overrides}" if overrides else "")
    rows["batch size, device"] = f"{c['batch_size']}, {c['device']}"
    return rows


def _models(df: pd.DataFrame, summary: pd.DataFrame, order: list[str]) -> list[dict]:
    rows = []
    for model in [m for m in order if (df.model == m).any()]:
        group = df[df.model == model]
        first = group.iloc[0]
        s = summary[summary.model == model].iloc[0]
        get = lambda key: first[key] if key in group.columns else None  # noqa: E731, B023 (used in this iteration)
        rows.append(
            {
                "name": model,
                "model_id": get("model_id") or model,
                "source": get("model_source") or "n/a",
                "revision": get("revision") or "none",
                "params": tables.fmt_params(s["params"]),
                "d": tables.fmt_number(s["mem_dim"], 0),
                "vocab": tables.fmt_number(s["vocab_size"], 0),
                "l_th": tables.fmt_number(s["l_th_rounded"], 0),
                "paper_row": paper_model(model, get("model_id")) or "not in the paper",
                "device": ", ".join(sorted({str(v) for v in group.get("device", pd.Series()).dropna()})) or "n/a",
                "dtype": ", ".join(sorted({str(v) for v in group.get("dtype", pd.Series()).dropna()})) or "n/a",
                "autocast": ", ".join(sorted({str(v) for v in group.get("autocast", pd.Series()).dropna()})) or "n/a",
            }
        )
    return rows


def _datasets(df: pd.DataFrame, order: list[str], kinds: dict[str, str]) -> list[dict]:
    rows = []
    for dataset in order:
        group = df[df.dataset == dataset]
        ok = metrics.usable(group)
        lengths = sorted(ok["L"].unique())
        kind = dataset_kind(dataset, kinds)
        if kind == "random" and len(lengths) > 6:
            length_text = f"sampled, {lengths[0]} to {lengths[-1]}"
        else:
            length_text = ", ".join(map(str, lengths)) or "none"
        source = paper_source(dataset, kind=kind)
        rows.append(
            {
                "name": dataset,
                "kind": kind,
                "paper_source": load_reference()["source_labels"].get(source, "none"),
                "texts": ok["sample_id"].nunique(),
                "records": len(ok),
                "failed": int((~group["ok"].astype(bool)).sum()),
                "lengths": length_text,
                "K": ", ".join(map(str, sorted(group["K"].unique()))),
            }
        )
    return rows


def _highlights(summary: pd.DataFrame, datasets: list[str], kinds: dict[str, str]) -> list[dict]:
    """Per source, the K=1 model with the largest decoding capacity, with its gains."""
    k1 = summary[(summary.K == 1) & (summary.n_samples > 0)]
    out = []
    for dataset in datasets:
        rows = k1[k1.dataset == dataset]
        if rows.empty:
            continue
        best = rows.sort_values(["capacity", "token_gain_mean"], ascending=False, na_position="last").iloc[0]
        kind = dataset_kind(dataset, kinds)
        paper = paper_value(
            load_reference(), paper_model(best.model, best.model_id), "capacity", paper_source(dataset, kind=kind)
        )
        out.append(
            {
                "dataset": dataset,
                "kind": kind,
                "model": best.model,
                "protocol": best.protocol,
                "passed": bool(pd.notna(best.capacity)),
                "shortest": int(best.min_L),
                "longest": int(best.max_L),
                "capacity": tables.fmt_capacity(best.capacity, best.min_L, best.max_L),
                "search": best["mode"] == "search",
                # named unless the paper's optimiser found it, as the Setup describes
                "method": None if best["method"] == "paper" else best["method"],
                "token_gain": tables.fmt_mean_std(best.token_gain_mean, best.token_gain_std),
                "info_nats": tables.fmt_number(best.info_gain_nats_mean),
                "info_bits": tables.fmt_number(best.info_gain_bits_mean),
                "utilisation": tables.fmt_number(best.utilisation, 3),
                "l_th": tables.fmt_number(best.l_th_rounded, 0),
                "paper_capacity": None if paper is None else str(paper),
            }
        )
    return out


def _comparison(view: RunView) -> tuple[list[dict], list[str], list[str]]:
    """Rows (our model x the paper's sources) beside the paper's values, plus the paper's
    models not run and our models the paper lacks."""
    reference, kinds = view.reference, view.kinds
    labels = reference["source_labels"]
    k1 = view.summary[view.summary.K == 1]
    rows, matched = [], set()
    for model in view.models:
        row = view.paper_row[model]
        if row is None:
            continue
        matched.add(row)
        ref = reference["models"][row]
        for source in labels:
            if source not in ref["capacity"]:
                continue
            ours = k1[
                (k1.model == model)
                & k1.dataset.map(lambda d, s=source: paper_source(d, kind=dataset_kind(d, kinds)) == s)
                & (k1.n_samples > 0)
            ]
            paper_tg = ref["token_gain"].get(source)
            paper_ig = ref["info_gain_nats"].get(source)
            paper_util = ref.get("utilisation", {}).get(source)
            entry = {
                "model": model,
                "paper_row": row,
                "source": labels[source],
                "dataset": ", ".join(ours.dataset) if len(ours) else tables.NOT_RUN,
                "paper_capacity": str(ref["capacity"][source]),
                "paper_token_gain": tables.fmt_number(paper_tg[0]) if paper_tg else "n/a",
                "paper_info": tables.fmt_number(paper_ig[0]) if paper_ig else "n/a",
                "paper_util": tables.fmt_number(paper_util, 3) if paper_util else "n/a",
            }
            if ours.empty:
                entry.update(
                    capacity=tables.NOT_RUN, token_gain=tables.NOT_RUN, info=tables.NOT_RUN, util=tables.NOT_RUN
                )
            else:
                o = ours.iloc[0]
                entry.update(
                    capacity=tables.fmt_row_capacity(o),
                    token_gain=tables.fmt_number(o.token_gain_mean),
                    info=tables.fmt_number(o.info_gain_nats_mean),
                    util=tables.fmt_number(o.utilisation, 3),
                )
            rows.append(entry)
    not_run = [name for name in reference["models"] if name not in matched]
    ours_only = [m for m in view.models if view.paper_row[m] is None]
    return rows, not_run, ours_only


def _jobs(df: pd.DataFrame) -> list[dict]:
    jobs = metrics.job_wall_time(df)
    return [
        {
            "model": j.model,
            "dataset": j.dataset,
            "K": j.K,
            "records": j.n_records,
            "failed": j.n_failed,
            "wall": f"{j.wall_s:.1f}",
            "wall_min": f"{j.wall_s / 60:.1f}",
        }
        for j in jobs.itertuples()
    ]


def _geometry(facts: dict | None) -> dict | None:
    """The geometry stage's summary.json as display strings; None when it was not run."""
    if facts is None:
        return None
    num = tables.fmt_number
    return {
        "model": facts.get("model", "n/a"),
        "dataset": facts.get("dataset", "n/a"),
        "K": facts.get("K", "n/a"),
        "L": facts.get("L", "n/a"),
        "texts": facts["texts"],
        "inits": facts.get("inits", "n/a"),
        "runs": facts["runs"],
        "converged": facts["converged"],
        "mean_steps": num(facts["mean_steps"], 0),
        "same_mean": num(facts["same_mean"], 3),
        "different_mean": num(facts["different_mean"], 3),
        "pairs": facts["pairs"],
        "min_inner": num(facts["min_inner_accuracy"], 3),
        "mean_inner": num(facts["mean_inner_accuracy"], 3),
    }


def _precision(facts: dict | None) -> dict | None:
    """The precision stage's summary.json as display strings; None when it was not run."""
    if facts is None:
        return None
    groups = [
        {**g, "format": g["format"] or "none", "bits": "n/a" if g["bits"] is None else f"{g['bits']:.2f}"}
        for g in facts["groups"]
    ]
    return {
        **facts,
        "groups": groups,
        "pca": [str(r) for r in facts["pca"]],
        "rounding": [f for f in facts["formats"] if not f.startswith("pca")],
    }


def _search(df: pd.DataFrame, capacity_rule: str) -> list[dict]:
    """The search-mode (model, source, protocol, K) groups, for the text around the table."""
    table = metrics.search_capacity_summary(df, capacity_rule)
    return [
        {
            "model": r.model,
            "dataset": r.dataset,
            "protocol": r.protocol,
            "K": int(r.K),
            "samples": int(r.n_samples),
            "capacity": tables.fmt_capacity(r.capacity, r.min_L, r.max_L),
        }
        for r in table.itertuples()
    ]


LISTED_ZERO_TEXTS = 10  # the report names at most this many texts with capacity 0 per group


def _capacity_counts(capacities: pd.Series) -> str:
    """'0, 32, 64×3, 128×45': the per-text capacities, ascending, with their multiplicities."""
    counts = capacities.astype(int).value_counts().sort_index()
    return ", ".join(f"{c}" if n == 1 else f"{c}×{n}" for c, n in counts.items())


def _capacity_lists(view: RunView) -> list[dict]:
    """Per group, in the tables' order, its texts' own capacities (the tables' capacities CSV,
    memcap.analysis.tables.capacities_frame) and the texts with capacity 0 by name."""
    texts = tables.capacities_frame(view)
    rows = []
    for (model, dataset, protocol, K), group in texts.groupby(["model", "dataset", "protocol", "K"], sort=False):
        capacities = group["capacity"].astype(int)
        zero = sorted(group.loc[capacities == 0, "sample_id"])
        named = ", ".join(zero[:LISTED_ZERO_TEXTS])
        if len(zero) > LISTED_ZERO_TEXTS:
            named += f" and {len(zero) - LISTED_ZERO_TEXTS} more"
        rows.append(
            {
                "model": f"{model} [{protocol}]" if view.mixed else model,
                "dataset": dataset,
                "K": K,
                "mode": group["mode"].iloc[0],
                "n": len(group),
                "capacities": _capacity_counts(capacities),
                "zero": named or "none",
            }
        )
    return rows


def _capacity_context(view: RunView) -> dict:
    """What the report says about the decoding capacity: the headline rule, the estimator,
    the capacity-statistics table (LaTeX, from the same frame as the tables' capacity CSV)
    and the per-text capacities."""
    frame = tables.capacity_frame(view)
    summary = view.summary
    return {
        "capacity_rule": view.capacity_rule,
        "capacity_rule_label": tables.RULE_LABELS[view.capacity_rule],
        "estimator": capacity_stats.ESTIMATOR,
        "bootstrap_resamples": capacity_stats.BOOTSTRAP_RESAMPLES,
        "bootstrap_seed": capacity_stats.BOOTSTRAP_SEED,
        "capacity_table": Markup(tables.to_latex("capacity", frame)),
        "capacity_lists": _capacity_lists(view),
        "n_zero_groups": int((summary["n_zero"] > 0).sum()) if len(summary) else 0,
    }


# The paper-budget reference's text sets, by the folder of their records file (benchmarks/,
# docs/benchmarks.md "Tuning and validation texts"): (set name, what it means for this run).
# A validation set judges one claim, then joins the tuning texts (benchmarks/validation/ and
# validation2/ did on 2026-12-04); the next one is benchmarks/validation3/.
BUDGET_REFERENCE_SETS = {
    "validation3": ("validation", "texts on which no optimiser or search setting was tuned"),
    "validation2": (
        "second validation",
        "texts on which no setting was tuned until they judged a search configuration (2026-12-04); "
        "the search's fresh_check_below was chosen on them after that",
    ),
    "validation": (
        "first validation",
        "texts on which no setting was tuned until they judged a search configuration (2026-12-04); "
        "the search's fresh_after_stuck was chosen on them after that",
    ),
    "reference": ("tuning", "the texts on which memcap's optimiser and search settings were tuned"),
}


def _shown_path(path: Path) -> str:
    """`path` relative to the working directory where it lies below it (the workflow's
    config names benchmarks/... relative to the repository), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _reference_settled(rows: list[dict]) -> bool:
    """Whether the unbracketed texts can no longer change the decoding capacity over `rows`
    (memcap.analysis.paper_budget.text_capacities rows): an unbracketed text's capacity can
    only rise, so the capacity is final when it is the same with those texts at any height."""
    from memcap.analysis.metrics import capacity_from_samples

    low = capacity_from_samples([t["capacity"] for t in rows])
    high = capacity_from_samples([t["capacity"] if t["bracketed"] else math.inf for t in rows])
    return low == high or (math.isnan(low) and math.isnan(high))


def _budget_reference(paths: list[Path] | None, df: pd.DataFrame, summary: pd.DataFrame) -> list[dict]:
    """The paper-budget reference runs (memcap.analysis.paper_budget) beside this run's K = 1 capacity.

    Compared on this run's texts where the reference has some of them. Each row says where
    the reference comes from (its folder, and the set: validation or tuning), how many of
    its texts are bracketed, marks each unbracketed text's capacity as a lower bound (>=), and
    gives the capacity over the texts as a lower bound only while the unbracketed texts can
    still change it; `missing` names this run's texts the reference has not started."""
    from memcap.analysis.paper_budget import against_reference, reference_summary, text_capacities
    from memcap.io import read_jsonl

    records, folders = [], {}
    for path in paths or []:
        rows = read_jsonl(Path(path))
        records += rows
        for r in rows:
            folders.setdefault((r["model"], r["dataset"]), set()).add(_shown_path(Path(path).parent))
    texts = text_capacities(records)
    # compare on the texts this run has, where it has some of the reference's
    k1 = df[df.K == 1] if len(df) else df
    groups = k1.groupby(["model", "dataset"]) if len(k1) else []
    ours_ids = {key: list(dict.fromkeys(map(str, g["sample_id"]))) for key, g in groups}
    shared = [t for t in texts if t["sample_id"] in ours_ids.get((t["model"], t["dataset"]), ())]
    kept = shared + [
        t for t in texts if not any((t["model"], t["dataset"]) == (s["model"], s["dataset"]) for s in shared)
    ]
    rows = []
    for ref in reference_summary(kept):
        key = (ref["model"], ref["dataset"])
        group = [t for t in kept if (t["model"], t["dataset"]) == key]
        settled = ref["complete"] or _reference_settled(group)
        names = sorted(Path(f).name for f in folders.get(key, ()))
        sets = {BUDGET_REFERENCE_SETS.get(n) for n in names}
        set_name, set_note = next(iter(sets)) if len(sets) == 1 and None not in sets else (None, None)
        same_texts = any((s["model"], s["dataset"]) == key for s in shared)
        ours_ids_here = ours_ids.get(key, [])
        ours = summary[(summary.model == ref["model"]) & (summary.dataset == ref["dataset"]) & (summary.K == 1)]
        mine = df[(df.model == ref["model"]) & (df.dataset == ref["dataset"]) & (df.K == 1)] if len(df) else df
        steps = int(mine["steps"].sum()) if len(mine) else 0
        optim = dict(ref["optim"] or {})
        # per shared text, this run's capacity beside the reference's (a run of several protocols: its best)
        caps = metrics.text_capacities(mine).groupby("sample_id")["capacity"].max() if len(mine) and same_texts else {}
        compared = against_reference(group, dict(caps))
        rows.append(
            {
                **ref,
                "capacity": f"{'' if settled else '>= '}{ref['capacity']}",
                "settled": settled,
                "same_texts": same_texts,
                "n_ours": len(ours_ids_here),
                "missing": [i for i in ours_ids_here if i not in {t["sample_id"] for t in group}] if same_texts else [],
                "capacities": ", ".join(map(str, ref["capacities"])),
                "capacities_marked": ", ".join(f"{'' if t['bracketed'] else '≥'}{t['capacity']}" for t in group),
                "folder": ", ".join(sorted(folders.get(key, ()))) or "?",
                "set_name": set_name,
                "set_note": set_note,
                "hours": f"{ref['hours']:.1f}",
                "budget": f"{optim.get('max_steps', '?')} steps, patience {optim.get('patience', '?')}, "
                f"lr {optim.get('lr', '?')}",
                "ours": tables.fmt_row_capacity(ours.iloc[0], method=False) if len(ours) else None,
                "ours_method": ", ".join(sorted(set(mine["method"]))) if len(mine) else None,
                "ours_steps": steps,
                "steps_ratio": f"{steps / ref['steps']:.3f}" if ref["steps"] and steps else None,
                "per_text": ", ".join(
                    f"{t['sample_id']} {t['ours']} against {'' if t['bracketed'] else '≥'}{t['reference']}"
                    for t in compared
                ),
                "n_compared": len(compared),
                "n_within": sum(t["within"] for t in compared),
                "n_zero": sum(t["zero"] for t in compared),
                "within_so_far": any(t["within"] and not t["bracketed"] for t in compared),
            }
        )
    return rows


def _record_counts(df: pd.DataFrame) -> dict:
    """How many records there are, how many failed (and with which status), how many are short."""
    failed = int((~df["ok"].astype(bool)).sum()) if len(df) else 0
    status_counts = df["status"].value_counts().to_dict() if len(df) else {}
    return {
        "n_records": len(df),
        "n_ok": len(df) - failed,
        "n_failed": failed,
        "n_short": int((df["ok"].astype(bool) & df["short"].astype(bool)).sum()) if len(df) else 0,
        "failed_statuses": {k: v for k, v in status_counts.items() if k != "ok"},
    }


def _cells(view: RunView) -> dict:
    """The models and sources shown, the cells only their empty records files name, and the
    (model, source) cells without any K = 1 record."""
    k1 = view.summary[view.summary.K == 1]
    return {
        "model_names": view.models,
        "dataset_names": view.datasets,
        "expected_only": [{"model": m, "dataset": d} for m, d in sorted(view.expected)],
        "not_run_cells": [
            {"model": m, "dataset": d}
            for m in view.models
            for d in view.datasets
            if k1[(k1.model == m) & (k1.dataset == d)].empty
        ],
    }


def report_context(
    records: list[Path],
    run_name: str = "",
    extra: dict | None = None,
    available_tables: set[str] = frozenset(TABLE_NAMES),
    available_figures: set[str] = frozenset(FIGURE_NAMES),
    geometry: dict | None = None,
    baselines: dict | None = None,
    budget_reference: list[Path] | None = None,
    precision: dict | None = None,
    capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE,
) -> dict:
    """Everything the template shows, computed from the records (plain values, unescaped).

    `capacity_rule` ("paper" or "per_sample", memcap.analysis.capacity_stats) picks the
    headline decoding capacity, as in write_tables and write_figures."""
    view = RunView.from_records(records, capacity_rule=capacity_stats.check_capacity_rule(capacity_rule))
    df, summary, kinds, datasets = view.df, view.summary, view.kinds, view.datasets
    comparison, paper_not_run, ours_only = _comparison(view)
    return {
        "run_name": run_name or "unnamed run",
        "generated": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "threshold": LOSSLESS_ACCURACY,
        "threshold_percent": f"{LOSSLESS_ACCURACY * 100:g}",
        "bits_per_value": metrics.BITS_PER_VALUE,
        **_record_counts(df),
        "models": _models(df, summary, view.models) if len(df) else [],
        **_cells(view),
        "datasets": _datasets(df, datasets, kinds) if len(df) else [],
        "protocols": sorted(summary["protocol"].unique()),
        "k_values": sorted(int(k) for k in summary["K"].unique()),
        "multi_k": bool((summary["K"] > 1).any()),
        "optims": [_optim_settings(o) for o in _unique_dicts(df["optim"])] if "optim" in df else [],
        "versions": _unique_dicts(df["versions"]) if "versions" in df else [],
        "jobs": _jobs(df),
        "highlights": _highlights(summary, datasets, kinds),
        "search": _search(df, view.capacity_rule),
        **_capacity_context(view),
        "budget_reference": _budget_reference(budget_reference, df, summary),
        "comparison": comparison,
        "paper_not_run": paper_not_run,
        "ours_only": ours_only,
        "sources_only_ours": [d for d in datasets if paper_source(d, kind=dataset_kind(d, kinds)) is None],
        "extra": {str(k): v for k, v in (extra or {}).items()},
        "tables": {name: name in available_tables for name in TABLE_NAMES},
        "figures": {name: name in available_figures for name in [*FIGURE_NAMES, *GEOMETRY_FIGURES, *PRECISION_FIGURES]},
        # optional stages: their summary.json facts, or None (the report says "not run")
        "geometry": _geometry(geometry),
        "baselines": baselines,
        "precision": _precision(precision),
    }


# --- rendering and building ---------------------------------------------------------------


def render_report(context: dict, template_dir: Path | None = None) -> str:
    """The report's LaTeX source."""
    env = template_environment(Path(template_dir or PAPER_DIR))
    return env.get_template(TEMPLATE).render(**context)


def _latex_log_tail(build_dir: Path, output: str) -> str:
    log = build_dir / "report.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else output
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def compile_latex(tex_file: Path, log_copy: Path | None = None) -> Path:
    """Run latexmk -pdf in tex_file's directory; return the PDF or raise ReportBuildError."""
    if shutil.which("latexmk") is None:
        raise ReportBuildError("latexmk not found: install TeX Live (latexmk, pdflatex)")
    build_dir = tex_file.parent
    cmd = ["latexmk", "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    cmd.append(tex_file.name)
    try:
        done = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True, timeout=LATEXMK_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise ReportBuildError(
            f"latexmk ran past {LATEXMK_TIMEOUT_S} s\n{_latex_log_tail(build_dir, str(err.stdout))}"
        ) from err
    log = build_dir / tex_file.with_suffix(".log").name
    if log_copy is not None and log.exists():
        shutil.copyfile(log, log_copy)
    pdf = tex_file.with_suffix(".pdf")
    if done.returncode != 0 or not pdf.exists():
        raise ReportBuildError(
            f"latexmk failed (exit {done.returncode}) building {tex_file.name}; "
            f"last lines of the LaTeX log:\n{_latex_log_tail(build_dir, done.stdout)}"
        )
    return pdf


def build_report(
    table_files: Mapping[str, str | Path],
    figure_files: Mapping[str, str | Path],
    records: list[Path],
    out_pdf: Path,
    run_name: str = "",
    extra: dict | None = None,
    template_dir: Path | None = None,
    geometry: dict | None = None,
    baselines: dict | None = None,
    budget_reference: list[Path] | None = None,
    precision: dict | None = None,
    capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE,
) -> Path:
    """Render the report for one run and build it to out_pdf.

    table_files are the files of write_tables by the names it takes (the rule tables'
    outputs: "table1_tex" ... are included, the CSVs not read), figure_files those of
    write_figures ("capacity_pdf" ... are included); an unknown name raises ValueError.
    records are the records .jsonl files the numbers in the text come from. `extra` (e.g.
    workflow settings) is listed in the setup section. Writes <out_pdf dir>/report.tex and
    report.log; returns out_pdf. Missing tables, figures (absent from the mappings or not
    on disk), models or sources show as such and do not break the build.
    `geometry` ({"summary", "cosine_pdf", "interpolation_pdf", ...}) and `baselines`
    ({"summary", "tex", ...}) name the optional stages' files, as their rules name their
    outputs (other names are not read); None or empty: "not run". `budget_reference` names
    records files of the paper-budget reference (benchmarks/reference.py), shown beside
    this run's capacities. `precision` ({"summary", "table_tex", "ratio_tex", "figure_pdf",
    ...}) names the precision stage's files (memcap.analysis.precision_summary).
    `capacity_rule` ("paper" or "per_sample"): the headline decoding capacity, as in the tables.
    """
    have_tables, have_figures = _included(table_files, figure_files)
    out_pdf = Path(out_pdf)
    template_dir = Path(template_dir or PAPER_DIR)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    copies = _stage_copies(geometry, baselines, precision)
    read = lambda stage: json.loads(Path(stage["summary"]).read_text()) if stage else None  # noqa: E731
    shown = {*have_figures, *(GEOMETRY_FIGURES if geometry else ()), *(PRECISION_FIGURES if precision else ())}
    context = report_context(
        records,
        run_name,
        extra,
        set(have_tables),
        shown,
        geometry=read(geometry),
        baselines=read(baselines),
        budget_reference=budget_reference,
        precision=read(precision),
        capacity_rule=capacity_rule,
    )
    source = render_report(context, template_dir)
    tex_out = out_pdf.parent / "report.tex"
    tex_out.write_text(source, encoding="utf-8")
    files = {
        **{f"tables/{name}.tex": path for name, path in have_tables.items()},
        **{f"figures/{name}.pdf": path for name, path in have_figures.items()},
        **copies,
    }
    _build_pdf(tex_out, files, template_dir, out_pdf)
    return out_pdf


def _included(table_files: Mapping, figure_files: Mapping) -> tuple[dict[str, Path], dict[str, Path]]:
    """({table name: its "<name>_tex"}, {figure name: its "<name>_pdf"}) of the files given
    that exist; ValueError on a name write_tables or write_figures does not take."""
    table_files = check_named_paths(
        table_files, TABLE_NAMES, tables.TABLE_FORMATS, "build_report's table_files", complete=False
    )
    figure_files = check_named_paths(
        figure_files, FIGURE_NAMES, FIGURE_FORMATS, "build_report's figure_files", complete=False
    )
    have_tables = {n: p for n in TABLE_NAMES if (p := table_files.get(f"{n}_tex")) is not None and p.exists()}
    have_figures = {n: p for n in FIGURE_NAMES if (p := figure_files.get(f"{n}_pdf")) is not None and p.exists()}
    return have_tables, have_figures


def _stage_copies(geometry: dict | None, baselines: dict | None, precision: dict | None) -> dict[str, Path]:
    """The optional stages' files the report includes: build-directory name -> file."""
    copies = {}
    if geometry:
        copies["figures/geometry_cosine.pdf"] = Path(geometry["cosine_pdf"])
        copies["figures/geometry_interpolation.pdf"] = Path(geometry["interpolation_pdf"])
    if baselines:
        copies["tables/baselines.tex"] = Path(baselines["tex"])
    if precision:
        copies["tables/precision.tex"] = Path(precision["table_tex"])
        copies["tables/precision_ratio.tex"] = Path(precision["ratio_tex"])
        copies["figures/precision.pdf"] = Path(precision["figure_pdf"])
    return copies


def _build_pdf(tex: Path, files: dict[str, Path], template_dir: Path, out_pdf: Path) -> None:
    """latexmk on a copy of `tex` in a temporary directory holding `files` (build-directory
    name -> file) and the template's .bib files; the PDF to out_pdf, the log beside it."""
    with tempfile.TemporaryDirectory(prefix="memcap-report-") as tmp:
        build = Path(tmp)
        (build / "tables").mkdir()
        (build / "figures").mkdir()
        for name, path in files.items():
            shutil.copyfile(path, build / name)
        for bib in template_dir.glob("*.bib"):
            shutil.copyfile(bib, build / bib.name)
        shutil.copyfile(tex, build / "report.tex")
        pdf = compile_latex(build / "report.tex", log_copy=out_pdf.parent / "report.log")
        shutil.copyfile(pdf, out_pdf)
