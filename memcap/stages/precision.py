"""How many bits does a [mem] vector need? This project's extension beyond the paper: the
rule precision, one job per model.

    from memcap.stages.precision import quantise, run_precision, run_stage
    quantise(vectors, "int4")   # (K, d) float32: 4-bit symmetric rounding, a scale per vector
    rows = run_precision(lm, records, {"lee": texts}, formats=["bfloat16", "int4"], pca=[8])
    run_stage("smollm2-135m", record_files, {"lee": "texts/lee.jsonl"}, "precision/smollm2-135m.jsonl")

The tables, the figure and the summary the report quotes are pure functions over these
records, in memcap.analysis.precision_summary (the rule precision_summary), which also
defines the format names (FORMATS) and their sizes in bytes (``vector_bytes``).

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
threshold; ``exact`` says whether greedy decoding gave back every token.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from memcap.analysis import metrics
from memcap.analysis.precision_summary import (
    FORMATS,
    KEYS,
    REFERENCE,
    check_format,
    format_order,
    is_pca,
    vector_bytes,
)
from memcap.core.engine import first_scored, greedy_decode, score
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.io import write_jsonl
from memcap.records import accuracy_is_lossless
from memcap.stages.texts import read_texts

log = logging.getLogger("memcap.stages.precision")

DEFAULT_FORMATS = ["bfloat16", "float16", "int8", "int4"]


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
        ids = lm.tokenize(_sample_text(by_id, dataset, sid, rec))[: int(rec["L"])]
        variants = {name: quantise(vec, name) for name in formats}
        ranks = {}
        if pca:
            # leave the whole text out (all its lengths: a search warm-starts one from another)
            others = [v for j, v in enumerate(vectors) if text_of[j] != text_of[i]]
            pool = torch.cat(others) if others else torch.zeros(0, vec.shape[1])
            for r in sorted(set(pca), reverse=True):
                variants[f"pca{r}"], ranks[f"pca{r}"] = pca_project(vec, pool, r)
        precisions = _precisions(evaluate(lm, ids, variants, rec["protocol"]), ranks, *vec.shape)
        out.append(_precision_record(lm, rec, ids, dataset, sid, vec, precisions))
        if progress:
            progress(i + 1, len(rows))
    return out


def _sample_text(by_id: dict[str, dict[str, str]], dataset: str, sid: str, rec) -> str:
    """The text of a record from the texts given; ValueError when it is absent or is not
    the one the record was made from (its text_sha)."""
    text = by_id.get(dataset, {}).get(sid)
    if text is None:
        raise ValueError(f"sample {sid!r} of {dataset} is not in the texts given")
    sha = _get(rec, "text_sha")
    if sha and hashlib.sha1(text.encode("utf-8")).hexdigest() != sha:
        raise ValueError(
            f"sample {sid!r} of {dataset}: the texts file's text is not the one "
            f"its record was made from (text_sha differs)"
        )
    return text


def _precisions(scores: dict[str, dict], ranks: dict[str, int], K: int, d: int) -> dict[str, dict]:
    """Per format its bits per value and bytes (vector_bytes), the scores, and the rank
    used by a pca format."""
    precisions = {}
    for name, result in scores.items():
        size = vector_bytes(name, K, d, ranks.get(name))
        precisions[name] = {"bits": 8 * size / (K * d), "bytes": size, **result}
        if name in ranks:
            precisions[name]["rank"] = ranks[name]
    return precisions


def _precision_record(lm, rec, ids: list[int], dataset: str, sid: str, vec: torch.Tensor, precisions: dict) -> dict:
    """The precision record of one sample (docs/records.md)."""
    K, d = vec.shape
    return {
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
        "n_bytes": int(_get(rec, "n_bytes") or len(lm.tokenizer.decode(ids, skip_special_tokens=True).encode())),
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
