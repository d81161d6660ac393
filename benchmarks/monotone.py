"""After a failing length, does a longer one still pass? Counted over every saved search.

    python benchmarks/monotone.py            # all saved searches under benchmarks/, no model

Capacity is not monotone in L: a text can fail 12 tokens and pass 16. That is why the claimed
search goes on past a failing grid length (`search.fails` 2), and the second failing length
above a text's capacity costs a 200-300-step line. This counts, per length L, the texts of
every saved search (fast.py --save progress files) whose attempts at L all failed, and how
many of them passed a longer length later in the same search, so a rule that ends a text at
its first failure from some length on can be chosen on what the runs did.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from common import rows_by_text
from memcap.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def recoveries(root: Path = ROOT / "benchmarks") -> tuple[Counter, Counter]:
    """Per length L: how many (run, text) failed every attempt at L, and how many of those
    passed a longer length afterwards."""
    failed, recovered = Counter(), Counter()
    for progress in sorted(root.glob("*/*.json.progress.jsonl")):
        for attempts in rows_by_text(read_jsonl(progress)[1:]).values():
            passed = {a["L"] for a in attempts if a["lossless"]}
            for L in sorted({a["L"] for a in attempts} - passed):
                failed[L] += 1
                recovered[L] += any(M > L for M in passed)
    return failed, recovered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    failed, recovered = recoveries()
    print(f"{'L':>4} {'failed':>7} {'a longer length passed later':>29}")
    for L in sorted(failed):
        print(f"{L:>4} {failed[L]:>7} {recovered[L]:>29}")
    for start in (24, 32, 40, 48):
        f = sum(n for L, n in failed.items() if L >= start)
        r = sum(n for L, n in recovered.items() if L >= start)
        print(f"from {start} tokens up: {r} of {f} failing lengths were followed by a longer one that passed")


if __name__ == "__main__":
    main()
