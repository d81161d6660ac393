"""Capacity search: each text's largest losslessly decodable length, warm-started.

    from memcap.core.search import search_capacity
    results = search_capacity(lm, [ids_a, ids_b], K=1, protocol="paper", seeds=[1, 2],
                              optim=OptimConfig(max_steps=300), lengths_grid=[8, 16, 32, 64])
    results[0].capacity, results[0].steps, [(a.L, a.lossless, a.steps) for a in results[0].attempts]

Instead of one independent run per grid length, every text grows: it is compressed at a
start length and, while that is lossless, at the next length (the next grid length, or
`growth` times the last), starting from the last lossless vectors, which already encode the
prefix (texts at different lengths are nested prefixes). A warm-started attempt that gets
stuck (stopped by `patience`) is run once more from a fresh random init (the grid's own start
at that length), since prefix vectors can sit in a basin the longer text cannot leave; the
length then fails only if both do.
At the first failure it bisects between the last lossless and the failing length, again
warm-started: among the grid lengths in between (grid mode, where growth already took every
grid length, so a grid search ends at its first failure), or down to `resolution` tokens.
All texts advance together: each round takes one attempt per unfinished text, and the engine
batches their mixed lengths.

Lossless means the package's one threshold (memcap.records): accuracy >= 0.99, where
accuracy is `max_correct / scored` under protocol paper and `correct / scored` under strict,
as in the grid's records. A text's capacity is its largest lossless length found, 0 when no
attempt was. Unlike the grid's per-length pass rule, the search assumes that once a length
fails, longer ones fail too; a text with fewer tokens than the next length stops there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from memcap.core.engine import OptimConfig, Outcome, compress_batch, first_scored
from memcap.records import lossless


@dataclass
class Attempt:
    """One compression of a text at length L."""

    L: int
    warm_start: int | None  # the lossless length whose vectors it started from; None: random
    seed: int
    lossless: bool
    steps: int
    outcome: Outcome | None = field(repr=False, default=None)  # None when replayed from records
    vectors: torch.Tensor | None = field(repr=False, default=None)  # final (K, d); later warm starts
    oom: bool = False  # out of memory even alone: the text's search ends there
    retry: int = 0  # 1: the fresh restart at this L after a warm-started attempt got stuck there
    stop_reason: str = ""  # the engine's: converged, patience, max_steps, nan (oom: "")


@dataclass
class SearchResult:
    index: int  # position of the text in the input list
    capacity: int = 0  # largest lossless L found; 0 when none was
    attempts: list[Attempt] = field(default_factory=list)
    done: bool = False
    stop_reason: str = ""  # failed (bracketed), grid_end, text_end, max_length, oom, too_short

    @property
    def steps(self) -> int:
        """Optimiser steps of all attempts together."""
        return sum(a.steps for a in self.attempts)


def is_lossless(outcome: Outcome | None, protocol: str) -> bool:
    if outcome is None:
        return False
    return lossless(outcome.status, outcome.correct, outcome.max_correct, outcome.scored, protocol)


@dataclass(frozen=True)
class _Plan:
    """How every text of one search moves through the lengths (search_capacity's arguments)."""

    grid: list[int] | None  # grow through these lengths; None: start, then times growth
    start: int
    growth: float
    resolution: int | None  # bisect down to this many tokens (None: grid mode stays on the grid)
    max_length: int
    min_length: int  # the shortest text the protocol scores (first_scored + 1)
    retry_fresh: bool
    fails: int  # failing grid lengths in a row that end a text


class _Text:
    """Search state of one text: the bracket (lo lossless, hi failing) and the next length."""

    def __init__(self, index: int, n_tokens: int, plan: _Plan):
        self.result = SearchResult(index)
        self.plan, self.n_tokens = plan, n_tokens
        self.failed = 0  # failing lengths in a row so far (plan.fails allowed)
        self.retrying = False  # the next attempt restarts `next` from a random init
        self.lo, self.lo_vectors, self.hi = 0, None, None
        self.next = plan.grid[0] if plan.grid else plan.start
        self._check_next()

    def _finish(self, reason: str) -> None:
        self.result.done, self.result.stop_reason, self.next = True, reason, None

    def _check_next(self) -> None:
        if self.next is None:
            return
        if self.next > self.plan.max_length:
            self._finish("max_length")
        elif self.next > self.n_tokens:
            self._finish("text_end")
        elif self.next < self.plan.min_length:
            self._finish("failed" if self.hi is not None else "too_short")

    def _grow(self) -> int | None:
        if self.plan.grid:
            later = [L for L in self.plan.grid if L > self.lo]
            return later[0] if later else None
        cap = min(self.plan.max_length, self.n_tokens)  # growth tries the whole text last
        bigger = max(int(self.lo * self.plan.growth), self.lo + 1)
        return min(bigger, cap) if self.lo < cap else None

    def _bisect(self) -> int | None:
        if self.plan.grid and self.plan.resolution is None:
            if self.plan.fails > 1:  # growth tried every grid length up to hi; those it skipped failed
                return None
            inside = [L for L in self.plan.grid if self.lo < L < self.hi]
            return inside[len(inside) // 2] if inside else None
        step = self.plan.resolution or 1
        if self.hi - self.lo <= step:
            return None
        return (self.lo + self.hi) // 2

    @property
    def init(self):
        """The vectors the next attempt starts from; None: the seeded random init."""
        return None if self.retrying else self.lo_vectors

    def update(self, attempt: Attempt) -> None:
        self.result.attempts.append(attempt)
        self.retrying = False
        if attempt.oom:
            return self._finish("oom")
        if attempt.lossless:
            if attempt.vectors is None:
                raise ValueError(f"lossless attempt at L={attempt.L} has no vectors to warm-start from")
            self.lo, self.lo_vectors = attempt.L, attempt.vectors
            self.result.capacity = attempt.L
            self.failed = 0
        elif attempt.warm_start is not None and attempt.stop_reason == "patience" and self.plan.retry_fresh:
            # vectors that encode the prefix can sit in a basin the longer text cannot leave
            # (seen on SmolLM2: a warm start at 8 tokens never improved, where fresh starts
            # decoded 26): a stuck attempt fails only once a fresh start failed too. One that
            # used its whole budget was still improving; a fresh start would redo that work.
            self.retrying, self.next = True, attempt.L
            return
        else:
            self.failed += 1
            if self.plan.grid and self.failed < self.plan.fails:
                # capacity is not monotone in L (seen on SmolLM2 at the paper's budget: a text
                # failed at 12 tokens, then passed 16 to 32), so a grid search may skip a failure
                later = [L for L in self.plan.grid if L > attempt.L]
                if later:
                    self.next = later[0]
                    return self._check_next()
            self.hi = attempt.L
        self.next = self._grow() if self.hi is None else self._bisect()
        if self.next is None:
            if self.hi is not None:
                return self._finish("failed")
            if self.plan.grid:
                return self._finish("grid_end")
            return self._finish("text_end" if self.lo >= self.n_tokens else "max_length")
        self._check_next()


def search_capacity(
    lm,
    texts_ids: list[list[int]],
    K: int,
    protocol: str,
    seeds: list[int] | Callable[[int, int], int],
    optim: OptimConfig | None = None,
    lengths_grid: list[int] | None = None,
    start: int = 16,
    growth: float = 2.0,
    resolution: int | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
    runner: Callable = compress_batch,
    on_attempts: Callable[[list[tuple[SearchResult, Attempt]]], None] | None = None,
    history: dict[int, list[Attempt]] | None = None,
    retry_fresh: bool = True,
    fails: int = 1,
) -> list[SearchResult]:
    """Search every text's capacity; one SearchResult per text, in input order.

    texts_ids: each text's full tokens (attempt at L uses the first L). seeds: one per text,
    or a function (text index, L) -> seed for an attempt that starts from random vectors.
    lengths_grid: grow through these lengths; otherwise start at `start` and multiply by
    `growth`. resolution: bisect down to this many tokens (grid mode: None stays on the grid;
    growth mode: None means 1). max_length caps L (default: the model's context minus K).
    runner: compress_batch() or a drop-in (memcap.stages.batching.compress_splitting) taking `init=`.
    on_attempts, if given, is called after each batch with its (result, attempt) pairs;
    result.done tells whether that attempt was the text's last.
    history: attempts already made (text index -> attempts in the order they were made, with
    `vectors` on the lossless ones), e.g. read back from a killed job's records: they are
    replayed, not recomputed, and must be the ones this search would have made.
    retry_fresh: a warm-started attempt that fails by `patience` (stuck, not out of steps) is
    run once more from the seeded random init (the grid's own start at that length) before
    the length counts as failed.
    fails: grid mode stops a text after this many failing grid lengths in a row (the paper-
    budget reference's rule, benchmarks/reference.py, uses 2); each next length starts from
    the last lossless vectors. 1: at the first failure.
    """
    optim = optim or OptimConfig()
    first = first_scored(protocol)
    if lengths_grid is not None:
        grid = sorted({int(L) for L in lengths_grid})
        if not grid:
            raise ValueError("lengths_grid is empty")
    else:
        grid = None
        if start < first + 1 or growth <= 1:
            raise ValueError(f"need start >= {first + 1} and growth > 1, got start={start}, growth={growth}")
    if fails < 1:
        raise ValueError(f"fails must be >= 1, got {fails}")
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be >= 1 tokens, got {resolution}")
    if max_length is None:
        context = getattr(lm, "max_context", None)
        max_length = context - K if context else 10**9
    seed_of = seeds if callable(seeds) else (lambda i, L: seeds[i])
    if not callable(seeds) and len(seeds) != len(texts_ids):
        raise ValueError("one seed per text is needed")
    plan = _Plan(grid, start, growth, resolution, max_length, first + 1, retry_fresh, fails)
    states = [_Text(i, len(ids), plan) for i, ids in enumerate(texts_ids)]
    for i, done in (history or {}).items():
        for attempt in done:
            expected = (states[i].next, int(states[i].retrying))
            if (attempt.L, attempt.retry) != expected:
                raise ValueError(
                    f"text {i}: a recorded attempt at L={attempt.L} (retry {attempt.retry}) is not what "
                    f"this search would try next (L={expected[0]}, retry {expected[1]}); the records "
                    "come from different search settings"
                )
            states[i].update(attempt)
    while True:
        todo = sorted((s for s in states if not s.result.done), key=lambda s: s.next)
        if not todo:
            break
        for b in range(0, len(todo), batch_size):
            batch = todo[b : b + batch_size]
            lengths = [s.next for s in batch]
            ids = [texts_ids[s.result.index][:L] for s, L in zip(batch, lengths, strict=True)]
            seeds_b = [seed_of(s.result.index, L) for s, L in zip(batch, lengths, strict=True)]
            init = [s.init for s in batch]
            outcomes = runner(lm, ids, K, protocol, seeds_b, optim, init=init)
            pairs = []
            for s, L, seed, outcome in zip(batch, lengths, seeds_b, outcomes, strict=True):
                attempt = Attempt(
                    L=L,
                    warm_start=s.lo if s.init is not None else None,
                    seed=seed,
                    lossless=is_lossless(outcome, protocol),
                    steps=outcome.steps if outcome is not None else 0,
                    outcome=outcome,
                    vectors=outcome.vectors if outcome is not None else None,
                    oom=outcome is None,
                    retry=int(s.retrying),
                    stop_reason=outcome.stop_reason if outcome is not None else "",
                )
                s.update(attempt)
                pairs.append((s.result, attempt))
            if on_attempts is not None:
                on_attempts(pairs)
    return [s.result for s in states]
