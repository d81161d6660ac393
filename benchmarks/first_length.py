"""What a text's first length costs: one fresh attempt per tuning text at L tokens, under each
fresh learning rate, all texts in one batch.

    python benchmarks/first_length.py --threads 1                       # L=8, lr 0.01 0.03, 600 steps
    python benchmarks/first_length.py --threads 1 --length 8 --lrs 0.01 0.1 --steps 300

The claimed search starts every text fresh at the grid's first length (8 tokens) with the fast
preset's fresh settings (lr 0.01, 300-step windows continued while each raises the best
count). On the tuning texts that first length is 13-26 % of candidate H's steps. Each text
starts from the seeded random init the search itself uses there (same seed, so lr 0.01 is the
search's own first attempt, up to batch numerics), runs up to --steps steps with that much
patience, and the line printed per lr says how many texts reached every token right and in how
many steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.io import read_jsonl
from memcap.stages.batching import derive_seed

ROOT = Path(__file__).resolve().parents[1]
TUNING = ["benchmarks/reference", "benchmarks/validation", "benchmarks/validation2", "benchmarks/validation3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=8, help="tokens per text (default: 8, the grid's first)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03], help="fresh learning rates to try")
    parser.add_argument("--steps", type=int, default=600, help="steps (and patience) per attempt")
    parser.add_argument("--folder", action="append", help="a folder with texts.jsonl (default: the 24 tuning texts)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folders = [Path(f) for f in args.folder] if args.folder else [ROOT / f for f in TUNING]
    rows = [row for folder in folders for row in read_jsonl(folder / "texts.jsonl")]
    spec = resolve_model(args.model, load_registry(ROOT / "config/models.yaml"))
    lm = load_model(spec, "cpu")
    ids = [lm.tokenize(row["text"])[: args.length] for row in rows]
    seeds = [derive_seed(spec.name, "lee", 1, args.length, row["id"]) for row in rows]
    print(f"{args.model}, {len(rows)} texts at L={args.length}, fresh starts, up to {args.steps} steps, one batch")
    for lr in args.lrs:
        t0 = time.perf_counter()
        fresh = {"fresh_lr": lr, "fresh_max_steps": args.steps, "fresh_patience": args.steps}
        outcomes = compress_batch(lm, ids, 1, "paper", seeds, OptimConfig.from_dict({"preset": "fast", **fresh}))
        passed = [o.steps for o in outcomes if o.stop_reason == "converged"]
        line = {
            "lr": lr,
            "passed": f"{len(passed)}/{len(rows)}",
            "steps_of_passes": sum(passed),
            "steps_all": sum(o.steps for o in outcomes),
            "steps": [o.steps for o in outcomes],
            "best_counts": [o.max_correct for o in outcomes],
            "wall_s": round(time.perf_counter() - t0),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
