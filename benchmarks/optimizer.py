"""Optimiser study: steps to lossless under the paper's settings and alternatives, same texts.

    python benchmarks/optimizer.py --threads 1            # smollm2-135m, K=1, about 15 minutes on one core
    python benchmarks/optimizer.py --threads 1 --texts-file benchmarks/reference/texts.jsonl --lengths 24 40 \
        --max-steps 400 --configs paper fast lr=0.1 lr=0.1,margin=1      # the reference's texts
    python benchmarks/optimizer.py --configs paper lr=0.03 lr=0.1 --lengths 8 16 --texts 4
    python benchmarks/optimizer.py --model shape-pythia-160m --device cuda --lengths 64 80 96 --texts 20 \
        --max-steps 5000
    python benchmarks/optimizer.py --threads 1 --warm-from benchmarks/reference --lengths 32 40 48 \
        --configs fast lr=0.1 lr=0.3,margin=1        # warm starts, as the capacity search makes them

Every configuration compresses the same (text, L) pairs (Lee news articles from gensim's
wheel, first L tokens) from the same seeds, all pairs in one batch, paper protocol, and
reports per L: how many pairs end lossless (best accuracy >= 0.99, memcap.records) and the
median and mean steps those took; then the total optimiser steps over all pairs (a pair that
never becomes lossless costs its whole budget, as it does in a capacity run). A setting is
worth adopting only if it needs fewer steps without fewer lossless pairs at any L.

`--warm-from benchmarks/reference` studies the capacity search's own regime at the lengths
around the capacities: the texts are the reference's, and each (text, L) starts from the
reference's lossless vectors at the longest shorter length where that text was lossless
(the paper's optimiser made them, so every configuration starts from the same vectors);
a pair with no such length is left out. Fresh-init settings (fresh_lr) then play no part.
`--warm-from results/demo/compress/smollm2-135m --texts-file results/demo/texts/lee.jsonl`
starts from a capacity search's own vectors instead (its records have the same layout), which
is the regime the fast preset meets in the workflow.

A configuration is `paper` (docs/method.md sections 1.2 and 1.4: AdamW lr 1e-2, betas (0.9, 0.9), weight decay
0.01, init randn * std(E), constant lr, plain cross-entropy), `fast` (memcap.core.engine.PRESETS), or
comma-separated overrides of the paper's: any memcap.core.engine.OptimConfig key, e.g.
`lr=0.1,beta2=0.999`, `lr=0.1,schedule=cosine,warmup=10`, `init_scale=0.1`, `temperature=0.5`,
`margin=1` or `preset=fast,margin=0`. The budget (--max-steps, --patience) applies to all.

Per configuration and L it prints the lossless share, the median and mean steps to lossless
and the share of lossless pairs that greedy decoding reproduces exactly (teacher-forced
accuracy can pass while free-running decoding drifts); then per configuration the total
steps, wall time, each text's capacity over the studied lengths (the largest lossless L;
lengths are not required to be nested-monotone) and the decoding capacity over the texts
(memcap.analysis.metrics.capacity_from_samples: the minimum, with fewer than 100 texts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import fields

import torch

from memcap.analysis.metrics import capacity_from_samples
from memcap.core.engine import PRESETS, OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.search import is_lossless
from memcap.corpora import lee_articles
from memcap.io import read_jsonl
from memcap.records import lossless


def parse_config(text: str) -> dict:
    """`paper` -> {}; `fast` -> {"preset": "fast"}; `lr=0.1,schedule=cosine` -> {"lr": 0.1, ...}."""
    if text in PRESETS:
        return {} if text == "paper" else {"preset": text}
    keys = {f.name for f in fields(OptimConfig)}
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise ValueError(
                f"bad configuration item {item!r}: use key=value with key in "
                f"{', '.join(sorted(keys))}, or one of {', '.join(PRESETS)}"
            )
        if key in ("schedule", "preset", "parametrisation", "basis"):
            values[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"bad configuration item {item!r}: {value!r} is not a number") from None
        whole = {f.name for f in fields(OptimConfig) if str(f.type).startswith("int")}  # "int | None" too
        values[key] = int(number) if key in whole else number
    return values


def warm_starts(folder: str, model: str, sample_ids: list[str]) -> list[dict[int, torch.Tensor]]:
    """Per text: {L: the reference's vectors at L} for every L at which that text was lossless."""
    from safetensors.torch import load_file

    out = [dict() for _ in sample_ids]
    where = {str(s): i for i, s in enumerate(sample_ids)}
    files = {}  # one read per vectors file: a file holds a whole batch's vectors
    for r in read_jsonl(f"{folder}/lee.jsonl"):
        i = where.get(str(r["sample_id"]))
        if i is None or r["model"] != model or r["K"] != 1 or r.get("short"):
            continue
        if lossless(r["status"], r["correct"], r["max_correct"], r["scored"], r["protocol"]):
            if r["vectors"] not in files:
                files[r["vectors"]] = load_file(f"{folder}/{r['vectors']}")
            out[i][r["L"]] = files[r["vectors"]][r["vectors_key"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name or id (default %(default)s)")
    parser.add_argument("--texts", type=int, default=4, help="number of texts (default %(default)s)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 16], help="lengths L (default %(default)s)")
    parser.add_argument(
        "--texts-file",
        help="texts JSONL to take them from, e.g. benchmarks/reference/texts.jsonl "
        "(default: Lee articles with at least the longest length in tokens)",
    )
    parser.add_argument("--vectors", type=int, default=1, help="K (default %(default)s)")
    parser.add_argument("--max-steps", type=int, default=300, help="budget per pair (default %(default)s)")
    parser.add_argument("--patience", type=int, help="patience (default: the budget, so no pair stops early)")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["paper", "lr=0.03", "lr=0.1", "lr=0.1,beta2=0.99"],
        help="configurations to compare (default %(default)s)",
    )
    parser.add_argument(
        "--warm-from",
        metavar="FOLDER",
        help="warm-start every pair from the lossless vectors "
        "in FOLDER's lee.jsonl (and its texts.jsonl unless --texts-file): the paper-budget "
        "reference, benchmarks/reference, or a search run's records folder, e.g. "
        "results/demo/compress/smollm2-135m",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    args = parser.parse_args()
    try:
        configs = [(name, parse_config(name)) for name in args.configs]
    except ValueError as err:
        parser.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = resolve_model(args.model, load_registry("config/models.yaml"))
    lm = load_model(spec, args.device)
    lengths = sorted(set(args.lengths))
    if args.warm_from and not args.texts_file:
        args.texts_file = f"{args.warm_from}/texts.jsonl"
    sources = [r["text"] for r in read_jsonl(args.texts_file)] if args.texts_file else lee_articles()
    texts = [ids for ids in map(lm.tokenize, sources) if len(ids) >= lengths[-1]][: args.texts]
    pairs = [(i, L) for L in lengths for i in range(len(texts))]
    init = None
    if args.warm_from:
        starts = warm_starts(args.warm_from, spec.name, [r["id"] for r in read_jsonl(args.texts_file)][: len(texts)])
        pairs = [(i, L) for i, L in pairs if any(s < L for s in starts[i])]
        origins = [max(s for s in starts[i] if s < L) for i, L in pairs]  # longest shorter lossless L
        init = [starts[i][o] for (i, _), o in zip(pairs, origins, strict=True)]
        print(
            "warm starts (text: from L -> to L): "
            + ", ".join(f"{i}: {o}->{L}" for (i, L), o in zip(pairs, origins, strict=True))
        )
    seeds = [1000 * i + L for i, L in pairs]
    name = torch.cuda.get_device_name() if lm.device.type == "cuda" else "cpu"
    print(
        f"model {spec.name} ({lm.params / 1e6:.0f}M params), {len(texts)} texts x lengths {lengths}, "
        f"K={args.vectors}, budget {args.max_steps} steps, paper protocol, device {name}, "
        f"torch threads {torch.get_num_threads()}"
    )

    header = (
        f"{'configuration':34s} {'L':>5s} {'lossless':>9s} {'median steps':>13s} {'mean steps':>11s} "
        f"{'greedy exact':>13s}"
    )
    rows, totals = [], []
    for label, overrides in configs:
        optim = OptimConfig.from_dict(
            {"max_steps": args.max_steps, "patience": args.patience or args.max_steps, **overrides}
        )
        t0 = time.perf_counter()
        outcomes = compress_batch(lm, [texts[i][:L] for i, L in pairs], args.vectors, "paper", seeds, optim, init=init)
        wall = time.perf_counter() - t0
        for L in lengths:
            done = [o for (_, length), o in zip(pairs, outcomes, strict=True) if length == L]
            ok = [o for o in done if is_lossless(o, "paper")]
            steps = [o.steps for o in ok]
            median = f"{statistics.median(steps):.0f}" if ok else "-"
            mean = f"{statistics.mean(steps):.1f}" if ok else "-"
            exact = f"{sum(o.greedy_exact for o in ok)}/{len(ok)}" if ok else "-"
            rows.append(f"{label:34s} {L:5d} {len(ok):4d}/{len(done):<4d} {median:>13s} {mean:>11s} {exact:>13s}")
        caps = [
            max([0] + [L for (j, L), o in zip(pairs, outcomes, strict=True) if j == i and is_lossless(o, "paper")])
            for i in range(len(texts))
        ]
        capacity = capacity_from_samples(caps)
        totals.append(
            f"{label:34s} {sum(o.steps for o in outcomes):8d} {wall:9.1f}  "
            f"{'none' if capacity != capacity else int(capacity):>8}  {caps}"
        )
        print("\n".join([*rows[-len(lengths) :], totals[-1]]), file=sys.stderr, flush=True)  # as it goes
    print(header)
    print("\n".join(rows))
    print(
        f"{'configuration':34s} {'steps':>8s} {'wall s':>9s}  {'capacity':>8s}  per text "
        "(all pairs, failures at full budget)"
    )
    print("\n".join(totals))


if __name__ == "__main__":
    main()
