"""Weights cast once (compress.cast_weights) against autocast casting them every forward.

    python benchmarks/cast.py --layers 2 --threads 1           # CPU autocast, the Llama-3.2-1B shape, 2 layers
    python benchmarks/cast.py --model shape-llama-3.1-8b --device cuda

Both sides run the same optimiser steps (memcap.core.engine.compress_batch; K = 1, paper protocol, a
fixed number of steps: patience above the budget, texts too long to converge in it) on the
same model, texts and seeds under the registry's bf16 autocast (on the CPU too, which jobs
never do): (a) as the authors and memcap by default run it, the float32 frozen weights cast to
bf16 by autocast on every forward; (b) the same model after memcap.core.models.cast_frozen_weights,
a bf16 copy of the linear layers' weights kept once. Prints both step times and their
ratio, the weights' memory, and how far the losses and vectors of (b) are from (a).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from common import shape_spec
from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import cast_frozen_weights, load_model
from memcap.corpora import lee_articles


def weights_mib(model: torch.nn.Module) -> float:
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() * p.element_size() for p in unique) / 2**20


def timed(lm, texts, optim) -> tuple[list, float]:
    seeds = list(range(len(texts)))
    compress_batch(lm, texts, 1, "paper", seeds, OptimConfig(max_steps=1))  # warm-up
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    outcomes = compress_batch(lm, texts, 1, "paper", seeds, optim)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return outcomes, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        default="shape-llama-3.2-1b",
        help="registry name (default %(default)s); bf16 autocast where the registry sets none",
    )
    parser.add_argument("--layers", type=int, help="build the shape with this many layers (default: all)")
    parser.add_argument("--length", type=int, default=64, help="tokens per text (default %(default)s)")
    parser.add_argument("--texts", type=int, default=2, help="texts in the batch (default %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec, full_layers = shape_spec(args.model, args.layers)
    if not spec.autocast:  # the Pythia shapes run float32 in the registry; bf16 autocast for this comparison
        spec = dataclasses.replace(spec, autocast="bfloat16")
    lm = load_model(spec, args.device, cpu_autocast=True)
    texts = [ids[: args.length] for ids in map(lm.tokenize, lee_articles()) if len(ids) >= args.length]
    texts = texts[: args.texts]
    if len(texts) < args.texts:
        raise SystemExit(f"only {len(texts)} Lee articles have {args.length} tokens")
    name = torch.cuda.get_device_name() if lm.device.type == "cuda" else "cpu"
    layers = f"{spec.num_layers} of its {full_layers} layers" if spec.num_layers != full_layers else "all layers"
    print(
        f"model {args.model} ({layers}; {lm.params / 1e6:.0f}M params), {args.texts} texts x {args.length} "
        f"tokens, {args.steps} steps, autocast {spec.autocast}, device {name}, "
        f"torch threads {torch.get_num_threads()}"
    )
    optim = OptimConfig(max_steps=args.steps, patience=args.steps + 1)

    every_mib = weights_mib(lm.model)
    every, every_s = timed(lm, texts, optim)
    cast = cast_frozen_weights(lm)
    once_mib = weights_mib(lm.model)
    once, once_s = timed(lm, texts, optim)
    assert all(o.steps == args.steps for o in every + once), "a text converged early: use longer texts"

    work = args.texts * args.steps
    print(f"{'procedure':44s} {'s/step':>8s} {'weights MiB':>12s}")
    print(f"{'cast every forward (autocast, as before)':44s} {every_s / args.steps:8.3f} {every_mib:12.0f}")
    print(f"{f'cast once ({cast} linear tensors in {spec.autocast})':44s} {once_s / args.steps:8.3f} {once_mib:12.0f}")
    print(
        f"step-time ratio cast once / every forward: {once_s / every_s:.2f}x ({work / once_s:.2f} against "
        f"{work / every_s:.2f} text-steps/s)"
    )
    rel = max(abs(a.loss_sum - b.loss_sum) / abs(a.loss_sum) for a, b in zip(every, once, strict=True))
    vec = max((a.vectors - b.vectors).abs().max().item() for a, b in zip(every, once, strict=True))
    same = all(a.correct == b.correct for a, b in zip(every, once, strict=True))
    print(
        f"after {args.steps} steps: largest relative loss difference {rel:.1e}, largest vector difference "
        f"{vec:.1e}, same correct counts: {same} (stated tolerance: 1e-6)"
    )


if __name__ == "__main__":
    main()
