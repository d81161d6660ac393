"""Prior files: where the capacity search's fresh starts begin instead of the random init.

    prior = mean_prior(vectors)                             # lossless (K, d) vectors of other texts
    save_prior("smollm2-135m.prior.safetensors", prior, spec, L=8, n=30, texts=shas, sources=["run.jsonl"])
    prior = load_prior("smollm2-135m.prior.safetensors", lm, K=1, texts=shas_measured).vectors
    read_prior("smollm2-135m.prior.safetensors", spec, K=1, texts=shas_measured)   # before the model loads

A prior is the mean of the lossless [mem] vectors that searches found for *other* texts at one
length (their first grid length): a start that already sits where decodable vectors live, so
fewer fresh starts plateau a token short (docs/method.md, "A prior for fresh starts"). It is
model-specific, like any vectors: the file records the model as a vectors file does
(memcap.core.vectors), and loading it for another model, another K or another width fails.
It also records the sha1 of every text it was built from, so a run that measures one of them
is refused: a prior holding a text's own answer would overstate that text's capacity.

`memcap prior` builds one from saved searches (memcap.stages.prior); a compress job takes it
as `models.<name>.prior` in a config or `memcap job --prior FILE`, one text `memcap compress
--prior FILE` (for the K it was built with).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

import memcap
from memcap.core.vectors import model_mismatch
from memcap.io import atomic_write_bytes

KEY = "prior"
REQUIRED = ("kind", "model", "model_id", "revision", "source", "K", "L", "n", "texts")


def mean_prior(vectors: list[torch.Tensor]) -> torch.Tensor:
    """The mean of (K, d) vectors, every one of the same shape."""
    if not vectors:
        raise ValueError("a prior needs at least one lossless vector to average")
    shapes = sorted({tuple(v.shape) for v in vectors})
    if len(shapes) > 1 or len(shapes[0]) != 2:
        raise ValueError(f"a prior averages (K, d) vectors of one shape; got shapes {shapes}")
    return torch.stack([v.float() for v in vectors]).mean(0)


def file_sha(path) -> str:
    """What a job's fingerprint keeps of its prior: the sha1 of the file's bytes."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def save_prior(path, prior: torch.Tensor, spec, L: int, n: int, texts: list[str], sources: list[str]) -> None:
    """`spec`: the model (memcap.core.models.ModelSpec, or its name, model_id, revision and
    source) whose vectors were averaged; `L`: the length they decoded; `n`: how many were
    averaged; `texts`: the sha1 of each text they came from; `sources`: the files read."""
    meta = {
        "kind": "memcap prior",
        "model": spec.name,
        "model_id": spec.model_id,
        "revision": spec.revision or "",
        "source": spec.source,
        "K": str(prior.shape[0]),
        "L": str(L),
        "n": str(n),
        "texts": json.dumps(sorted(set(texts))),
        "sources": json.dumps(sources),
        "memcap": memcap.__version__,
    }
    atomic_write_bytes(Path(path), save({KEY: prior.detach().float().contiguous().cpu()}, metadata=meta))


@dataclass
class Prior:
    """A prior file whose metadata and tensor passed every check (load_prior)."""

    path: Path
    vectors: torch.Tensor  # (K, d) float
    meta: dict
    sha: str  # file_sha()

    @property
    def texts(self) -> set[str]:
        return set(json.loads(self.meta["texts"]))


def read_prior(path, spec, K: int | None, texts: list[str] = ()) -> Prior:
    """The prior of `path` for model `spec` (memcap.core.models.ModelSpec) and K vectors (None:
    the file's own K), before the model loads; ValueError naming what does not fit: not a prior
    file, another model or K, or built from one of `texts` (sha1 of the texts this run
    measures). load_prior() also checks the width against the loaded model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prior file at {path}; `memcap prior` builds one from saved searches")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta, keys = f.metadata() or {}, set(f.keys())
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a prior file: it cannot be read as safetensors ({err})") from None
    missing = [key for key in REQUIRED if key not in meta]
    if KEY not in keys or missing or meta["kind"] != "memcap prior":
        raise ValueError(
            f"{path} is not a prior file written by `memcap prior` (it lacks the {KEY!r} tensor or the "
            f"metadata {', '.join(missing) or 'kind'})"
        )
    why = model_mismatch(meta, spec)
    if why:
        raise ValueError(f"{path}: {why.replace('the vectors were', 'the prior was')}; build one for this model")
    vectors = load_file(str(path))[KEY].float()
    K = vectors.shape[0] if K is None else K
    if vectors.ndim != 2 or vectors.shape[0] != K:
        raise ValueError(f"{path}: the prior is {tuple(vectors.shape)}; this search needs {K} vector(s) (K, width)")
    if not torch.isfinite(vectors).all():
        raise ValueError(f"{path}: the prior holds NaN or infinite values")
    prior = Prior(path=path, vectors=vectors, meta=meta, sha=file_sha(path))
    shared = prior.texts & set(texts)
    if shared:
        raise ValueError(
            f"{path} was built from {len(shared)} of the texts this run measures: a prior comes from other "
            "texts, or it overstates their capacity; build it without them"
        )
    return prior


def check_width(prior: Prior, lm) -> Prior:
    """`prior`, once its vectors are as wide as the loaded model's (lm.mem_dim)."""
    if prior.vectors.shape[1] != lm.mem_dim:
        raise ValueError(
            f"{prior.path}: the prior is {tuple(prior.vectors.shape)}; this model's vectors are {lm.mem_dim} wide"
        )
    return prior


def load_prior(path, lm, K: int | None, texts: list[str] = ()) -> Prior:
    """read_prior() for the loaded model `lm` (its spec), and its width (check_width)."""
    return check_width(read_prior(path, lm.spec, K, texts), lm)
