"""Capacity metrics of Kuratov et al. 2025 as pure functions over per-sample records.

Usage::

    from memcap.analysis.metrics import load_records, summarise, pass_rate_by_length
    df = load_records(["results/demo/compress/smollm2-135m/lee.jsonl"])
    summary = summarise(df)          # one row per (model, dataset, protocol, K)
    passes = pass_rate_by_length(df)  # one row per (model, dataset, protocol, K, L)

Records follow docs/records.md. ``load_records`` adds per-sample totals according to
each row's protocol:

* ``paper``: the paper's totals, a per-position mean times the target length L
  (``CE_mem = min_loss_sum / scored * L``, accuracy = ``max_accuracy``), so numbers
  compare with the paper's.
* ``strict``: exact sums with the saved vectors (``CE_mem = loss_sum``,
  ``C_mem = correct``, accuracy = ``accuracy``).

Threshold convention (docs/method.md section 4.2), used everywhere in this package:
a sample is *lossless* iff its accuracy >= 0.99 (``LOSSLESS_ACCURACY``, memcap.records);
every other sample is *saturated*. A length passes iff the mean accuracy of its samples is
>= 0.99.
Token gain, information gain and the CE fit use the saturated samples (accuracy < 0.99);
the lossless CE threshold uses the lossless ones. (The paper mixes ``<= 0.99`` and
``< 0.99``; the two differ only for samples at exactly 0.99.)

Records whose ``status`` is not ``ok`` carry no usable numbers: they are kept in the
frame (``ok`` column False, derived columns NaN), excluded from every metric, and
counted in ``n_failed``.

Short texts (docs/records.md): a record with ``short`` true (the text has only N < L
tokens) is no sample of length L, since the text never reached L: it is kept in the frame
but excluded from every metric (``usable``), as a failed record is, and counted in
``n_short``; its derived totals describe its N tokens (paper protocol: mean x N, not x L).
So a length that only short texts "passed" has no samples and can never be a capacity.

Text kind: every record carries the ``kind`` of its text, natural or random (the
dataset's config ``source``, whatever its name); random text is grouped by its sampled
length. Records written before ``kind`` existed take their dataset's kind from the other
records of that dataset, else from its name (``random*``, the old rule:
memcap.analysis.reference.legacy_kind).

Search mode (docs/records.md): a ``search`` job writes one record per *attempt*, and a
text is attempted at a length only if it was lossless at the shorter ones, so the mean
accuracy at a length is over a self-selected subset of the texts and the per-length rule
above would come out too high; it is never used for a search group. Token gain,
information gain and the CE fit pool every saturated attempt as for the grid (a text's
failing attempts are its saturated samples). Records without ``mode`` are grid records. A
(model, dataset, K) whose records mix the two modes is an error (``check_modes``): the two
define the capacity differently.

Method: each record's ``method`` names how its vectors were optimised
(memcap.records.method): the optimiser preset (records without ``preset``: paper), and the
parametrisation with its rank and basis where it is not full, e.g.
``fast + low_rank r=64 (pca)``. A summary row's method joins its group's with commas.

Decoding capacity (docs/method.md section 4.3, ``decoding_capacity``): every text has its own
capacity (``text_capacities``: grid, the largest L at which it is lossless; search, the
``capacity`` of its last attempt). Two rules give a group's capacity: the paper's rule
(``capacity_paper``: grid, the largest passing length; search, the saturation estimate of
memcap.analysis.capacity_stats from the attempts) and the per-sample rule
(``capacity_per_sample``, ``capacity_from_samples``: the largest L that the capacities of >= 99 %
of the texts reach, with fewer than 100 texts the smallest). ``capacity`` is the headline, the
rule `capacity_rule` names ("paper" by default, or "per_sample"; column capacity_rule).
``capacity_statistics`` adds the distribution of the per-text capacities (mean with a bootstrap
95 % interval, quartiles, min, max, n_at_min, n_zero).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from memcap.analysis import capacity_stats
from memcap.analysis.reference import legacy_kind
from memcap.records import FLOAT_SLACK, KINDS, LOSSLESS_ACCURACY, MODES, accuracy_is_lossless, method

BITS_PER_VALUE = 16  # Eq. 1 of the paper: b = 16 bits per mem-vector component
LN2 = math.log(2.0)

GROUP = ["model", "dataset", "protocol", "K"]
SAMPLE_KEY = ["model", "dataset", "protocol", "K", "L", "sample_id"]
MODE_GROUP = ["model", "dataset", "K"]  # one mode per (model, dataset, K), any protocol
DERIVED = ["ce_orig", "ce_mem", "c_orig", "c_mem", "acc", "d_ce", "d_tok"]
_REQUIRED = ["model", "dataset", "sample_id", "protocol", "K", "L", "status"]


def load_records(paths: list[str | Path]) -> pd.DataFrame:
    """Read JSONL record files into one DataFrame with per-sample totals added.

    Adds ``ok`` (status == "ok"), ``records_file``, ``method`` (module docstring) and the derived columns
    ``ce_orig, ce_mem`` (nats), ``c_orig, c_mem`` (tokens), ``acc``,
    ``d_ce = ce_orig - ce_mem`` and ``d_tok = c_mem - c_orig``, computed per row
    according to its ``protocol`` (module docstring); NaN for rows that are not ok.

    Raises ValueError on unreadable lines, unknown protocols, missing keys, or
    duplicate (model, dataset, protocol, K, L, sample_id) rows.
    """
    rows = []
    for path in map(Path, paths):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{line_no}: not a JSON record ({err})") from err
                row["records_file"] = str(path)
                rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[*_REQUIRED, "mode", "kind", "method", "ok", "short", "records_file", *DERIVED])
    df = pd.DataFrame(rows)
    missing = [key for key in _REQUIRED if key not in df.columns]
    if missing:
        raise ValueError(f"records lack required keys {missing}")
    df["mode"] = _modes(df)
    unknown_modes = sorted(set(df["mode"]) - set(MODES))
    if unknown_modes:
        raise ValueError(f"unknown mode(s) {unknown_modes}; expected 'grid' or 'search'")
    _reject_duplicates(df)
    unknown = sorted(set(df["protocol"]) - {"paper", "strict"})
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; expected 'paper' or 'strict'")
    df["K"] = df["K"].astype(int)
    df["L"] = df["L"].astype(int)
    # records made before optimiser presets existed were made with the paper's settings
    df["preset"] = df["preset"].fillna("paper") if "preset" in df else "paper"
    optims = df["optim"] if "optim" in df else pd.Series(None, index=df.index, dtype=object)
    searches = df["search"] if "search" in df else pd.Series(None, index=df.index, dtype=object)
    df["method"] = [method(p, o, s) for p, o, s in zip(df["preset"], optims, searches, strict=True)]
    df["ok"] = df["status"] == "ok"
    df["kind"] = _kinds(df)
    short = df["short"] if "short" in df.columns else pd.Series(False, index=df.index)
    df["short"] = short.fillna(False).astype(bool) | (_column(df, "N") < df["L"])
    check_modes(df)
    return _add_totals(df)


def _kinds(df: pd.DataFrame) -> pd.Series:
    """Each record's text kind (module docstring); ValueError on an unknown kind or a dataset
    whose records disagree."""
    if "kind" in df.columns:
        explicit = df["kind"].where(df["kind"].notna(), None)
    else:
        explicit = pd.Series(None, index=df.index, dtype=object)
    unknown = sorted(set(explicit.dropna()) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown text kind(s) {unknown}; expected 'natural' or 'random'")
    seen = explicit.dropna().groupby(df["dataset"]).unique()
    mixed = {dataset: sorted(kinds) for dataset, kinds in seen.items() if len(kinds) > 1}
    if mixed:
        dataset, kinds = next(iter(mixed.items()))
        files = sorted(set(df.loc[df["dataset"] == dataset, "records_file"]))
        raise ValueError(
            f"dataset {dataset!r} has records of both text kinds {kinds} (files: "
            f"{', '.join(files)}); one dataset name must mean one kind of text: analyse the "
            f"runs separately or rename one dataset"
        )
    by_dataset = {dataset: kinds[0] for dataset, kinds in seen.items()}
    kind = explicit.fillna(df["dataset"].map(by_dataset))
    legacy = {d: legacy_kind(d) for d in df.loc[kind.isna(), "dataset"].unique()}
    return kind.fillna(df["dataset"].map(legacy)).astype(object)


def dataset_kinds(df: pd.DataFrame) -> dict[str, str]:
    """{dataset: kind} of loaded records (load_records), natural or random."""
    if df.empty or "kind" not in df.columns:
        return {}
    return df.groupby("dataset")["kind"].first().to_dict()


def _modes(df: pd.DataFrame) -> pd.Series:
    """Each record's mode; records written before search mode existed lack it: grid."""
    if "mode" not in df.columns:
        return pd.Series("grid", index=df.index, dtype=object)
    return df["mode"].where(df["mode"].notna(), "grid")


