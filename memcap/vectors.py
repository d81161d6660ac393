"""Vectors files: [mem] vectors in safetensors, with what decoding them needs as metadata.

    save_vectors("fox.safetensors", outcome.vectors, lm, "strict", ids, outcome)
    text = decode_file("fox.safetensors", lm)

Metadata (all strings, as safetensors requires): model, model_id, protocol, K, N, prompt
(the token ids decoding starts from: none under strict, t1 under paper, as JSON), text_sha,
accuracy, steps, the optimiser preset, memcap version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

import memcap
from memcap.engine import first_scored, greedy_decode
from memcap.store import atomic_write_bytes

KEY = "mem"


def save_vectors(path, vectors: torch.Tensor, lm, protocol: str, ids: list[int], outcome,
                 preset: str = "paper") -> None:
    from safetensors.torch import save

    first = first_scored(protocol)
    meta = {
        "model": lm.spec.name,
        "model_id": lm.spec.model_id,
        "protocol": protocol,
        "K": str(vectors.shape[0]),
        "N": str(len(ids)),
        "prompt": json.dumps(ids[:first]),
        "ids_sha": hashlib.sha1(json.dumps(ids).encode()).hexdigest(),
        "accuracy": f"{outcome.accuracy:.6f}",
        "steps": str(outcome.steps),
        "preset": preset,
        "memcap": memcap.__version__,
    }
    data = save({KEY: vectors.detach().float().contiguous().cpu()}, metadata=meta)
    atomic_write_bytes(Path(path), data)


def read_metadata(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no vectors file at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "N" not in meta or "protocol" not in meta:
        raise ValueError(f"{path} was not written by `memcap compress` (no N/protocol metadata)")
    return meta


def decode_file(path, lm) -> str:
    """Greedy decoding from the stored vectors (and, under paper, the stored first token)."""
    meta = read_metadata(path)
    vectors = load_file(str(path))[KEY]
    if vectors.shape[1] != lm.mem_dim:
        raise ValueError(
            f"{path} holds vectors of width {vectors.shape[1]}, but model {lm.spec.name!r} "
            f"takes width {lm.mem_dim}; it was made with {meta.get('model')!r}"
        )
    prompt = json.loads(meta["prompt"])
    n_new = int(meta["N"]) - len(prompt)
    prompt_ids = torch.tensor([prompt], dtype=torch.long) if prompt else None
    new = greedy_decode(lm, vectors[None], n_new, prompt_ids)[0].tolist()
    return lm.tokenizer.decode(prompt + new, skip_special_tokens=True)
