"""A prior file (memcap.core.prior) built from saved searches: `memcap prior`.

    memcap prior results/demo/compress/smollm2-135m/lee.jsonl --length 8 --out lee.prior.safetensors
    memcap prior benchmarks/validation3/claimed.json.progress.jsonl ... --length 8 --out p.safetensors

Reads every lossless K-vector attempt at `length` tokens in each source and averages their
vectors. A source is either a compress job's records (results/<run>/compress/<model>/<dataset>.jsonl,
its vectors in the parts folder beside it) or a benchmarks/fast.py progress file
(<folder>/<name>.json.progress.jsonl, its texts in <folder>/texts.jsonl). Every source must be
of one model. The texts the vectors came from are recorded (their sha1), so a run on any of
them refuses the prior; prior_without() rebuilds it from its sources without them (what
benchmarks/fast.py does with a prior file on texts it was built from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open

from memcap.core.prior import mean_prior, read_prior, save_prior
from memcap.io import read_jsonl
from memcap.records import lossless
from memcap.stages.job import text_sha


def progress_vectors(path: Path, L: int, K: int = 1) -> tuple[str, list[torch.Tensor], list[str]]:
    """A fast.py progress file's model name, its lossless L-token vectors and their texts' sha1."""
    rows = read_jsonl(path)
    model = re.match(r"[^:]*: model (\S+),", rows[0].get("header", "")) if rows else None
    if model is None:
        raise ValueError(f"{path}: not a benchmarks/fast.py progress file (its first line names no model)")
    texts = read_jsonl(path.parent / "texts.jsonl")
    vectors, shas = [], []
    for row in rows[1:]:
        v = torch.tensor(row["vectors"])
        if row["L"] == L and row["lossless"] and v.shape[0] == K:
            vectors.append(v)
            shas.append(text_sha(texts[row["index"]]["text"]))
    return model.group(1), vectors, shas


class Model(NamedTuple):
    """What a prior file records of the model whose vectors it averages (save_prior's `spec`)."""

    name: str
    model_id: str
    revision: str
    source: str


def records_vectors(path: Path, L: int, K: int = 1) -> tuple[set[Model], list[torch.Tensor], list[str]]:
    """A compress job's records: their model(s), lossless L-token vectors of K, their texts' sha1."""
    rows = [r for r in read_jsonl(path) if r["L"] == L and r["K"] == K and r.get("vectors")]
    rows = [r for r in rows if lossless(r["status"], r["correct"], r["max_correct"], r["scored"], r["protocol"])]
    models = {Model(r["model"], r["model_id"], r.get("revision") or "", r.get("model_source", "hf")) for r in rows}
    vectors = []
    for r in rows:
        with safe_open(str(path.parent / r["vectors"]), framework="pt") as f:
            vectors.append(f.get_tensor(r["vectors_key"]).float())
    return models, vectors, [r["text_sha"] for r in rows]


def gather(sources: list[Path], L: int, registry: dict, K: int = 1) -> tuple[set[Model], list[torch.Tensor], list[str]]:
    """The models, lossless L-token vectors of K and their texts' sha1 in `sources` (compress
    records or fast.py progress files)."""
    from memcap.core.models import resolve_model

    models, vectors, shas = set(), [], []
    for path in map(Path, sources):
        if not path.is_file():
            raise FileNotFoundError(f"no source at {path}: give compress records or a fast.py progress file")
        if path.name.endswith(".progress.jsonl"):
            name, found, texts = progress_vectors(path, L, K)
            spec = resolve_model(name, registry)
            models |= {Model(spec.name, spec.model_id, spec.revision or "", spec.source)} if found else set()
        else:
            own, found, texts = records_vectors(path, L, K)
            models |= own
        vectors += found
        shas += texts
    return models, vectors, shas


def build_prior(sources: list[Path], L: int, out: Path, registry: dict, K: int = 1) -> int:
    """Write the prior of `sources` to `out`; returns how many vectors it averages."""
    models, vectors, shas = gather(sources, L, registry, K)
    if not vectors:
        raise ValueError(f"no lossless {L}-token attempts of K={K} in {', '.join(map(str, sources))}")
    if len(models) > 1:
        names = sorted(m.name for m in models)
        raise ValueError(f"the sources are searches of {len(models)} models ({names}); a prior is one model's")
    save_prior(out, mean_prior(vectors), models.pop(), L, len(vectors), shas, [str(p) for p in sources])
    return len(vectors)


class LeftOut(NamedTuple):
    """What prior_without() gives a run: the vectors its fresh starts begin from, how many of the
    file's vectors were left out for it, and the file's sha1 (memcap.core.prior.file_sha)."""

    vectors: torch.Tensor
    left_out: int
    sha: str


def prior_without(path: Path, spec, texts: list[str], registry: dict) -> LeftOut:
    """The prior file `path` (checked for model `spec`) for a run that measures `texts` (sha1):
    its own vectors when it was built from none of them; otherwise its mean rebuilt from the
    sources it records without their vectors (a leave-set-out prior), and how many were left out.
    ValueError when such a rebuild cannot be made as the file was: a source missing or changed."""
    prior = read_prior(path, spec, None)
    measured = set(texts)
    if not prior.texts & measured:
        return LeftOut(prior.vectors, 0, prior.sha)
    sources = [Path(s) for s in json.loads(prior.meta.get("sources", "[]"))]
    why = f"{path} was built from texts this run measures; leaving them out rebuilds it from its sources"
    missing = [str(s) for s in sources if not s.is_file()] or ([] if sources else ["(it records none)"])
    if missing:
        raise ValueError(f"{why}, and these are not here: {', '.join(missing)}")
    _, vectors, shas = gather(sources, int(prior.meta["L"]), registry, prior.vectors.shape[0])
    if len(vectors) != int(prior.meta["n"]) or not torch.allclose(mean_prior(vectors), prior.vectors):
        raise ValueError(f"{why}, and they no longer hold the {prior.meta['n']} vectors it averages")
    kept = [v for v, sha in zip(vectors, shas, strict=True) if sha not in measured]
    if not kept:
        raise ValueError(f"{why}, and every one of its vectors comes from them")
    return LeftOut(mean_prior(kept), len(vectors) - len(kept), prior.sha)
