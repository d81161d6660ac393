"""How many [mem] vectors does one text need? Double K until greedy decoding gives it back.

    from memcap.core.auto_vectors import fewest_vectors
    found = fewest_vectors(lm, ids, "strict", seed=0, optim=OptimConfig.from_dict({"preset": "fast"}))
    found.K, found.exact, found.best.vectors, [(a.K, a.outcome.accuracy) for a in found.attempts]

`memcap compress -k auto` runs this: K = 1, 2, 4, ... up to `max_vectors` until the vectors
decode the text exactly (greedy, from the vectors alone under strict); no optimisation is
spent on a K larger than the first that works. Each K grows through prefixes of the text (8,
16, 32, ... tokens, then the whole text), each warm-started from the last one's vectors, as
the capacity search does (memcap.core.search): a fresh init rarely decodes 30 tokens within a few
hundred steps, a warm start from 16 usually does in tens. A K stops at its first prefix
that fails.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import torch

from memcap.core.engine import OptimConfig, Outcome, compress_batch, first_scored
from memcap.core.search import SearchConfig, search_capacity

FIRST_PREFIX = 8  # tokens of the first, fresh attempt of each K


@dataclass
class VectorsAttempt:
    K: int
    outcome: Outcome  # of the longest prefix tried (the whole text when it decoded)
    wall_s: float
    L: int = 0  # tokens that outcome covers
    steps: int = 0  # optimiser steps of every prefix of this K


@dataclass
class FewestVectors:
    attempts: list[VectorsAttempt] = field(default_factory=list)

    n_tokens: int = 0

    @property
    def exact(self) -> bool:
        last = self.attempts[-1] if self.attempts else None
        return last is not None and last.L == self.n_tokens and last.outcome.greedy_exact

    @property
    def best(self) -> VectorsAttempt:
        """The exact attempt, else the one that decoded the longest prefix (then accuracy)."""
        if self.exact:
            return self.attempts[-1]
        return max(self.attempts, key=lambda a: (a.outcome.greedy_prefix, a.outcome.accuracy, -a.K))

    @property
    def K(self) -> int:
        return self.best.K

    @property
    def steps(self) -> int:
        return sum(a.steps for a in self.attempts)

    @property
    def wall_s(self) -> float:
        return sum(a.wall_s for a in self.attempts)


def vector_counts(max_vectors: int, context: int | None = None, n_tokens: int = 0) -> list[int]:
    """1, 2, 4, ... up to max_vectors (itself included), and K + n_tokens within the context."""
    if max_vectors < 1:
        raise ValueError(f"the largest K (--max-vectors) must be >= 1, got {max_vectors}")
    counts, K = [], 1
    while K < max_vectors:
        counts.append(K)
        K *= 2
    counts.append(max_vectors)
    if context is not None:
        counts = [k for k in counts if k + n_tokens <= context]
    return counts


def prefix_lengths(n_tokens: int, protocol: str) -> list[int]:
    """8, 16, 32, ... below n_tokens, then n_tokens (too-short prefixes left out)."""
    lengths, L = [], FIRST_PREFIX
    while L < n_tokens:
        if L > first_scored(protocol):
            lengths.append(L)
        L *= 2
    return [*lengths, n_tokens]


def fewest_vectors(
    lm,
    ids: list[int],
    protocol: str,
    seed: int,
    optim: OptimConfig,
    max_vectors: int = 16,
    on_attempt=None,
    progress=None,
    counts: list[int] | None = None,
    search: SearchConfig | None = None,
    prior: torch.Tensor | None = None,
) -> FewestVectors:
    """Compress `ids` with K = 1, 2, 4, ... vectors until greedy decoding reproduces it.

    `counts` replaces the doubling with given K values (e.g. one fixed K). on_attempt(attempt),
    if given, is called after each K; progress is passed to compress_batch. `search` sets how
    each K goes through the prefixes (memcap.core.search.SearchConfig; None: its defaults).
    `prior`: a (K, d) start for the fresh attempts of that K (memcap.core.prior); other K
    start from the random init.
    """
    counts = counts or vector_counts(max_vectors, lm.max_context, len(ids))
    if not counts:
        raise ValueError(
            f"the text's {len(ids)} tokens leave no room for a vector in the model's {lm.max_context} positions"
        )
    found = FewestVectors(n_tokens=len(ids))
    runner = functools.partial(compress_batch, progress=progress)
    lengths = prefix_lengths(len(ids), protocol)
    for K in counts:
        t0 = time.perf_counter()
        own = prior if prior is not None and prior.shape[0] == K else None
        result = search_capacity(
            lm, [ids], K, protocol, [seed], optim, lengths_grid=lengths, batch_size=1, runner=runner, config=search,
            prior=own,
        )[0]  # fmt: skip
        last = result.attempts[-1]
        found.attempts.append(VectorsAttempt(K, last.outcome, time.perf_counter() - t0, last.L, result.steps))
        if on_attempt is not None:
            on_attempt(found.attempts[-1])
        if last.L == len(ids) and last.outcome.greedy_exact:
            break
    return found
