"""One compress job: a model, a texts file, a grid of K and L -> one record per sample.

    from memcap.stages.job import run_job
    run_job("smollm2-135m", "results/demo/texts/lee.jsonl",
            "results/demo/compress/smollm2-135m/lee.jsonl", lengths=[16, 32], K=[1])

or from the shell: ``memcap job --model smollm2-135m --texts ... --out ... --lengths 16 32``.
`K` is the number of [mem] vectors (an int, or a list: one pass per K); the workflow's rules
compress and multivector each run one job (docs/method.md section 9 has these words).
``mode="search"`` (``--mode search``) finds each text's capacity instead of running every
length: each text goes up the lengths, warm-started from its last lossless vectors, until one
fails (memcap.core.search); it writes one record per attempt and resumes like the grid.

The model is loaded once, and only if work remains. Samples of one (K, L) are optimised
together in batches of `batch_size`; random texts, which each have their own length, are
sorted by length so a batch pads little. Every finished batch is stored atomically in
``<out>.parts/``; a killed job rerun with the same arguments skips what is there and never
writes a record twice. The records file `out` is written at the end (docs/records.md).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm.auto import tqdm

import memcap
from memcap.core.engine import OptimConfig, Outcome, first_scored
from memcap.core.models import LoadedModel, load_model, load_registry, resolve_model
from memcap.records import MODES
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


SEARCH_DEFAULTS = {"fails": 1, "retry_fresh": True}  # memcap.core.search.search_capacity's


def search_settings(search: dict | None) -> dict:
    """The capacity search's settings (SEARCH_DEFAULTS filled in); bad keys or values fail here."""
    search = {k: v for k, v in dict(search or {}).items() if v is not None}
    unknown = set(search) - set(SEARCH_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown search key(s) {sorted(unknown)}; allowed: {sorted(SEARCH_DEFAULTS)}")
    search = {**SEARCH_DEFAULTS, **search}
    if not isinstance(search["fails"], int) or isinstance(search["fails"], bool) or search["fails"] < 1:
        raise ValueError(f"search fails must be an integer >= 1, got {search['fails']!r}")
    if not isinstance(search["retry_fresh"], bool):
        raise ValueError(f"search retry_fresh must be true or false, got {search['retry_fresh']!r}")
    return search


def job_fingerprint(
    spec,
    protocol: str,
    optim: OptimConfig,
    dataset: str,
    mode: str,
    lengths,
    cast_weights: bool = False,
    search: dict | None = None,
) -> dict:
    """What a job's numbers depend on; its parts folder keeps it (job.json) and a job whose
    fingerprint differs refuses to resume there. The workflow checks it before any job runs
    (workflow/rules/common.smk, check_results). `lengths`: every length of the job. `search`:
    the capacity search's settings (search_settings), part of it in search mode only where
    they differ from SEARCH_DEFAULTS, so search jobs made before they existed still resume."""
    # `compile` only changes how fast the numbers come
    model_settings = {k: v for k, v in asdict(spec).items() if k != "compile"}
    fingerprint = {"model": model_settings, "protocol": protocol, "optim": optim.as_dict(), "dataset": dataset}
    if mode != "grid":  # grid parts keep their old fingerprint; a search never resumes over them
        fingerprint.update(mode=mode, lengths=sorted(lengths))
        changed = {k: v for k, v in search_settings(search).items() if v != SEARCH_DEFAULTS[k]}
        if changed:
            fingerprint["search"] = changed
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
    search: dict | None = None,
) -> Path:
    """Compress every (K, L, text) of the grid not already done; write the records to `out`.

    K: the number of [mem] vectors, or a list of them (every K is run). lengths=None takes
    each text's own `length` (random text). mode="search" searches each
    text's capacity through `lengths` instead (one record per attempt, module docstring).
    cast_weights: keep the frozen linear weights in the registry's autocast dtype
    (memcap.core.models.cast_frozen_weights; only where autocast applies, i.e. on CUDA).
    search: the capacity search's `fails` and `retry_fresh` (memcap.core.search.search_capacity;
    SEARCH_DEFAULTS where left out); search mode only.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "search" and lengths is None:
        raise ValueError("mode 'search' needs lengths to search through; random text has one length per text")
    first = first_scored(protocol)
    optim = optim if isinstance(optim, OptimConfig) else OptimConfig.from_dict(optim)
    search = search_settings(search)
    Ks = [int(k) for k in ([K] if isinstance(K, int) else K)]
    if not Ks or min(Ks) < 1:
        raise ValueError(f"K (the number of vectors) must be integers >= 1, got {K}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rows = read_texts(texts, max_samples)
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
    if min(all_lengths) < first + 1:
        raise ValueError(f"protocol {protocol!r} needs lengths >= {first + 1}, got {min(all_lengths)}")

    registry = load_registry(models_file) if Path(models_file).exists() else {}
    spec = resolve_model(model, registry)
    dataset = dataset or Path(texts).stem
    out = Path(out)
    if threads:
        torch.set_num_threads(threads)

    fingerprint = job_fingerprint(spec, protocol, optim, dataset, mode, all_lengths, cast_weights, search)
    store = PartStore(out.with_suffix(".parts"), fingerprint=fingerprint)
    ctx = JobContext(
        spec,
        store,
        dataset,
        protocol,
        optim,
        batch_size,
        progress,
        search,
        functools.partial(load_model, spec, device, cast_weights=cast_weights),
    )
    if mode == "search":
        _run_search(ctx, rows, all_lengths, Ks)
    else:
        done = store.done_keys()
        groups = _plan(rows, lengths, Ks, done)
        todo = sum(len(g) for g in groups)
        log.info("%s on %s: %d samples done before, %d to do", spec.name, dataset, len(done), todo)
        if todo:
            ctx.load_lm(Ks, all_lengths)
            _run_groups(ctx, groups)
    records = store.merge(out, defaults=_kinds(rows))
    log.info("wrote %d records to %s", len(records), out)
    return out


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
    search: dict  # search_settings(); search mode only
    load: functools.partial  # load_model(spec, device, cast_weights=...)
    lm: LoadedModel | None = None
    shared: dict | None = None  # the fields every record shares (_shared)

    @property
    def first(self) -> int:
        return first_scored(self.protocol)

    def load_lm(self, Ks, lengths) -> LoadedModel:
        """Load the model, check that K + L fit its context, and fill `shared`."""
        self.lm = self.load()
        _check_context(self.lm, Ks, lengths)
        self.shared = _shared(self)
        return self.lm


def _run_search(ctx: JobContext, rows, lengths, Ks) -> None:
    """Search mode: every text's capacity per K (memcap.core.search), one part per batch of attempts.

    Resumes: a text whose search a kill interrupted replays its recorded attempts (and the
    vectors of its last lossless one) and goes on from there; finished texts are not rerun.
    """
    from memcap.core.search import search_capacity

    recorded = ctx.store.records()
    finished = {(r["K"], str(r["sample_id"])) for r in recorded if r.get("capacity") is not None}
    todo = {K: [r for r in rows if (K, str(r["id"])) not in finished] for K in Ks}
    if not any(todo.values()):
        return
    lm = ctx.load_lm(Ks, lengths)
    bar = tqdm(desc=f"{ctx.spec.name}/{ctx.dataset} search", unit="attempt", disable=not ctx.progress)
    limit = OomLimit()
    for K, group in todo.items():
        if not group:
            continue
        ids = [lm.tokenize(row["text"]) for row in group]

        def seed(i, L, _K=K, _group=group):  # as the grid's seed, so a first attempt matches it
            return derive_seed(ctx.spec.name, ctx.dataset, _K, L, _group[i]["id"])

        history = _search_history(ctx.store, recorded, K, group, ctx.protocol)
        if history:
            log.info(
                "K=%d: resuming the search of %d texts from their %d recorded attempts",
                K,
                len(history),
                sum(len(a) for a in history.values()),
            )
        results = search_capacity(
            lm,
            ids,
            K,
            ctx.protocol,
            seed,
            ctx.optim,
            lengths_grid=lengths,
            batch_size=ctx.batch_size,
            runner=functools.partial(compress_splitting, limit=limit),
            on_attempts=functools.partial(_write_attempts, ctx, K, group, ids, bar),
            history=history,
            **ctx.search,
        )
        caps = sorted(r.capacity for r in results)
        log.info(
            "K=%d: capacity of %d texts: median %s, min %d, max %d, %d optimiser steps",
            K,
            len(caps),
            caps[len(caps) // 2],
            caps[0],
            caps[-1],
            sum(r.steps for r in results),
        )
    bar.close()


def _write_attempts(ctx: JobContext, K: int, group: list[dict], ids: list[list[int]], bar, pairs) -> None:
    """search_capacity's on_attempts: one part with the records of a batch of attempts."""
    records, tensors = [], {}
    keys = [f"K{K}_L{a.L}_{group[res.index]['id']}" + ("_retry" if a.retry else "") for res, a in pairs]
    part = f"search_K{K}_" + hashlib.sha1("|".join(keys).encode()).hexdigest()[:10]
    for (res, a), key in zip(pairs, keys, strict=True):
        record = _record(
            ctx, group[res.index], ids[res.index][: a.L], a.outcome, K=K, L=a.L, seed=a.seed, batch=len(pairs)
        )
        record.update(
            mode="search",
            search=ctx.search,
            warm_start=a.warm_start,
            retry=a.retry,
            capacity=res.capacity if res.done else None,
            vectors=f"{part}.safetensors",
            vectors_key=key,
        )
        records.append(record)
        if a.outcome is not None:
            tensors[key] = a.outcome.vectors
    ctx.store.write_part(part, records, tensors)
    bar.update(len(pairs))


