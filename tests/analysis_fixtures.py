"""Synthetic per-sample records (docs/records.md) for the analysis tests.

``make_record`` builds one record with hand-chosen numbers; ``write_records`` lays
records out as ``<root>/compress/<model>/<dataset>.jsonl`` like the workflow does;
``synthetic_run`` writes a small run with several models, datasets lee + random,
K in {1, 2, 4}, both protocols' fields and some failed ("nan") samples;
``search_records`` builds the attempts of a capacity search (mode "search") whose
per-sample capacities are chosen by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

MODELS = {
    # name: (model_id, params, d, vocab)
    "pythia-160m": ("EleutherAI/pythia-160m", 162_322_944, 768, 50304),
    "llama-3.2-1b": ("meta-llama/Llama-3.2-1B", 1_235_814_400, 2048, 128256),
    "tiny_model.v2": ("random:gpt_neox", 1_000_000, 64, 1000),
}


def make_record(
    model="pythia-160m",
    dataset="lee",
    L=64,
    sample_id="lee-0000",
    *,
    K=1,
    protocol="paper",
    scored=None,
    baseline_loss_sum=200.0,
    baseline_correct=20,
    min_loss_sum=10.0,
    max_correct=None,
    loss_sum=None,
    correct=None,
    status="ok",
    greedy_exact=None,
    wall_s=1.0,
    batch_size=4,
    **extra,
) -> dict:
    """One record; max_correct defaults to all positions correct, strict fields to the paper's."""
    model_id, params, d, vocab = MODELS.get(model, (model, 1_000_000, 64, 1000))
    scored = scored if scored is not None else (L - 1 if protocol == "paper" else L)
    max_correct = scored if max_correct is None else max_correct
    correct = max_correct if correct is None else correct
    loss_sum = min_loss_sum if loss_sum is None else loss_sum
    record = {
        "model": model,
        "model_id": model_id,
        "model_source": "hf",
        "revision": None,
        "params": params,
        "mem_dim": d,
        "vocab_size": vocab,
        "dataset": dataset,
        "sample_id": sample_id,
        "text_sha": "0" * 40,
        "protocol": protocol,
        "K": K,
        "L": L,
        "N": L,
        "short": False,
        "scored": scored,
        "bos": False,
        "seed": 1234,
        "baseline_loss_sum": baseline_loss_sum,
        "baseline_correct": baseline_correct,
        "loss_sum": loss_sum,
        "correct": correct,
        "accuracy": correct / scored,
        "min_loss_sum": min_loss_sum,
        "max_correct": max_correct,
        "max_accuracy": max_correct / scored,
        "steps": 100,
        "converged": max_correct == scored,
        "stop_reason": "converged" if max_correct == scored else "patience",
        "status": status,
        "greedy_exact": (correct == scored) if greedy_exact is None else greedy_exact,
        "greedy_prefix": correct,
        "wall_s": wall_s,
        "batch_size": batch_size,
        "device": "cpu",
        "dtype": "float32",
        "autocast": "none",
        "optim": {
            "lr": 0.01,
            "betas": [0.9, 0.9],
            "weight_decay": 0.01,
            "eps": 1e-8,
            "max_steps": 5000,
            "patience": 2000,
        },
        "versions": {
            "memcap": "0.1.0",
            "torch": "2.5.1",
            "transformers": "5.24.0",
            "tokenizers": "0.23.3",
            "python": "3.12.3",
        },
        # one part (batch) per (K, L), as the job stores a batch of natural text
        "vectors": f"{dataset}.parts/K{K}_L{L}.safetensors",
        "vectors_key": f"K{K}_L{L}_{sample_id}",
    }
    if status != "ok":  # failed samples carry no usable numbers
        for key in ("loss_sum", "correct", "accuracy", "min_loss_sum", "max_correct", "max_accuracy"):
            record[key] = None
        record["stop_reason"] = status
    record.update(extra)
    return record


def write_records(root: Path, records: list[dict]) -> list[Path]:
    """Write records to <root>/compress/<model>/<dataset>.jsonl; return the files."""
    files: dict[Path, list[str]] = {}
    for record in records:
        path = Path(root) / "compress" / record["model"] / f"{record['dataset']}.jsonl"
        files.setdefault(path, []).append(json.dumps(record))
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted(files)


