"""What a restart costs: each fresh line a saved search made after a text's first lossless
length, rerun as a cheaper restart from the prefix's vectors (memcap.core.search restart_mix).

    python benchmarks/restarts.py --threads 1                        # all variants, about 15 min each
    python benchmarks/restarts.py --threads 1 --variants mix0.5-lr0.1 mix0.5-lr0.3
    python benchmarks/restarts.py --list                             # the lines only, no model

The claimed search (candidate F) restarts from the random init after a warm line stuck at its
prefix (fresh_after_stuck) and when a text would end below 24 tokens (fresh_check_below); on
the tuning texts those restarts are a large share of its steps. Here every such fresh line of
F's saved runs (its first attempt and its continuations, read from the progress files) is one
(text, L) pair, started instead from the vectors of the text's last lossless length L0, under
each variant: `warm-lrX` those vectors as they are, `mixM-lrX` the vectors mixed with the
seeded random init, sqrt(1 - M^2) * prefix + M * random, each at learning rate X (the fast
preset's other settings), up to --steps steps, all pairs in one batch. It prints, per variant,
how many pairs end lossless and their steps beside what F's fresh line spent there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from common import lines_of
from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.records import lossless
from memcap.stages.batching import derive_seed

ROOT = Path(__file__).resolve().parents[1]
# F's saved runs on the tuning texts: (folder, progress file name)
RUNS = [
    ("benchmarks/reference", "tune-F"),
    ("benchmarks/validation", "tune-F"),
    ("benchmarks/validation2", "tune-F"),
    ("benchmarks/validation3", "claimed"),
]
VARIANTS = {  # name: (learning rate, share of the random init)
    "warm-lr0.01": (0.01, 0.0),
    "warm-lr0.03": (0.03, 0.0),
    "mix0.5-lr0.01": (0.01, 0.5),
    "mix0.5-lr0.1": (0.1, 0.5),
    "mix0.5-lr0.3": (0.3, 0.5),
    "mix0.3-lr0.3": (0.3, 0.3),
    "mix0.7-lr0.1": (0.1, 0.7),
}


def fresh_lines(runs=RUNS) -> list[dict]:
    """Every fresh line after a lossless length in the saved runs: the text, L, the last lossless
    length L0 before it and its vectors, and whether and in how many steps F's line passed."""
    lines = []
    for folder, name in runs:
        last = {}  # per text: (L0, vectors) of its latest lossless attempt
        for row, line in lines_of(ROOT / folder, name):
            first = line[0]
            if first["warm_start"] is None and row["id"] in last:
                L0, vectors = last[row["id"]]
                passed, steps = any(a["lossless"] for a in line), sum(a["steps"] for a in line)
                lines.append(
                    dict(
                        folder=Path(folder).name,
                        id=row["id"],
                        text=row["text"],
                        L=first["L"],
                        L0=L0,
                        vectors=vectors,
                        passed=passed,
                        steps=steps,
                    )
                )
            for a in line:
                if a["lossless"]:
                    last[row["id"]] = (a["L"], a["vectors"])
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="step budget of each restart (default %(default)s)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--list", action="store_true", help="print the fresh lines and stop (no model)")
    args = p.parse_args()
    lines = fresh_lines()
    for e in lines:
        print(f"{e['folder']:12s} {e['id']} L0={e['L0']:3d} L={e['L']:3d} F: {_verdict(e['passed'])} in {e['steps']}")
    spent = sum(e["steps"] for e in lines)
    print(f"{len(lines)} fresh lines; F spent {spent} steps in them, passing {sum(e['passed'] for e in lines)}")
    if args.list:
        return
    torch.set_num_threads(args.threads)
    spec = resolve_model(args.model, load_registry("config/models.yaml"))
    lm = load_model(spec, "cpu")
    texts = [lm.tokenize(e["text"])[: e["L"]] for e in lines]
    # the seed only draws the random part; seed + 1, as when these runs were recorded
    shifted = [derive_seed(spec.name, "lee", 1, e["L"], e["id"]) + 1 for e in lines]
    starts = [torch.tensor(e["vectors"], dtype=torch.float32) for e in lines]
    for name in args.variants:
        lr, share = VARIANTS[name]
        t0 = time.perf_counter()
        optim = OptimConfig(preset="fast", lr=lr, max_steps=args.steps, patience=args.steps)
        outs = compress_batch(
            lm, texts, 1, "paper", shifted, optim, init=starts, fresh=[False] * len(lines), mix=[share] * len(lines)
        )
        passed = [lossless(o.status, o.correct, o.max_correct, o.scored, "paper") for o in outs]
        print(
            f"\n{name}: {sum(passed)}/{len(lines)} pass, {sum(o.steps for o in outs)} steps, "
            f"{time.perf_counter() - t0:.0f} s"
        )
        for e, ok, o in zip(lines, passed, outs, strict=True):
            print(
                f"  {e['id']} L0={e['L0']} L={e['L']}: {_verdict(ok)} in {o.steps} "
                f"(F {_verdict(e['passed'])} in {e['steps']})"
            )
        sys.stdout.flush()


def _verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


if __name__ == "__main__":
    main()
