"""Peak memory of one optimiser step: the whole logits tensor against chunked cross-entropy.

    python benchmarks/memory.py --layers 2 --threads 1        # CPU: the Llama-3.2-1B shape, 2 of its 16 layers
    python benchmarks/memory.py --device cuda --budget-gib 140 # all 16 layers on one H200

One step as memcap.core.engine.compress_batch takes it (forward, loss over the vocabulary, backward to the
[mem] vectors; K = 1, paper protocol) on a random-weight model (default shape-llama-3.2-1b,
vocabulary 128,256) at --length tokens (default 1024), for batch 1 and 2, three ways:
(a) the authors' step (their loop in benchmarks/common.py: all hidden states returned, the
float32 logits of every position, then the cross-entropy); (b) memcap with the whole logits
tensor (lm.logits_mib = inf: memcap before chunking); (c) memcap as it runs now (the head on
chunks of at most memcap.core.models.LOGITS_MIB MiB of logits, each recomputed in the backward).

Memory is measured: torch's allocator peak on CUDA, the process's peak resident set (VmHWM,
reset before each step) on the CPU; each figure is the step's own, above what was held before
it (the weights). On the CPU the script reruns itself with a fixed malloc mmap threshold
(MALLOC_MMAP_THRESHOLD_=65536), so freed tensors leave the resident set instead of staying in
glibc's heap and hiding the next step's peak. The largest batch that fits --budget-gib is extrapolated from the two
measured batches: weights + B x (step memory of batch 2 - batch 1) + the rest of batch 1.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from common import held_mib, peak_mib, reset_peak, shape_spec
from memcap.core.engine import OptimConfig, score
from memcap.core.models import LOGITS_MIB, load_model


def authors_step(lm, ids: torch.Tensor, mem: torch.Tensor) -> None:
    """benchmarks/common.authors_compress's step, for a batch."""
    embed = lm.model.get_input_embeddings()
    ctx = torch.autocast(lm.device.type, dtype=lm.autocast_dtype) if lm.autocast_dtype else nullcontext()
    with ctx:
        out = lm.model(inputs_embeds=torch.cat([mem, embed(ids)], 1), output_hidden_states=True)
    logits = out.logits[:, 1:-1].float()
    loss = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:])
    (logits.argmax(-1) == ids[:, 1:]).float().mean().item()
    loss.backward()


def memcap_step(lm, ids: torch.Tensor, mem: torch.Tensor) -> None:
    """One step of memcap.core.engine.compress_batch: score() with the training objective, then backward."""
    lengths = torch.full((ids.shape[0],), ids.shape[1], device=ids.device)
    with torch.no_grad():
        token_embeds = lm.embeddings(ids)
    _, correct, objective, _ = score(lm, mem, token_embeds, ids, lengths, 1, OptimConfig())
    (objective / (lengths - 1)).sum().backward()
    correct.tolist()


def measure(lm, step, batch: int, length: int, logits_mib: float) -> tuple[float, float]:
    """(peak MiB above what was held before, seconds) of one step on `batch` random texts."""
    device = lm.device
    gen = torch.Generator().manual_seed(batch)
    ids = torch.randint(0, lm.model.config.vocab_size, (batch, length), generator=gen).to(device)
    mem = torch.nn.Parameter(torch.randn(batch, 1, lm.mem_dim, generator=gen).to(device) * lm.embedding_std())
    lm.logits_mib = logits_mib
    reset_peak(device)
    before = held_mib(device)
    t0 = time.perf_counter()
    step(lm, ids, mem)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = peak_mib(device) - before
    del ids, mem
    gc.collect()
    return peak, seconds


def main() -> None:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # see the module docstring
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shape-llama-3.2-1b", help="registry name (default %(default)s)")
    parser.add_argument("--layers", type=int, help="build the shape with this many layers (default: all)")
    parser.add_argument("--length", type=int, default=1024, help="tokens per text (default %(default)s)")
    parser.add_argument(
        "--budget-gib", type=float, default=80.0, help="memory budget for the largest batch (default %(default)s GiB)"
    )
    parser.add_argument(
        "--logits-mib",
        type=float,
        default=LOGITS_MIB,
        help="chunk budget of (c), MiB of float32 logits (default: memcap's, %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec, full_layers = shape_spec(args.model, args.layers)
    lm = load_model(spec, args.device)
    lm.model.requires_grad_(False)
    device = lm.device
    weights = held_mib(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    layers = f"{spec.num_layers} of its {full_layers} layers" if spec.num_layers != full_layers else "all layers"
    print(
        f"model {args.model} ({layers}; {lm.params / 1e6:.0f}M params, vocabulary {lm.model.config.vocab_size}), "
        f"{args.length} tokens, K=1, device {name}, torch threads {torch.get_num_threads()}"
        f"{', autocast ' + str(lm.autocast_dtype).replace('torch.', '') if lm.autocast_dtype else ''}"
    )
    print(
        f"memory held before a step (weights, {'allocator' if device.type == 'cuda' else 'RSS'}): {weights:.0f} MiB; "
        f"logits of one text: {lm.position_logits_mib * args.length:.0f} MiB (float32)"
    )

    ways = [
        ("authors' step (whole logits, hidden states)", authors_step, math.inf),
        ("memcap, whole logits (before)", memcap_step, math.inf),
        (f"memcap, chunked CE ({args.logits_mib:g} MiB chunks)", memcap_step, args.logits_mib),
    ]
    measure(lm, memcap_step, 1, 16, args.logits_mib)  # warm-up: kernels, allocator pools
    budget = args.budget_gib * 1024
    print(f"{'procedure':44s} {'peak MiB B=1':>12s} {'B=2':>8s} {'s/step B=1':>10s} {'largest B in':>13s}")
    rows = []
    for label, step, mib in ways:
        peak1, seconds = measure(lm, step, 1, args.length, mib)
        peak2, _ = measure(lm, step, 2, args.length, mib)
        per_text = peak2 - peak1
        # a second text that adds under 1 MiB is measurement noise: no extrapolation from it
        largest = max(0, math.floor((budget - weights - (peak1 - per_text)) / per_text)) if per_text >= 1 else None
        rows.append((label, peak1, largest))
        shown = f"{largest:9d}" if largest is not None else f"{'-':>9s}"
        print(f"{label:44s} {peak1:12.0f} {peak2:8.0f} {seconds:10.2f} {shown} ({args.budget_gib:g} GiB)")
    authors, before, after = rows
    print(
        f"peak step memory chunked / whole logits: {after[1] / before[1]:.2f}x; "
        f"chunked / authors: {after[1] / authors[1]:.2f}x"
    )
    gain = (
        f" ({after[2] / max(before[2], 1):.1f}x whole logits)" if after[2] is not None and before[2] is not None else ""
    )
    show = lambda n: "- (under 1 MiB per text)" if n is None else n  # noqa: E731
    print(
        f"largest batch in {args.budget_gib:g} GiB (extrapolated from B=1 and B=2): authors {show(authors[2])}, "
        f"whole logits {show(before[2])}, chunked {show(after[2])}{gain}"
    )


if __name__ == "__main__":
    main()
