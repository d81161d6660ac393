"""The compression engine: optimise K [mem] vectors per text so a frozen LM reproduces it.

    from memcap.core.engine import OptimConfig, compress_batch
    outcomes = compress_batch(lm, [ids_a, ids_b], K=1, protocol="strict", seeds=[1, 2],
                              optim=OptimConfig(max_steps=500))
    outcomes[0].accuracy, outcomes[0].greedy_exact, outcomes[0].vectors  # (K, d) float32

One loop for every family: the [mem] vectors enter through ``inputs_embeds``. Texts of one
batch are right-padded; a causal model never lets a real position see a later pad, so no
attention mask is needed and a text's result does not depend on its batch-mates.

Protocols (docs/method.md section 2):
- ``paper``: logits at mem positions are dropped, so t1 is never scored (N-1 positions).
- ``strict``: the prediction of t1 from the last mem vector is scored too (N positions); the
  no-mem baseline predicts t1 from the tokenizer's start-of-document token.

compress_batch() compresses one batch of texts (a compress job, memcap.stages.job, runs many; the
command `memcap compress` one text). It is a short loop over small pieces: _baseline (the
no-vector scores), _Vectors (the random or warm starts, the parametrisation, fresh_lr, AdamW
and the best vectors kept), _step (one scoring and update), Stopping (one text's stopping
rule, docs/method.md section 1.5) and _outcomes.

Memory: the float32 logits of a batch (B x N x vocabulary) are never held at once beyond
``lm.logits_mib`` (memcap.core.models.LOGITS_MIB): the LM head then runs on chunks of positions
(``score``), and the backward recomputes one chunk's logits at a time.
"""

from __future__ import annotations

import inspect
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from memcap.core.models import LoadedModel
from memcap.core.parametrisation import BASES, PARAMETRISATIONS, subspace

PROTOCOLS = ("paper", "strict")


SCHEDULES = ("constant", "cosine")

# Named optimiser settings; a config or the CLI picks one with `preset` and may override any
# key. `paper` is docs/method.md section 1.4 (the dataclass defaults). `fast` is for the capacity
# search and one-text compression (benchmarks/optimizer.py, benchmarks/fast.py,
# docs/benchmarks.md): a warm start from a prefix's vectors passes the next length in 30-190
# steps at lr 0.3, but from a fresh init lr 0.3 (constant, or with warm-up and cosine decay)
# decoded only 2-3 of the reference's 6 texts at 8 tokens within 300 steps, where the
# paper's 0.01 decoded 5-6: fresh starts keep the paper's lr, and its 300 steps (they took
# 71-271 at 8 tokens). Warm starts get 250: of 27 that passed in benchmarks/fast.py, 26 took
# at most 204 steps, while every failing length costs the whole budget. Patience 150 gives
# up on a stuck attempt early (the search then retries it fresh, -k auto doubles K).
# `max` is for the highest capacity a search can find: the optimiser of the run that issue 26's
# method study chose by its rule on the tuning texts (benchmarks/study.py, docs/benchmarks.md),
# the claimed search's: warm attempts in 100-step windows (continued while they improve, with
# compress.search.budget 5000), fresh starts 300 steps at the paper's lr. It is meant for the
# search keys documented with it (config/README.md, "The max preset"): every length from 8
# tokens up, one token per stage, each warm from the last.
PRESETS: dict[str, dict] = {
    "paper": {},
    "fast": {"lr": 0.3, "fresh_lr": 0.01, "max_steps": 250, "fresh_max_steps": 300, "patience": 150},
    "max": {
        "lr": 0.3,
        "fresh_lr": 0.01,
        "max_steps": 100,
        "fresh_max_steps": 300,
        "patience": 100,
        "fresh_patience": 300,
    },
}


