"""Same start, another run: do identical attempts in different saved searches end alike?

    python benchmarks/same_start.py              # every saved search under benchmarks/, no model
    python benchmarks/same_start.py --verbose    # and every group whose runs disagree

A line of attempts that starts from the seeded random init (a fresh start, its continuations)
is fully determined by its text, length, seed and optimiser settings, up to floating point: a
batch of other texts changes the order of the sums. Every saved search under benchmarks/
(fast.py --save progress files) holds many such lines, and several runs made the same one
(the first length of every text, a fresh check or retry at the same length). This groups them
by (folder, text, L, seed, optimiser settings, budget) and prints, over the groups that more
than one run made, how many ended alike (same outcome, same steps) and how many did not; for
pairs that both passed, how close their vectors are (cosine). Fresh starts from a prior and
mixed restarts are left out (their start depends on more than the seed).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import torch

from common import lines_of
from memcap.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def settings_of(header: str) -> tuple[str, str, bool] | None:
    """(optimiser settings, budget, prior) of a progress file's header; None if unreadable."""
    optim = re.search(r"preset (\w+ \{[^}]*\})", header)
    budget = re.search(r"'budget': (\w+)", header)
    if optim is None:
        return None
    return optim.group(1), budget.group(1) if budget else "None", "from the prior" in header


def random_lines(root: Path = ROOT / "benchmarks") -> dict[tuple, list[dict]]:
    """Every saved line that starts from the seeded random init, grouped by what determines it:
    (folder, text id, L, seed, optimiser settings, budget) -> one entry per run."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for progress in sorted(root.glob("*/*.json.progress.jsonl")):
        folder, name = progress.parent, progress.name.removesuffix(".json.progress.jsonl")
        if not (folder / "texts.jsonl").is_file():
            continue
        settings = settings_of(read_jsonl(progress)[0].get("header", ""))
        if settings is None:
            continue
        optim, budget, prior = settings
        for row, line in lines_of(folder, name):
            first, last = line[0], line[-1]
            from_random = first["warm_start"] is None and not first.get("mix") and (not prior or first["retry"])
            if not from_random or first["extension"]:
                continue
            key = (folder.name, row["id"], first["L"], first["seed"], optim, budget)
            groups[key].append(
                {
                    "run": name,
                    "passed": bool(last["lossless"]),
                    "steps": sum(a["steps"] for a in line),
                    "score": max(a["score"] for a in line),
                    "vectors": last["vectors"] if last["lossless"] else None,
                }
            )
    return groups


def summary(groups: dict[tuple, list[dict]]) -> dict:
    """Counts over the groups made by more than one run (a run's repeats of a line count once)."""
    shared = {k: v for k, v in groups.items() if len({e["run"] for e in v}) > 1}
    same = outcome = 0
    cosines = []
    disagree = []
    for key, entries in shared.items():
        ends = {(e["passed"], e["steps"], e["score"]) for e in entries}
        if len(ends) == 1:
            same += 1
            continue
        disagree.append((key, entries))
        outcome += len({e["passed"] for e in entries}) > 1
        passed = [e for e in entries if e["vectors"] is not None]
        for i, a in enumerate(passed):  # pairs that passed in a different number of steps
            for b in passed[i + 1 :]:
                if a["steps"] != b["steps"]:
                    x, y = (torch.tensor(e["vectors"]).flatten() for e in (a, b))
                    cosines.append(torch.nn.functional.cosine_similarity(x, y, dim=0).item())
    return {"groups": len(shared), "same": same, "other_outcome": outcome, "cosines": cosines, "disagree": disagree}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every group whose runs disagree")
    args = parser.parse_args()
    s = summary(random_lines())
    print(
        f"{s['groups']} lines from the random init made by more than one saved run: {s['same']} ended alike "
        f"(same outcome, steps and best count), {s['groups'] - s['same']} did not, "
        f"{s['other_outcome']} of them with another outcome (one run passed, another failed)"
    )
    if s["cosines"]:
        c = sorted(s["cosines"])
        print(
            f"vectors of two runs that both passed, in different numbers of steps: {len(c)} pairs, "
            f"cosine median {c[len(c) // 2]:.2f}, min {c[0]:.2f}, max {c[-1]:.2f}"
        )
    if args.verbose:
        for (folder, text, L, *_), entries in s["disagree"]:
            ends = ", ".join(
                f"{e['run']} {'pass' if e['passed'] else 'fail'} {e['score']}/{L - 1} in {e['steps']}" for e in entries
            )
            print(f"  {folder} {text} L={L}: {ends}")


if __name__ == "__main__":
    main()
