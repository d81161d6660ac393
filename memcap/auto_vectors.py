"""How many [mem] vectors does one text need? Double K until greedy decoding gives it back.

    from memcap.auto_vectors import fewest_vectors
    found = fewest_vectors(lm, ids, "strict", seed=0, optim=OptimConfig.from_dict({"preset": "fast"}))
    found.K, found.exact, found.best.vectors, [(a.K, a.outcome.accuracy) for a in found.attempts]

`memcap compress -k auto` runs this: K = 1, 2, 4, ... up to `max_vectors`, each from the
seeded random init, until the vectors decode the text exactly (greedy, from the vectors alone
under strict); no optimisation is spent on a K larger than the first that works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from memcap.engine import OptimConfig, Outcome, compress


@dataclass
class VectorsAttempt:
    K: int
    outcome: Outcome
    wall_s: float


@dataclass
class FewestVectors:
    attempts: list[VectorsAttempt] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].outcome.greedy_exact

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
        return sum(a.outcome.steps for a in self.attempts)

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


def fewest_vectors(lm, ids: list[int], protocol: str, seed: int, optim: OptimConfig,
                   max_vectors: int = 16, on_attempt=None, progress=None,
                   counts: list[int] | None = None) -> FewestVectors:
    """Compress `ids` with K = 1, 2, 4, ... vectors until greedy decoding reproduces it.

    `counts` replaces the doubling with given K values (e.g. one fixed K). on_attempt(attempt),
    if given, is called after each K; progress is passed to compress.
    """
    counts = counts or vector_counts(max_vectors, lm.max_context, len(ids))
    if not counts:
        raise ValueError(f"the text's {len(ids)} tokens leave no room for a vector in the model's "
                         f"{lm.max_context} positions")
    found = FewestVectors()
    for K in counts:
        t0 = time.perf_counter()
        outcome = compress(lm, [ids], K, protocol, [seed], optim, progress)[0]
        found.attempts.append(VectorsAttempt(K, outcome, time.perf_counter() - t0))
        if on_attempt is not None:
            on_attempt(found.attempts[-1])
        if outcome.greedy_exact:
            break
    return found
