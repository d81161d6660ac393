"""Optimiser study: steps to lossless under the paper's settings and alternatives, same texts.

    python benchmarks/optimizer.py --threads 1            # smollm2-135m, K=1, about 15 minutes on one core
    python benchmarks/optimizer.py --configs paper lr=0.03 lr=0.1 --lengths 8 16 --texts 4
    python benchmarks/optimizer.py --model shape-pythia-160m --device cuda --lengths 64 80 96 --texts 20 --max-steps 5000

Every configuration compresses the same (text, L) pairs (Lee news articles from gensim's
wheel, first L tokens) from the same seeds, all pairs in one batch, paper protocol, and
reports per L: how many pairs end lossless (best accuracy >= 0.99, memcap.metrics) and the
median and mean steps those took; then the total optimiser steps over all pairs (a pair that
never becomes lossless costs its whole budget, as it does in a capacity run). A setting is
worth adopting only if it needs fewer steps without fewer lossless pairs at any L.

A configuration is `paper` (PAPER.md section 1: AdamW lr 1e-2, betas (0.9, 0.9), weight decay
0.01, init randn * std(E)) or comma-separated overrides of it: any memcap.engine.OptimConfig
key (lr, beta1, beta2, weight_decay, eps) and `init_scale` (multiplies the init's std), e.g.
`lr=0.1,beta2=0.999` or `init_scale=0.1`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memcap.corpora import lee_articles
from memcap.engine import OptimConfig, compress, init_vectors
from memcap.models import load_model, load_registry, resolve_model
from memcap.search import is_lossless

STUDY_KEYS = ("lr", "beta1", "beta2", "weight_decay", "eps", "init_scale")


def parse_config(text: str) -> dict:
    """`paper` -> {}; `lr=0.1,init_scale=0.5` -> {"lr": 0.1, "init_scale": 0.5}."""
    if text == "paper":
        return {}
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in STUDY_KEYS:
            raise ValueError(
                f"bad configuration item {item!r}: use key=value with key in {', '.join(STUDY_KEYS)}, or 'paper'")
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"bad configuration item {item!r}: {value!r} is not a number") from None
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name or id (default %(default)s)")
    parser.add_argument("--texts", type=int, default=4, help="number of texts (default %(default)s)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 16], help="lengths L (default %(default)s)")
    parser.add_argument("--vectors", type=int, default=1, help="K (default %(default)s)")
    parser.add_argument("--max-steps", type=int, default=300, help="budget per pair (default %(default)s)")
    parser.add_argument("--configs", nargs="+", default=["paper", "lr=0.03", "lr=0.1", "lr=0.1,beta2=0.99"],
                        help="configurations to compare (default %(default)s)")
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
    texts = [ids for ids in (lm.tokenize(a) for a in lee_articles()) if len(ids) >= lengths[-1]][: args.texts]
    pairs = [(i, L) for L in lengths for i in range(len(texts))]
    seeds = [1000 * i + L for i, L in pairs]
    name = torch.cuda.get_device_name() if lm.device.type == "cuda" else "cpu"
    print(f"model {spec.name} ({lm.params / 1e6:.0f}M params), {len(texts)} texts x lengths {lengths}, "
          f"K={args.vectors}, budget {args.max_steps} steps, paper protocol, device {name}, "
          f"torch threads {torch.get_num_threads()}")

    header = f"{'configuration':28s} {'L':>5s} {'lossless':>9s} {'median steps':>13s} {'mean steps':>11s}"
    rows, totals = [], []
    for label, overrides in configs:
        scale = overrides.pop("init_scale", 1.0)
        optim = OptimConfig(**{**OptimConfig().as_dict(), "max_steps": args.max_steps,
                               "patience": args.max_steps, **overrides})
        std = lm.embedding_std() * scale
        init = [init_vectors(args.vectors, lm.mem_dim, std, seed) for seed in seeds]
        t0 = time.perf_counter()
        outcomes = compress(lm, [texts[i][:L] for i, L in pairs], args.vectors, "paper", seeds, optim, init=init)
        wall = time.perf_counter() - t0
        for L in lengths:
            done = [o for (_, l), o in zip(pairs, outcomes) if l == L]
            ok = [o.steps for o in done if is_lossless(o, "paper")]
            median = f"{statistics.median(ok):.0f}" if ok else "-"
            mean = f"{statistics.mean(ok):.1f}" if ok else "-"
            rows.append(f"{label:28s} {L:5d} {len(ok):4d}/{len(done):<4d} {median:>13s} {mean:>11s}")
        totals.append(f"{label:28s} {sum(o.steps for o in outcomes):8d} {wall:9.1f}")
    print(header)
    print("\n".join(rows))
    print(f"{'configuration':28s} {'steps':>8s} {'wall s':>9s}   (all pairs, failures at full budget)")
    print("\n".join(totals))


if __name__ == "__main__":
    main()