def _search_history(store: PartStore, recorded: list[dict], K: int, group: list[dict], protocol: str) -> dict:
    """Recorded attempts of the unfinished texts of `group` at K, as memcap.core.search replays them.

    A grid search tries strictly growing lengths (a length twice at most: warm, then the
    fresh retry), so a text's attempts in order of (L, retry) are in the order they were made.
    """
    from memcap.core.search import Attempt
    from memcap.records import lossless

    position = {str(row["id"]): i for i, row in enumerate(group)}
    history: dict[int, list[Attempt]] = {}
    for r in sorted(recorded, key=lambda r: (r["L"], r.get("retry", 0))):
        i = position.get(str(r["sample_id"]))
        if r["K"] != K or i is None:
            continue
        ok = lossless(r["status"], r["correct"], r["max_correct"], r["scored"], protocol)
        vectors = None
        if ok:
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
            )
        )
    return history


def _shared(ctx: JobContext) -> dict:
    """The fields every record of a job shares."""
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
    lm, spec, dataset = ctx.lm, ctx.spec, ctx.dataset
    token_cache: dict[str, list[int]] = {}

    def tokens(row) -> list[int]:
        sid = str(row["id"])
        if sid not in token_cache:
            token_cache[sid] = lm.tokenize(row["text"])
        return token_cache[sid]

    total = sum(len(g) for g in groups)
    bar = tqdm(total=total, desc=f"{spec.name}/{dataset}", unit="text", disable=not ctx.progress)
    limit = OomLimit()
    for group in groups:
        for start in range(0, len(group), ctx.batch_size):
            cells = group[start : start + ctx.batch_size]
            K = cells[0][0]
            ids = [tokens(row)[:L] for _, L, row in cells]
            seeds = [derive_seed(spec.name, dataset, K, L, row["id"]) for _, L, row in cells]
            for (_, L, row), t in zip(cells, ids, strict=True):
                if len(t) < L:
                    log.warning("sample %s has %d tokens, fewer than L=%d: recorded as N < L", row["id"], len(t), L)

            def show(step, active, best, _K=K, _L=cells[-1][1]):
                bar.set_postfix(K=_K, L=_L, step=step, active=active, refresh=False)

            outcomes = compress_splitting(
                lm, ids, K, ctx.protocol, seeds, ctx.optim, show if ctx.progress else None, limit=limit
            )
            records, tensors = [], {}
            keys = [f"K{K}_L{L}_{row['id']}" for _, L, row in cells]
            part = f"K{K}_L{cells[0][1]}-{cells[-1][1]}_" + hashlib.sha1("|".join(keys).encode()).hexdigest()[:10]
            for (K_, L, row), t, seed, key, outcome in zip(cells, ids, seeds, keys, outcomes, strict=True):
                record = _record(ctx, row, t, outcome, K=K_, L=L, seed=seed, batch=len(cells))
                record.update(vectors=f"{part}.safetensors", vectors_key=key)
                records.append(record)
                if outcome is not None:
                    tensors[key] = outcome.vectors
            ctx.store.write_part(part, records, tensors)
            bar.update(len(cells))
            ok = [r for r in records if r["status"] == "ok"]
            log.info(
                "K=%d L=%s: %d/%d lossless, mean accuracy %.3f",
                K,
                cells[0][1] if cells[0][1] == cells[-1][1] else f"{cells[0][1]}-{cells[-1][1]}",
                sum(r["accuracy"] == 1.0 for r in ok),
                len(records),
                sum(r["accuracy"] for r in ok) / max(len(ok), 1),
            )
    bar.close()