def _reject_duplicates(df: pd.DataFrame) -> None:
    # A search writes one record per attempt; a text's attempts are at different lengths,
    # except a fresh retry at the length whose warm start got stuck, and the continuations of
    # an attempt: `retry` and `extension` (memcap.stages.store.attempt_key) tell those apart.
    # Records written before they existed lack them.
    key = SAMPLE_KEY + [c for c in ("retry", "extension") if c in df.columns]
    dup = df[df.duplicated(key, keep=False)]
    if not dup.empty:
        shown = dup[key + ["records_file"]].head(10).to_string(index=False)
        raise ValueError(
            f"{len(dup)} records share a ({', '.join(key)}) key; "
            f"a result file was appended twice or two files overlap:\n{shown}"
        )


def check_modes(df: pd.DataFrame) -> None:
    """Raise ValueError if a (model, dataset, K) has both grid and search records.

    The two modes define the decoding capacity differently (module docstring), so such a
    group has no single capacity; the message names the group, the modes and the files.
    """
    if df.empty:
        return
    modes = _modes(df)
    counts = modes.groupby([df[c] for c in MODE_GROUP]).nunique()
    mixed = counts[counts > 1]
    if mixed.empty:
        return
    model, dataset, K = mixed.index[0]
    group = df[(df["model"] == model) & (df["dataset"] == dataset) & (df["K"] == K)]
    per_mode = modes[group.index].value_counts()
    shown = ", ".join(f"{n} {mode}" for mode, n in sorted(per_mode.items()))
    files = sorted(set(group["records_file"])) if "records_file" in group.columns else []
    raise ValueError(
        f"model {model!r}, dataset {dataset!r}, K={K} mixes grid and search records "
        f"({shown} records{'; files: ' + ', '.join(files) if files else ''}); the two modes "
        f"define the decoding capacity differently and cannot be combined: keep one mode "
        f"per (model, dataset, K) and analyse the other separately"
        + (f" ({len(mixed) - 1} more such group(s))" if len(mixed) > 1 else "")
    )


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, NaN where the record lacks it (failed samples may omit numbers)."""
    if name not in df.columns:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[name], errors="coerce")


def _add_totals(df: pd.DataFrame) -> pd.DataFrame:
    paper = df["protocol"] == "paper"
    scored = _column(df, "scored")
    # paper protocol: per-position mean x L; a short text's totals are over its N tokens
    scale = df["L"].where(~df["short"], _column(df, "N")) / scored
    df["ce_orig"] = np.where(paper, _column(df, "baseline_loss_sum") * scale, _column(df, "baseline_loss_sum"))
    df["c_orig"] = np.where(paper, _column(df, "baseline_correct") * scale, _column(df, "baseline_correct"))
    df["ce_mem"] = np.where(paper, _column(df, "min_loss_sum") * scale, _column(df, "loss_sum"))
    df["c_mem"] = np.where(paper, _column(df, "max_correct") * scale, _column(df, "correct"))
    df["acc"] = np.where(paper, _column(df, "max_accuracy"), _column(df, "accuracy"))
    df["d_ce"] = df["ce_orig"] - df["ce_mem"]
    df["d_tok"] = df["c_mem"] - df["c_orig"]
    df.loc[~df["ok"], DERIVED] = np.nan
    return df


def usable(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with status ok whose text reached its length L (the only ones any metric uses;
    module docstring: short texts)."""
    return df[df["ok"].astype(bool) & ~df["short"].astype(bool)]