def _natural_sample(model, dataset, L, i, K, capacity, rng):
    scored = L - 1
    base_ce = 3.5 * scored * rng.uniform(0.9, 1.1)
    base_correct = int(0.4 * scored)
    if L <= capacity:  # lossless sample
        max_correct, min_ce = scored, 0.02 * scored
    else:  # saturated: gain about `capacity` tokens
        max_correct = min(scored - 2, base_correct + int(capacity * rng.uniform(0.8, 1.0)))
        min_ce = base_ce - 5.0 * capacity * rng.uniform(0.8, 1.2)
    return make_record(
        model,
        dataset,
        L,
        f"{dataset}-{i:04d}",
        K=K,
        baseline_loss_sum=round(base_ce, 3),
        baseline_correct=base_correct,
        min_loss_sum=round(min_ce, 3),
        max_correct=max_correct,
    )


def synthetic_run(
    root: Path,
    *,
    models=("pythia-160m", "llama-3.2-1b", "tiny_model.v2"),
    datasets=("lee", "random"),
    samples=4,
    seed=0,
) -> list[Path]:
    """A small run: capacity 80 (pythia), 128 (llama), 16 (tiny) tokens on lee at K=1,
    scaled by K for pythia's K in {2, 4}; random text with one sample per sampled L;
    one failed sample per (model, lee). Returns the records files."""
    rng = np.random.default_rng(seed)
    capacity = {"pythia-160m": 80, "llama-3.2-1b": 128, "tiny_model.v2": 16}
    records = []
    for model in models:
        cap = capacity.get(model, 32)
        if "lee" in datasets:
            for L in (32, 64, 80, 96, 128, 160):
                for i in range(samples):
                    records.append(_natural_sample(model, "lee", L, i, 1, cap, rng))
            records.append(make_record(model, "lee", 64, "lee-0099", status="nan"))
            if model == "pythia-160m":
                for K in (2, 4):
                    for L in (64, 128, 256, 512):
                        for i in range(samples):
                            records.append(_natural_sample(model, "lee", L, i, K, cap * K, rng))
        if "random" in datasets:
            for i, L in enumerate(rng.integers(8, 2 * cap, size=12)):
                rec = _natural_sample(model, "random", int(L), i, 1, int(cap * 0.8), rng)
                rec["sample_id"] = f"random-{i:04d}"
                records.append(rec)
    return write_records(root, records)


def search_records(
    capacities: dict[str, int],
    grid=(32, 64, 96, 128),
    *,
    model="pythia-160m",
    dataset="lee",
    K=1,
    protocol="paper",
    steps=100,
    fail_correct=0.5,
    batch=None,
    **extra,
) -> list[dict]:
    """The records a capacity search (memcap.core.search, grid mode) writes for these samples.

    capacities: {sample_id: capacity}, each 0 or a grid length. Every sample is attempted
    at each grid length up to its capacity (lossless: all positions correct), then at the
    next grid length (failing: `fail_correct` of the scored positions correct), warm-started
    from its last lossless length; the last attempt carries `capacity`. Each attempt takes
    `steps` steps. Records of one round (the i-th attempt of every sample) share a part file
    (`vectors`), as the job's batches do; `batch` overrides batch_size.
    """
    records = []
    for sample_id, cap in capacities.items():
        assert cap == 0 or cap in grid, (sample_id, cap)
        lengths = [L for L in grid if L <= cap]
        lengths += [L for L in grid if L > cap][:1]  # the failing attempt, if any
        warm = None
        for i, L in enumerate(lengths):
            scored = L - 1 if protocol == "paper" else L
            lossless = L <= cap
            correct = scored if lossless else int(scored * fail_correct)
            rec = make_record(
                model,
                dataset,
                L,
                sample_id,
                K=K,
                protocol=protocol,
                scored=scored,
                baseline_correct=scored // 4,
                baseline_loss_sum=3.0 * scored,
                min_loss_sum=0.05 * scored if lossless else 1.5 * scored,
                max_correct=correct,
                batch_size=batch or len(capacities),
                mode="search",
                warm_start=warm,
                capacity=cap if i == len(lengths) - 1 else None,
                steps=steps,
                vectors=f"{dataset}.parts/search_K{K}_round{i}.safetensors",
                vectors_key=f"K{K}_L{L}_{sample_id}",
                **extra,
            )
            records.append(rec)
            warm = L if lossless else warm
    return records


# a test that builds or reads a PDF report
needs_latex = pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
    reason="needs latexmk (TeX Live) and pdftotext (poppler-utils)",
)