def _record(ctx: JobContext, row, ids, outcome: Outcome | None, *, K, L, seed, batch) -> dict:
    """One cell's record: the text `row` cut to `ids`, compressed into `outcome` (None: oom)."""
    text = row["text"]
    record = dict(
        ctx.shared,
        sample_id=str(row["id"]),
        kind=text_kind(row),
        text_sha=hashlib.sha1(text.encode("utf-8")).hexdigest(),
        K=K,
        L=L,
        N=len(ids),
        short=len(ids) < L,
        n_bytes=len(ctx.lm.tokenizer.decode(ids, skip_special_tokens=True).encode("utf-8")),
        scored=len(ids) - ctx.first,
        seed=seed,
        batch_size=batch,
        mode="grid",  # search mode overrides these five (docs/records.md)
        search=None,
        warm_start=None,
        retry=0,
        capacity=None,
    )
    if outcome is None:  # out of memory even alone
        nan = None
        return dict(
            record,
            status="oom",
            stop_reason="oom",
            baseline_loss_sum=nan,
            baseline_correct=0,
            loss_sum=nan,
            correct=0,
            accuracy=nan,
            min_loss_sum=nan,
            max_correct=0,
            max_accuracy=nan,
            steps=0,
            converged=False,
            greedy_exact=False,
            greedy_prefix=0,
            wall_s=0.0,
        )
    fields = asdict(outcome)
    fields.pop("vectors")
    fields.pop("N")
    record = dict(
        record,
        **fields,
        accuracy=outcome.correct / outcome.scored,
        max_accuracy=outcome.max_correct / outcome.scored,
    )
    # strict JSON: a failed sample's numbers are null, never NaN
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