def short_counts(df: pd.DataFrame, by: list[str] = GROUP) -> pd.Series:
    """Number of ok records of texts shorter than their L per group (named n_short)."""
    short = df[df["ok"].astype(bool) & df["short"].astype(bool)]
    return short.groupby(by).size().rename("n_short")


def theoretical_capacity(d: int, vocab_size: int, bits: int = BITS_PER_VALUE) -> float:
    """Eq. 1 of the paper: L_th = d * bits / log2|V| tokens (d values of `bits` bits each)."""
    return d * bits / math.log2(vocab_size)


def fit_offset(df: pd.DataFrame) -> float:
    """b of the CE figure's fit y = x + b (slope fixed at 1) over saturated samples.

    b = mean(CE_mem - CE_orig) over ok samples with accuracy < 0.99; NaN if none.
    """
    sat = usable(df)
    sat = sat[~accuracy_is_lossless(sat["acc"])]
    return float((sat["ce_mem"] - sat["ce_orig"]).mean()) if len(sat) else math.nan


def lossless_ce_threshold(df: pd.DataFrame) -> float:
    """Largest CE_mem (nats) among lossless ok samples (the red line of the CE figure)."""
    ok = usable(df)
    lossless = ok[accuracy_is_lossless(ok["acc"])]
    return float(lossless["ce_mem"].max()) if len(lossless) else math.nan


