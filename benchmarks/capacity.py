"""Time to answer: measure decoding capacity the authors' way and by memcap's capacity search.

    python benchmarks/capacity.py --threads 1    # about 30 minutes on one shared CPU core
    python benchmarks/capacity.py --lengths 4 8 12 16 --texts 2 --max-steps 100   # a short grid
    python benchmarks/capacity.py --texts 10 --lengths 64 80 96 128 160 192 256 384 512 \
        --max-steps 5000 --patience 2000 --model pythia-160m --device cuda      # the paper's own

Both sides run in this process on the same model, texts (Lee news articles from gensim's
wheel, at least as long as the longest grid length), grid, optimiser and stopping rule:
(a) the authors' way: every grid length of every text run separately from a fresh random
init, batch 1, the model reloaded from disk twice per run (benchmarks/common.py); (b) ours:
memcap.core.search.search_capacity (each text goes up the grid warm-started from its last
lossless vectors until a length fails, a stuck warm start retried once from a fresh init,
all texts batched), timed with its one model load.

The defaults are the demo's (config/demo.yaml: SmolLM2-135M, lr 0.01, at most 300 steps,
patience 150) and a grid shaped like the paper's: the paper ran Pythia-160M (capacity 80)
on 64, 80, 96, 128, 160, 192, 256, 384 and 512 tokens, since a capacity is not known before
it is measured and the saturated lengths give the token gain; the default grid is that one
divided by ten, for a model that decodes about 8 tokens on this budget.

Prints both wall times and total optimiser steps, their ratios (targets: >= 3x faster, <= 0.3x
the steps), each text's capacity both ways (the largest lossless grid length, lossless = best
accuracy >= 0.99 as in memcap.records; target: within one grid step) and the decoding capacity
over all texts: (a) the paper's rule (largest L with mean best accuracy >= 0.99), (b) its
per-sample form (memcap.analysis.metrics.capacity_from_samples).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import torch

from common import authors_compress, save_plain
from memcap.analysis.metrics import capacity_from_samples
from memcap.core.engine import OptimConfig
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.search import search_capacity
from memcap.corpora import lee_articles
from memcap.records import accuracy_is_lossless


def main() -> None:
    defaults = OptimConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name or id (default %(default)s)")
    parser.add_argument("--texts", type=int, default=3, help="number of texts (default %(default)s)")
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[6, 8, 10, 13, 16, 19, 26, 38, 51],
        help="length grid in tokens (default: the paper's Pythia-160M grid / 10)",
    )
    parser.add_argument(
        "--vectors",
        type=int,
        default=1,
        help="K, number of [mem] vectors (default %(default)s); the authors' side supports K=1 only",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="AdamW lr (default: the paper's %(default)s)")
    parser.add_argument(
        "--max-steps", type=int, default=300, help="most steps per run (default: the demo's %(default)s)"
    )
    parser.add_argument("--patience", type=int, default=150, help="default: the demo's %(default)s")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per batch on our side (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--skip-authors", action="store_true", help="run only our side")
    args = parser.parse_args()
    if args.vectors != 1 and not args.skip_authors:
        raise SystemExit("the authors' side runs K=1 only; use --vectors 1 or --skip-authors")
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = sorted(set(args.lengths))
    optim = OptimConfig(lr=args.lr, max_steps=args.max_steps, patience=args.patience)
    spec = resolve_model(args.model, load_registry("config/models.yaml"))

    t0 = time.perf_counter()
    lm = load_model(spec, args.device)
    device = lm.device
    texts = [ids for ids in (lm.tokenize(a) for a in lee_articles()) if len(ids) >= grid[-1]][: args.texts]
    if len(texts) < args.texts:
        raise SystemExit(f"only {len(texts)} Lee articles have {grid[-1]} tokens")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"model {spec.name} ({lm.params / 1e6:.0f}M params), {len(texts)} texts, K={args.vectors}, "
        f"grid {grid}, lr {optim.lr}, max_steps {optim.max_steps}, patience {optim.patience}, "
        f"device {name}, torch threads {torch.get_num_threads()}"
    )

    # (b) ours: one load (timed), all texts searched together
    seeds = list(range(len(texts)))
    results = search_capacity(
        lm, texts, args.vectors, "paper", seeds, optim, lengths_grid=grid, batch_size=args.batch_size
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - t0
    ours_steps = sum(r.steps for r in results)
    for r in results:
        tried = " ".join(f"{a.L}{'+' if a.lossless else '-'}({a.steps})" for a in r.attempts)
        print(f"  search text {r.index}: capacity {r.capacity}; attempts L+/-(steps): {tried}")

    if args.skip_authors:
        print(
            f"memcap search: {ours_s:.1f} s, {ours_steps} optimiser steps, capacities {[r.capacity for r in results]}"
        )
        return
    # (a) the authors' way: every (text, L) from scratch, reloading the saved model
    with tempfile.TemporaryDirectory() as tmp:
        save_plain(lm.model, tmp)
        autocast = lm.autocast_dtype
        del lm
        gc.collect()
        t0 = time.perf_counter()
        best = {}  # (text, L) -> best accuracy
        authors_steps = 0
        for i, ids in enumerate(texts):
            for L in grid:
                best[i, L], steps = authors_compress(Path(tmp), ids[:L], optim, device, autocast, seed=i)
                authors_steps += steps
            print(f"  authors text {i}: best accuracy by L: " + " ".join(f"{L}:{best[i, L]:.2f}" for L in grid))
        if device.type == "cuda":
            torch.cuda.synchronize()
        authors_s = time.perf_counter() - t0

    lossless = {key: accuracy_is_lossless(acc) for key, acc in best.items()}
    authors_caps = [max([0] + [L for L in grid if lossless[i, L]]) for i in range(len(texts))]
    ours_caps = [r.capacity for r in results]
    position = {L: j for j, L in enumerate([0, *grid])}
    within = [abs(position[a] - position[b]) <= 1 for a, b in zip(authors_caps, ours_caps, strict=True)]
    passing = [L for L in grid if accuracy_is_lossless(sum(best[i, L] for i in range(len(texts))) / len(texts))]

    print(f"{'procedure':34s} {'wall s':>9s} {'steps':>8s}  capacities per text")
    print(f"{'authors (per length, batch 1)':34s} {authors_s:9.1f} {authors_steps:8d}  {authors_caps}")
    print(f"{'memcap search (warm, batched)':34s} {ours_s:9.1f} {ours_steps:8d}  {ours_caps}")
    print(f"wall-time speed-up authors / memcap: {authors_s / ours_s:.2f}x (target >= 3x)")
    print(f"steps ratio memcap / authors: {ours_steps / max(authors_steps, 1):.2f} (target <= 0.3)")
    print(f"capacities within one grid step: {sum(within)}/{len(within)} texts")
    ours_capacity = capacity_from_samples(ours_caps)
    print(
        f"decoding capacity over the texts: (a) paper's rule (largest L with mean accuracy >= 0.99) "
        f"{max(passing) if passing else 'none'}; (b) per-sample rule (capacity_from_samples) "
        f"{'none' if ours_capacity != ours_capacity else int(ours_capacity)}"
    )


if __name__ == "__main__":
    main()
