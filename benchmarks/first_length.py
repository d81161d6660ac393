"""What a text's first length costs: one fresh attempt per text at L tokens, from the random init
or from a prior (other texts' lossless vectors averaged), under each learning rate, in one batch.

    python benchmarks/first_length.py --threads 1                       # L=8, random init, lr 0.01 0.03
    python benchmarks/first_length.py --threads 1 --folder benchmarks/validation2 \\
        --folder benchmarks/validation3 --init random prior \\
        --prior benchmarks/reference/tune-F.json.progress.jsonl \\
        --prior benchmarks/validation/tune-F.json.progress.jsonl --lrs 0.01 --steps 400

The claimed search starts every text from the seeded random init at the grid's first length
(8 tokens) with the fast preset's fresh settings (lr 0.01, 300-step windows continued while
each raises the best count); on the tuning texts that first length is 13-26 % of candidate H's
steps. Each text here starts from that same seeded init (so `random` at lr 0.01 is the search's
own first attempt, up to batch numerics), or from `prior`: the mean of the lossless L-token
vectors that the saved search runs given with --prior made on *other* texts (a text of theirs
among --folder's is refused: the prior would hold its own answer), or `prior-scaled`: that mean
rescaled to their mean norm. It runs up to --steps steps with that much patience and prints,
per (init, lr), how many texts reached every token right and in how many steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import prior_vectors
from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.io import read_jsonl
from memcap.stages.batching import derive_seed

ROOT = Path(__file__).resolve().parents[1]
TUNING = ["benchmarks/reference", "benchmarks/validation", "benchmarks/validation2", "benchmarks/validation3"]
INITS = ("random", "prior", "prior-scaled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=8, help="tokens per text (default: 8, the grid's first)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03], help="fresh learning rates to try")
    parser.add_argument("--init", nargs="+", choices=INITS, default=["random"], help="starts to try")
    parser.add_argument("--prior", type=Path, action="append", default=[], help="a fast.py progress file (prior)")
    parser.add_argument("--steps", type=int, default=600, help="steps (and patience) per attempt")
    parser.add_argument("--folder", action="append", help="a folder with texts.jsonl (default: the 24 tuning texts)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folders = [Path(f) for f in args.folder] if args.folder else [ROOT / f for f in TUNING]
    rows = [row for folder in folders for row in read_jsonl(folder / "texts.jsonl")]
    priors = {}
    if set(args.init) - {"random"}:
        if not args.prior:
            raise SystemExit("--init prior needs --prior FILE (a saved search run on other texts)")
        mean, scaled, n = prior_vectors(args.prior, args.length, rows)
        priors = {"prior": mean, "prior-scaled": scaled}
        norms = f"norm {mean.norm():.2f}, rescaled {scaled.norm():.2f}"
        print(f"prior: mean of {n} lossless L={args.length} vectors ({norms})")
    spec = resolve_model(args.model, load_registry(ROOT / "config/models.yaml"))
    lm = load_model(spec, "cpu")
    ids = [lm.tokenize(row["text"])[: args.length] for row in rows]
    seeds = [derive_seed(spec.name, "lee", 1, args.length, row["id"]) for row in rows]
    print(f"{args.model}, {len(rows)} texts at L={args.length}, fresh settings, up to {args.steps} steps, one batch")
    for init in args.init:
        starts = [priors[init].clone() for _ in rows] if init in priors else None
        for lr in args.lrs:
            t0 = time.perf_counter()
            fresh = {"fresh_lr": lr, "fresh_max_steps": args.steps, "fresh_patience": args.steps}
            optim = OptimConfig.from_dict({"preset": "fast", **fresh})
            outcomes = compress_batch(lm, ids, 1, "paper", seeds, optim, init=starts, fresh=[True] * len(rows))
            passed = [o.steps for o in outcomes if o.stop_reason == "converged"]
            line = {
                "init": init,
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
