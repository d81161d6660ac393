"""The baselines stage's numbers as pure functions over its per-text rows (the paper's
Appendix F, Table 4): compression ratios, their means, and the table beside the paper's.

    from memcap.analysis.baselines import ratios, summarise, table_frame
    rows = pd.read_csv("results/demo/baselines/rows.csv", dtype={"sample_id": str})
    per_text = ratios(rows)      # <codec>_ratio and mem_ratio: bytes / compressed bytes
    means = summarise(rows)      # one row per dataset, over its lossless texts
    table = table_frame(means)   # display strings, then the paper's rows

A row is one text with its size in bytes under every codec (memcap.stages.baselines.BaselineRow:
zlib, bz2, lzma, huffman, arithmetic) and the [mem] vectors' size (``mem_bytes``, K * d * 16
bits). The stage (memcap.stages.baselines) measures them and writes these tables; the
precision summary (memcap.analysis.precision_summary) quotes the means beside its own ratios.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memcap.analysis import tables
from memcap.analysis.reference import load_reference

# the standard-library and Huffman codecs of memcap.stages.codecs.CODECS (tests/test_baselines.py
# checks that they agree: this module must not import the stage's torch)
CLASSICAL_CODECS = ("zlib", "bz2", "lzma", "huffman")
RATIO_COLUMNS = [*CLASSICAL_CODECS, "arithmetic", "mem"]
# summarise's columns but arithmetic_exact: the header of a run without texts
SUMMARY_COLUMNS = ["dataset", "texts", "lossless", "tokens", "bytes", *RATIO_COLUMNS]


def ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-text ratios (bytes / compressed bytes) of every codec and of the [mem] vectors."""
    out = rows.copy()
    for name in RATIO_COLUMNS:
        size = out["mem_bytes"] if name == "mem" else out[name]
        out[f"{name}_ratio"] = out["n_bytes"] / size
    return out


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ratios per dataset over the lossless texts (all texts when none is lossless:
    then the [mem] ratio is NaN, since no vector carried its text)."""
    table = ratios(rows)
    out = []
    for dataset, group in table.groupby("dataset", sort=False):
        lossless = group[group["lossless"]]
        use = lossless if len(lossless) else group
        entry = {
            "dataset": dataset,
            "texts": len(use),
            "lossless": len(lossless),
            "tokens": use["L"].mean(),
            "bytes": use["n_bytes"].mean(),
            "arithmetic_exact": bool(group["arithmetic_exact"].all()),
        }
        for name in RATIO_COLUMNS:
            entry[name] = use[f"{name}_ratio"].mean() if len(lossless) or name != "mem" else np.nan
        out.append(entry)
    return pd.DataFrame(out)


# --- the table: this run's mean ratios beside the paper's ------------------------------------

TABLE_COLUMNS = [
    "Source",
    "Values",
    "Texts",
    "Lossless",
    "Tokens",
    "Bytes",
    "zlib",
    "bz2",
    "lzma",
    "Huffman",
    "Arithmetic",
    "[mem]",
]
_RATIO_LABELS = {
    "zlib": "zlib",
    "bz2": "bz2",
    "lzma": "lzma",
    "huffman": "Huffman",
    "arithmetic": "Arithmetic",
    "mem": "[mem]",
}


def table_frame(summary: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """Display strings: one row per dataset of this run, then the paper's row per source."""
    reference = reference or load_reference()
    rows = []
    for r in summary.itertuples():
        rows.append(
            {
                "Source": r.dataset,
                "Values": tables.OURS,
                "Texts": f"{r.texts}",
                "Lossless": f"{r.lossless}",
                "Tokens": tables.fmt_number(r.tokens),
                "Bytes": tables.fmt_number(r.bytes),
                **{label: tables.fmt_number(getattr(r, key), 2) for key, label in _RATIO_LABELS.items()},
            }
        )
    paper = reference.get("baselines", {}).get("ratios", {})
    for source, label in reference["source_labels"].items():
        if not any(source in values for values in paper.values()):
            continue
        rows.append(
            {
                "Source": label,
                "Values": tables.PAPER,
                **{col: tables.NO_VALUE for col in TABLE_COLUMNS[2:]},
                **{lab: tables.fmt_number(paper.get(key, {}).get(source), 2) for key, lab in _RATIO_LABELS.items()},
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