def failure_counts(df: pd.DataFrame, by: list[str] = GROUP) -> pd.Series:
    """Number of records with status != ok per group (named n_failed)."""
    failed = df[~df["ok"].astype(bool)]
    return failed.groupby(by).size().rename("n_failed")


def pass_rate_by_length(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset, protocol, K, L) with the samples' pass statistics.

    Columns: mode, n (usable samples: ok, and not short), n_lossless (accuracy >= 0.99),
    pass_rate, mean_acc, passes (mean_acc >= 0.99, the grid's capacity criterion),
    n_greedy_exact (greedy decoding reproduced the text; NaN when records lack the field),
    n_failed and n_short (texts shorter than L, left out of every other column).
    For a search group (mode "search") a length's samples are only the texts that were
    lossless at every shorter length tried, so its pass rate and ``passes`` describe that
    subset, not all texts: they are no capacity criterion (``decoding_capacity``).
    """
    keys = GROUP + ["L"]
    ok = usable(df).copy()
    ok["lossless"] = accuracy_is_lossless(ok["acc"])
    if "greedy_exact" in ok.columns:
        ok["greedy"] = ok["greedy_exact"].astype("boolean").astype("Float64")
    else:
        ok["greedy"] = np.nan
    stats = ok.groupby(keys).agg(
        n=("acc", "size"),
        n_lossless=("lossless", "sum"),
        mean_acc=("acc", "mean"),
        n_greedy_exact=("greedy", lambda s: s.sum() if s.notna().any() else np.nan),
    )
    table = stats.join(failure_counts(df, keys), how="outer")
    table = table.join(short_counts(df, keys), how="outer").reset_index()
    for col in ("n", "n_lossless", "n_failed", "n_short"):
        table[col] = table[col].fillna(0).astype(int)
    table["n_greedy_exact"] = table["n_greedy_exact"].astype(float)
    table["pass_rate"] = table["n_lossless"] / table["n"].where(table["n"] > 0)
    table["passes"] = accuracy_is_lossless(table["mean_acc"].fillna(-1.0))
    table["mode"] = _group_modes(df, table)
    return table[
        keys + ["mode", "n", "n_lossless", "pass_rate", "mean_acc", "passes", "n_greedy_exact", "n_failed", "n_short"]
    ].sort_values(keys, ignore_index=True)


def _group_modes(df: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The mode of each row's (model, dataset, protocol, K) group (one per group)."""
    if table.empty:
        return []
    modes = _modes(df).groupby([df[c] for c in GROUP]).first()
    return [modes.get(tuple(key), "grid") for key in table[GROUP].itertuples(index=False)]


def capacity_from_samples(capacities, threshold: float = LOSSLESS_ACCURACY) -> float:
    """The decoding capacity of a group from its per-sample capacities (search mode).

    A sample with capacity c counts as lossless at every L <= c and at no L above (the
    search's monotonicity assumption; c = 0: at no length). The capacity is the largest
    L at which the fraction of samples counted lossless is >= threshold (0.99), the
    per-sample analogue of the grid's "largest L whose mean accuracy is >= 0.99": with
    n < 100 samples the smallest per-sample capacity, with n = 200 the third smallest
    (2 of 200 may fall short). NaN when no L >= 1 qualifies or there is no sample.
    """
    caps = np.asarray(pd.to_numeric(pd.Series(capacities, dtype=object), errors="coerce"), dtype=float)
    caps = caps[~np.isnan(caps)]
    # the fraction of samples with capacity >= L only falls as L grows, and steps down
    # just above each sample's capacity: the answer is one of the capacities
    for candidate in np.unique(caps)[::-1]:
        if candidate < 1:
            break
        if (caps >= candidate).mean() >= threshold - FLOAT_SLACK:
            return float(candidate)
    return math.nan


def search_capacities(df: pd.DataFrame) -> pd.DataFrame:
    """One row per sample of the search-mode records: its capacity and search effort.

    Columns: model, dataset, protocol, K, sample_id, capacity (from the sample's last
    attempt, the record whose ``capacity`` is not null; it counts even when that attempt
    itself failed with nan/oom, since it reports the lossless lengths found before),
    n_attempts (all attempts, ok or not) and steps (their optimiser steps). Raises
    ValueError when a searched sample has no last attempt (the search did not finish) or
    more than one. Empty when no record is from search mode.
    """
    columns = [*GROUP, "sample_id", "capacity", "n_attempts", "steps"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    search = df[_modes(df) == "search"].copy()
    if search.empty:
        return pd.DataFrame(columns=columns)
    search["sample_id"] = search["sample_id"].astype(str)
    search["capacity"] = _column(search, "capacity")
    search["steps"] = _column(search, "steps")
    keys = GROUP + ["sample_id"]
    per_sample = search.groupby(keys).agg(
        n_final=("capacity", "count"),
        capacity=("capacity", "max"),
        n_attempts=("L", "size"),
        steps=("steps", "sum"),
    )
    bad = per_sample[per_sample["n_final"] != 1]
    if not bad.empty:
        shown = bad.reset_index()[keys + ["n_final"]].head(10).to_string(index=False)
        raise ValueError(
            f"{len(bad)} searched sample(s) have not exactly one last attempt (a record with "
            f"a non-null capacity; n_final below): a search that did not finish, or records "
            f"of two searches merged:\n{shown}"
        )
    return per_sample.reset_index()[columns].sort_values(keys, ignore_index=True)


def grid_text_capacities(df: pd.DataFrame) -> pd.DataFrame:
    """One row per text of the grid-mode records: its capacity, the largest L at which it is
    lossless (accuracy >= 0.99), 0 if none.

    Only usable records count (a ``short`` record, N < L, is no sample of L, and a failed one
    has no numbers); a text without any usable record is left out. Columns: model, dataset,
    protocol, K, sample_id, capacity.
    """
    columns = [*GROUP, "sample_id", "capacity"]
    ok = usable(df[_modes(df) == "grid"]) if len(df) else df
    if ok.empty:
        return pd.DataFrame(columns=columns)
    lossless_at = ok["L"].where(accuracy_is_lossless(ok["acc"]), 0)
    keys = [ok[c] for c in GROUP] + [ok["sample_id"].astype(str)]
    caps = lossless_at.groupby(keys).max().rename("capacity").reset_index()
    return caps[columns].sort_values([*GROUP, "sample_id"], ignore_index=True)


def text_capacities(df: pd.DataFrame) -> pd.DataFrame:
    """Every text's own capacity (tokens, 0: nothing lossless), grid and search alike.

    Search: the ``capacity`` of its last attempt (``search_capacities``); grid: the largest L
    at which it is lossless (``grid_text_capacities``). Columns: model, dataset, protocol, K,
    sample_id, capacity, mode; one row per (group, text).
    """
    columns = [*GROUP, "sample_id", "capacity", "mode"]
    parts = [
        grid_text_capacities(df).assign(mode="grid"),
        search_capacities(df)[[*GROUP, "sample_id", "capacity"]].assign(mode="search"),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    out["capacity"] = out["capacity"].astype(int)
    return out[columns].sort_values([*GROUP, "sample_id"], ignore_index=True)


def search_attempts(df: pd.DataFrame) -> pd.DataFrame:
    """The usable attempts of search-mode records, for the saturation estimate.

    Columns: model, dataset, protocol, K, sample_id, L, acc (the protocol's accuracy) and
    n_correct, the positions it got right (max_correct under paper, correct under strict).
    """
    columns = [*GROUP, "sample_id", "L", "acc", "n_correct"]
    ok = usable(df[_modes(df) == "search"]) if len(df) else df
    if ok.empty:
        return pd.DataFrame(columns=columns)
    ok = ok.assign(sample_id=ok["sample_id"].astype(str))
    paper = ok["protocol"] == "paper"
    ok["n_correct"] = np.where(paper, _column(ok, "max_correct"), _column(ok, "correct"))
    return ok[columns].reset_index(drop=True)


def search_paper_estimates(df: pd.DataFrame) -> pd.Series:
    """The saturation estimate of the paper's rule (memcap.analysis.capacity_stats) per
    search-mode (model, dataset, protocol, K); NaN where no candidate length qualifies."""
    texts = search_capacities(df)
    attempts = dict(list(search_attempts(df).groupby(GROUP)))
    estimates = {}
    for key, group in texts.groupby(GROUP):
        caps = group.set_index("sample_id")["capacity"]
        tried = attempts.get(key, pd.DataFrame(columns=["sample_id", "L", "acc", "n_correct"]))
        accuracies = capacity_stats.estimated_accuracies(tried, caps, protocol=key[2])
        estimates[key] = capacity_stats.paper_rule_estimate(accuracies)
    index = pd.MultiIndex.from_tuples(list(estimates), names=GROUP) if estimates else None
    return pd.Series(list(estimates.values()), index=index, dtype=float, name="capacity_paper")


def _rule_capacities(df: pd.DataFrame, lengths: pd.DataFrame) -> pd.DataFrame:
    """Per group, capacity_paper (grid: the largest passing length of `lengths`,
    pass_rate_by_length; search: the saturation estimate) and capacity_per_sample
    (capacity_from_samples of the per-text capacities)."""
    grid = lengths[(lengths["mode"] == "grid") & lengths["passes"]].groupby(GROUP)["L"].max()
    rows = {}
    for key, value in [*grid.items(), *search_paper_estimates(df).items()]:
        rows.setdefault(key, {})["capacity_paper"] = float(value)
    for key, caps in text_capacities(df).groupby(GROUP)["capacity"]:
        rows.setdefault(key, {})["capacity_per_sample"] = capacity_from_samples(caps)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["capacity_paper", "capacity_per_sample"])
    out.index = (
        pd.MultiIndex.from_tuples(list(rows), names=GROUP) if rows else pd.MultiIndex.from_tuples([], names=GROUP)
    )
    return out.astype(float)


def decoding_capacity(df: pd.DataFrame, capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE) -> pd.DataFrame:
    """Decoding capacity per (model, dataset, protocol, K), with the mode and the rule it comes from.

    capacity_paper, the paper's rule: for grid groups the largest L that passes (the mean
    accuracy of its usable samples is >= 0.99; shorter lengths need not pass; random text
    groups by the sampled L); for search groups the saturation estimate of that rule from the
    attempts (memcap.analysis.capacity_stats), never per-length means over the texts that
    reached a length. capacity_per_sample: ``capacity_from_samples`` over the per-text
    capacities (``text_capacities``). ``capacity`` is the headline, the one `capacity_rule`
    names ("paper" or "per_sample"; column capacity_rule). A capacity is NaN when no length
    qualifies; ``min_L``/``max_L`` give the range of lengths tried (with a usable record).
    Raises ValueError if a group mixes modes (``check_modes``) or on an unknown rule.
    """
    rule = capacity_stats.check_capacity_rule(capacity_rule)
    check_modes(df)
    columns = [*GROUP, "mode", "min_L", "max_L", "capacity", "capacity_rule", "capacity_paper", "capacity_per_sample"]
    table = pass_rate_by_length(df)
    table = table[table["n"] > 0]
    tried = table.groupby(GROUP)["L"].agg(min_L="min", max_L="max")
    out = tried.join(_rule_capacities(df, table), how="outer").reset_index()
    if out.empty:
        return pd.DataFrame(columns=columns)
    out["mode"] = _group_modes(df, out)
    out["capacity_rule"] = rule
    out["capacity"] = out[f"capacity_{rule}"]
    return out[columns].sort_values(GROUP, ignore_index=True)


def capacity_statistics(df: pd.DataFrame, capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE) -> pd.DataFrame:
    """``decoding_capacity`` beside the distribution of the per-text capacities, per group.

    Columns: those of ``decoding_capacity`` and capacity_stats.DISTRIBUTION_COLUMNS (n_texts,
    capacity_mean with its bootstrap 95 % interval capacity_ci_low/high, capacity_q1,
    capacity_median, capacity_q3, capacity_min, capacity_max, n_at_min, n_zero) over
    ``text_capacities``; a group without a text has n_texts 0 and NaN statistics.
    """
    caps = decoding_capacity(df, capacity_rule)
    texts = text_capacities(df)
    rows = [
        {**dict(zip(GROUP, key, strict=True)), **capacity_stats.capacity_distribution(group)}
        for key, group in texts.groupby(GROUP)["capacity"]
    ]
    dist = pd.DataFrame(rows, columns=[*GROUP, *capacity_stats.DISTRIBUTION_COLUMNS])
    if caps.empty:
        return pd.DataFrame(columns=[*caps.columns, *capacity_stats.DISTRIBUTION_COLUMNS])
    out = caps.merge(dist, on=GROUP, how="left")
    for col in ("n_texts", "n_at_min", "n_zero"):
        out[col] = out[col].fillna(0).astype(int)
    return out


def gain_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Token and information gain per (model, dataset, protocol, K).

    Mean and std (ddof=1) of d_tok and d_ce over the saturated ok samples
    (accuracy < 0.99), pooled over all lengths. Information gain in nats and bits.
    """
    ok = usable(df)
    sat = ok[~accuracy_is_lossless(ok["acc"])]
    stats = sat.groupby(GROUP).agg(
        n_saturated=("d_tok", "size"),
        token_gain_mean=("d_tok", "mean"),
        token_gain_std=("d_tok", lambda s: s.std(ddof=1)),
        info_gain_nats_mean=("d_ce", "mean"),
        info_gain_nats_std=("d_ce", lambda s: s.std(ddof=1)),
    )
    stats["info_gain_bits_mean"] = stats["info_gain_nats_mean"] / LN2
    stats["info_gain_bits_std"] = stats["info_gain_nats_std"] / LN2
    return stats.reset_index()


def _first(series: pd.Series):
    values = series.dropna()
    return values.iloc[0] if len(values) else np.nan


SUMMARY_COLUMNS = [  # summarise's columns, in order
    *GROUP,
    "mode",
    "method",
    "model_id",
    "params",
    "mem_dim",
    "vocab_size",
    "n_samples",
    "n_failed",
    "n_short",
    "n_lengths",
    "min_L",
    "max_L",
    "capacity",
    "capacity_rule",
    "capacity_paper",
    "capacity_per_sample",
    *capacity_stats.DISTRIBUTION_COLUMNS,
    "n_saturated",
    "token_gain_mean",
    "token_gain_std",
    "info_gain_nats_mean",
    "info_gain_nats_std",
    "info_gain_bits_mean",
    "info_gain_bits_std",
    "l_th",
    "l_th_rounded",
    "utilisation",
    "fit_b",
    "ce_threshold",
]


def summarise(df: pd.DataFrame, capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE) -> pd.DataFrame:
    """Every capacity metric, one row per (model, dataset, protocol, K).

    Columns: mode (grid or search: how the capacities were computed, ``decoding_capacity``),
    method (the methods of the group's records, module docstring, comma-joined),
    model_id, params, mem_dim, vocab_size, n_samples (usable records: ok and not short;
    for a search group usable attempts), n_failed, n_short, n_lengths, min_L, max_L,
    capacity (the headline, under `capacity_rule`: "paper" or "per_sample"), capacity_rule,
    capacity_paper, capacity_per_sample, the per-text capacities' distribution
    (``capacity_statistics``: n_texts, capacity_mean, capacity_ci_low/high, capacity_q1,
    capacity_median, capacity_q3, capacity_min/max, n_at_min, n_zero), n_saturated,
    token_gain_mean/std, info_gain_nats_mean/std,
    info_gain_bits_mean/std, l_th (Eq. 1 for K vectors: K * d * 16 / log2|V|), l_th_rounded, utilisation
    (token_gain_mean / round(l_th)), fit_b, ce_threshold.
    """
    columns = SUMMARY_COLUMNS
    if df.empty:
        return pd.DataFrame(columns=columns)
    meta_cols = [c for c in ("model_id", "params", "mem_dim", "vocab_size") if c in df.columns]
    groups = df.groupby(GROUP)
    out = groups[meta_cols].agg(_first) if meta_cols else pd.DataFrame(index=groups.size().index)
    ok = usable(df)
    out["n_samples"] = ok.groupby(GROUP).size().reindex(out.index).fillna(0).astype(int)
    out["n_failed"] = failure_counts(df).reindex(out.index).fillna(0).astype(int)
    out["n_short"] = short_counts(df).reindex(out.index).fillna(0).astype(int)
    out["n_lengths"] = ok.groupby(GROUP)["L"].nunique().reindex(out.index).fillna(0).astype(int)
    out = out.join(capacity_statistics(df, capacity_rule).drop(columns="mode").set_index(GROUP))
    out["capacity_rule"] = capacity_stats.check_capacity_rule(capacity_rule)
    for col in ("n_texts", "n_at_min", "n_zero"):
        out[col] = out[col].fillna(0).astype(int)
    out = out.join(gain_stats(df).set_index(GROUP))
    out["n_saturated"] = out["n_saturated"].fillna(0).astype(int)
    out["fit_b"] = [fit_offset(group) for _, group in groups]
    out["ce_threshold"] = [lossless_ce_threshold(group) for _, group in groups]
    out = out.reset_index()
    out["mode"] = _group_modes(df, out)
    out["method"] = _methods(df).reindex(pd.MultiIndex.from_frame(out[GROUP])).to_numpy()
    for col in columns:
        if col not in out.columns:
            out[col] = np.nan
    # K vectors hold K * d values: Eq. 1 is for one vector (memcap.analysis.precision_summary.theory does the same)
    out["l_th"] = [
        int(k) * theoretical_capacity(int(d), int(v)) if pd.notna(d) and pd.notna(v) else np.nan
        for k, d, v in zip(out["K"], out["mem_dim"], out["vocab_size"], strict=True)
    ]
    out["l_th_rounded"] = out["l_th"].round()
    out["utilisation"] = out["token_gain_mean"] / out["l_th_rounded"]
    return out[columns].sort_values(GROUP, ignore_index=True)


def _methods(df: pd.DataFrame) -> pd.Series:
    """The methods of each (model, dataset, protocol, K)'s records, comma-joined."""
    methods = df["method"] if "method" in df else pd.Series("paper", index=df.index)
    return methods.groupby([df[c] for c in GROUP]).agg(lambda m: ", ".join(sorted(set(m))))


def job_wall_time(df: pd.DataFrame) -> pd.DataFrame:
    """Optimisation wall time per records file (one file = one job), in seconds.

    A job optimises its samples in batches and stores each batch as one part, whose file
    every record of the batch names in ``vectors``; ``wall_s`` runs from the batch's start.
    So a job's time is the sum over its parts of the slowest sample's wall_s, whatever the
    batch mixes: one (K, L) of natural text, the sampled lengths of random text, or a
    search round's lengths. Records without ``vectors`` (older or hand-made ones) are
    batched as the grid batches natural text: consecutive records of one (K, L), at most
    batch_size each. Model loading is not included. Columns: records_file, model, dataset,
    K (the K values in it), n_records, n_failed, wall_s.
    """
    columns = ["records_file", "model", "dataset", "K", "n_records", "n_failed", "wall_s"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for path, job in df.groupby("records_file", sort=False):
        wall = _column(job, "wall_s")
        if "vectors" in job.columns:
            in_part = job["vectors"].notna()
        else:
            in_part = pd.Series(False, index=job.index)
        total = float(wall[in_part].groupby(job.loc[in_part, "vectors"]).max().fillna(0.0).sum())
        for _, cell in job[~in_part].groupby(["K", "L"], sort=False):
            batch = _column(cell, "batch_size").max()
            size = int(batch) if pd.notna(batch) and batch >= 1 else 1
            times = _column(cell, "wall_s").to_numpy()
            total += sum(np.nanmax(times[i : i + size], initial=0.0) for i in range(0, len(times), size))
        rows.append(
            {
                "records_file": path,
                "model": job["model"].iloc[0],
                "dataset": job["dataset"].iloc[0],
                "K": ", ".join(map(str, sorted(job["K"].unique()))),
                "n_records": len(job),
                "n_failed": int((~job["ok"].astype(bool)).sum()),
                "wall_s": total,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def search_capacity_summary(
    df: pd.DataFrame, capacity_rule: str = capacity_stats.DEFAULT_CAPACITY_RULE
) -> pd.DataFrame:
    """Per-sample capacities of search-mode records, one row per (model, dataset, protocol, K).

    Uses each sample's last attempt (``search_capacities``; 0 = nothing lossless).
    Columns: method (as in ``summarise``), n_samples, capacity (the group's decoding
    capacity under `capacity_rule`, ``decoding_capacity``), capacity_mean, capacity_median,
    capacity_min, capacity_max, n_attempts and steps (all attempts of the group, ok or not),
    steps_per_sample, and min_L/max_L (the lengths
    tried with an ok record, as in ``decoding_capacity``). Empty when no record is from
    search mode.
    """
    columns = [
        *GROUP,
        "method",
        "n_samples",
        "capacity",
        "capacity_mean",
        "capacity_median",
        "capacity_min",
        "capacity_max",
        "n_attempts",
        "steps",
        "steps_per_sample",
        "min_L",
        "max_L",
    ]
    samples = search_capacities(df)
    if samples.empty:
        return pd.DataFrame(columns=columns)
    out = samples.groupby(GROUP).agg(
        n_samples=("capacity", "size"),
        capacity_mean=("capacity", "mean"),
        capacity_median=("capacity", "median"),
        capacity_min=("capacity", "min"),
        capacity_max=("capacity", "max"),
        n_attempts=("n_attempts", "sum"),
        steps=("steps", "sum"),
    )
    out["steps_per_sample"] = out["steps"] / out["n_samples"]
    out["method"] = _methods(df).reindex(out.index)
    tried = decoding_capacity(df, capacity_rule).set_index(GROUP)[["capacity", "min_L", "max_L"]]
    out = out.join(tried).reset_index()
    return out[columns].sort_values(GROUP, ignore_index=True)
