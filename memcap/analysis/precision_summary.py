"""The precision stage's tables, figure and summary: pure functions over its records (rule
precision_summary). This project's extension beyond the paper.

    from memcap.analysis.precision_summary import output_paths, summary_stage, vector_bytes, write_outputs
    vector_bytes("int4", K=1, d=576)   # 292: 288 bytes of 4-bit integers and a float32 scale
    files = output_paths("results/demo/precision")
    # {"shares": .../shares.csv, "table_csv": .../table.csv, "table_tex": .../table.tex,
    #  "ratio_csv": ..., "ratio_tex": ..., "figure_pdf": .../precision.pdf, "figure_png": ...,
    #  "summary": .../summary.json}
    write_outputs(rows, files, summary=metrics.summarise(df))   # writes exactly `files`

``write_outputs`` (and ``summary_stage``, the rule precision_summary) take the path of every
file, keyed as the rule names its outputs (OUTPUTS, workflow/rules/precision.smk); an
unknown or a missing key raises ValueError naming the allowed ones. ``output_paths`` gives
the default names in one folder, for tests and notebooks.

The records (docs/records.md) are those of memcap.stages.precision, which rounds the stored
vectors of every lossless sample to each format (FORMATS: float32, the reference, then
bfloat16, float16, int8 ... int2 with a float32 scale per vector, and pca<r>: r 16-bit
coefficients on the other texts' principal components) and scores them again. The format
names and their sizes in bytes (``vector_bytes``) are defined here, for both.

A sample stays lossless at a precision iff its accuracy there is >= 0.99, the package's one
threshold; ``exact`` says whether greedy decoding gave back every token. The measured
compression ratio of a precision is, per text, the UTF-8 bytes of its longest length still
lossless there (0 when none is) over the vector's bytes at that precision, averaged over the
texts; at 16 bits over the float32-lossless lengths it is the baselines stage's [mem] ratio.
The smallest precision is the rounding format of fewest bits per value at which >= 99 % of
the samples stay lossless (pca excluded: its shared basis is not counted), and Eq. 1 is
given at 16 bits and at that precision.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from memcap.analysis import baselines, metrics, tables
from memcap.analysis.latex import latex_boxed, latex_empty_note, latex_tabular
from memcap.io import check_paths, read_jsonl
from memcap.records import FLOAT_SLACK, LOSSLESS_ACCURACY

# nominal bits per value; pca<r> formats are added by name (r coefficients of 16 bits)
FORMATS = {"float32": 32, "bfloat16": 16, "float16": 16, **{f"int{b}": b for b in range(8, 1, -1)}}
REFERENCE = "float32"
SCALE_BYTES = 4  # one float32 scale per vector beside its integers
PCA_BITS = 16
KEYS = metrics.GROUP  # model, dataset, protocol, K


def is_pca(name: str) -> bool:
    return re.fullmatch(r"pca\d+", name) is not None


def check_format(name: str) -> None:
    if name not in FORMATS and not is_pca(name):
        raise ValueError(f"precision format {name!r} is not one of {', '.join(FORMATS)} or pca<r>")


def format_order(names) -> list[str]:
    """Widest first: float32, bfloat16, float16, int8 .. int2, then pca by falling rank."""
    ranked = list(FORMATS)
    return sorted(set(names), key=lambda n: (len(ranked), -int(n[3:])) if is_pca(n) else (ranked.index(n), 0))


def vector_bytes(name: str, K: int, d: int, rank: int | None = None) -> int:
    """Bytes of K vectors of width d stored as `name` (the integers' scales included; for
    pca<r> the coefficients only)."""
    if is_pca(name):
        r = int(name[3:]) if rank is None else rank
        return K * r * PCA_BITS // 8
    bits = FORMATS[name]
    if bits >= 16:
        return K * d * bits // 8
    return K * (math.ceil(d * bits / 8) + SCALE_BYTES)


# --- the records as frames, shares, ratios, Eq. 1 ---------------------------------------------


LONG_COLUMNS = [
    *KEYS,
    "kind",
    "sample_id",
    "L",
    "mem_dim",
    "vocab_size",
    "n_bytes",
    "format",
    "bits",
    "bytes",
    "accuracy",
    "exact",
    "lossless",
]


def long_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per (sample, format)."""
    flat = [
        {
            **{k: r[k] for k in LONG_COLUMNS[: LONG_COLUMNS.index("format")]},
            "format": name,
            **{k: p[k] for k in ("bits", "bytes", "accuracy", "exact", "lossless")},
        }
        for r in rows
        for name, p in r["precisions"].items()
    ]
    return pd.DataFrame(flat, columns=LONG_COLUMNS)


