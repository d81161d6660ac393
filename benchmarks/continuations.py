"""What a line's continuation windows buy: counted over every saved search, no model.

    python benchmarks/continuations.py                          # all saved searches under benchmarks/
    python benchmarks/continuations.py --runs 'tune-P*' 'claim-P*' --sets reference validation3  # some only

The claimed search judges a warm attempt in 100-step windows and continues it while a window
raises its best count (issue 22: no attempt is declared failed while it still improves). Most
of a search's steps are spent there, so this asks what a cheaper rule would give up, on the
lines the saved searches made (fast.py --save progress files; a line made by several runs, as
forks replay their parent's attempts, counts once):
- warm lines, by how many tokens short their first window ended: how many were continued, how
  many of those passed later, and the steps their continuations took; then, for a rule that
  stops continuing lines at least D tokens short after their first window, the steps it saves
  and the passes it loses;
- fresh lines (from the random init or a prior, 300-step windows), by their steps in all, in
  runs with no fresh_budget cap: how many passed, and how many of those after a given step
  count, so a cap's cost can be read.
A lost pass is not a lost capacity: a text may pass that length on another line, or stop a
length lower. The counts bound what a rule could cost; fast.py measures what it does cost.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from common import lines_of
from memcap.core.engine import first_scored

ROOT = Path(__file__).resolve().parents[1]


def lines(
    root: Path = ROOT / "benchmarks", runs: tuple[str, ...] = ("*",), sets: tuple[str, ...] = ("*",)
) -> list[dict]:
    """Every distinct line of attempts in the saved searches under `root` (those whose name
    matches one of `runs`, e.g. "tune-P*", in a folder matching one of `sets`): an attempt and its
    continuations (`extension` 1, 2, ...). Each line says whether it was warm (`warm_start`
    set) and whether its run capped fresh lines (`capped`), its first window's shortfall
    (`short`: tokens that would have to turn right to pass), whether it passed, its windows and
    steps in all (a last-token window at its own lr included)."""
    seen: dict[tuple, dict] = {}
    files = {path for run in runs for folder in sets for path in root.glob(f"{folder}/{run}.json.progress.jsonl")}
    for progress in sorted(files):
        with progress.open(encoding="utf-8") as file:  # the header only: lines_of reads the rest
            capped = "'fresh_budget'" in json.loads(file.readline()).get("header", "")
        for text, line in lines_of(progress.parent, progress.name.removesuffix(".json.progress.jsonl")):
            first = line[0]
            key = (progress.parent.name, text["id"], first["L"], first["warm_start"], first["retry"])
            key += (first["score"], first["steps"], len(line))
            seen.setdefault(
                key,
                {
                    "warm": first["warm_start"] is not None,
                    "capped": capped,
                    "short": first["L"] - first_scored("paper") - first["score"],
                    "passed": line[-1]["lossless"],
                    "windows": len(line),
                    "steps": sum(a["steps"] for a in line),
                    "continued_steps": sum(a["steps"] for a in line[1:]),
                },
            )
    return list(seen.values())


def by_shortfall(found: list[dict]) -> dict[int, Counter]:
    """Per first-window shortfall, over continued warm lines: lines, passes, and the steps
    their continuations took on passing and on failing lines."""
    table: dict[int, Counter] = {}
    for line in found:
        if line["warm"] and line["windows"] > 1:
            row = table.setdefault(line["short"], Counter())
            row["lines"] += 1
            row["passed"] += line["passed"]
            row["steps passed" if line["passed"] else "steps failed"] += line["continued_steps"]
    return table


def fresh_lengths(found: list[dict], marks: tuple[int, ...] = (300, 600, 900, 1200)) -> tuple[Counter, Counter]:
    """Fresh lines of runs with no fresh cap: per mark, how many ran past it and how many of
    those passed."""
    ran, passed = Counter(), Counter()
    for line in found:
        if not line["warm"] and not line["capped"]:
            for mark in marks:
                if line["steps"] > mark:
                    ran[mark] += 1
                    passed[mark] += line["passed"]
    return ran, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT / "benchmarks", help="folder of the saved searches' sets")
    parser.add_argument("--runs", nargs="+", default=["*"], help="saved searches' names, glob patterns (default: all)")
    parser.add_argument(
        "--sets", nargs="+", default=["*"], help="text sets (folders under --root), glob patterns (default: all)"
    )
    args = parser.parse_args()
    found = lines(args.root, tuple(args.runs), tuple(args.sets))
    table = by_shortfall(found)
    warm = [line for line in found if line["warm"]]
    runs, sets = " ".join(args.runs), " ".join(args.sets)
    print(f"{len(found)} distinct lines ({len(warm)} warm) in the saved searches {runs} on the sets {sets}")
    print("continued warm lines by how many tokens short their first window ended:")
    print(f"{'short':>5} {'lines':>6} {'passed':>7} {'steps (passed)':>15} {'steps (failed)':>15}")
    for short in sorted(table):
        row = table[short]
        print(f"{short:>5} {row['lines']:>6} {row['passed']:>7} {row['steps passed']:>15} {row['steps failed']:>15}")
    all_steps = sum(line["steps"] for line in found)
    print(f"a rule that stops continuing warm lines D or more tokens short (of {all_steps} steps in all lines):")
    for cut in sorted(table):
        rows = [row for short, row in table.items() if short >= cut]
        saved = sum(row["steps passed"] + row["steps failed"] for row in rows)
        lost = sum(row["passed"] for row in rows)
        print(f"  D={cut}: saves {saved} steps, loses {lost} passes of {sum(row['lines'] for row in rows)} lines")
    ran, passed = fresh_lengths(found)
    print("fresh lines in runs with no fresh cap (fresh_budget unset):")
    for mark in sorted(ran):
        print(f"  past {mark} steps: {ran[mark]} lines, {passed[mark]} of them passed")


if __name__ == "__main__":
    main()
