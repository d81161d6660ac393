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
An attempt that ran out of steps while still improving is continued from its own best
vectors, up to SearchConfig.budget steps in all (off by default; SearchConfig.fresh_budget for a
line at the fresh settings), so no attempt is declared failed while it still improves within
that budget. With SearchConfig.last_token_lr, a line at
the warm settings that would fail exactly one token short gets one more window from its best
vectors at that (lower) learning rate first (with SearchConfig.last_token_below, only while the
text's capacity so far is below that many tokens).
What a failure does depends on the mode. With a grid (`lengths_grid`), a text goes on to
the next grid length after a failing one, from its last lossless vectors (or a fresh init if
it has none: a text that fails its first length can pass the next; with
SearchConfig.fresh_after_stuck, also a fresh init when the warm line at the failing length
never scored past its prefix), until `fails` lengths fail in a row (SearchConfig.fails; 1:
its first failure ends it; with SearchConfig.one_fail_from, so does a failure at that many
tokens or more; with SearchConfig.fresh_check_below, a text that would end below
that many tokens first tries the next `fails` lengths from fresh starts, and goes on warm
from one that passes (with fresh_check_from_random, always from the seeded random init;
with fresh_check_rounds, again each time it would end below that bound, up to that many times);
with SearchConfig.restart_mix, each such restart after the first
lossless length starts from the last lossless vectors mixed with the random init, at the warm
settings; with a `prior`, every fresh start begins from those vectors instead of the seeded
random init, and with `prior_redo` a text about to end at the first length it passed from the
prior, or at 0, first redoes that length once from the random init and goes on warm from
there). Grid lengths are all tried in order, so there is nothing on the grid to bisect;
with `resolution` set, it then bisects off the grid between the last lossless and the failing
length. With growth instead (`start` times `growth`), the first
failure ends growth and it bisects between the last lossless and the failing length,
warm-started, down to `resolution` tokens. All texts advance together: each round takes one
attempt per unfinished text, and the engine batches their mixed lengths. Search is the
state machine (the compress job drives it batch by batch); search_capacity() runs it.

Lossless means the package's one threshold (memcap.records): accuracy >= 0.99, where
accuracy is `max_correct / scored` under protocol paper and `correct / scored` under strict,
as in the grid's records. A text's capacity is its largest lossless length found, 0 when no
attempt was; lengths above its last `fails` failures in a row are taken to fail too (capacity
is not monotone in L, which is why `fails` > 1 exists). A text with fewer tokens than the
next length stops there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from memcap.core.engine import OptimConfig, Outcome, compress_batch, first_scored
from memcap.records import accuracy_is_lossless, lossless


@dataclass(frozen=True)
class SearchConfig:
    """How a capacity search moves through the lengths: the workflow's `compress.search` keys,
    `memcap job`'s flags (made from these fields by memcap.cli) and fast.py's.

    A new setting is a field here with a default that keeps today's behaviour, a `help` and
    `"optional": True` in its metadata, a key in workflow/schemas/config.schema.yaml, and a
    line in docs: nothing else. At its default it stays out of the job fingerprint (changed())
    and of the records (as_dict()), so results made before it existed still resume.
    """

    fails: int = field(default=1, metadata={"help": "failing lengths in a row before a text stops"})
    retry_fresh: bool = field(
        default=True,
        metadata={"help": "a warm start stopped by patience is retried from a fresh init before its length fails"},
    )
    budget: int | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "optimiser steps one attempt may grow to: an attempt that ran out of steps while still "
            "improving (not stopped by patience) is continued from its own best vectors, one step budget at a "
            "time, until it passes, stops improving or has spent this many (the paper's is 5000; none: never)",
        },
    )
    fresh_after_stuck: bool = field(
        default=False,
        metadata={
            "optional": True,
            "help": "after a warm-started length whose attempts never got past the prefix they started from "
            "(their best count no higher than the lossless length's), the next lengths start from a fresh init "
            "instead of those prefix vectors, until one passes",
        },
    )
    fresh_check_below: int | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "grid mode: a text whose search would end at a capacity below this many tokens first tries the "
            "next `fails` grid lengths above it from fresh starts (the paper-budget reference's way); if one passes, "
            "its warm search goes on from there; once per text unless fresh_check_rounds says more (none: never)",
        },
    )
    retry_stuck: bool = field(
        default=False,
        metadata={
            "optional": True,
            "help": "a warm-started line that never scored past the lossless prefix it started from (its best count "
            "no higher than the prefix's) is run once more at the same length from the seeded random init with the "
            "fresh settings (the paper's start: a grid cell's seed), before the length counts as failed; neither a "
            "prior nor restart_mix changes that start",
        },
    )
    restart_mix: float | None = field(
        default=None,
        metadata={
            "optional": True,
            "share": True,
            "help": "a restart after a text's first lossless length (retry_fresh's, fresh_after_stuck's and "
            "fresh_check_below's) starts from the last lossless vectors mixed with the seeded random init, "
            "sqrt(1 - m^2) * prefix + m * random, with the warm starts' optimiser settings, instead of from the "
            "random init alone with the fresh ones: a share m in (0, 1) (none: the random init)",
        },
    )
    fresh_check_from_random: bool = field(
        default=False,
        metadata={
            "optional": True,
            "help": "fresh_check_below's checks start from the seeded random init with the fresh settings (the "
            "paper-budget reference's own start at that length), whatever restart_mix and a prior say; lengths "
            "that already had such a start are skipped",
        },
    )
    fresh_check_rounds: int = field(
        default=1,
        metadata={
            "optional": True,
            "help": "how many times a text may start fresh_check_below's checks: a text that passed a check and "
            "would again end below that bound checks the next lengths above its new capacity, up to this many "
            "rounds (1: once per text)",
        },
    )
    one_fail_from: int | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "grid mode: from this many tokens up, a text's first failing length ends it (the `fails` rule "
            "applies below): a longer length rarely passes after a failure there (benchmarks/monotone.py), and the "
            "second failing length costs a whole line (none: `fails` at every length)",
        },
    )
    last_token_lr: float | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "a warm-settings line that would fail exactly one token short of lossless gets one more window "
            "(the warm max_steps) from its best vectors at this learning rate before its length fails: the last "
            "token is a step-size problem (benchmarks/last_token.py) (none: no such window)",
        },
    )
    fresh_budget: int | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "optimiser steps a line at the fresh settings (from the random init or a prior, and its "
            "continuations) may grow to, in place of `budget`: on SmolLM2 (tuning texts) fresh lines that pass "
            "do so within two fresh windows, and the ones that went on failed (none: `budget`)",
        },
    )
    last_token_below: int | None = field(
        default=None,
        metadata={
            "optional": True,
            "help": "last_token_lr's window only for a text whose capacity so far is below this many tokens: the "
            "texts a search under-reports against the paper-budget reference end short (on SmolLM2's tuning "
            "texts, every such miss was at 16 tokens or fewer), and a window elsewhere costs steps that buy no "
            "target (none: at every length)",
        },
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):  # annotations are strings: "int", "bool", "int | None"
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and kind.endswith("| None"):
                continue
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"search {f.name} must be true or false, got {value!r}")
            if kind.startswith("float"):  # a share (restart_mix) or a learning rate (last_token_lr)
                share = f.metadata.get("share", False)
                number = not isinstance(value, bool) and isinstance(value, int | float)
                if not number or not 0 < value < (1 if share else float("inf")):
                    allowed = "a number in (0, 1)" if share else "a number > 0"
                    raise ValueError(f"search {f.name} must be {allowed} or null, got {value!r}")
                continue
            whole = isinstance(value, int) and not isinstance(value, bool)
            if kind.startswith("int") and not (whole and value >= 1):  # every int setting counts something
                null = " or null" if kind.endswith("| None") else ""
                raise ValueError(f"search {f.name} must be an integer >= 1{null}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict | SearchConfig | None) -> SearchConfig:
        """From a config mapping; a key set to None keeps its default, an unknown key fails."""
        if isinstance(values, SearchConfig):
            return values
        values = {k: v for k, v in dict(values or {}).items() if v is not None}
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown search key(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**values)

    def as_dict(self) -> dict:
        """What a record keeps: every setting, but an `optional` one (added later) only away from
        its default, so records stay as they were where it is not used."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not (f.metadata.get("optional") and getattr(self, f.name) == f.default)
        }

    def changed(self) -> dict:
        """The settings away from their defaults: what enters the job fingerprint."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


# The configuration whose numbers README claims ("Which texts a number comes from"): chosen on
# the tuning texts and judged on a validation set nobody tuned on (docs/benchmarks.md; candidate
# P7, 2026-12-06). Warm attempts run in 100-step windows that go on while each raises the best
# count, up to the paper's 5000 steps; a fresh start may plateau for its whole 300; after a warm
# line stuck at its prefix the next lengths start fresh, from the prefix mixed half and half with
# the random init; a text that would end below 24 tokens first tries the next 2 lengths from the
# random init, as the paper-budget reference's cells start; from 40 tokens up one failing length
# ends a text; first lengths start from the model's prior (the mean of other texts' lossless
# 8-token vectors). benchmarks/fast.py runs it by default (rebuilding the prior without the
# texts it measures); `memcap compress` (preset fast, SearchConfig's defaults) and the
# workflow's optim and compress.search keys keep their own defaults, so runs made before it
# still resume. `prior`: per model, the prior file (memcap.core.prior) its fresh starts begin
# from (a config names it as models.<name>.prior).
CLAIMED = {
    "optim": {"preset": "fast", "max_steps": 100, "patience": 100, "fresh_patience": 300},
    "search": {
        "fails": 2,
        "retry_fresh": False,
        "budget": 5000,
        "fresh_after_stuck": True,
        "fresh_check_below": 24,
        "restart_mix": 0.5,
        "fresh_check_from_random": True,
        "one_fail_from": 40,
    },
    "prior": {"smollm2-135m": "config/priors/smollm2-135m.safetensors"},
}


REDO = 2  # Attempt.retry of prior_redo's restart from the random init (and of its continuations)


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
    retry: int = 0  # 1: the fresh restart at this L after a warm-started attempt got stuck there; REDO: prior_redo's
    stop_reason: str = ""  # the engine's: converged, patience, max_steps, nan (oom: "")
    extension: int = 0  # n > 0: the n-th continuation of the attempt at (L, retry) (SearchConfig.budget)
    score: int = 0  # the count lossless is judged on: max_correct (protocol paper) or correct (strict)
    mix: float = 0.0  # > 0: a restart from the prefix's vectors with this share of the random init
    lr: float | None = None  # a last-token window's learning rate (SearchConfig.last_token_lr); None: the settings'

    @property
    def restart(self) -> bool:
        """Whether it began a line away from the warm line's vectors: from the random init or
        (SearchConfig.restart_mix) from the prefix's vectors mixed with it."""
        return self.warm_start is None or self.mix > 0

    @property
    def fresh(self) -> bool:
        """Whether it runs with a fresh start's settings: it, or the attempt it continues,
        started from the random init."""
        return self.warm_start is None


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
    """How every text of one search moves through the lengths (search_capacity's arguments):
    the SearchConfig, and what the search's call adds to it."""

    config: SearchConfig
    grid: list[int] | None  # grow through these lengths; None: start, then times growth
    start: int
    growth: float
    resolution: int | None  # bisect down to this many tokens (None: grid mode stays on the grid)
    max_length: int
    min_length: int  # the shortest text the protocol scores (first_scored + 1)
    check_grid: list[int] | None = None  # the lengths fresh checks go to (None: grid's)
    prior: torch.Tensor | None = None  # fresh starts begin here instead of the seeded random init
    prior_redo: bool = False  # a text about to end at its prior-born first length redoes it from random


class _Text:
    """Search state of one text: the bracket (lo lossless, hi failing) and the next length."""

    def __init__(self, index: int, n_tokens: int, plan: _Plan):
        self.result = SearchResult(index)
        self.plan, self.config, self.n_tokens = plan, plan.config, n_tokens
        self.failed = 0  # failing lengths in a row so far (config.fails allowed)
        self.retrying = False  # the next attempt restarts `next` (from a random init, or a mix)
        self.extending: Attempt | None = None  # the next attempt continues this one
        self.lr: float | None = None  # the next attempt's own learning rate (a last-token window)
        self.lo, self.lo_vectors, self.hi = 0, None, None
        self.lo_score = -1  # the count the lossless attempt at lo was judged on
        self.stuck = False  # a warm line from lo never got past lo's count (config.fresh_after_stuck)
        self.checks: list[int] = []  # grid lengths still to check from fresh starts (config.fresh_check_below)
        self.check_rounds = 0  # rounds of fresh checks started (config.fresh_check_rounds allowed)
        self.redone = False  # its one redo from the random init (plan.prior_redo) has been started
        self.since = 0  # attempts before this index belong to the line the redo replaced
        self.redo_hi: int | None = None  # the failing length the text had before its redo
        self.from_random: int | None = None  # the retry of a next attempt from the seeded random init, whatever
        # prior or mix (config.retry_stuck's 1, plan.prior_redo's REDO); None: the usual start
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
            if self.config.fails > 1:  # growth tried every grid length up to hi; those it skipped failed
                return None
            inside = [L for L in self.plan.grid if self.lo < L < self.hi]
            return inside[len(inside) // 2] if inside else None
        step = self.plan.resolution or 1
        if self.hi - self.lo <= step:
            return None
        return (self.lo + self.hi) // 2

    @property
    def mix(self) -> float:
        """The share of the random init in the next attempt's start (0: none, or all of it when
        init is None): a restart mixes into the prefix's vectors under config.restart_mix."""
        restarting = self.extending is None and (self.retrying or self.stuck) and self.lo_vectors is not None
        return self.config.restart_mix if restarting and self.config.restart_mix else 0.0

    @property
    def init(self):
        """The vectors the next attempt starts from (before `mix`); None: the seeded random init."""
        if self.extending is not None:
            return self.extending.vectors
        return None if (self.retrying or self.stuck) and not self.mix else self.lo_vectors

    def request(self) -> Request:
        """The next attempt, as a search asks its driver for it."""
        was = self.extending
        if was is not None:
            return Request(
                self.result.index, self.next, was.vectors, was.warm_start, was.retry, was.extension + 1, lr=self.lr
            )
        if self.from_random is not None:
            return Request(self.result.index, self.next, None, None, self.from_random)
        init = self.init
        warm_start = self.lo if init is not None else None
        if init is None and self.plan.prior is not None:
            init = self.plan.prior.clone()  # still a fresh start: warm_start None takes the fresh settings
        return Request(self.result.index, self.next, init, warm_start, int(self.retrying), mix=self.mix)

    def _extends(self, attempt: Attempt) -> bool:
        """Whether `attempt` is continued: it ran out of steps while still improving (the
        engine's patience did not stop it, and a continuation raised the best count of its
        line of attempts) and that line has budget left (config.fresh_budget for a line at the fresh
        settings, when set)."""
        budget = self.config.budget
        if attempt.fresh and self.config.fresh_budget is not None:
            budget = self.config.fresh_budget
        if budget is None or attempt.stop_reason != "max_steps" or attempt.vectors is None:
            return False
        line = [a for a in self.result.attempts[self.since :] if (a.L, a.retry) == (attempt.L, attempt.retry)]
        earlier = [a.score for a in line if a is not attempt]
        rose = not attempt.extension or attempt.score > max(earlier, default=-1)
        return rose and sum(a.steps for a in line) < budget

    def _one_short(self, attempt: Attempt) -> bool:
        """With config.last_token_lr, whether `attempt` ends a warm-settings line (a warm start, a
        mixed restart, or their continuations) exactly one token short of lossless, and is not
        itself that line's last-token window: seen on SmolLM2 (tuning texts), such lines pass in
        11 of 19 cases when continued at lr 0.03 for 100 steps, 3 of 19 at the warm lr 0.3.
        With config.last_token_below, only while the text's capacity so far is below it."""
        if self.config.last_token_lr is None or attempt.fresh or attempt.lr is not None or attempt.vectors is None:
            return False
        if self.config.last_token_below is not None and self.lo >= self.config.last_token_below:
            return False
        scored = attempt.L - (self.plan.min_length - 1)
        return scored > 0 and accuracy_is_lossless((attempt.score + 1) / scored)

    def _stuck_at_prefix(self, L: int) -> bool:
        """Whether the warm-started line at L (from lo's vectors) never scored more than the
        lossless prefix it started from (causal: the prefix's tokens stay right, so it started
        there); its fresh retry, if any, does not change that."""
        recent = self.result.attempts[self.since :]
        warm = [a for a in recent if (a.L, a.retry, a.warm_start) == (L, 0, self.lo) and self.lo]
        return bool(warm) and max(a.score for a in warm) <= self.lo_score

    def _start_check(self) -> bool:
        """A text about to end at a capacity below config.fresh_check_below instead tries the next
        `fails` grid lengths above it that had no fresh start yet, from fresh starts (retry 1,
        the reference's way: its warm lines there failed, and a warm start can fail where a
        fresh one passes, as on lee-0008 and lee-0029); config.fresh_check_rounds times per text
        (once by default)."""
        below = self.config.fresh_check_below
        rounds = self.check_rounds >= self.config.fresh_check_rounds
        if below is None or rounds or not self.plan.grid or self.lo >= below:
            return False
        cap = min(self.plan.max_length, self.n_tokens)
        # a seeded start is the same run again (from the random init, only a start from it is)
        random = self.config.fresh_check_from_random
        fresh = {a.L for a in self.result.attempts if (a.fresh if random else a.restart)}
        grid = self.plan.check_grid or self.plan.grid
        self.checks = [L for L in grid if self.lo < L <= cap and L not in fresh][: self.config.fails]
        if not self.checks:
            return False
        self.check_rounds, self.failed, self.hi = self.check_rounds + 1, 0, None
        self._next_check()
        return True

    def _next_check(self) -> None:
        """The next attempt is the fresh check at self.checks[0]: a restart (mixed under
        config.restart_mix), or with config.fresh_check_from_random the seeded random init."""
        self.retrying, self.next = True, self.checks[0]
        if self.config.fresh_check_from_random:
            self.from_random = 1

    def _start_redo(self) -> bool:
        """With plan.prior_redo, a text about to end at 0 or at the first length it passed, when
        that pass started from the prior, first redoes that length (the first grid length at 0)
        once from the seeded random init, with the fresh settings; if that passes, its warm
        search goes on from the new vectors. Seen on SmolLM2 (lee-0041): the prior's 8-token
        vectors led nowhere (12, 16 and 24 failed), where the random init's went to 40."""
        if not self.plan.prior_redo or self.redone or not self.plan.grid:
            return False
        first = next((a for a in self.result.attempts if a.lossless), None)  # its first pass
        if first is not None and (self.lo != first.L or not first.fresh):
            return False
        self.redone, self.since, self.redo_hi, self.from_random = True, len(self.result.attempts), self.hi, REDO
        self.failed, self.hi, self.stuck, self.checks = 0, None, False, []
        self.next = self.lo or self.plan.grid[0]
        return True

    def update(self, attempt: Attempt) -> None:
        self.result.attempts.append(attempt)
        self.retrying, self.extending, self.from_random, self.lr = False, None, None, None
        if attempt.oom:
            return self._finish("oom")
        if not attempt.lossless and self._extends(attempt):
            self.extending, self.next = attempt, attempt.L
            return
        if not attempt.lossless and self._one_short(attempt):
            self.extending, self.next, self.lr = attempt, attempt.L, self.config.last_token_lr
            return
        if attempt.retry == REDO and not attempt.lossless:  # the text keeps what it had
            self.hi = self.redo_hi if self.redo_hi is not None else attempt.L
            return self._finish("failed")
        if attempt.lossless:
            if attempt.vectors is None:
                raise ValueError(f"lossless attempt at L={attempt.L} has no vectors to warm-start from")
            self.lo, self.lo_vectors, self.lo_score = attempt.L, attempt.vectors, attempt.score
            self.result.capacity = attempt.L
            self.failed, self.stuck, self.checks = 0, False, []
        elif self.checks:  # a fresh check that failed: the next one, or the text ends
            self.checks.pop(0)
            if self.checks:
                self._next_check()
                return self._check_next()
            self.hi = attempt.L
            if self._start_redo():
                return self._check_next()
            return self._finish("failed")
        elif (
            self.config.retry_stuck
            and attempt.warm_start is not None
            and not attempt.retry
            and not attempt.mix
            and self._stuck_at_prefix(attempt.L)
        ):
            # seen on SmolLM2 (lee-0041, lee-0045): a warm line from 8 tokens stayed at its
            # prefix's count at 12 or 16, where the reference's fresh start at that length (the
            # same seed) passed in 193 and 318 steps: vectors that cannot move are no start
            self.retrying, self.from_random, self.next = True, 1, attempt.L
            return
        elif (
            attempt.warm_start is not None
            and not attempt.retry
            and attempt.stop_reason == "patience"
            and self.config.retry_fresh
        ):
            # vectors that encode the prefix can sit in a basin the longer text cannot leave
            # (seen on SmolLM2: a warm start at 8 tokens never improved, where fresh starts
            # decoded 26): a stuck attempt fails only once a fresh start failed too. One that
            # used its whole budget was still improving; a fresh start would redo that work.
            self.retrying, self.next = True, attempt.L
            return
        else:
            self.failed += 1
            if self.config.fresh_after_stuck and self._stuck_at_prefix(attempt.L):
                # seen on SmolLM2 (lee-0008): warm starts from 8 tokens stayed at their 7 correct
                # tokens at 12 and at 16, where fresh starts (the paper-budget reference) passed
                # 16, 24 and 32; prefix vectors that cannot move are not reused
                self.stuck = True
            once = self.config.one_fail_from is not None and attempt.L >= self.config.one_fail_from
            if self.plan.grid and self.failed < self.config.fails and not once:
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
                if self._start_check() or self._start_redo():
                    return self._check_next()
                return self._finish("failed")
            if self.plan.grid:
                return self._finish("grid_end")
            return self._finish("text_end" if self.lo >= self.n_tokens else "max_length")
        self._check_next()


@dataclass(frozen=True)
class Request:
    """One attempt a search asks for: text `index` cut to `L` tokens, optimised from `init`
    (None: the seeded random init)."""

    index: int
    L: int
    init: torch.Tensor | None = field(repr=False)
    warm_start: int | None  # the lossless length the line of attempts started from; None: random
    retry: int
    extension: int = 0  # n > 0: continues the attempt at (L, retry) from its own vectors
    mix: float = 0.0  # > 0: init is the prefix's vectors, mixed with this share of the random init
    lr: float | None = None  # its own learning rate instead of the settings' (a last-token window)

    @property
    def fresh(self) -> bool:
        """Whether it takes a fresh start's optimiser settings (memcap.core.engine.compress_batch)."""
        return self.warm_start is None


def _attempt_name(L, retry: int, extension: int) -> str:
    return f"L={L} (retry {retry}" + (f", extension {extension})" if extension else ")")


def _start_name(warm_start: int | None, mix: float = 0.0) -> str:
    if warm_start is None:
        return " from a fresh init"
    return f" warm from L={warm_start}" + (f" mixed with {mix:g} of a fresh init" if mix else "")


class Search:
    """Every text's search state; its driver runs the attempts it asks for.

        search = Search([len(a), len(b)], K=1, protocol="paper", lengths_grid=[8, 16, 32])
        while not search.done:
            for batch in search.round(batch_size=16):
                outcomes = ...        # compress each request's text[:L] from its init
                pairs = [search.update(r, o, seed) for r, o, seed in zip(batch, outcomes, seeds)]
        search.results

    It never runs the model itself, so a job can run the attempts its own way (batching,
    out-of-memory halving, storage) with nothing calling back into it. search_capacity()
    is the plain driver. Arguments as search_capacity's.
    """

    def __init__(
        self,
        n_tokens: list[int],
        K: int,
        protocol: str,
        lengths_grid: list[int] | None = None,
        start: int = 16,
        growth: float = 2.0,
        resolution: int | None = None,
        max_length: int | None = None,
        config: SearchConfig | None = None,
        history: dict[int, list[Attempt]] | None = None,
        check_grid: list[int] | None = None,
        prior: torch.Tensor | None = None,
        prior_redo: bool = False,
    ):
        self.K, self.protocol = K, protocol
        self.config = config or SearchConfig()
        first = first_scored(protocol)
        grid = None
        if lengths_grid is not None:
            grid = sorted({int(L) for L in lengths_grid})
            if not grid:
                raise ValueError("lengths_grid is empty")
        elif start < first + 1 or growth <= 1:
            raise ValueError(f"need start >= {first + 1} and growth > 1, got start={start}, growth={growth}")
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be >= 1 tokens, got {resolution}")
        if prior_redo and (prior is None or grid is None):
            raise ValueError("prior_redo redoes a start from the prior on a grid: it needs a prior and lengths_grid")
        plan = _Plan(
            self.config,
            grid,
            start,
            growth,
            resolution,
            max_length if max_length is not None else 10**9,
            first + 1,
            sorted({int(L) for L in check_grid}) if check_grid else None,
            prior,
            prior_redo,
        )
        self.states = [_Text(i, n, plan) for i, n in enumerate(n_tokens)]
        for i, done in (history or {}).items():
            self._replay(i, done)

    def adopt(self, i: int, attempts: list[Attempt]) -> int:
        """Replay the longest head of `attempts` (another search's on text i, in the order made)
        that this search would make as they are, and say how many that is: a search that differs
        from another only in later decisions reuses its attempts. Only the requests are compared
        (length, retry, continuation, start): the caller vouches for the same model, texts, seeds
        and optimiser settings, and for the same `prior` (a fresh start from it and one from the
        random init ask alike: warm_start None)."""
        return self._replay(i, attempts, partial=True)

    def _replay(self, i: int, attempts: list[Attempt], partial: bool = False) -> int:
        state = self.states[i]
        for n, attempt in enumerate(attempts):
            want = state.request() if not state.result.done else None
            expected = (want.L, want.retry, want.extension) if want else (None, 0, 0)
            made = (attempt.L, attempt.retry, attempt.extension)
            if made != expected or (
                want is not None
                and (attempt.warm_start, attempt.mix, attempt.lr) != (want.warm_start, want.mix, want.lr)
            ):
                if partial:
                    return n
                # same attempt, other start: name the starts (fresh_after_stuck differs)
                was, now = (
                    (_start_name(attempt.warm_start, attempt.mix), _start_name(want.warm_start, want.mix))
                    if made == expected
                    else ("", "")
                )
                raise ValueError(
                    f"text {i}: a recorded attempt at {_attempt_name(*made)}{was} is not what this search would "
                    f"try next ({_attempt_name(*expected)}{now}); the records come from different search settings"
                )
            state.update(attempt)
        return len(attempts)

    @property
    def done(self) -> bool:
        return all(s.result.done for s in self.states)

    @property
    def results(self) -> list[SearchResult]:
        return [s.result for s in self.states]

    def round(self, batch_size: int) -> list[list[Request]]:
        """One attempt per unfinished text, shortest first, in batches of `batch_size`."""
        todo = sorted((s for s in self.states if not s.result.done), key=lambda s: s.next)
        requests = [s.request() for s in todo]
        return [requests[b : b + batch_size] for b in range(0, len(requests), batch_size)]

    def update(self, request: Request, outcome: Outcome | None, seed: int) -> tuple[SearchResult, Attempt]:
        """Take the outcome of `request` (None: out of memory even alone)."""
        attempt = Attempt(
            L=request.L,
            warm_start=request.warm_start,
            seed=seed,
            lossless=is_lossless(outcome, self.protocol),
            steps=outcome.steps if outcome is not None else 0,
            outcome=outcome,
            vectors=outcome.vectors if outcome is not None else None,
            oom=outcome is None,
            retry=request.retry,
            stop_reason=outcome.stop_reason if outcome is not None else "",
            extension=request.extension,
            mix=request.mix,
            lr=request.lr,
            score=0 if outcome is None else (outcome.max_correct if self.protocol == "paper" else outcome.correct),
        )
        state = self.states[request.index]
        state.update(attempt)
        return state.result, attempt


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
    config: SearchConfig | dict | None = None,
    check_grid: list[int] | None = None,
    prior: torch.Tensor | None = None,
    prior_redo: bool = False,
    **settings,
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
    config (or its fields as keywords, e.g. fails=2): SearchConfig. retry_fresh: a
    warm-started attempt that fails by `patience` (stuck, not out of steps) is run once more
    from the seeded random init (the grid's own start at that length) before the length
    counts as failed. fails: grid mode stops a text after this many failing grid lengths in a
    row (the paper-budget reference's rule, benchmarks/reference.py, uses 2); each next length
    starts from the last lossless vectors (fresh_after_stuck: from a fresh init after a warm
    line that never scored past its prefix). 1: at the first failure. check_grid: the lengths
    the fresh checks (config.fresh_check_below) go to, e.g. the paper's grid when
    lengths_grid climbs a few tokens at a time (None: lengths_grid). prior: a (K, d) start for
    every fresh start instead of the seeded random init, still with the fresh settings
    (benchmarks/fast.py --prior: the mean of other texts' lossless vectors); prior_redo: a text
    about to end at 0 or at the first length it passed from the prior redoes that length once
    from the random init (Attempt.retry REDO) and goes on warm from there.
    """
    optim = optim or OptimConfig()
    config = SearchConfig.from_dict({**SearchConfig.from_dict(config).as_dict(), **settings})
    if max_length is None:
        context = getattr(lm, "max_context", None)
        max_length = context - K if context else None
    if not callable(seeds) and len(seeds) != len(texts_ids):
        raise ValueError("one seed per text is needed")
    seed_of = seeds if callable(seeds) else (lambda i, L: seeds[i])
    lengths = [len(ids) for ids in texts_ids]
    search = Search(
        lengths,
        K,
        protocol,
        lengths_grid,
        start,
        growth,
        resolution,
        max_length,
        config,
        history,
        check_grid,
        prior,
        prior_redo,
    )
    while not search.done:
        for batch in search.round(batch_size):
            ids = [texts_ids[r.index][: r.L] for r in batch]
            seeds_b = [seed_of(r.index, r.L) for r in batch]
            # fresh settings go by the line's start, not by whether init is given (a continuation, a prior)
            wrong = any(r.fresh != (r.init is None) for r in batch)
            extra = {"fresh": [r.fresh for r in batch]} if wrong else {}
            if any(r.mix for r in batch):
                extra["mix"] = [r.mix for r in batch]
            if any(r.lr is not None for r in batch):
                extra["lr"] = [r.lr for r in batch]
            outcomes = runner(lm, ids, K, protocol, seeds_b, optim, init=[r.init for r in batch], **extra)
            pairs = [search.update(r, o, sd) for r, o, sd in zip(batch, outcomes, seeds_b, strict=True)]
            if on_attempts is not None:
                on_attempts(pairs)
    return search.results
