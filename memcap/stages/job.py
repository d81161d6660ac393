"""One compress job: a model, a texts file, a grid of K and L -> one record per sample.

    from memcap.stages.job import run_job
    run_job("smollm2-135m", "results/demo/texts/lee.jsonl",
            "results/demo/compress/smollm2-135m/lee.jsonl", lengths=[16, 32], K=[1])

or from the shell: ``memcap job --model smollm2-135m --texts ... --out ... --lengths 16 32``.
`K` is the number of [mem] vectors (an int, or a list: one pass per K); the workflow's rules
compress and multivector each run one job (docs/method.md section 9 has these words).
``mode="search"`` (``--mode search``) finds each text's capacity instead of running every
length: each text goes up the lengths, warm-started from its last lossless vectors, until
`search.fails` lengths in a row fail (memcap.core.search.SearchConfig); it writes one record
per attempt and resumes like the grid.

The model is loaded once, and only if work remains. Samples of one (K, L) are optimised
together in batches of `batch_size`; random texts, which each have their own length, are
sorted by length so a batch pads little. Every finished batch is stored atomically in
``<out>.parts/``; a killed job rerun with the same arguments skips what is there and never
writes a record twice. The records file `out` is written at the end (docs/records.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm.auto import tqdm

import memcap
from memcap.core.engine import OptimConfig, Outcome, first_scored
from memcap.core.models import LoadedModel, load_model, load_registry, resolve_model
from memcap.core.prior import Prior, check_width, read_prior
from memcap.core.search import Attempt, Search, SearchConfig
from memcap.records import MODES, lossless
from memcap.stages.batching import OomLimit, compress_splitting, derive_seed
from memcap.stages.store import PartStore
from memcap.stages.texts import read_texts, text_kind

log = logging.getLogger("memcap.stages.job")


def versions() -> dict:
    import tokenizers
    import transformers

    return {
        "memcap": memcap.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
    }


def _plan(rows, lengths, Ks, done):
    """(K, L, row) cells still to compute, grouped so each group is one stretch of batches."""
    groups = []
    for K in Ks:
        if lengths is None:  # random text: each row brings its own length; sort to pad little
            cells = sorted(((K, int(r["length"]), r) for r in rows), key=lambda c: c[1])
            groups.append([c for c in cells if (c[0], c[1], str(c[2]["id"])) not in done])
        else:
            for L in sorted(lengths):
                groups.append([(K, L, r) for r in rows if (K, L, str(r["id"])) not in done])
    return [g for g in groups if g]


def job_fingerprint(
    spec,
    *,
    protocol: str,
    optim: OptimConfig,
    dataset: str,
    mode: str,
    lengths,
    cast_weights: bool = False,
    search: SearchConfig | dict | None = None,
    prior: str | None = None,
) -> dict:
    """What a job's numbers depend on; its parts folder keeps it (job.json) and a job whose
    fingerprint differs refuses to resume there. The workflow checks it before any job runs
    (memcap.stages.plan.check_results, through workflow/rules/common.smk), through this function. `lengths`: every
    length of the job. `search`: the capacity search's settings (SearchConfig), in search mode
    only and only where they differ from their defaults, so search jobs made before a
    setting existed still resume. `prior`: the sha1 of the search's prior file
    (memcap.core.prior.file_sha), only where there is one."""
    # `compile` only changes how fast the numbers come
    model_settings = {k: v for k, v in asdict(spec).items() if k != "compile"}
    fingerprint = {"model": model_settings, "protocol": protocol, "optim": optim.as_dict(), "dataset": dataset}
    if mode != "grid":  # grid parts keep their old fingerprint; a search never resumes over them
        fingerprint.update(mode=mode, lengths=sorted(lengths))
        changed = SearchConfig.from_dict(search).changed()
        if changed:
            fingerprint["search"] = changed
        if prior:
            fingerprint["prior"] = prior
    if cast_weights:  # only when on: the fingerprints of jobs made before the option stay the same
        fingerprint["cast_weights"] = True
    return fingerprint


def run_job(
    model: str,
    texts: str | Path,
    out: str | Path,
    *,
    lengths: list[int] | None,
    K: int | list[int] = 1,
    protocol: str = "paper",
    optim: dict | OptimConfig | None = None,
    batch_size: int = 16,
    max_samples: int | None = None,
    device: str = "auto",
    models_file: str | Path = "config/models.yaml",
    dataset: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    mode: str = "grid",
    cast_weights: bool = False,
    search: dict | SearchConfig | None = None,
    samples: set[str] | None = None,
    prior: str | Path | None = None,
) -> Path:
    """Compress every (K, L, text) of the grid not already done; write the records to `out`.

    K: the number of [mem] vectors, or a list of them (every K is run). lengths=None takes
    each text's own `length` (random text). mode="search" searches each
    text's capacity through `lengths` instead (one record per attempt, module docstring).
    cast_weights: keep the frozen linear weights in the registry's autocast dtype
    (memcap.core.models.cast_frozen_weights; only where autocast applies, i.e. on CUDA).
    search: the capacity search's settings (memcap.core.search.SearchConfig, or its keys;
    defaults where left out); search mode only.
    samples: ids of texts in `texts` to compute now (default: all of them). The records of the
    file's other texts stay in `out`, so one text at a time fills one records file.
    prior: a prior file (memcap.core.prior, `memcap prior`) where the search's fresh starts
    begin instead of the random init; search mode and one K only, the prior's.
    """
    optim = optim if isinstance(optim, OptimConfig) else OptimConfig.from_dict(optim)
    search = SearchConfig.from_dict(search)
    Ks = _check_arguments(mode, lengths, K, batch_size)
    if prior is not None and (mode != "search" or len(Ks) != 1):
        raise ValueError(f"a prior is for the capacity search of one K (mode search), not mode {mode} with K {Ks}")
    rows = read_texts(texts, max_samples)
    todo = _chosen(rows, samples, texts)
    all_lengths = _job_lengths(texts, rows, lengths, protocol)
    registry = load_registry(models_file) if Path(models_file).exists() else {}
    spec = resolve_model(model, registry)
    # before the parts folder records a fingerprint with it: a prior that does not fit leaves nothing
    prior = read_prior(prior, spec, Ks[0], [text_sha(r["text"]) for r in rows]) if prior is not None else None
    dataset = dataset or Path(texts).stem
    out = Path(out)
    if threads:
        torch.set_num_threads(threads)
    fingerprint = job_fingerprint(
        spec,
        protocol=protocol,
        optim=optim,
        dataset=dataset,
        mode=mode,
        lengths=all_lengths,
        cast_weights=cast_weights,
        search=search,
        prior=prior.sha if prior is not None else None,
    )
    store = _check_texts(PartStore(out.with_suffix(".parts"), fingerprint=fingerprint), rows, texts)
    ctx = JobContext(spec, store, dataset, protocol, optim, batch_size, progress, search, device, cast_weights, prior)
    if mode == "search":
        _run_search(ctx, todo, all_lengths, Ks)
    else:
        _run_grid(ctx, todo, lengths, all_lengths, Ks)
    records = store.merge(out, defaults=_kinds(rows), samples={str(row["id"]) for row in rows})
    log.info("wrote %d records to %s", len(records), out)
    return out


def _chosen(rows: list[dict], samples: set[str] | None, texts) -> list[dict]:
    """The rows run_job computes now: those named in `samples`, or all; an unknown id is an error."""
    if samples is None:
        return rows
    wanted = set(map(str, samples))
    unknown = sorted(wanted - {str(row["id"]) for row in rows})
    if unknown:
        raise ValueError(f"samples {unknown} are not in {texts}; its ids are the 'id' field of each line")
    return [row for row in rows if str(row["id"]) in wanted]


def _check_arguments(mode: str, lengths, K, batch_size: int) -> list[int]:
    """run_job's arguments that need no file: the list of K, or a ValueError naming the bad one."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "search" and lengths is None:
        raise ValueError("mode 'search' needs lengths to search through; random text has one length per text")
    Ks = [int(k) for k in ([K] if isinstance(K, int) else K)]
    if not Ks or min(Ks) < 1:
        raise ValueError(f"K (the number of vectors) must be integers >= 1, got {K}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return Ks


def _job_lengths(texts, rows, lengths, protocol: str) -> list[int]:
    """Every length the job runs: `lengths`, or each random text's own `length`."""
    if lengths is None:
        missing = [r["id"] for r in rows if not isinstance(r.get("length"), int)]
        if missing:
            raise ValueError(
                f"{texts}: no lengths were given, so every text needs its own integer `length`; "
                f"missing for {missing[:5]}"
            )
        all_lengths = [r["length"] for r in rows]
    else:
        all_lengths = [int(L) for L in lengths]
    first = first_scored(protocol)
    if min(all_lengths) < first + 1:
        raise ValueError(f"protocol {protocol!r} needs lengths >= {first + 1}, got {min(all_lengths)}")
    return all_lengths


def text_sha(text: str) -> str:
    """The digest a record keeps of its text (`text_sha`): a changed text never keeps its records."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _check_texts(store: PartStore, rows, texts) -> PartStore:
    """`store`, once it holds no records of texts that have changed since (their `text_sha`
    differs): resuming over them would describe other texts, so it refuses; parts are left."""
    now = {str(row["id"]): text_sha(row["text"]) for row in rows}
    changed = sorted(
        {
            str(r["sample_id"])
            for r in store.records()
            if r.get("text_sha") and now.get(str(r["sample_id"]), r["text_sha"]) != r["text_sha"]
        }
    )
    if changed:
        raise ValueError(
            f"{store.folder} holds records of {len(changed)} sample(s) whose text in {texts} has changed since "
            f"({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}): resuming would label old numbers "
            "with the new texts, so nothing was run. Allowed: the texts those records were made from; or "
            f"another run name (key 'run'), or delete {store.folder} and its records file to recompute"
        )
    return store


def _kinds(rows) -> dict[str, dict]:
    """{sample_id: {"kind": ...}}: fills `kind` into records of parts written before it existed."""
    return {str(row["id"]): {"kind": text_kind(row)} for row in rows}


def _check_context(lm: LoadedModel, Ks, lengths) -> None:
    limit = lm.max_context
    if limit is not None and max(Ks) + max(lengths) > limit:
        raise ValueError(
            f"model {lm.spec.name!r} takes at most {limit} positions, but K + L = "
            f"{max(Ks)} + {max(lengths)} = {max(Ks) + max(lengths)}; "
            f"allowed: K + L <= {limit}"
        )


@dataclass
class JobContext:
    """One job's settings, built once by run_job and passed to its helpers below instead of
    long argument lists. `lm` and `shared` are set by load_lm(), only where work remains."""

    spec: memcap.core.models.ModelSpec
    store: PartStore
    dataset: str
    protocol: str
    optim: OptimConfig
    batch_size: int
    progress: bool  # show a progress bar
    search: SearchConfig  # search mode only
    device: str
    cast_weights: bool
    prior: Prior | None = None  # search mode: where fresh starts begin (memcap.core.prior), checked once
    lm: LoadedModel | None = None
    shared: dict | None = None  # the fields every record of the job shares (set by load_lm)
    limit: OomLimit = field(default_factory=OomLimit)  # out-of-memory batch size seen so far

    @property
    def first(self) -> int:
        return first_scored(self.protocol)

    @property
    def prior_label(self) -> dict:
        """What a search record keeps of the prior in its `search` dict (nothing without one)."""
        return {"prior": {"file": str(self.prior.path), "sha1": self.prior.sha}} if self.prior else {}

    def load_lm(self, Ks, lengths) -> LoadedModel:
        """Load the model, check that K + L fit its context, and fill `shared`."""
        self.lm = load_model(self.spec, self.device, cast_weights=self.cast_weights)
        _check_context(self.lm, Ks, lengths)
        self.shared = _shared(self)
        return self.lm

    def compress(self, ids, K: int, seeds, progress=None, **per_text):
        """compress_batch() with this job's settings, halving batches on out-of-memory;
        `per_text` as compress_batch's lists (init, fresh, mix, lr)."""
        return compress_splitting(
            self.lm, ids, K, self.protocol, seeds, self.optim, progress, limit=self.limit, **per_text
        )


def _run_grid(ctx: JobContext, rows, lengths, all_lengths, Ks) -> None:
    """Grid mode: every (K, L, text) not done yet."""
    done = ctx.store.done_keys()
    groups = _plan(rows, lengths, Ks, done)
    todo = sum(len(g) for g in groups)
    log.info("%s on %s: %d samples done before, %d to do", ctx.spec.name, ctx.dataset, len(done), todo)
    if todo:
        ctx.load_lm(Ks, all_lengths)
        _run_groups(ctx, groups)


def _run_search(ctx: JobContext, rows, lengths, Ks) -> None:
    """Search mode: every text's capacity per K (memcap.core.search), one part per batch of attempts.

    Resumes: a text whose search a kill interrupted replays its recorded attempts (and the
    vectors of its last lossless one) and goes on from there; finished texts are not rerun.
    """
    recorded = ctx.store.records()
    finished = {(r["K"], str(r["sample_id"])) for r in recorded if r.get("capacity") is not None}
    todo = {K: [r for r in rows if (K, str(r["id"])) not in finished] for K in Ks}
    if not any(todo.values()):
        return
    ctx.load_lm(Ks, lengths)
    prior = None
    if ctx.prior is not None:  # its model, K and texts were checked before the parts folder was made
        prior = check_width(ctx.prior, ctx.lm).vectors
        log.info("fresh starts from the prior %s", ctx.prior.path)
    bar = tqdm(desc=f"{ctx.spec.name}/{ctx.dataset} search", unit="attempt", disable=not ctx.progress)
    for K, group in todo.items():
        if group:
            _search_group(ctx, K, group, lengths, recorded, bar, prior)
    bar.close()


def _search_group(ctx: JobContext, K: int, group: list[dict], lengths, recorded: list[dict], bar, prior=None) -> None:
    """The search of one K over `group`'s texts, run batch by batch and stored as it goes;
    `prior`: a (K, d) start for its fresh attempts (memcap.core.prior), or None."""
    ids = [ctx.lm.tokenize(row["text"]) for row in group]
    history = _search_history(ctx.store, recorded, K, group, ctx.protocol)
    if history:
        attempts = sum(len(a) for a in history.values())
        log.info("K=%d: resuming the search of %d texts from their %d recorded attempts", K, len(history), attempts)
    context = ctx.lm.max_context
    search = Search(
        [len(t) for t in ids],
        K,
        ctx.protocol,
        lengths_grid=lengths,
        max_length=context - K if context else None,
        config=ctx.search,
        history=history,
        prior=prior,
    )
    while not search.done:
        for batch in search.round(ctx.batch_size):
            # the grid's seed, so a first attempt matches the grid's run at that length
            seeds = [derive_seed(ctx.spec.name, ctx.dataset, K, r.L, group[r.index]["id"]) for r in batch]
            outcomes = ctx.compress(
                [ids[r.index][: r.L] for r in batch],
                K,
                seeds,
                init=[r.init for r in batch],
                fresh=[r.fresh for r in batch],
                mix=[r.mix for r in batch],
                lr=[r.lr for r in batch],
            )
            pairs = [search.update(r, o, seed) for r, o, seed in zip(batch, outcomes, seeds, strict=True)]
            _write_attempts(ctx, K, group, ids, pairs)
            bar.update(len(pairs))
    caps = sorted(r.capacity for r in search.results)
    log.info(
        "K=%d: capacity of %d texts: median %s, min %d, max %d, %d optimiser steps",
        K,
        len(caps),
        caps[len(caps) // 2],
        caps[0],
        caps[-1],
        sum(r.steps for r in search.results),
    )


def _write_attempts(ctx: JobContext, K: int, group: list[dict], ids: list[list[int]], pairs) -> None:
    """One part with the records of a batch of search attempts."""
    keys = [
        f"K{K}_L{a.L}_{group[res.index]['id']}"
        + ("_retry" if a.retry else "")
        + (f"_x{a.extension}" if a.extension else "")
        for res, a in pairs
    ]
    part = f"search_K{K}_" + hashlib.sha1("|".join(keys).encode()).hexdigest()[:10]
    records, tensors = [], {}
    for (res, a), key in zip(pairs, keys, strict=True):
        cell = Cell(K=K, L=a.L, seed=a.seed, batch=len(pairs), part=part, key=key)
        records.append(_record(ctx, group[res.index], ids[res.index][: a.L], a.outcome, cell, (res, a)))
        if a.outcome is not None:
            tensors[key] = a.outcome.vectors
    ctx.store.write_part(part, records, tensors)


def _search_history(store: PartStore, recorded: list[dict], K: int, group: list[dict], protocol: str) -> dict:
    """Recorded attempts of the unfinished texts of `group` at K, as memcap.core.search replays them.

    A grid search tries strictly growing lengths (at one length: the warm attempt and its
    continuations, then the fresh retry and its continuations), so a text's attempts in order
    of (L, retry, extension) are in the order they were made. Every attempt's vectors come
    back: a lossless one's warm-start the next length, a failed one's may be continued.
    """
    position = {str(row["id"]): i for i, row in enumerate(group)}
    history: dict[int, list[Attempt]] = {}
    for r in sorted(recorded, key=lambda r: (r["L"], r.get("retry", 0), r.get("extension", 0))):
        i = position.get(str(r["sample_id"]))
        if r["K"] != K or i is None:
            continue
        ok = lossless(r["status"], r["correct"], r["max_correct"], r["scored"], protocol)
        vectors = None
        if r["status"] != "oom":
            with safe_open(store.folder / r["vectors"], framework="pt") as f:
                vectors = f.get_tensor(r["vectors_key"])
        history.setdefault(i, []).append(
            Attempt(
                L=r["L"],
                warm_start=r["warm_start"],
                seed=r["seed"],
                lossless=ok,
                steps=r["steps"],
                vectors=vectors,
                oom=r["status"] == "oom",
                retry=r.get("retry", 0),
                stop_reason=r["stop_reason"],
                extension=r.get("extension", 0),
                mix=r.get("mix", 0.0),
                lr=r.get("lr"),
                score=(r["max_correct"] if protocol == "paper" else r["correct"]) or 0,
            )
        )
    return history


def _shared(ctx: JobContext) -> dict:
    """The fields every record of a job shares (part of _record, computed once per job)."""
    lm, spec, optim = ctx.lm, ctx.spec, ctx.optim
    return {
        "model": spec.name,
        "model_id": spec.model_id,
        "model_source": spec.source,
        "revision": spec.revision,
        "params": lm.params,
        "mem_dim": lm.mem_dim,
        "vocab_size": lm.vocab_size,
        "dataset": ctx.dataset,
        "protocol": ctx.protocol,
        "bos": lm.adds_bos(),
        "device": str(lm.device),
        "dtype": spec.dtype,
        "autocast": str(lm.autocast_dtype).replace("torch.", "") if lm.autocast_dtype else None,
        "optim": optim.as_dict(),
        "preset": optim.preset,
        "versions": versions(),
    }


def _run_groups(ctx: JobContext, groups) -> None:
    """Grid mode: every (K, L, row) cell of `groups` (_plan), one part per batch."""
    token_cache: dict[str, list[int]] = {}

    def tokens(row) -> list[int]:
        sid = str(row["id"])
        if sid not in token_cache:
            token_cache[sid] = ctx.lm.tokenize(row["text"])
        return token_cache[sid]

    total = sum(len(g) for g in groups)
    bar = tqdm(total=total, desc=f"{ctx.spec.name}/{ctx.dataset}", unit="text", disable=not ctx.progress)
    for group in groups:
        for start in range(0, len(group), ctx.batch_size):
            cells = group[start : start + ctx.batch_size]
            records = _grid_batch(ctx, cells, [tokens(row)[:L] for _, L, row in cells], bar)
            bar.update(len(cells))
            ok = [r for r in records if r["status"] == "ok"]
            log.info(
                "K=%d L=%s: %d/%d lossless, mean accuracy %.3f",
                cells[0][0],
                cells[0][1] if cells[0][1] == cells[-1][1] else f"{cells[0][1]}-{cells[-1][1]}",
                sum(r["accuracy"] == 1.0 for r in ok),
                len(records),
                sum(r["accuracy"] for r in ok) / max(len(ok), 1),
            )
    bar.close()


def _grid_batch(ctx: JobContext, cells, ids, bar) -> list[dict]:
    """One batch of grid cells (K, L, row) with their tokens `ids`, compressed and stored."""
    K = cells[0][0]
    seeds = [derive_seed(ctx.spec.name, ctx.dataset, K, L, row["id"]) for _, L, row in cells]
    for (_, L, row), t in zip(cells, ids, strict=True):
        if len(t) < L:
            log.warning("sample %s has %d tokens, fewer than L=%d: recorded as N < L", row["id"], len(t), L)

    def show(step, active, best, _L=cells[-1][1]):
        bar.set_postfix(K=K, L=_L, step=step, active=active, refresh=False)

    outcomes = ctx.compress(ids, K, seeds, progress=show if ctx.progress else None)
    keys = [f"K{K}_L{L}_{row['id']}" for _, L, row in cells]
    part = f"K{K}_L{cells[0][1]}-{cells[-1][1]}_" + hashlib.sha1("|".join(keys).encode()).hexdigest()[:10]
    records, tensors = [], {}
    for (K_, L, row), t, seed, key, outcome in zip(cells, ids, seeds, keys, outcomes, strict=True):
        cell = Cell(K=K_, L=L, seed=seed, batch=len(cells), part=part, key=key)
        records.append(_record(ctx, row, t, outcome, cell))
        if outcome is not None:
            tensors[key] = outcome.vectors
    ctx.store.write_part(part, records, tensors)
    return records


@dataclass(frozen=True)
class Cell:
    """Where one record's numbers come from: its K and L, its seed, the batch size it ran in,
    and the part file (and the key inside it) that keeps its vectors."""

    K: int
    L: int
    seed: int
    batch: int
    part: str
    key: str


_OOM = dict(  # an out-of-memory cell's numbers (null, never NaN: strict JSON)
    status="oom",
    stop_reason="oom",
    baseline_loss_sum=None,
    baseline_correct=0,
    loss_sum=None,
    correct=0,
    accuracy=None,
    min_loss_sum=None,
    max_correct=0,
    max_accuracy=None,
    steps=0,
    converged=False,
    greedy_exact=False,
    greedy_prefix=0,
    wall_s=0.0,
)


def _record(ctx: JobContext, row, ids, outcome: Outcome | None, cell: Cell, attempt=None) -> dict:
    """The one place a record is assembled (docs/records.md): the text `row` cut to `ids`,
    compressed into `outcome` (None: out of memory), at `cell`; `attempt`, the search's
    (SearchResult, Attempt) in search mode."""
    text = row["text"]
    record = dict(
        ctx.shared,
        sample_id=str(row["id"]),
        kind=text_kind(row),
        text_sha=text_sha(text),
        K=cell.K,
        L=cell.L,
        N=len(ids),
        short=len(ids) < cell.L,
        n_bytes=len(ctx.lm.tokenizer.decode(ids, skip_special_tokens=True).encode("utf-8")),
        scored=len(ids) - ctx.first,
        seed=cell.seed,
        batch_size=cell.batch,
        mode="grid",
        search=None,
        warm_start=None,
        retry=0,
        extension=0,
        mix=0.0,
        lr=None,
        capacity=None,
    )
    if outcome is None:
        record.update(_OOM)
    else:
        fields = asdict(outcome)
        fields.pop("vectors")
        fields.pop("N")
        record.update(
            fields,
            accuracy=outcome.correct / outcome.scored,
            max_accuracy=outcome.max_correct / outcome.scored,
        )
    if attempt is not None:
        res, a = attempt
        record.update(
            mode="search",
            search=ctx.search.as_dict() | ctx.prior_label,
            warm_start=a.warm_start,
            retry=a.retry,
            extension=a.extension,
            mix=a.mix,
            lr=a.lr,
            capacity=res.capacity if res.done else None,
        )

    record.update(vectors=f"{cell.part}.safetensors", vectors_key=cell.key)
    # strict JSON: a failed sample's numbers are null, never NaN
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