def shares(long: pd.DataFrame) -> pd.DataFrame:
    """Per (model, dataset, protocol, K, format): samples, how many stay lossless (and their
    share), how many decode exactly, mean accuracy, bits per value, and the measured
    compression ratio (module docstring)."""
    columns = [
        *KEYS,
        "kind",
        "format",
        "bits",
        "n",
        "n_lossless",
        "share_lossless",
        "n_exact",
        "share_exact",
        "mean_accuracy",
        "ratio",
    ]
    if long.empty:
        return pd.DataFrame(columns=columns)
    out = long.groupby([*KEYS, "format"], sort=False).agg(
        kind=("kind", "first"),
        bits=("bits", "mean"),
        n=("lossless", "size"),
        n_lossless=("lossless", "sum"),
        n_exact=("exact", "sum"),
        mean_accuracy=("accuracy", "mean"),
    )
    out["share_lossless"] = out["n_lossless"] / out["n"]
    out["share_exact"] = out["n_exact"] / out["n"]
    out["ratio"] = _ratios(long)
    out = out.reset_index()
    order = {n: i for i, n in enumerate(format_order(out["format"]))}
    out = out.assign(order=out["format"].map(order)).sort_values([*KEYS, "order"])
    return out[columns].reset_index(drop=True)


def _ratios(long: pd.DataFrame) -> pd.Series:
    """Mean over texts of (bytes of the longest length still lossless, 0 if none) / vector bytes."""
    per_text = (
        long.assign(carried=long["n_bytes"].where(long["lossless"], 0))
        .groupby([*KEYS, "format", "sample_id"], sort=False)
        .agg(carried=("carried", "max"), size=("bytes", "mean"))
    )
    ratio = per_text["carried"] / per_text["size"].where(per_text["size"] > 0)
    return ratio.groupby(level=[*range(len(KEYS) + 1)]).mean()


def ratio_16bit(long: pd.DataFrame) -> pd.Series:
    """The paper's assumption: the reference's lossless lengths at 16 bits per value."""
    ref = long[long["format"] == REFERENCE]
    per_text = (
        ref.assign(carried=ref["n_bytes"].where(ref["lossless"], 0), size=ref["K"] * ref["mem_dim"] * 2)
        .groupby([*KEYS, "sample_id"])
        .agg(carried=("carried", "max"), size=("size", "first"))
    )
    return (per_text["carried"] / per_text["size"]).groupby(level=list(range(len(KEYS)))).mean()


def smallest(shares_frame: pd.DataFrame, threshold: float = LOSSLESS_ACCURACY) -> pd.DataFrame:
    """Per group the rounding format of fewest bits per value at which >= 99 % of the samples
    stay lossless (pca excluded: its basis is not counted); NaN bits when none does."""
    rows = []
    for key, group in shares_frame.groupby(KEYS, sort=False):
        ok = group[~group["format"].map(is_pca) & (group["share_lossless"] >= threshold - FLOAT_SLACK)]
        best = ok.sort_values(["bits", "share_lossless"], ascending=[True, False], kind="stable")
        pick = best.iloc[0] if len(best) else None
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "format": None if pick is None else pick["format"],
                "bits": np.nan if pick is None else pick["bits"],
                "ratio": np.nan if pick is None else pick["ratio"],
            }
        )
    return pd.DataFrame(rows, columns=[*KEYS, "format", "bits", "ratio"])