@dataclass
class OptimConfig:
    """The paper's optimiser and stopping rule (docs/method.md sections 1.4, 1.5) as defaults.

    The keys after `patience` are opt-in extensions; at their defaults they are left out of
    as_dict(), so settings recorded before they existed (and the resume fingerprints made
    from them) stay the same.
    """

    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.9
    weight_decay: float = 0.01
    eps: float = 1e-8
    max_steps: int = 5000
    patience: int = 2000  # stop after this many steps without a new best accuracy
    schedule: str = "constant"  # or "cosine": linear warm-up, then cosine decay to 0 at max_steps
    warmup: int = 0  # steps of linear learning-rate warm-up
    init_scale: float = 1.0  # the init is randn * std(E) * init_scale
    temperature: float = 1.0  # the training loss is the cross-entropy of logits / temperature
    margin: float = 0.0  # hinge on (logit of the right token - the runner-up's) below this
    fresh_lr: float | None = None  # lr of a text that starts from the random init (None: lr);
    # warm starts (memcap.core.search: vectors of a shorter prefix) keep lr
    fresh_max_steps: int | None = None  # max_steps of a text that starts from the random init
    # (None: max_steps): at the paper's lr a fresh start needs more steps than a warm one
    fresh_patience: int | None = None  # patience of a text that starts from the random init
    # (None: patience): a fresh start can sit on a plateau for hundreds of steps before it rises
    parametrisation: str = "full"  # or "low_rank": the vectors are coefficients (K, rank) times
    # a fixed (d, rank) basis (memcap.core.parametrisation; docs/method.md section 8.5)
    rank: int | None = None  # the basis's rank r (low_rank only; required there)
    basis: str = "pca"  # low_rank: "pca" (the embeddings' top principal directions) or "random"
    preset: str = "paper"  # the name of the preset these values started from (PRESETS)

    def __post_init__(self):
        positive = {
            "lr": self.lr,
            "eps": self.eps,
            "max_steps": self.max_steps,
            "patience": self.patience,
            "init_scale": self.init_scale,
            "temperature": self.temperature,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"optim.{key} must be > 0, got {value!r}")
        if self.fresh_lr is not None and not self.fresh_lr > 0:
            raise ValueError(f"optim.fresh_lr must be > 0 or null (= lr), got {self.fresh_lr!r}")
        if self.fresh_max_steps is not None and not self.fresh_max_steps >= 1:
            raise ValueError(f"optim.fresh_max_steps must be >= 1 or null (= max_steps), got {self.fresh_max_steps!r}")
        if self.fresh_patience is not None and not self.fresh_patience >= 1:
            raise ValueError(f"optim.fresh_patience must be >= 1 or null (= patience), got {self.fresh_patience!r}")
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"optim.{key} must be in [0, 1), got {getattr(self, key)!r}")
        for key in ("weight_decay", "warmup", "margin"):
            if getattr(self, key) < 0:
                raise ValueError(f"optim.{key} must be >= 0, got {getattr(self, key)!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.preset not in PRESETS:
            raise ValueError(f"optim.preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        self._check_parametrisation()

    def _check_parametrisation(self) -> None:
        """parametrisation, rank and basis agree (rank <= d is checked where d is known)."""
        if self.parametrisation not in PARAMETRISATIONS:
            raise ValueError(
                f"optim.parametrisation {self.parametrisation!r} is not one of {', '.join(PARAMETRISATIONS)}"
            )
        if self.basis not in BASES:
            raise ValueError(f"optim.basis {self.basis!r} is not one of {', '.join(BASES)}")
        if self.parametrisation == "full":
            for key, default in (("rank", None), ("basis", "pca")):
                if getattr(self, key) != default:
                    raise ValueError(
                        f"optim.{key} {getattr(self, key)!r} applies to optim.parametrisation low_rank "
                        "only; set that too, or leave it out"
                    )
        elif not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(
                f"optim.rank must be a whole number >= 1 (and <= d) with optim.parametrisation low_rank, "
                f"got {self.rank!r}"
            )

    @classmethod
    def from_dict(cls, values: dict | None) -> OptimConfig:
        """`preset` (default paper) gives the base values; other keys override them, and a
        key set to None keeps the preset's value."""
        values = {k: v for k, v in dict(values or {}).items() if v is not None}
        allowed = {f.name for f in fields(cls)}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown optim key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        preset = values.pop("preset", "paper")
        if preset not in PRESETS:
            raise ValueError(f"optim.preset {preset!r} is not one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **values, "preset": preset})

    def as_dict(self) -> dict:
        """All paper keys, and each extension key only where it differs from its default."""
        values = asdict(self)
        for f in fields(self):
            if f.name not in PAPER_KEYS and values[f.name] == f.default:
                del values[f.name]
        return values

    def steps_for(self, warm: bool) -> int:
        """The step budget of a warm start (max_steps) or a fresh one (fresh_max_steps, if set)."""
        return self.max_steps if warm or self.fresh_max_steps is None else self.fresh_max_steps

    def patience_for(self, warm: bool) -> int:
        """The patience of a warm start (patience) or a fresh one (fresh_patience, if set)."""
        return self.patience if warm or self.fresh_patience is None else self.fresh_patience

    def lr_factor(self, step: int) -> float:
        """Multiplier of lr for the optimiser update number `step` (0-based)."""
        factor = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.schedule == "cosine":
            progress = max(0, step - self.warmup) / max(1, self.max_steps - self.warmup)
            factor *= 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return factor


PAPER_KEYS = ("lr", "beta1", "beta2", "weight_decay", "eps", "max_steps", "patience")


@dataclass
class Outcome:
    """What one text's compression produced (sums in nats over the scored positions)."""

    N: int
    scored: int
    baseline_loss_sum: float
    baseline_correct: int
    loss_sum: float
    correct: int
    min_loss_sum: float
    max_correct: int
    steps: int
    converged: bool
    stop_reason: str
    status: str
    greedy_exact: bool
    greedy_prefix: int
    wall_s: float
    batch_size: int  # texts optimised together (smaller than asked after an out-of-memory split)
    vectors: torch.Tensor  # (K, d) float32 on the CPU: exactly the vectors scored above

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else float("nan")


def first_scored(protocol: str) -> int:
    """Index of the first text token that is scored: 1 under paper, 0 under strict."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return 1 if protocol == "paper" else 0


def _accepts_logits_to_keep(model) -> bool:
    cached = getattr(model, "_memcap_logits_to_keep", None)
    if cached is None:
        cached = "logits_to_keep" in inspect.signature(model.forward).parameters
        model._memcap_logits_to_keep = cached
    return cached


def _autocast(lm: LoadedModel):
    autocast = lm.autocast_dtype
    return torch.autocast(lm.device.type, dtype=autocast) if autocast else nullcontext()


def _logits(lm: LoadedModel, inputs_embeds: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits of the last `keep` positions (skips the LM head on mem positions if it can)."""
    kwargs = {"logits_to_keep": keep} if _accepts_logits_to_keep(lm.model) else {}
    with _autocast(lm):
        out = lm.forward(inputs_embeds=inputs_embeds, use_cache=False, **kwargs)
    return out.logits[:, -keep:]


def _position_terms(logits: torch.Tensor, labels: torch.Tensor, optim: OptimConfig | None):
    """Per position of (B, n, V) float logits: CE, whether the argmax is right, the training
    objective (the CE unless optim sets a temperature or margin) and the margin gap (or None)."""
    ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    hit = logits.argmax(dim=-1) == labels
    objective, gap = ce, None
    if optim is not None and optim.temperature != 1.0:
        objective = F.cross_entropy((logits / optim.temperature).transpose(1, 2), labels, reduction="none")
    if optim is not None and optim.margin > 0:
        right = logits.gather(-1, labels[..., None])[..., 0]
        top2 = logits.topk(2, dim=-1).values
        runner_up = torch.where(top2[..., 0] > right, top2[..., 0], top2[..., 1])
        gap = right - runner_up
        objective = objective + F.relu(optim.margin - gap)
        gap = gap.detach()
    return ce, hit, objective, gap


def split_head(lm: LoadedModel):
    """The LM head as a linear layer apart from the backbone, or None where the model's logits
    are not head(backbone's last hidden state) (checked once on three positions)."""
    cached = getattr(lm.model, "_memcap_split_head", None)
    if cached is None:
        head = lm.model.get_output_embeddings()
        cached = False
        if isinstance(head, torch.nn.Linear) and lm.model.base_model is not lm.model:
            with torch.no_grad(), _autocast(lm):
                x = lm.embeddings(torch.full((1, 3), lm.start_token_id, device=lm.device))
                whole = lm.model(inputs_embeds=x, use_cache=False).logits.float()
                apart = head(lm.model.base_model(inputs_embeds=x, use_cache=False).last_hidden_state).float()
            cached = bool(torch.allclose(whole, apart, rtol=1e-4, atol=1e-4 * whole.abs().max().item()))
        lm.model._memcap_split_head = cached
    return lm.model.get_output_embeddings() if cached else None


def _chunked_terms(
    lm: LoadedModel, head, x: torch.Tensor, keep: int, labels: torch.Tensor, optim: OptimConfig | None, rows: int
):
    """_position_terms without all the logits at once: the backbone's hidden states go through
    the head `rows` positions at a time. Under autograd each chunk is checkpointed, so the
    backward recomputes one chunk's logits at a time instead of keeping every chunk's."""
    with _autocast(lm):
        hidden = lm.backbone(inputs_embeds=x, use_cache=False).last_hidden_state
    B, n = labels.shape
    flat = hidden[:, -keep:][:, :-1].reshape(B * n, -1)
    flat_labels = labels.reshape(B * n)

    def chunk(h, y):
        with _autocast(lm):
            logits = head(h)
        return _position_terms(logits.float()[None], y[None], optim)

    grad = torch.is_grad_enabled() and flat.requires_grad
    parts = []
    for start in range(0, B * n, rows):
        h, y = flat[start : start + rows], flat_labels[start : start + rows]
        if grad:
            parts.append(torch.utils.checkpoint.checkpoint(chunk, h, y, use_reentrant=False, preserve_rng_state=False))
        else:
            parts.append(chunk(h, y))
    ce, hit, objective, gap = (
        None if terms[0] is None else torch.cat(terms, dim=1).reshape(B, n) for terms in zip(*parts, strict=True)
    )
    return ce, hit, objective, gap


def score(
    lm: LoadedModel,
    prefix: torch.Tensor,
    token_embeds: torch.Tensor,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    first: int,
    optim: OptimConfig | None = None,
):
    """Per-text CE sum and correct count, teacher forced, for ids[:, first:length].

    prefix: (B, P, d) vectors before the text (the [mem] vectors, a start token, or nothing).
    With `optim` (the training step) it also returns the per-text sum of the training loss
    (the CE itself unless optim sets a temperature or margin) and the count of positions
    whose right token beats the runner-up by optim.margin: (ce, correct, objective, sure).

    Logits beyond lm.logits_mib MiB (float32) are never held at once: the LM head then runs
    on chunks of positions (_chunked_terms); the sums are the same up to rounding.
    """
    n_max = ids.shape[1]
    x = torch.cat([prefix.to(token_embeds.dtype), token_embeds], dim=1)
    keep = n_max - first + 1
    labels = ids[:, first:]
    mask = torch.arange(n_max - first, device=ids.device)[None, :] < (lengths - first)[:, None]
    head = split_head(lm) if labels.numel() * lm.position_logits_mib > lm.logits_mib else None
    if head is None:
        # position P-1+first .. P+n_max-2 predict tokens first .. n_max-1
        logits = _logits(lm, x, keep)[:, :-1].float()
        ce, hit, objective, gap = _position_terms(logits, labels, optim)
    else:
        rows = max(1, int(lm.logits_mib / lm.position_logits_mib))
        ce, hit, objective, gap = _chunked_terms(lm, head, x, keep, labels, optim, rows)
    loss_sum = (ce * mask).sum(dim=1)
    correct = (hit & mask).sum(dim=1)
    if optim is None:
        return loss_sum, correct
    if optim.temperature == 1.0 and optim.margin == 0:  # the paper's loss: train on the CE itself
        return loss_sum, correct, loss_sum, correct
    sure = correct if gap is None else ((gap >= optim.margin) & mask).sum(dim=1)
    return loss_sum, correct, (objective * mask).sum(dim=1), sure


def pad(texts: list[list[int]], device: torch.device, pad_id: int = 0):
    lengths = torch.tensor([len(t) for t in texts], device=device)
    ids = torch.full((len(texts), int(lengths.max())), pad_id, dtype=torch.long, device=device)
    for row, tokens in enumerate(texts):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids, lengths


def init_vectors(K: int, d: int, std: float, seed: int) -> torch.Tensor:
    """randn(K, d) * std(E), from a generator of the text's own seed (batch-independent)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(K, d, generator=gen) * std


@torch.no_grad()
def greedy_decode(
    lm: LoadedModel, vectors: torch.Tensor, n_new: int, prompt_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy continuation of [vectors, prompt tokens] for n_new tokens: (B, n_new) ids.

    Under the paper protocol the prompt is t1 (never trained, so it has to be given).
    """
    parts = [vectors.to(lm.device, lm.embeddings.weight.dtype)]
    if prompt_ids is not None and prompt_ids.shape[1]:
        parts.append(lm.embeddings(prompt_ids.to(lm.device)))
    x = torch.cat(parts, dim=1)
    if n_new <= 0:
        return torch.zeros(x.shape[0], 0, dtype=torch.long, device=lm.device)
    with _autocast(lm):
        out = lm.model.generate(
            inputs_embeds=x,
            attention_mask=torch.ones(x.shape[:2], dtype=torch.long, device=lm.device),
            max_new_tokens=n_new,
            do_sample=False,
            num_beams=1,
            eos_token_id=None,  # never stop early: we compare every position
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return out[:, -n_new:]


@dataclass
class Stopping:
    """One text's stopping rule (docs/method.md section 1.5), fed one scoring per step.

        state = Stopping(scored=7, max_steps=500, patience=50)
        if state.observe(loss, correct, sure):  # a new best: keep the vectors just scored
            ...
        state.reason  # "" while it goes on; converged, max_steps, patience or nan

    Each scoring is of the vectors before that step's update; `steps` counts the updates
    made (the caller adds one after each).
    """

    scored: int  # positions scored
    max_steps: int
    patience: int
    best_correct: int = -1  # of the best scoring: most correct, then lowest loss
    best_loss: float = math.inf
    min_loss: float = math.inf  # over all finite scorings (may come from another step)
    since: int = 0  # scorings since the best correct count last rose
    steps: int = 0
    reason: str = ""
    wall_s: float = 0.0  # seconds from the start of compress_batch() to the stop (set by it)

    @property
    def best_accuracy(self) -> float:
        """best_correct / scored; negative before the first finite scoring."""
        return self.best_correct / self.scored

    def observe(self, loss: float, correct: int, sure: int) -> bool:
        """Take one scoring: loss sum, correct count, and the count right by the margin
        (`correct` without one). True when it is the new best; sets `reason` on a stop."""
        if not math.isfinite(loss):
            self.reason = "nan"
            return False
        self.min_loss = min(self.min_loss, loss)
        rose = correct > self.best_correct
        best = rose or (correct == self.best_correct and loss < self.best_loss)
        # a tie with a lower loss is kept, but only a rise of the count resets patience
        self.since = 0 if rose else self.since + 1
        if best:
            self.best_correct, self.best_loss = correct, loss
        if sure == self.scored:  # every token right (by optim.margin, if one is set)
            self.reason = "converged"
            # the scoring that cleared the margin is the one to keep, even where an earlier one
            # had the same count at a lower loss (a margin can raise the cross-entropy); without
            # a margin it is always a new best here (the count first reaches `scored`)
            if correct == self.best_correct and not best:
                self.best_loss, best = loss, True
        elif self.steps >= self.max_steps:
            self.reason = "max_steps"
        elif self.since >= self.patience:
            self.reason = "patience"
        return best


def compress_batch(
    lm: LoadedModel,
    texts: list[list[int]],
    K: int,
    protocol: str,
    seeds: list[int],
    optim: OptimConfig | None = None,
    progress=None,
    init: list[torch.Tensor | None] | None = None,
    fresh: list[bool] | None = None,
    mix: list[float] | None = None,
    lr: list[float | None] | None = None,
) -> list[Outcome]:
    """Optimise K vectors for each text of a batch; returns one Outcome per text.

    `init`, if given, holds one (K, d) start per text (None: the seeded random init), e.g.
    vectors that already encode a prefix of the text (memcap.core.search warm starts).
    `mix`, if given, says per text how much of the seeded random init joins its init:
    sqrt(1 - m^2) * init + m * random (0: the init as it is; memcap.core.search restarts).
    `fresh`, if given, says per text whether it takes the settings of a fresh start
    (optim.fresh_lr, fresh_max_steps, fresh_patience); by default the texts without an init
    do. A search continuing a fresh start from its own vectors passes True for it.
    `lr`, if given, holds per text a learning rate that replaces the one its settings give
    (None: keep it), e.g. a search's last-token window (SearchConfig.last_token_lr).

    A text stops at accuracy 1.0, after `patience` steps without a new best accuracy, or at
    `max_steps` (Stopping); it then leaves the batch, so its vectors and optimiser state stop
    changing. `progress`, if given, is called as progress(step, n_active, best_accuracies).
    Raises torch.OutOfMemoryError on out-of-memory (the caller splits the batch).
    """
    optim = optim or OptimConfig()
    first = first_scored(protocol)
    _check_batch(texts, K, protocol, seeds, init, fresh, first, mix, lr)
    batch = _Batch.of(lm, texts, first, optim)
    baseline = _baseline(batch)
    starts = init if init is not None else [None] * len(texts)
    fresh = fresh if fresh is not None else [start is None for start in starts]
    vectors = _Vectors(lm, K, seeds, starts, optim, fresh, mix, lr)
    states = [
        Stopping(n, optim.steps_for(not new), optim.patience_for(not new))
        for n, new in zip(batch.scored, fresh, strict=True)
    ]
    active, step = list(range(len(texts))), 0
    while active:
        active = _step(batch, vectors, states, active)
        step += 1
        if progress is not None:
            progress(step, len(active), [s.best_accuracy for s in states])
    return _outcomes(batch, vectors.saved(), states, baseline)


def _check_batch(texts, K, protocol, seeds, init, fresh, first, mix=None, lr=None) -> None:
    if K < 1:
        raise ValueError(f"K (number of [mem] vectors) must be >= 1, got {K}")
    if len(seeds) != len(texts):
        raise ValueError("one seed per text is needed")
    if init is not None and len(init) != len(texts):
        raise ValueError("init needs one entry (a (K, d) tensor or None) per text")
    if fresh is not None and len(fresh) != len(texts):
        raise ValueError("fresh needs one entry (True or False) per text")
    if mix is not None:
        if len(mix) != len(texts):
            raise ValueError("mix needs one entry (a share in [0, 1)) per text")
        bad = [
            m for m, start in zip(mix, init or [None] * len(mix), strict=True) if m and (start is None or not 0 < m < 1)
        ]
        if bad:
            raise ValueError(f"mix must be in [0, 1) and needs an init to mix into, got {bad}")
    if lr is not None:
        if len(lr) != len(texts):
            raise ValueError("lr needs one entry (a learning rate > 0, or None) per text")
        bad = [r for r in lr if r is not None and (isinstance(r, bool) or not isinstance(r, int | float) or r <= 0)]
        if bad:
            raise ValueError(f"lr must be a learning rate > 0 or None, got {bad}")
    too_short = [len(t) for t in texts if len(t) <= first]
    if too_short:
        raise ValueError(f"protocol {protocol!r} needs texts of at least {first + 1} token(s); got {too_short}")


@dataclass
class _Batch:
    """The texts of one compress_batch() call, right-padded, and what scoring them takes."""

    lm: LoadedModel
    ids: torch.Tensor  # (B, n_max)
    lengths: torch.Tensor  # (B,)
    embeds: torch.Tensor  # token embeddings of ids (no grad)
    first: int  # first_scored(protocol)
    optim: OptimConfig
    t0: float  # perf_counter() at the start (Outcome.wall_s)

    @classmethod
    def of(cls, lm: LoadedModel, texts, first: int, optim: OptimConfig) -> _Batch:
        t0 = time.perf_counter()
        ids, lengths = pad(texts, lm.device)
        with torch.no_grad():
            embeds = lm.embeddings(ids)
        return cls(lm, ids, lengths, embeds, first, optim, t0)

    @property
    def scored(self) -> list[int]:
        return (self.lengths - self.first).tolist()

    def score(self, prefix: torch.Tensor, index: torch.Tensor | None = None, train: bool = False):
        """score() of the texts at `index` (all: None); train: with optim's training terms."""
        optim = self.optim if train else None
        if index is None:
            return score(self.lm, prefix, self.embeds, self.ids, self.lengths, self.first, optim)
        return score(self.lm, prefix, self.embeds[index], self.ids[index], self.lengths[index], self.first, optim)


@torch.no_grad()
def _baseline(batch: _Batch) -> tuple[list[float], list[int]]:
    """Per-text CE sum and correct count without [mem] vectors."""
    lm = batch.lm
    if batch.first == 0:  # strict baseline: t1 predicted from the start-of-document token
        start = torch.full((len(batch.ids), 1), lm.start_token_id, device=lm.device)
        prefix = lm.embeddings(start)
    else:
        prefix = batch.embeds[:, :0]
    loss, correct = batch.score(prefix)
    return loss.tolist(), correct.tolist()


class _Vectors:
    """Every text's parameter (its warm start, or the seeded random init where None), their
    AdamW (fresh starts at optim.fresh_lr, if set) and schedule, and the best (K, d) kept.

    The parameter is the (K, d) vectors themselves, or under optim.parametrisation low_rank
    their (K, r) coefficients in a fixed basis P (d, r): the vectors are coefficients @ P.T, and
    a start x0 (random or warm) begins at its projection x0 @ P."""

    def __init__(
        self, lm: LoadedModel, K: int, seeds, starts, optim: OptimConfig, fresh: list[bool], mix=None, lr=None
    ):
        d = lm.mem_dim
        std = lm.embedding_std() * optim.init_scale
        for start in starts:
            if start is not None and tuple(start.shape) != (K, d):
                raise ValueError(f"init vectors must have shape (K, d) = ({K}, {d}), got {tuple(start.shape)}")
        low_rank = optim.parametrisation == "low_rank"
        self.basis = subspace(lm, optim.rank, optim.basis) if low_rank else None
        self.params = []
        for seed, start, m in zip(seeds, starts, mix or [0.0] * len(seeds), strict=True):
            x0 = init_vectors(K, d, std, seed).to(lm.device) if start is None else start.detach().to(lm.device)
            x0 = x0.to(torch.float32)
            if m:  # a restart that keeps part of its start (the prefix's vectors)
                x0 = math.sqrt(1 - m * m) * x0 + m * init_vectors(K, d, std, seed).to(x0)
            self.params.append(torch.nn.Parameter(x0.clone() if self.basis is None else x0 @ self.basis))
        lr = lr or [None] * len(self.params)
        if optim.fresh_lr is None and all(r is None for r in lr):
            groups = self.params
        else:  # a fresh init needs a gentler lr than a warm start (PRESETS); a text's own lr wins
            fresh_lr = optim.fresh_lr if optim.fresh_lr is not None else optim.lr
            groups = [
                {"params": [p], "lr": own if own is not None else fresh_lr if new else optim.lr}
                for p, new, own in zip(self.params, fresh, lr, strict=True)
            ]
        self.opt = torch.optim.AdamW(
            groups,
            lr=optim.lr,
            betas=(optim.beta1, optim.beta2),
            eps=optim.eps,
            weight_decay=optim.weight_decay,
        )
        # every text of a batch starts at update 0, so one schedule serves them all
        scheduled = optim.schedule != "constant" or optim.warmup
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.opt, optim.lr_factor) if scheduled else None
        self.best = [self.full(p).detach().clone() for p in self.params]

    def full(self, param: torch.Tensor) -> torch.Tensor:
        """The (..., K, d) vectors of a parameter (its coefficients times the basis, if low_rank)."""
        return param if self.basis is None else param @ self.basis.T

    def stack(self, active: list[int]) -> torch.Tensor:
        return self.full(torch.stack([self.params[i] for i in active]))

    def keep(self, i: int) -> None:
        """Text i's vectors as they are now are its best."""
        self.best[i] = self.full(self.params[i]).detach().clone()

    def saved(self) -> torch.Tensor:
        return torch.stack(self.best).detach()

    def update(self, loss: torch.Tensor, stopped: list[int]) -> None:
        """One optimiser step on loss.sum(); the texts in `stopped` take no part in it."""
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        for i in stopped:  # no update, no weight decay, no momentum for stopped texts
            self.params[i].grad = None
        self.opt.step()
        if self.schedule is not None:
            self.schedule.step()


def _step(batch: _Batch, vectors: _Vectors, states: list[Stopping], active: list[int]) -> list[int]:
    """Score the active texts, let each one's Stopping judge the scoring, and update the
    vectors of those that go on; returns them."""
    index = torch.tensor(active, device=batch.lm.device)
    loss_sum, correct, objective, sure = batch.score(vectors.stack(active), index, train=True)
    host = torch.stack([loss_sum.detach(), correct.to(loss_sum.dtype), sure.to(loss_sum.dtype)]).cpu()
    going, going_rows = [], []
    for row, i in enumerate(active):
        if states[i].observe(host[0, row].item(), int(host[1, row].item()), int(host[2, row].item())):
            vectors.keep(i)  # the vectors that produced this score (before the update)
        if states[i].reason:
            states[i].wall_s = time.perf_counter() - batch.t0
        else:
            going.append(i)
            going_rows.append(row)
    if going:
        rows = torch.tensor(going_rows, device=batch.lm.device)
        per_text = objective[rows] / batch.lengths[index][rows].sub(batch.first).to(objective.dtype)
        vectors.update(per_text, [i for i in active if i not in going])
        for i in going:
            states[i].steps += 1
    return going


def _outcomes(batch: _Batch, saved: torch.Tensor, states: list[Stopping], baseline) -> list[Outcome]:
    """Re-score exactly the vectors kept, then check losslessness by greedy decoding."""
    ids, lengths, first = batch.ids, batch.lengths, batch.first
    with torch.no_grad():
        final_loss, final_correct = batch.score(saved)
    decoded = greedy_decode(batch.lm, saved, ids.shape[1] - first, ids[:, :first])
    base_loss, base_correct = baseline
    outcomes = []
    for i, state in enumerate(states):
        target = ids[i, first : int(lengths[i])]
        matches = (decoded[i, : len(target)] == target).int()
        prefix_ok = int(matches.cumprod(0).sum().item()) if len(target) else 0
        nan = state.reason == "nan"
        outcomes.append(
            Outcome(
                N=int(lengths[i]),
                scored=state.scored,
                baseline_loss_sum=base_loss[i],
                baseline_correct=int(base_correct[i]),
                loss_sum=final_loss[i].item() if not nan else float("nan"),
                correct=int(final_correct[i]) if not nan else 0,
                min_loss_sum=state.min_loss if math.isfinite(state.min_loss) else float("nan"),
                max_correct=max(state.best_correct, 0),
                steps=state.steps,
                converged=state.reason == "converged",
                stop_reason=state.reason,
                status="nan" if nan else "ok",
                greedy_exact=bool(prefix_ok == len(target)) and not nan,
                greedy_prefix=prefix_ok,
                wall_s=state.wall_s,
                batch_size=len(states),
                vectors=saved[i].float().cpu(),
            )
        )
    return outcomes
