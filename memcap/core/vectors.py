"""Vectors files: [mem] vectors in safetensors, with what decoding them needs as metadata.

    save_vectors("fox.safetensors", outcome.vectors, lm, "strict", ids, outcome)
    text = decode_file("fox.safetensors", lm)

Metadata (all strings, as safetensors requires; docs/records.md, "Vectors files"): model
(registry name, or the last part of a Hugging Face id or directory), model_id (the id, the
directory's absolute path, package/file of a GGUF model, random:<family>), revision (empty
when the model has none), source (hf, gguf or random), protocol, K, N, prompt (the token ids
decoding starts from: none under strict, t1 under paper, as JSON), ids_sha (sha1 of the N
token ids as JSON), accuracy, greedy_exact (true/false), steps, the optimiser preset, optim
(the optimiser settings as JSON, OptimConfig.as_dict(): the values the preset gave or the user
set, and the parametrisation where it is not full), search (the search settings away from their
defaults, as JSON; only where there are any), prior (the sha1 of the prior file the search's
fresh starts began from; only where there was one), memcap version. ``read_vectors_file``
checks every field before anything is decoded; files written before a field existed lack it.

Vectors decode only with the model that made them: ``model_for_file`` finds it (the registry
entry of the recorded name, else the recorded id or directory at the recorded revision),
``model_mismatch`` says when another model is asked for (`memcap decode` refuses unless
--force), and ``ids_match`` compares the decoded tokens with the recorded ids_sha.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

import memcap
from memcap.core.engine import PROTOCOLS, OptimConfig, first_scored, greedy_decode
from memcap.core.models import SOURCES, ModelSpec
from memcap.io import atomic_write_bytes
from memcap.records import method

KEY = "mem"
REQUIRED = ("model", "model_id", "revision", "protocol", "K", "N", "prompt", "ids_sha", "accuracy", "steps")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # preset, memcap version


def ids_sha(ids: list[int]) -> str:
    return hashlib.sha1(json.dumps(ids).encode()).hexdigest()


def save_vectors(
    path,
    vectors: torch.Tensor,
    lm,
    protocol: str,
    ids: list[int],
    outcome,
    optim: OptimConfig | None = None,
    search: dict | None = None,
    prior: str | None = None,
) -> None:
    """`optim`: the settings that made the vectors (None: the paper's), recorded as preset and optim.
    `search`: the search settings away from their defaults (SearchConfig.changed()), recorded as
    search where there are any, so files made with the defaults stay as they were. `prior`: the
    sha1 of the prior file their search's fresh starts began from (memcap.core.prior), if any."""
    from safetensors.torch import save

    first = first_scored(protocol)
    optim = optim or OptimConfig()
    meta = {
        "model": lm.spec.name,
        "model_id": lm.spec.model_id,
        "revision": lm.spec.revision or "",
        "source": lm.spec.source,
        "protocol": protocol,
        "K": str(vectors.shape[0]),
        "N": str(len(ids)),
        "prompt": json.dumps(ids[:first]),
        "ids_sha": ids_sha(ids),
        "accuracy": f"{outcome.accuracy:.6f}",
        "greedy_exact": "true" if outcome.greedy_exact else "false",
        "steps": str(outcome.steps),
        "preset": optim.preset,
        "optim": json.dumps(optim.as_dict()),
        "memcap": memcap.__version__,
        **({"search": json.dumps(search)} if search else {}),
        **({"prior": prior} if prior else {}),
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


@dataclass
class VectorsFile:
    """A vectors file whose metadata passed every check (read_vectors_file)."""

    path: Path
    meta: dict
    vectors: torch.Tensor  # (K, d) float
    K: int
    N: int
    prompt: list[int]

    @property
    def made_exact(self) -> bool:
        """Whether greedy decoding reproduced the text when the file was made (files
        without greedy_exact: accuracy 1, which implies it)."""
        if "greedy_exact" in self.meta:
            return self.meta["greedy_exact"] == "true"
        return float(self.meta["accuracy"]) == 1.0

    @property
    def method(self) -> str:
        """The preset and, where it is not full, the parametrisation that made the vectors
        (memcap.records.method): 'fast', 'fast + low_rank r=4 (pca)'."""
        return method(self.meta.get("preset"), json.loads(self.meta.get("optim", "{}")), self.meta)


def _invalid(path, key: str, value, allowed: str) -> ValueError:
    return ValueError(
        f"{path}: metadata {key}={value!r} is not valid: {allowed}; the file was changed after "
        "`memcap compress` wrote it, or not written by it"
    )


def _whole(path, meta: dict, key: str, low: int) -> int:
    value = meta[key]
    if not re.fullmatch(r"[0-9]{1,9}", value) or int(value) < low:
        raise _invalid(path, key, value, f"{key} must be a whole number >= {low}")
    return int(value)


def _prompt(path, meta: dict) -> list[int]:
    value, first = meta["prompt"], first_scored(meta["protocol"])
    try:
        prompt = json.loads(value)
    except json.JSONDecodeError:
        prompt = None
    if not (isinstance(prompt, list) and all(type(t) is int and t >= 0 for t in prompt)):
        raise _invalid(path, "prompt", value, "prompt must be a JSON list of token ids (whole numbers >= 0)")
    if len(prompt) != first:
        raise _invalid(path, "prompt", value, f"protocol {meta['protocol']} stores {first} prompt token(s)")
    return prompt


def _json_object(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except json.JSONDecodeError:
        return False


def _check_labels(path, meta: dict) -> None:
    """The fields decoding does not use: names, hashes, numbers of the optimisation."""
    for key in ("model", "model_id"):
        if not meta[key].strip():
            raise _invalid(path, key, meta[key], f"{key} must name the model that made the vectors")
    if not re.fullmatch(r"[0-9a-f]{40}", meta["ids_sha"]):
        raise _invalid(path, "ids_sha", meta["ids_sha"], "ids_sha must be 40 lowercase hex digits (sha1)")
    try:
        accuracy = float(meta["accuracy"])
    except ValueError:
        accuracy = math.nan
    if not 0 <= accuracy <= 1:
        raise _invalid(path, "accuracy", meta["accuracy"], "accuracy must be a number from 0 to 1")
    _whole(path, meta, "steps", 0)
    optional = {
        "source": (lambda v: v in SOURCES, f"one of {', '.join(SOURCES)}"),
        "greedy_exact": (lambda v: v in ("true", "false"), "true or false"),
        "preset": (LABEL.fullmatch, "a preset name"),
        "optim": (_json_object, "a JSON object of optimiser settings"),
        "search": (_json_object, "a JSON object of search settings"),
        "prior": (re.compile(r"[0-9a-f]{40}").fullmatch, "the sha1 of a prior file, 40 hex digits"),
        "memcap": (LABEL.fullmatch, "a memcap version"),
    }
    for key, (ok, allowed) in optional.items():
        if key in meta and not ok(meta[key]):
            raise _invalid(path, key, meta[key], f"{key} must be {allowed}")


def read_vectors_file(path) -> VectorsFile:
    """The vectors and metadata of a file written by `memcap compress`, every field checked
    (ValueError naming the field, its value and what is allowed)."""
    path = Path(path)
    meta = read_metadata(path)
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"{path}: metadata lacks {', '.join(missing)}; give a file written by `memcap compress`")
    if meta["protocol"] not in PROTOCOLS:
        raise _invalid(path, "protocol", meta["protocol"], f"protocol must be one of {', '.join(PROTOCOLS)}")
    _check_labels(path, meta)
    K, prompt = _whole(path, meta, "K", 1), _prompt(path, meta)
    N = _whole(path, meta, "N", len(prompt) + 1)
    vectors = load_file(str(path))[KEY]
    if vectors.ndim != 2 or vectors.shape[0] != K or not vectors.is_floating_point():
        raise ValueError(
            f"{path}: the {KEY!r} tensor is {tuple(vectors.shape)} {vectors.dtype}; K={K} asks for "
            f"(K, width) floats; the file was changed or not written by `memcap compress`"
        )
    if not torch.isfinite(vectors).all():
        raise ValueError(f"{path}: the vectors hold NaN or infinite values; they decode to nothing meaningful")
    return VectorsFile(path=path, meta=meta, vectors=vectors.float(), K=K, N=N, prompt=prompt)


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


def _source(meta: dict) -> str:
    """The recorded source; files written before `source` was recorded: from the id's form."""
    if "source" in meta:
        return meta["source"]
    model_id = meta["model_id"]
    return "random" if model_id.startswith("random:") else "gguf" if model_id.endswith(".gguf") else "hf"


def model_for_file(vf: VectorsFile, registry: dict, registry_file=None) -> ModelSpec:
    """The model that made a vectors file: the registry entry of its recorded name where that
    entry is the same model, else any registry entry that is, else (Hugging Face models) the
    recorded id or local directory at the recorded revision. ValueError when none is."""
    meta = vf.meta
    name, model_id, revision = meta["model"], meta["model_id"], meta["revision"] or None
    entry = registry.get(name)
    if entry is not None and model_mismatch(meta, entry) is None:
        return entry
    source = _source(meta)
    if source != "random":
        for spec in registry.values():
            if spec.source == source and model_mismatch(meta, spec) is None:
                return spec
    if source == "hf" and not Path(model_id).is_absolute():
        return ModelSpec(name=name, source="hf", id=model_id, revision=revision)
    if source == "hf" and Path(model_id).is_dir():
        return ModelSpec(name=name, source="hf", id=model_id, revision=revision)
    made = _describe(name, model_id, revision)
    if source == "hf":
        why = f"{made}, a local model directory that is not there any more"
    elif entry is not None:
        why = (
            f"{made}, but the registry's {name!r} is {entry.model_id}: the file was changed, or "
            "made with another registry"
        )
    else:
        why = f"the {source} model {made}, which the model registry {registry_file or ''} does not hold"
    raise ValueError(
        f"{vf.path}: the vectors were made with {why}; to decode them, give the model that made them "
        "(--model NAME, or --models-file with the registry that holds it)"
    )


def check_for_model(vf: VectorsFile, lm) -> None:
    """The file's width, prompt and length fit the loaded model (ValueError naming the field)."""
    meta = vf.meta
    if vf.vectors.shape[1] != lm.mem_dim:
        raise ValueError(
            f"{vf.path} holds vectors of width {vf.vectors.shape[1]}, but model {lm.spec.name!r} "
            f"takes width {lm.mem_dim}; it was made with {meta.get('model')!r}"
        )
    vocab = min(lm.vocab_size, lm.embeddings.num_embeddings)
    outside = [t for t in vf.prompt if t >= vocab]
    if outside:
        raise _invalid(vf.path, "prompt", meta["prompt"], f"token ids of {lm.spec.name!r} are below {vocab}")
    if lm.max_context is not None and vf.K + vf.N > lm.max_context:
        raise _invalid(
            vf.path, "N", meta["N"], f"K + N = {vf.K} + N must fit the {lm.max_context} positions of {lm.spec.name!r}"
        )


def decode_ids(vf: VectorsFile, lm) -> list[int]:
    """The N token ids greedy decoding gives: the stored prompt, then the decoded ones."""
    prompt_ids = torch.tensor([vf.prompt], dtype=torch.long) if vf.prompt else None
    new = greedy_decode(lm, vf.vectors[None], vf.N - len(vf.prompt), prompt_ids)[0].tolist()
    return vf.prompt + new


def ids_match(vf: VectorsFile, ids: list[int]) -> bool:
    """Whether decoded ids are the ones the vectors were made from (the recorded ids_sha)."""
    return ids_sha(ids) == vf.meta["ids_sha"]


def decode_file(path, lm) -> str:
    """Greedy decoding from the stored vectors (and, under paper, the stored first token)."""
    vf = read_vectors_file(path)
    check_for_model(vf, lm)
    return lm.tokenizer.decode(decode_ids(vf, lm), skip_special_tokens=True)
