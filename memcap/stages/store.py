"""Resumable result storage for one compress job: atomic parts, merged at the end.

    store = PartStore("results/demo/compress/smollm2-135m/lee.parts", fingerprint={...})
    done = store.done_keys()                        # {(K, L, sample_id), ...}
    store.write_part("K1_L16_0000", records, {"lee-0000": tensor})
    store.merge("results/demo/compress/smollm2-135m/lee.jsonl")

Each finished batch becomes two files, the vectors (safetensors) and then the records
(JSONL), each written to a temp file and renamed, so a kill at any moment leaves either a
whole part or none. The parts folder is not a Snakemake output: a failed job keeps it and a
rerun resumes from it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from memcap.io import JsonlError, atomic_path, atomic_write_text, read_jsonl, write_jsonl

log = logging.getLogger("memcap.stages.store")


def record_key(record: dict) -> tuple:
    return (record["K"], record["L"], str(record["sample_id"]))


def attempt_key(record: dict) -> tuple:
    """record_key, plus the retry and extension numbers: a capacity search may run one length
    twice (warm, then fresh) and continue each (memcap.core.search.SearchConfig.budget)."""
    return (*record_key(record), record.get("retry") or 0, record.get("extension") or 0)


def changed_keys(before: dict, now: dict) -> list[str]:
    """Top-level keys whose values differ between two fingerprints."""
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def changed_settings(before: dict, now: dict) -> list[tuple[str, object, object]]:
    """(key, then, now) of every setting that differs, nested dicts (optim, model) by their
    own keys ("optim.lr"): what a message names."""
    out = []
    for key in changed_keys(before, now):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += [(f"{key}.{k}", old.get(k), new.get(k)) for k in changed_keys(old, new)]
        else:
            out.append((key, old, new))
    return out


def stored_fingerprint(folder: str | Path) -> dict | None:
    """The fingerprint a parts folder was made with (its job.json), None when it has none."""
    path = Path(folder) / "job.json"
    return json.loads(path.read_text()) if path.is_file() else None


class PartStore:
    """The parts folder of one job, guarded by a fingerprint of what the results depend on."""

    def __init__(self, folder: str | Path, fingerprint: dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._check_fingerprint(fingerprint)

    def _check_fingerprint(self, fingerprint: dict) -> None:
        path = self.folder / "job.json"
        if path.exists():
            before = json.loads(path.read_text())
            changed = changed_keys(before, fingerprint)
            if changed:
                raise ValueError(
                    f"{self.folder} holds results made with different settings ({', '.join(changed)}: "
                    f"{[before.get(k) for k in changed]} then, {[fingerprint.get(k) for k in changed]} now). "
                    "Resuming would mix them. Use another run name, or delete that folder to start over."
                )
        else:
            atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True))

    def records(self) -> list[dict]:
        """Every part's records. A part that cannot be read (e.g. a line cut short outside
        memcap, which writes parts whole) is named, with what to do about it."""
        rows = []
        for part in sorted(self.folder.glob("*.jsonl")):
            try:
                rows.extend(read_jsonl(part))
            except JsonlError as err:
                raise ValueError(
                    f"corrupted part: {err}. Move that part aside (e.g. mv {part} {part}.corrupt) and "
                    "rerun: the job resumes from the other parts and computes that part's samples again"
                ) from None
        return rows

    def done_keys(self) -> set[tuple]:
        return {record_key(r) for r in self.records()}

    def write_part(self, name: str, records: list[dict], vectors: dict[str, torch.Tensor]) -> None:
        vec_name = f"{name}.safetensors"
        tensors = {key: v.detach().float().contiguous().cpu() for key, v in vectors.items()}
        with atomic_path(self.folder / vec_name) as tmp:
            save_file(tensors, tmp)
        write_jsonl(records, self.folder / f"{name}.jsonl", sort_keys=True)

    def merge(
        self, out: str | Path, defaults: dict[str, dict] | None = None, samples: set[str] | None = None
    ) -> list[dict]:
        """All parts' records, one per (K, L, sample, retry, extension), written atomically to `out`.

        `defaults` ({sample_id: {field: value}}) fills fields that records of older parts
        lack (e.g. `kind`); a field a record has is never changed. `samples`, if given: only
        their records go to `out`; the others (of texts no longer in the texts file) stay in
        the parts, kept apart from the tables, and come back if their texts do.
        """
        rows = self.records()
        if samples is not None:
            apart = sum(str(r["sample_id"]) not in samples for r in rows)
            if apart:
                log.warning("%s: %d record(s) of samples no longer in the texts are kept apart", self.folder, apart)
            rows = [r for r in rows if str(r["sample_id"]) in samples]
        for row in rows:
            for key, value in (defaults or {}).get(str(row["sample_id"]), {}).items():
                row.setdefault(key, value)
        seen = {}
        for row in rows:
            key = attempt_key(row)
            if key in seen:
                raise RuntimeError(f"{self.folder}: duplicate record for (K, L, sample, retry, extension) = {key}")
            seen[key] = row
        rows.sort(key=attempt_key)
        out = Path(out)
        rel = os.path.relpath(self.folder, out.parent)
        write_jsonl((dict(row, vectors=f"{rel}/{row['vectors']}") for row in rows), out, sort_keys=True)
        return rows
