"""Download Hugging Face models once, before any compress job, into a shared cache.

The workflow's rule `download` calls `download_model`; compress jobs then call `use_cache`
so that transformers reads the same cache offline. By hand:

    python -c "from memcap.stages.download import download_model; \
        download_model('pythia-160m', 'config/models.yaml', 'results/.cache', 'pythia.json')"

The token of gated models (Llama-3) comes from the environment variable HF_TOKEN; it is never
logged or written into results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Weight formats we never load: skipped so a snapshot is one copy of the weights.
NEVER = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite", "*.gguf", "original/*", "*.pth"]


def use_cache(cache_dir: str | Path, offline: bool = False) -> None:
    """Point huggingface_hub, transformers and datasets at `cache_dir`.

    Call before anything imports huggingface_hub (it reads these variables once, at import).
    `offline=True` forbids network access: a compress job must find its model in the cache.
    """
    cache = Path(cache_dir).resolve()
    os.environ["HF_HUB_CACHE"] = str(cache / "hub")
    os.environ["HF_DATASETS_CACHE"] = str(cache / "datasets")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"


def download_model(model: str, models_file: str | Path, cache_dir: str | Path, out: str | Path):
    """Snapshot a registry model (source hf) at its pinned revision; record where it went.

    Writes a JSON record to `out`: model, id, requested and resolved revision, local path,
    number of files and bytes. Registry models of source gguf or random need no download; their
    record says where they come from. With HF_HUB_OFFLINE=1 the snapshot must already be in the
    cache (a node without network); a model the Hub refuses or the cache lacks is a ValueError
    of one line that names the id and the revision (memcap.core.models.hub_failure).
    """
    use_cache(cache_dir)
    from memcap.core.models import load_registry, resolve_model

    spec = resolve_model(model, load_registry(models_file))
    record = {"model": model, "source": spec.source, "id": spec.model_id, "revision": spec.revision}
    if spec.source == "hf":
        path = snapshot(spec, os.environ["HF_HUB_CACHE"])
        found = [p for p in path.rglob("*") if p.is_file()]
        record.update(
            resolved_revision=path.name,
            path=str(path),
            files=len(found),
            bytes=sum(p.stat().st_size for p in found),  # of the blobs the snapshot links to
        )
    elif spec.source == "gguf":
        from memcap.core.models import gguf_path

        record["path"] = str(gguf_path(spec))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return out


def snapshot(spec, cache: str | Path) -> Path:
    """The snapshot folder of a source-hf spec at its revision in the hub cache `cache`:
    downloaded, or found there when HF_HUB_OFFLINE is set. Errors are one-line ValueErrors."""
    from huggingface_hub import snapshot_download

    from memcap.core.models import hub_failure

    token = os.environ.get("HF_TOKEN") or None
    try:
        files = repo_files(spec, cache, token)
        ignore = list(NEVER)
        if any(f.endswith(".safetensors") for f in files):
            ignore += ["*.bin", "*.pt"]  # safetensors present: skip the pickled copy
        path = snapshot_download(spec.id, revision=spec.revision, token=token, ignore_patterns=ignore, cache_dir=cache)
    except OSError as err:  # every hub error: HTTP ones, LocalEntryNotFoundError, OfflineModeIsEnabled
        raise ValueError(hub_failure(spec, err, cache)) from None
    return Path(path)


def repo_files(spec, cache: str | Path, token: str | None) -> list[str]:
    """The files of the repository at the spec's revision: listed by the Hub, or, offline or
    when the Hub does not answer, by the listing an earlier download left in the cache (none:
    snapshot_download then takes the cached snapshot as it is)."""
    from huggingface_hub import HfApi, constants, get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError
    from huggingface_hub.utils import httpx

    if not constants.HF_HUB_OFFLINE:
        try:  # one request, like snapshot_download's own (list_repo_files retries ~25 s when there is no answer)
            info = HfApi().model_info(spec.id, revision=spec.revision, token=token)
            return [sibling.rfilename for sibling in info.siblings or []]
        except httpx.TransportError:  # no answer (network, proxy, timeout): snapshot_download tries the cache
            pass
    try:  # the same choice of files as online, or snapshot_download finds the snapshot incomplete
        return [f.path for f in get_cached_repo_tree(spec.id, revision=spec.revision, cache_dir=cache)]
    except CachedRepoTreeNotFoundError:
        return []
