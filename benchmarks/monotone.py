"""After a failing length, does a longer one still pass? Counted over every saved search.

    python benchmarks/monotone.py            # all saved searches under benchmarks/, no model

Capacity is not monotone in L: a text can fail 12 tokens and pass 16. That is why the claimed
search goes on past a failing grid length (`search.fails` 2), and the second failing length
above a text's capacity costs a 200-300-step line. This counts, per length L, the texts of
every saved search (fast.py --save progress files) whose attempts at L all failed, and how
many of them passed a longer length later in the same search, so a rule that ends a text at
its first failure from some length on can be chosen on what the runs did.

The same count over the paper-budget references' own cells (benchmarks/*/lee.jsonl: every
(text, L) from its seeded random init, 5000 steps, no warm start) says how much of that is
chance: there no path leads from one length to the next, so a failing length followed by a
passing longer one is a draw at the edge of a text's capacity, and so is the capacity read
from one run of cells. It also counts the failing cells that ended exactly one token short.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from common import rows_by_text
from memcap.io import read_jsonl
from memcap.records import accuracy_is_lossless

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


def reference_recoveries(root: Path = ROOT / "benchmarks") -> tuple[Counter, Counter, Counter, Counter]:
    """recoveries() over the paper-budget references' K = 1 grid cells, per (folder, text); per
    L how many failing cells ended one token short (one more correct token would pass); and
    how many texts did (texts[True]) or did not pass a length above one they failed."""
    failed, recovered, one_short, texts = Counter(), Counter(), Counter(), Counter()
    for records in sorted(root.glob("*/lee.jsonl")):
        by_text: dict[str, list[dict]] = {}
        for r in read_jsonl(records):
            if r["K"] == 1 and r["mode"] == "grid" and r["status"] == "ok":
                by_text.setdefault(str(r["sample_id"]), []).append(r)
        for cells in by_text.values():
            best = {r["L"]: r["max_correct"] if r["protocol"] == "paper" else r["correct"] for r in cells}
            scored = {r["L"]: r["scored"] for r in cells}
            passed = {L for L in best if accuracy_is_lossless(best[L] / scored[L])}
            later = {L: any(M > L for M in passed) for L in best if L not in passed}
            for L, recovers in later.items():
                failed[L] += 1
                recovered[L] += recovers
                one_short[L] += bool(accuracy_is_lossless((best[L] + 1) / scored[L]))
            texts[any(later.values())] += 1
    return failed, recovered, one_short, texts


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
    failed, recovered, one_short, texts = reference_recoveries()
    print("\nthe paper-budget references' own cells (every length from the random init, 5000 steps):")
    print(f"{'L':>4} {'failed':>7} {'a longer length passed':>23} {'one token short':>16}")
    for L in sorted(failed):
        print(f"{L:>4} {failed[L]:>7} {recovered[L]:>23} {one_short[L]:>16}")
    f, r, o = sum(failed.values()), sum(recovered.values()), sum(one_short.values())
    print(f"all lengths: {r} of {f} failing cells were followed by a longer one that passed; {o} ended one token short")
    print(f"texts: {texts[True]} of {texts.total()} passed a length above one they failed")


if __name__ == "__main__":
    main()
