"""How many bits does a [mem] vector need? This project's extension beyond the paper.

    from memcap.stages.precision import output_paths, quantise, run_precision, write_outputs
    quantise(vectors, "int4")   # (K, d) float32: 4-bit symmetric rounding, a scale per vector
    rows = run_precision(lm, records, {"lee": texts}, formats=["bfloat16", "int4"], pca=[8])
    files = output_paths("results/demo/precision")
    # {"shares": .../shares.csv, "table_csv": .../table.csv, "table_tex": .../table.tex,
    #  "ratio_csv": ..., "ratio_tex": ..., "figure_pdf": .../precision.pdf, "figure_png": ...,
    #  "summary": .../summary.json}
    write_outputs(rows, files, summary=metrics.summarise(df))   # writes exactly `files`

``write_outputs`` (and ``summary_stage``, the rule precision_summary) take the path of every
file, keyed as the rule names its outputs (OUTPUTS, workflow/rules/precision.smk); an
unknown or a missing key raises ValueError naming the allowed ones. ``output_paths`` gives
the default names in one folder, for tests and notebooks.

The paper's Eq. 1 and the byte-level compression ratios (Appendix F) assume 16 bits per
vector value; nobody measured what the decoded texts need. Here every lossless sample of a
run (memcap.records: accuracy >= 0.99) has its stored float32 vectors rounded and scored
again with the engine's own ``score`` (teacher forcing) and ``greedy_decode`` (decoding from
the vectors alone, with the stored prompt under the paper protocol):

* ``float32``: the stored vectors as they are (the reference);
* ``bfloat16``, ``float16``: a cast and back;
* ``int8`` ... ``int2``: symmetric per-vector quantisation, q = round(v / s) in
  [-(2^(b-1) - 1), 2^(b-1) - 1] with s = max|v| / (2^(b-1) - 1); the float32 scale s is
  stored beside the vector and counted in its bytes (so int4 of d = 576 is 4.06 bits/value);
* ``pca<r>`` (optional): the vector projected onto the top r principal components of the
  lossless vectors of the model's *other* texts (leave one text out: the basis never saw
  this text), r 16-bit coefficients per vector; the shared basis is not counted.

A sample stays lossless at a precision iff its accuracy there is >= 0.99, the package's one
threshold; ``exact`` says whether greedy decoding gave back every token. The measured
compression ratio of a precision is, per text, the UTF-8 bytes of its longest length still
lossless there (0 when none is) over the vector's bytes at that precision, averaged over the
texts; at 16 bits over the float32-lossless lengths it is the baselines stage's [mem] ratio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

from memcap.analysis import metrics, tables
from memcap.core.engine import first_scored, greedy_decode, score
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.io import check_paths, read_jsonl, write_jsonl
from memcap.records import FLOAT_SLACK, LOSSLESS_ACCURACY, accuracy_is_lossless
from memcap.stages.texts import read_texts

log = logging.getLogger("memcap.stages.precision")

# nominal bits per value; pca<r> formats are added by name (r coefficients of 16 bits)
FORMATS = {"float32": 32, "bfloat16": 16, "float16": 16, **{f"int{b}": b for b in range(8, 1, -1)}}
DEFAULT_FORMATS = ["bfloat16", "float16", "int8", "int4"]
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


# --- rounding ---------------------------------------------------------------------------


def to_int(vectors: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale): integers in [-(2^(b-1) - 1), 2^(b-1) - 1] and one float32 scale per vector
    (row), so that q * scale approximates the vectors; a zero vector gets scale 1."""
    if not 2 <= bits <= 8:
        raise ValueError(f"integer precision needs 2..8 bits, got {bits}")
    v = vectors.detach().float()
    top = 2 ** (bits - 1) - 1
    scale = v.abs().amax(dim=-1, keepdim=True) / top
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(v / scale), -top, top).to(torch.int8)
    return q, scale


