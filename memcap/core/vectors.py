"""Vectors files: [mem] vectors in safetensors, with what decoding them needs as metadata.

    save_vectors("fox.safetensors", outcome.vectors, lm, "strict", ids, outcome)
    text = decode_file("fox.safetensors", lm)

Metadata (all strings, as safetensors requires): model, model_id, revision (empty when the
model has none), protocol, K, N, prompt (the token ids decoding starts from: none under
strict, t1 under paper, as JSON), ids_sha, accuracy, steps, the optimiser preset, memcap
version.

Vectors decode only with the model that made them: ``model_mismatch`` says when another
model is asked for (`memcap decode` refuses unless --force).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

import memcap
from memcap.core.engine import first_scored, greedy_decode
from memcap.io import atomic_write_bytes

KEY = "mem"


def save_vectors(
    path, vectors: torch.Tensor, lm, protocol: str, ids: list[int], outcome, preset: str = "paper"
) -> None:
    from safetensors.torch import save

    first = first_scored(protocol)
    meta = {
        "model": lm.spec.name,
        "model_id": lm.spec.model_id,
        "revision": lm.spec.revision or "",
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
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{path} is not a vectors file: it cannot be read as safetensors ({err}); "
            "give a file written by `memcap compress`"
        ) from None
    if "N" not in meta or "protocol" not in meta or KEY not in keys:
        raise ValueError(
            f"{path} is a safetensors file but was not written by `memcap compress` (it lacks "
            f"the {KEY!r} tensor or the N/protocol metadata); give a file written by "
            "`memcap compress`"
        )
    return meta


def _describe(name, model_id, revision=None) -> str:
    return f"{name!r} ({model_id}{f' at {revision}' if revision else ''})"


def model_mismatch(meta: dict, spec) -> str | None:
    """Why `spec` is not the model that wrote a vectors file (its metadata), or None.

    The same model means the same weights: the same model_id (a random-weight model's id
    names only its family, so its registry name must match too) and, where both are
    recorded, the same revision. Another model of the same width decodes the vectors into
    meaningless text without any error, hence this check.
    """
    made_id, made_rev = meta.get("model_id"), meta.get("revision") or None
    same = made_id == spec.model_id
    if spec.source == "random":
        same = same and meta.get("model") == spec.name
    if made_rev and spec.revision and made_rev != spec.revision:
        same = False
    if same:
        return None
    return (
        f"the vectors were made with model {_describe(meta.get('model'), made_id, made_rev)}, "
        f"not {_describe(spec.name, spec.model_id, spec.revision)}"
    )


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
