"""Shared pieces of the benchmarks: peak memory, the authors' per-text loop, a prior init, and
saved searches' lines of attempts.

    from common import authors_compress, lines_of, peak_mib, prior_vectors, reset_peak
    best_accuracy, steps = authors_compress(model_dir, ids, OptimConfig(max_steps=300), device, None, seed=0)

The authors' loop as they ran it (docs/method.md sections 1.5 and 6, item 7): batch 1, the model
loaded from disk twice per text (baseline, then optimisation), all hidden states returned,
a host sync every step, paper protocol, stop when the best accuracy reaches 1.0 or after
`patience` steps without a new best, or at `max_steps`.
"""

from __future__ import annotations

import dataclasses
import gc
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from memcap.core.engine import OptimConfig
from memcap.core.models import load_registry, resolve_model
from memcap.core.prior import mean_prior
from memcap.io import read_jsonl
from memcap.stages.prior import progress_vectors


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (Linux) in MiB; NaN elsewhere."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(device: torch.device) -> float:
    """Peak memory since reset_peak: allocator peak on CUDA, peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mib("VmHWM")


def held_mib(device: torch.device) -> float:
    """Memory held now: allocated tensors on CUDA, the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated() / 2**20
    return _status_mib("VmRSS")


def shape_spec(name: str, layers: int | None):
    """The registry's spec of `name`, cut to `layers` layers if given; and its full layer count."""
    spec = resolve_model(name, load_registry("config/models.yaml"))
    full_layers = spec.num_layers
    if layers:
        spec = dataclasses.replace(spec, num_layers=layers)
    return spec, full_layers


def save_plain(model, folder) -> None:
    """save_pretrained, also for a GGUF-loaded model: its weights are already dequantized in
    memory, so they are written as a plain checkpoint the authors' loop can reload."""
    quantizer = getattr(model, "hf_quantizer", None)
    quant_config = getattr(model.config, "quantization_config", None)
    if quantizer is None:
        return model.save_pretrained(folder)
    model.hf_quantizer = None
    if quant_config is not None:
        del model.config.quantization_config
    try:
        model.save_pretrained(folder)
    finally:
        model.hf_quantizer = quantizer
        if quant_config is not None:
            model.config.quantization_config = quant_config


def authors_compress(
    model_dir: Path, ids: list[int], optim: OptimConfig, device, autocast, seed: int = 0
) -> tuple[float, int]:
    """One text the authors' way: (best teacher-forced accuracy, optimiser steps taken)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per reload would drown the figures
    for _ in range(2):  # once for the baseline, once for the optimisation, as they did
        model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    model.requires_grad_(False)
    embed = model.get_input_embeddings()
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(1, 1, embed.weight.shape[1], generator=gen) * embed.weight.std().item()
    mem = torch.nn.Parameter(start.to(device))
    opt = torch.optim.AdamW(
        [mem], lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps, weight_decay=optim.weight_decay
    )
    x = torch.tensor([ids], device=device)
    ctx = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
    best, since, steps = -1.0, 0, 0
    while True:
        with ctx:
            out = model(inputs_embeds=torch.cat([mem, embed(x)], 1), output_hidden_states=True)
        logits = out.logits[:, 1:-1].float()
        loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
        accuracy = (logits.argmax(-1) == x[:, 1:]).float().mean().item()  # the per-step sync
        if accuracy > best:
            best, since = accuracy, 0
        else:
            since += 1
        if best == 1.0 or since >= optim.patience or steps >= optim.max_steps:
            break
        loss.backward()
        opt.step()
        opt.zero_grad()
        steps += 1
    del model, opt, mem
    gc.collect()
    return best, steps


def prior_vectors(progress_files: list[Path], L: int, texts: list[dict]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The mean of the lossless L-token vectors in saved search runs (fast.py progress files),
    that mean rescaled to their mean norm, and how many were averaged. Refuses runs on `texts`."""
    ids = {row["id"] for row in texts}
    vectors = []
    for path in progress_files:
        folder_texts = read_jsonl(path.parent / "texts.jsonl")
        shared = sorted(ids & {row["id"] for row in folder_texts})
        if shared:
            names = ", ".join(shared)
            raise SystemExit(f"{path} is a run on {names}, which this run measures: a prior comes from other texts")
        vectors += progress_vectors(path, L)[1]
    if not vectors:
        raise SystemExit(f"no lossless L={L} vectors in {', '.join(map(str, progress_files))}")
    mean = mean_prior(vectors)  # what `memcap prior` writes from the same files
    norm = torch.stack(vectors).norm(dim=-1).mean()
    return mean, mean * (norm / mean.norm(dim=-1)), len(vectors)


def rows_by_text(rows: list[dict]) -> dict[int, list[dict]]:
    """A search's progress rows (or any rows with an "index") per text index, each text's in the
    order made."""
    by_text: dict[int, list[dict]] = {}
    for row in rows:
        by_text.setdefault(row["index"], []).append(row)
    return by_text


def lines_of(folder: Path, name: str) -> list[tuple[dict, list[dict]]]:
    """A saved search's lines, in the order made: per text (its texts.jsonl row) each attempt
    with its continuations (`extension` 1, 2, ...), from <folder>/<name>.json.progress.jsonl."""
    rows = read_jsonl(folder / "texts.jsonl")
    lines = []
    for i, attempts in sorted(rows_by_text(read_jsonl(folder / f"{name}.json.progress.jsonl")[1:]).items()):
        for a in attempts:
            if a["extension"] > 0 and lines and lines[-1][0] is rows[i]:
                lines[-1][1].append(a)
            else:
                lines.append((rows[i], [a]))
    return lines