def theory(best: pd.DataFrame, long: pd.DataFrame, summary: pd.DataFrame | None) -> pd.DataFrame:
    """Eq. 1 at 16 bits and at the smallest lossless b, L_th = K d b / log2|V|, and the
    capacity utilisation (mean token gain / round(L_th)) under each (this project's reading)."""
    meta = long.groupby(KEYS)[["mem_dim", "vocab_size"]].first()
    out = best.join(meta, on=KEYS)
    gain = (
        summary.set_index(KEYS)["token_gain_mean"] if summary is not None and len(summary) else pd.Series(dtype=float)
    )
    out["token_gain_mean"] = [gain.get(tuple(k), np.nan) for k in out[KEYS].itertuples(index=False)]
    bits_log = np.log2(out["vocab_size"].astype(float))
    values = out["K"] * out["mem_dim"]
    out["l_th_16"] = values * 16 / bits_log
    out["l_th_b"] = values * out["bits"].astype(float) / bits_log
    out["utilisation_16"] = out["token_gain_mean"] / out["l_th_16"].round()
    out["utilisation_b"] = out["token_gain_mean"] / out["l_th_b"].round()
    out["ratio_16"] = [ratio_16bit(long).get(tuple(k), np.nan) for k in out[KEYS].itertuples(index=False)]
    return out


# --- tables, figure, summary ---------------------------------------------------------------


def _pct(value) -> str:
    return tables.NO_VALUE if pd.isna(value) else f"{100 * value:.0f}"


