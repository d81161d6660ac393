"""Optimiser-step throughput: the authors' procedure against memcap's engine, side by side.

    python benchmarks/steps.py --model shape-pythia-160m --length 64 --texts 4 --steps 20
    python benchmarks/steps.py --model smollm2-135m --length 64 --texts 4 --steps 20
    python benchmarks/steps.py --model shape-llama-3.2-1b --length 80 --texts 50 --steps 20 --device cuda
    python benchmarks/steps.py --model shape-pythia-160m --length 80 --texts 50 --steps 20 --device cuda \
        --skip-authors --profile 10       # ... and where memcap's step spends its time

Both sides run in this process on the same model weights, texts, length and number of steps:
(a) the authors' procedure as they ran it: batch 1, the model loaded from disk twice per text,
all hidden states returned, a host sync per step; (b) memcap.core.engine.compress_batch: the model loaded
once, all texts in one batch. Texts are Lee news articles (gensim's wheel) and the step count
is fixed (convergence is made unreachable by a patience and accuracy check that cannot fire
early at these lengths on the tiny budget), so the work is the same on both sides.

Prints text-steps per second for each and their ratio, peak memory of each side, and on CUDA
also tokens per second and the fraction of peak bf16 FLOPs (one step of a frozen model costs
about 4 x params x tokens FLOPs: forward plus input gradients, no weight gradients).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from common import peak_mib, reset_peak, save_plain
from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.corpora import lee_articles

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def authors_procedure(model_dir: Path, texts: list[list[int]], steps: int, device, autocast) -> None:
    """Batch 1, model reloaded (twice) per text, hidden states returned, a sync every step."""
    from transformers import AutoModelForCausalLM

    for ids in texts:
        for _ in range(2):  # once for the baseline, once for the optimisation, as they did
            model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
        model.requires_grad_(False)
        embed = model.get_input_embeddings()
        mem = torch.nn.Parameter(torch.randn(1, 1, embed.weight.shape[1], device=device) * embed.weight.std())
        opt = torch.optim.AdamW([mem], lr=1e-2, betas=(0.9, 0.9), weight_decay=0.01)
        x = torch.tensor([ids], device=device)
        ctx = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
        for _ in range(steps):
            with ctx:
                out = model(inputs_embeds=torch.cat([mem, embed(x)], 1), output_hidden_states=True)
            logits = out.logits[:, 1:-1].float()
            loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad()
            (logits.argmax(-1) == x[:, 1:]).float().mean().item()
        del model, opt, mem
        gc.collect()


def profile(lm, texts: list[list[int]], steps: int) -> None:
    """memcap's batched steps under torch.profiler: the top operators by self time on the device
    (the CPU without one) over 2 x `steps` steps, and per step the wall time, operators, kernel
    launches and device-busy share. compress_batch also re-scores and greedy-decodes at its end:
    the per-step figures are the difference between a run of 2 x `steps` and one of `steps`,
    divided by `steps`, so that closing work drops out (wall times include the profiler's own
    overhead: read them against each other, not against the timed run)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = lm.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])

    def run(n: int):
        t0 = time.perf_counter()
        with torch_profile(activities=activities) as prof:
            compress_batch(lm, texts, 1, "paper", list(range(len(texts))), OptimConfig(max_steps=n, patience=n + 1))
            if cuda:
                torch.cuda.synchronize()
        events = prof.key_averages()
        counts = {
            "aten": sum(e.count for e in events if e.key.startswith("aten::")),
            "launches": sum(e.count for e in events if "LaunchKernel" in e.key),
            "busy": sum(e.self_device_time_total for e in events) / 1e6 if cuda else 0.0,
            "wall": time.perf_counter() - t0,
        }
        return events, counts

    _, one = run(steps)
    events, two = run(2 * steps)
    print(events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=12))
    per = {k: (two[k] - one[k]) / steps for k in one}
    line = f"profile, per step (2 x {steps} steps minus {steps}): {per['wall'] * 1e3:.1f} ms wall, "
    line += f"{per['aten']:.0f} aten operators"
    if cuda:
        line += f", {per['launches']:.0f} kernel launches, device busy {per['busy'] / max(per['wall'], 1e-9):.0%} of it"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shape-pythia-160m", help="registry name (default %(default)s)")
    parser.add_argument("--length", type=int, default=64, help="tokens per text (default %(default)s)")
    parser.add_argument("--texts", type=int, default=4, help="number of texts (default %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per text (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--skip-authors", action="store_true", help="time only memcap (e.g. for 8B shapes)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="memcap's steps through torch.compile "
        "(registry key `compile`); compilation happens in the untimed warm-up",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="STEPS",
        help="also run memcap's side for STEPS steps under torch.profiler and print where the time goes: "
        "the top operators, operators and kernel launches per step, and how busy the device was",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = resolve_model(args.model, load_registry("config/models.yaml"))
    if args.compile:
        spec = dataclasses.replace(spec, compile=True)
    lm = load_model(spec, args.device)
    device = lm.device
    params = lm.params
    articles = [a for a in lee_articles() if len(lm.tokenize(a)) >= args.length]
    texts = [lm.tokenize(a)[: args.length] for a in articles[: args.texts]]
    if len(texts) < args.texts:
        raise SystemExit(f"only {len(texts)} Lee articles have {args.length} tokens")
    work = args.texts * args.steps
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"model {spec.name} ({params / 1e6:.0f}M params), {args.texts} texts x {args.length} tokens, "
        f"{args.steps} steps, device {name}, torch threads {torch.get_num_threads()}"
        f"{', torch.compile' if spec.compile else ''}"
    )

    # (b) memcap: every text in one batch; a patience above the budget and texts far too long
    # to converge in it keep the work identical to (a)
    optim = OptimConfig(max_steps=args.steps, patience=args.steps + 1)
    compress_batch(lm, texts, 1, "paper", list(range(len(texts))), OptimConfig(max_steps=2))  # warm-up (compiles)
    reset_peak(device)
    t0 = time.perf_counter()
    outcomes = compress_batch(lm, texts, 1, "paper", list(range(len(texts))), optim)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ours = time.perf_counter() - t0
    ours_mem = peak_mib(device)
    assert all(o.steps == args.steps for o in outcomes), "a text converged early: use longer texts"

    rows = [(f"memcap (one load, batched{', compiled' if spec.compile else ''})", ours, ours_mem)]
    if args.profile:  # before the authors' side, which frees the loaded model
        profile(lm, texts, args.profile)
    if not args.skip_authors:
        with tempfile.TemporaryDirectory() as tmp:
            save_plain(lm.model, tmp)
            autocast = lm.autocast_dtype
            model_dir = Path(tmp)
            del lm
            gc.collect()
            reset_peak(device)
            t0 = time.perf_counter()
            authors_procedure(model_dir, texts, args.steps, device, autocast)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rows.insert(0, ("authors' procedure (batch 1, reloads)", time.perf_counter() - t0, peak_mib(device)))

    print(f"{'procedure':40s} {'text-steps/s':>12s} {'peak MiB':>10s}")
    for label, seconds, mem in rows:
        print(f"{label:40s} {work / seconds:12.2f} {mem:10.0f}")
    if len(rows) == 2:
        print(f"speed-up memcap / authors: {rows[0][1] / rows[1][1]:.2f}x")
    if device.type == "cuda":
        tokens = work * (1 + args.length)  # K = 1 mem position + L text positions per text-step
        total_flops = 4 * params * tokens
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        print(f"memcap tokens/s: {tokens / ours:,.0f}")
        if peak:
            print(f"memcap fraction of peak bf16 ({peak:.0f} TFLOP/s): {total_flops / ours / (peak * 1e12):.1%}")


if __name__ == "__main__":
    main()