def from_int(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale


def quantise(vectors: torch.Tensor, name: str) -> torch.Tensor:
    """The (K, d) vectors as `name` stores them, back in float32 for the model."""
    check_format(name)
    v = vectors.detach().float()
    if name == "float32":
        return v.clone()
    if name in ("bfloat16", "float16"):
        return v.to(getattr(torch, name)).float()
    if is_pca(name):
        raise ValueError("pca formats need the other texts' vectors: use pca_project")
    return from_int(*to_int(v, FORMATS[name]))


def pca_project(vectors: torch.Tensor, others: torch.Tensor, rank: int) -> tuple[torch.Tensor, int]:
    """(projection, rank used): `vectors` (K, d) on the mean plus top `rank` principal
    components of `others` (n, d), at most n - 1 of them; the coefficients are rounded to
    16 bits (float16), as stored."""
    v = vectors.detach().float()
    if len(others) == 0:
        return torch.zeros_like(v), 0
    others = others.detach().float()
    mean = others.mean(dim=0, keepdim=True)
    _, sing, vh = torch.linalg.svd(others - mean, full_matrices=False)
    keep = int(min(rank, int((sing > sing.max() * 1e-6).sum()) if len(sing) else 0))
    basis = vh[:keep]
    coeffs = ((v - mean) @ basis.T).to(torch.float16).float()
    return mean + coeffs @ basis, keep


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


# --- scoring with the engine's functions --------------------------------------------------


@torch.no_grad()
def evaluate(lm, ids: list[int], variants: dict[str, torch.Tensor], protocol: str) -> dict[str, dict]:
    """Teacher-forced score (engine.score) and greedy decoding (engine.greedy_decode) of one
    text under each variant of its (K, d) vectors, all variants in one batch."""
    first = first_scored(protocol)
    names = list(variants)
    B, device = len(names), lm.device
    ids_t = torch.tensor([ids] * B, dtype=torch.long, device=device)
    lengths = torch.full((B,), len(ids), device=device)
    prefix = torch.stack([variants[n].float() for n in names]).to(device)
    loss, correct = score(lm, prefix, lm.embeddings(ids_t), ids_t, lengths, first)
    decoded = greedy_decode(lm, prefix, len(ids) - first, ids_t[:, :first])
    target = ids_t[0, first:]
    scored = len(ids) - first
    out = {}
    for row, name in enumerate(names):
        match = (decoded[row, :scored] == target).int()
        prefix_ok = int(match.cumprod(0).sum().item())
        loss_i = loss[row].item()
        acc = int(correct[row]) / scored
        out[name] = {
            "correct": int(correct[row]),
            "accuracy": acc,
            "loss_sum": loss_i if math.isfinite(loss_i) else None,
            "exact": prefix_ok == scored,
            "prefix": prefix_ok,
            "lossless": bool(accuracy_is_lossless(acc)),
        }
    return out


# --- the stage's job: one model, all its lossless samples ----------------------------------


def lossless_samples(records: pd.DataFrame, max_samples: int | None = None) -> pd.DataFrame:
    """Usable lossless records (memcap.analysis.metrics) with stored vectors; with max_samples, the
    first that many per (model, dataset, protocol, K) in order of (L, sample_id)."""
    ok = metrics.usable(records)
    ok = ok[accuracy_is_lossless(ok["acc"])]
    if "vectors" in ok.columns:
        ok = ok[ok["vectors"].notna()]
    else:
        ok = ok.iloc[0:0]
    ok = ok.sort_values([*KEYS, "L", "sample_id"], kind="stable")
    if max_samples is not None:
        ok = ok.groupby(KEYS, sort=False).head(max_samples)
    return ok


def load_vectors(record) -> torch.Tensor:
    path = Path(record["records_file"]).parent / record["vectors"]
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(record["vectors_key"]).float()


def _get(record, key, default=None):
    value = record.get(key, default)
    return default if isinstance(value, float) and math.isnan(value) else value


def run_precision(
    lm,
    records: pd.DataFrame,
    texts: dict[str, list[dict]],
    formats=DEFAULT_FORMATS,
    pca=(),
    max_samples: int | None = None,
    progress=None,
) -> list[dict]:
    """One precision record per lossless sample of `records` (docs/records.md): every
    format of `formats` (float32 always, first) and pca<r> for each r of `pca`.

    `texts` maps each dataset to its texts rows; lm must be the records' model.
    """
    for name in formats:
        check_format(name)
    formats = [REFERENCE] + [f for f in format_order(formats) if f != REFERENCE]
    chosen = lossless_samples(records, max_samples)
    by_id = {d: {str(r["id"]): r["text"] for r in rows} for d, rows in texts.items()}
    rows = [r for _, r in chosen.iterrows()]
    vectors = [load_vectors(r) for r in rows]
    text_of = [(r["dataset"], str(r["sample_id"])) for r in rows]
    out = []
    for i, (rec, vec) in enumerate(zip(rows, vectors, strict=True)):
        dataset, sid = text_of[i]
        text = by_id.get(dataset, {}).get(sid)
        if text is None:
            raise ValueError(f"sample {sid!r} of {dataset} is not in the texts given")
        sha = _get(rec, "text_sha")
        if sha and hashlib.sha1(text.encode("utf-8")).hexdigest() != sha:
            raise ValueError(
                f"sample {sid!r} of {dataset}: the texts file's text is not the one "
                f"its record was made from (text_sha differs)"
            )
        ids = lm.tokenize(text)[: int(rec["L"])]
        K, d = vec.shape
        variants = {name: quantise(vec, name) for name in formats}
        ranks = {}
        if pca:
            # leave the whole text out (all its lengths: a search warm-starts one from another)
            others = [v for j, v in enumerate(vectors) if text_of[j] != text_of[i]]
            pool = torch.cat(others) if others else torch.zeros(0, d)
            for r in sorted(set(pca), reverse=True):
                variants[f"pca{r}"], ranks[f"pca{r}"] = pca_project(vec, pool, r)
        scores = evaluate(lm, ids, variants, rec["protocol"])
        precisions = {}
        for name, result in scores.items():
            size = vector_bytes(name, K, d, ranks.get(name))
            precisions[name] = {"bits": 8 * size / (K * d), "bytes": size, **result}
            if name in ranks:
                precisions[name]["rank"] = ranks[name]
        out.append(
            {
                "model": rec["model"],
                "model_id": _get(rec, "model_id"),
                "dataset": dataset,
                "kind": rec["kind"],
                "protocol": rec["protocol"],
                "K": int(K),
                "L": int(rec["L"]),
                "N": len(ids),
                "sample_id": sid,
                "retry": int(_get(rec, "retry", 0) or 0),
                "mode": rec["mode"],
                "mem_dim": int(d),
                "vocab_size": int(_get(rec, "vocab_size") or lm.vocab_size),
                "n_bytes": int(
                    _get(rec, "n_bytes") or len(lm.tokenizer.decode(ids, skip_special_tokens=True).encode())
                ),
                "scored": len(ids) - first_scored(rec["protocol"]),
                "source_accuracy": float(rec["acc"]),
                "device": str(lm.device),
                "dtype": _get(rec, "dtype"),
                "autocast": _get(rec, "autocast"),
                "records_file": str(rec["records_file"]),
                "vectors": rec["vectors"],
                "vectors_key": rec["vectors_key"],
                "precisions": precisions,
            }
        )
        if progress:
            progress(i + 1, len(rows))
    return out


def run_stage(
    model: str,
    record_files: list,
    texts_files: dict,
    out,
    *,
    formats=DEFAULT_FORMATS,
    pca=(),
    max_samples: int | None = None,
    device: str = "auto",
    models_file="config/models.yaml",
    threads: int | None = None,
) -> Path:
    """Rule precision: the model's precision records (JSONL, one per lossless sample) to `out`."""
    if threads:
        torch.set_num_threads(threads)
    records = metrics.load_records(record_files)
    records = records[records.model == model]
    texts = {d: read_texts(path) for d, path in texts_files.items()}
    n = len(lossless_samples(records, max_samples))
    rows = []
    if n:  # no model load when there is nothing lossless to score
        lm = load_model(resolve_model(model, load_registry(models_file)), device)
        rows = run_precision(
            lm,
            records,
            texts,
            formats,
            pca,
            max_samples,
            progress=lambda i, total: log.info("%d/%d samples", i, total) if i % 50 == 0 or i == total else None,
        )
    # precisions stay in their order, widest first
    write_jsonl(rows, out)
    log.info("%s: %d lossless samples scored at %s", model, len(rows), ", ".join(formats))
    return Path(out)


# --- analysis: pure functions over the precision records ----------------------------------

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
    from memcap.stages import baselines

    paths = check_paths(paths, OUTPUTS, "precision.write_outputs")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    long = long_frame(rows)
    frame = shares(long)
    frame.to_csv(paths["shares"], index=False)
    best = smallest(frame)
    th = theory(best, long, summary) if len(best) else best
    classical = None
    if baselines_rows and Path(baselines_rows).is_file():
        base = pd.read_csv(baselines_rows, dtype={"sample_id": str})
        if len(base):
            model = (
                json.loads(Path(baselines_summary).read_text()).get("model")
                if baselines_summary and Path(baselines_summary).is_file()
                else None
            )
            classical = baselines.summarise(base).assign(model=model)
    share_display = shares_table(frame, best)
    ratio_display = (
        ratio_table(th, classical)
        if len(th)
        else ratio_table(
            pd.DataFrame(
                columns=[*KEYS, "bits", "ratio", "ratio_16", "l_th_16", "utilisation_16", "l_th_b", "utilisation_b"]
            )
        )
    )
    for stem, display, lead in (("table", share_display, 3), ("ratio", ratio_display, 3)):
        display.to_csv(paths[f"{stem}_csv"], index=False)
        tex = (
            tables.latex_boxed(
                tables.latex_tabular(display, "l" * lead + "r" * (len(display.columns) - lead), groups=display["Model"])
            )
            if len(display)
            else tables.latex_empty_note("No lossless sample to round in this run.")
        )
        paths[f"{stem}_tex"].write_text(tex + "\n", encoding="utf-8")
    figure(frame, paths["figure_pdf"], paths["figure_png"])
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
    facts = {
        "samples": len(rows),
        "models": list(dict.fromkeys(long["model"])),
        "formats": format_order(long["format"]) if len(long) else [],
        "pca": sorted({int(f[3:]) for f in long["format"] if is_pca(f)}),
        "groups": groups,
        "baselines": classical is not None,
        # samples lossless at every rounding format asked for
        "lossless_all": int(sum(all(p["lossless"] for n, p in r["precisions"].items() if not is_pca(n)) for r in rows)),
    }
    paths["summary"].write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    return paths


def summary_stage(
    precision_files: list,
    record_files: list,
    paths,
    baselines_rows: str | Path | None = None,
    baselines_summary: str | Path | None = None,
) -> dict[str, Path]:
    """Rule precision_summary: tables, figure and summary from every model's records, to
    `paths` (write_outputs: keyed by OUTPUTS, as the rule names its outputs)."""
    paths = check_paths(paths, OUTPUTS, "precision.summary_stage")
    rows = [r for path in precision_files for r in read_jsonl(Path(path))]
    df = metrics.load_records(record_files)
    summary = metrics.summarise(df) if len(df) else None
    return write_outputs(rows, paths, summary, baselines_rows, baselines_summary)