def shares_table(frame: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Display strings: per (model, source, K) the share (%) still lossless at each format and
    the smallest precision keeping >= 99 %."""
    names = format_order(frame["format"]) if len(frame) else []
    rows = []
    for key, group in frame.groupby(KEYS, sort=False):
        pick = best.set_index(KEYS).loc[key]
        by = group.set_index("format")
        rows.append(
            {
                "Model": key[0],
                "Source": key[1],
                "K": str(key[3]),
                "Samples": str(int(group["n"].iloc[0])),
                **{name: _pct(by["share_lossless"].get(name)) for name in names},
                "Exact at smallest": _pct(by["share_exact"].get(pick["format"])),
                "Smallest (>= 99 %)": "none"
                if pick["format"] is None
                else f"{pick['format']} ({pick['bits']:.2f} bits)",
            }
        )
    return pd.DataFrame(
        rows, columns=["Model", "Source", "K", "Samples", *names, "Exact at smallest", "Smallest (>= 99 %)"]
    )


RATIO_CODECS = {"zlib": "zlib", "bz2": "bz2", "lzma": "lzma", "huffman": "Huffman", "arithmetic": "Arithmetic"}


def ratio_table(th: pd.DataFrame, classical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Display strings: the measured compression ratio at the smallest lossless precision
    beside the 16-bit ratio and the classical compressors' (baselines stage, K = 1 of its
    model), and Eq. 1 with b = 16 and with that b."""
    num = tables.fmt_number
    classical = classical if classical is not None else pd.DataFrame(columns=["model", "dataset"])
    rows = []
    for r in th.itertuples():
        match = (
            classical[(classical["model"] == r.model) & (classical["dataset"] == r.dataset)]
            if r.K == 1
            else classical.iloc[0:0]
        )
        rows.append(
            {
                "Model": r.model,
                "Source": r.dataset,
                "K": str(r.K),
                "b (bits/value)": num(r.bits, 2),
                "[mem] 16-bit": num(r.ratio_16, 2),
                "[mem] at b": num(r.ratio, 2),
                **{
                    label: num(match[key].iloc[0], 2) if len(match) else tables.NO_VALUE
                    for key, label in RATIO_CODECS.items()
                },
                "L_th (16)": num(r.l_th_16, 0),
                "Util. (16)": num(r.utilisation_16, 3),
                "L_th (b)": num(r.l_th_b, 0),
                "Util. (b)": num(r.utilisation_b, 3),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "Model",
            "Source",
            "K",
            "b (bits/value)",
            "[mem] 16-bit",
            "[mem] at b",
            *RATIO_CODECS.values(),
            "L_th (16)",
            "Util. (16)",
            "L_th (b)",
            "Util. (b)",
        ],
    )


def figure(frame: pd.DataFrame, pdf: Path, png: Path) -> Path:
    """Share of samples still lossless against bits per value (log2), one panel per source,
    one line per model (and K); the dotted line is 99 %. Written as `pdf` and `png`;
    returns the PDF's path."""
    import matplotlib.ticker

    from memcap.analysis import figures

    with figures.figure_style():
        rounding = frame[~frame["format"].map(is_pca)] if len(frame) else frame
        if rounding.empty:
            fig = figures.placeholder_figure("Precision of the [mem] vectors", "no lossless sample to round")
            return figures.save_figure_as(fig, pdf, png)
        sources = list(dict.fromkeys(rounding["dataset"]))
        fig, axes = figures.panel_grid(len(sources), ncols=min(3, len(sources)), height=2.6)
        markers = {"float32": "o", "bfloat16": "D", "float16": "s"}
        for ax, source in zip(axes, sources, strict=True):
            for (model, _protocol, K), g in rounding[rounding["dataset"] == source].groupby(
                ["model", "protocol", "K"], sort=False
            ):
                g = g.sort_values(["bits", "share_lossless"])
                label = model + (f", K={K}" if K != 1 else "")
                (line,) = ax.plot(g["bits"], 100 * g["share_lossless"], "-", lw=1, label=label)
                for row in g.itertuples():
                    ax.plot(
                        row.bits,
                        100 * row.share_lossless,
                        markers.get(row.format, "^"),
                        color=line.get_color(),
                        ms=4,
                        mfc="none" if row.format == "bfloat16" else None,
                    )
            ax.axhline(100 * LOSSLESS_ACCURACY, color="0.3", ls=":", lw=0.8)
            ax.set_xscale("log", base=2)
            low = 2 ** math.floor(math.log2(rounding["bits"].min()))
            ax.set_xticks([2**k for k in range(int(math.log2(low)), 6)])
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_ylim(-3, 103)
            ax.set_title(source)
            ax.set_xlabel("bits per value (scales included)")
            ax.set_ylabel("% still lossless")
            ax.legend(loc="lower right")
        return figures.save_figure_as(fig, pdf, png)


OUTPUTS = ["shares", "table_csv", "table_tex", "ratio_csv", "ratio_tex", "figure_pdf", "figure_png", "summary"]
_DEFAULT_NAMES = {
    "shares": "shares.csv",
    "table_csv": "table.csv",
    "table_tex": "table.tex",
    "ratio_csv": "ratio.csv",
    "ratio_tex": "ratio.tex",
    "figure_pdf": "precision.pdf",
    "figure_png": "precision.png",
    "summary": "summary.json",
}


def output_paths(out_dir) -> dict[str, Path]:
    """write_outputs' files in one folder, by OUTPUTS: {"shares": out_dir/shares.csv,
    "table_csv": out_dir/table.csv, ..., "figure_pdf": out_dir/precision.pdf, ...}. For tests
    and notebooks; the workflow names its own files (rule precision_summary)."""
    return {key: Path(out_dir) / _DEFAULT_NAMES[key] for key in OUTPUTS}


def write_outputs(
    rows: list[dict],
    paths,
    summary: pd.DataFrame | None = None,
    baselines_rows: str | Path | None = None,
    baselines_summary: str | Path | None = None,
) -> dict[str, Path]:
    """To `paths` (keyed by OUTPUTS, as the rule names its outputs; ValueError on an unknown
    or a missing key): "shares" (CSV, per group and format), "table_csv"/"table_tex" (the
    shares), "ratio_csv"/"ratio_tex" (ratios and Eq. 1), "figure_pdf"/"figure_png" and
    "summary" (the JSON the report quotes). Returns `paths` as Paths.

    `summary` is memcap.analysis.metrics.summarise of the run's records (token gain for Eq. 1);
    `baselines_rows` the baselines stage's rows.csv, whose mean ratios stand beside ours,
    and `baselines_summary` its summary.json (the model they are labelled with).
    """
    paths = check_paths(paths, OUTPUTS, "precision_summary.write_outputs")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    long = long_frame(rows)
    frame = shares(long)
    frame.to_csv(paths["shares"], index=False)
    best = smallest(frame)
    th = theory(best, long, summary) if len(best) else best
    classical = classical_ratios(baselines_rows, baselines_summary)
    _write_displays(paths, {"table": shares_table(frame, best), "ratio": _ratio_display(th, classical)})
    figure(frame, paths["figure_pdf"], paths["figure_png"])
    facts = summary_facts(rows, long, best, classical)
    paths["summary"].write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    return paths


def classical_ratios(baselines_rows: str | Path | None, baselines_summary: str | Path | None) -> pd.DataFrame | None:
    """The baselines stage's mean ratios per dataset (memcap.analysis.baselines.summarise),
    labelled with the model of its summary.json (None without it); None without rows."""
    if not (baselines_rows and Path(baselines_rows).is_file()):
        return None
    base = pd.read_csv(baselines_rows, dtype={"sample_id": str})
    if not len(base):
        return None
    model = (
        json.loads(Path(baselines_summary).read_text()).get("model")
        if baselines_summary and Path(baselines_summary).is_file()
        else None
    )
    return baselines.summarise(base).assign(model=model)


def _ratio_display(th: pd.DataFrame, classical: pd.DataFrame | None) -> pd.DataFrame:
    """ratio_table of Eq. 1's frame, or its header alone when no group has a smallest precision."""
    if len(th):
        return ratio_table(th, classical)
    return ratio_table(
        pd.DataFrame(
            columns=[*KEYS, "bits", "ratio", "ratio_16", "l_th_16", "utilisation_16", "l_th_b", "utilisation_b"]
        )
    )


def _write_displays(paths: dict[str, Path], displays: dict[str, pd.DataFrame]) -> None:
    """Each display table ("table", "ratio") as "<stem>_csv" and "<stem>_tex" (booktabs, a
    rule between models; a one-line note when it is empty)."""
    lead = 3
    for stem, display in displays.items():
        display.to_csv(paths[f"{stem}_csv"], index=False)
        tex = (
            latex_boxed(
                latex_tabular(display, "l" * lead + "r" * (len(display.columns) - lead), groups=display["Model"])
            )
            if len(display)
            else latex_empty_note("No lossless sample to round in this run.")
        )
        paths[f"{stem}_tex"].write_text(tex + "\n", encoding="utf-8")


def summary_facts(rows: list[dict], long: pd.DataFrame, best: pd.DataFrame, classical: pd.DataFrame | None) -> dict:
    """The summary.json the report quotes: samples, models, formats, each group's smallest
    precision, whether the classical ratios stand beside, and the samples lossless at every
    rounding format."""
    groups = [
        {
            "model": r.model,
            "dataset": r.dataset,
            "K": int(r.K),
            "format": r.format,
            "bits": None if pd.isna(r.bits) else round(float(r.bits), 3),
        }
        for r in best.itertuples()
    ]
    return {
        "samples": len(rows),
        "models": list(dict.fromkeys(long["model"])),
        "formats": format_order(long["format"]) if len(long) else [],
        "pca": sorted({int(f[3:]) for f in long["format"] if is_pca(f)}),
        "groups": groups,
        "baselines": classical is not None,
        # samples lossless at every rounding format asked for
        "lossless_all": int(sum(all(p["lossless"] for n, p in r["precisions"].items() if not is_pca(n)) for r in rows)),
    }


def summary_stage(
    precision_files: list,
    record_files: list,
    paths,
    baselines_rows: str | Path | None = None,
    baselines_summary: str | Path | None = None,
) -> dict[str, Path]:
    """Rule precision_summary: tables, figure and summary from every model's records, to
    `paths` (write_outputs: keyed by OUTPUTS, as the rule names its outputs)."""
    paths = check_paths(paths, OUTPUTS, "precision_summary.summary_stage")
    rows = [r for path in precision_files for r in read_jsonl(Path(path))]
    df = metrics.load_records(record_files)
    summary = metrics.summarise(df) if len(df) else None
    return write_outputs(rows, paths, summary, baselines_rows, baselines_summary)
