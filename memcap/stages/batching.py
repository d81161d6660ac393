"""Seeds and batches of a compress job: a stable seed per (model, dataset, K, L, sample), and
compress_batch() that halves its batch on out-of-memory instead of losing the job.

    from memcap.stages.batching import OomLimit, compress_splitting, derive_seed
    seed = derive_seed("smollm2-135m", "lee", 1, 16, "lee-0000")   # the same on every machine
    outcomes = compress_splitting(lm, ids, K, "paper", seeds, optim, limit=OomLimit())
    # one Outcome per text; None for a text that does not fit even alone (recorded as oom)

Used by the compress job (memcap.stages.job), the geometry stage and the benchmarks.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import torch

from memcap.core.engine import compress_batch
from memcap.core.models import LoadedModel

log = logging.getLogger("memcap.stages.batching")


def derive_seed(*parts) -> int:
    """A 60-bit seed (15 hex digits of a SHA-256) from (model, dataset, K, L, sample): stable across runs
    and machines."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:15], 16)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass
class OomLimit:
    """The smallest batch, in tokens (texts x (K + longest text)), that ran out of memory in
    this job: a batch at least that large is split before it is tried, so a job whose
    batch_size is too big for the card pays for one out-of-memory error, not one per batch."""

    tokens: float = math.inf


def compress_splitting(
    lm: LoadedModel,
    texts,
    K,
    protocol,
    seeds,
    optim,
    progress=None,
    limit: OomLimit | None = None,
    **per_text,
):
    """compress_batch(), halving the batch on out-of-memory; a single text that still does not fit
    comes back as None (recorded with status `oom`), and the others go on. `per_text`:
    compress_batch's per-text lists (init, fresh, mix, lr), each halved with the batch."""
    tokens = len(texts) * (K + max(len(t) for t in texts))
    if len(texts) == 1 or limit is None or tokens < limit.tokens:
        try:
            return compress_batch(lm, texts, K, protocol, seeds, optim, progress, **per_text)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
        if limit is not None:
            limit.tokens = min(limit.tokens, tokens)
        if lm.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(texts) == 1:
            log.error("out of memory on a single text (K=%d, %d tokens); recorded as oom", K, len(texts[0]))
            return [None]
        log.warning("out of memory on a batch of %d texts; retrying in halves", len(texts))
    half = len(texts) // 2
    return [
        outcome
        for part in (slice(None, half), slice(half, None))
        for outcome in compress_splitting(
            lm,
            texts[part],
            K,
            protocol,
            seeds[part],
            optim,
            progress,
            limit,
            **{key: values[part] for key, values in per_text.items() if values is not None},
        )
    ]
