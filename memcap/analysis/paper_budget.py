"""The paper-budget reference: per-text capacities from grid records of benchmarks/reference.py.

    from memcap.analysis.paper_budget import reference_summary, text_capacities
    texts = text_capacities(read_jsonl("benchmarks/reference/lee.jsonl"))
    reference_summary(texts)   # per (model, dataset): capacity, texts bracketed, steps, hours

Each (text, L) of that run is a fresh start with the paper's optimiser (5000 steps), and a
text goes up the grid until it has failed at `fails` consecutive lengths (or runs out of
tokens): its capacity is its largest lossless length, *bracketed* once that stop is reached
(until then it is a lower bound). The decoding capacity over the texts is the per-sample rule
(memcap.analysis.metrics.capacity_from_samples), a lower bound while any text is unbracketed.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

from memcap.records import lossless


def text_capacities(records: list[dict], fails: int = 2) -> list[dict]:
    """One row per (model, dataset, sample_id) of K = 1 grid records, in first-seen order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if int(r["K"]) == 1 and r.get("mode", "grid") == "grid":
            groups[(r["model"], r["dataset"], str(r["sample_id"]))].append(r)
    rows = []
    for (model, dataset, sample), cells in groups.items():
        cells.sort(key=lambda r: r["L"])
        # a text shorter than L is no sample of L (docs/records.md): it only ends the text
        own = [r for r in cells if not r.get("short")] or cells[:1]
        ok = [
            lossless(r["status"], r["correct"], r["max_correct"], r["scored"], r["protocol"]) and not r.get("short")
            for r in own
        ]
        capacity = max([0] + [r["L"] for r, good in zip(own, ok, strict=True) if good])
        streak = 0
        for good in ok:
            streak = 0 if good else streak + 1
        first_fail = min(
            [r["L"] for r, good in zip(own, ok, strict=True) if not good and r["L"] > capacity], default=None
        )
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "sample_id": sample,
                "capacity": capacity,
                "first_fail": first_fail,
                "bracketed": streak >= fails or any(r.get("short") for r in cells),
                "lengths": [r["L"] for r in own],
                "accuracy": [r["max_accuracy"] for r in own],
                "steps": sum(r["steps"] for r in cells),
                "wall_s": sum(r["wall_s"] for r in cells),
                "preset": own[0].get("preset", "paper"),
                "optim": own[0].get("optim"),
            }
        )
    return rows


def reference_summary(texts: list[dict]) -> list[dict]:
    """Per (model, dataset): the decoding capacity over its texts and what it cost."""
    from memcap.analysis.metrics import capacity_from_samples

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for t in texts:
        groups[(t["model"], t["dataset"])].append(t)
    out = []
    for (model, dataset), rows in groups.items():
        caps = [t["capacity"] for t in rows]
        found = capacity_from_samples(caps)  # NaN: too many texts have no lossless length
        out.append(
            {
                "model": model,
                "dataset": dataset,
                "n_texts": len(rows),
                "n_bracketed": sum(t["bracketed"] for t in rows),
                "capacity": 0 if math.isnan(found) else int(found),
                "complete": all(t["bracketed"] for t in rows),
                "capacities": caps,
                "steps": sum(t["steps"] for t in rows),
                "hours": sum(t["wall_s"] for t in rows) / 3600,
                "preset": rows[0]["preset"],
                "optim": rows[0]["optim"],
            }
        )
    return out


def grid_position(capacity: int, grid: list[int]) -> int:
    """Where `capacity` sits on `grid`: the index in [0, *grid] of the grid length at or below it
    (a capacity found off the grid, by a growth schedule, counts as that length)."""
    return bisect.bisect_right([0, *sorted(grid)], capacity) - 1


def within_one_step(ours: int, reference: int, grid: list[int]) -> bool:
    """Issue 22's per-text target: `ours` is at least the reference's capacity minus one grid step."""
    return grid_position(ours, grid) >= grid_position(reference, grid) - 1


def against_reference(texts: list[dict], ours: dict[str, int]) -> list[dict]:
    """Per reference text (`text_capacities` rows) that `ours` (sample_id -> capacity) has: both
    capacities and whether ours is within one grid step of the reference or above it, on the
    grid of every length the reference ran. An unbracketed reference capacity can still rise,
    so its `within` is so far."""
    grid = sorted({L for t in texts for L in t["lengths"]})
    rows = []
    for t in texts:
        mine = ours.get(t["sample_id"])
        if mine is None:
            continue
        rows.append(
            {
                "sample_id": t["sample_id"],
                "ours": mine,
                "reference": t["capacity"],
                "bracketed": t["bracketed"],
                "within": within_one_step(mine, t["capacity"], grid),
                "zero": mine == 0 and t["capacity"] > 0,
            }
        )
    return rows
