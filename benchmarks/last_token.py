"""The last token: warm lines that ended one token short, continued at a lower learning rate.

    python benchmarks/last_token.py --threads 1                 # every variant, minutes each
    python benchmarks/last_token.py --list                      # the lines only, no model
    python benchmarks/last_token.py --threads 1 --lrs 0.3 0.03 --steps 100

A third of the failing lines in the saved searches of candidates H and P end exactly one
token short of lossless (0.857 at 8 tokens, 0.968 at 32, ...): the 100-step window that ended
them did not raise the best count, so the search stopped them. Each such warm line of the runs
in RUNS (tuning texts only) is continued here from the vectors it ended with, for --steps
steps at each learning rate of --lrs (the warm settings of the fast preset otherwise; the
first lr is the search's own, the control: one more window as it would have run), all lines
in one batch. It prints, per lr, how many lines pass and in how many steps, and which.
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
# candidate P's and H's saved runs on tuning texts: (folder, progress file name)
RUNS = [
    ("benchmarks/reference", "tune-P3"),
    ("benchmarks/validation3", "tune-P3"),
    ("benchmarks/validation4", "tune-P3"),
    ("benchmarks/validation4", "claim-H"),
]


def short_lines(runs=RUNS) -> list[dict]:
    """Every warm line (a warm start and its continuations) of the saved runs that failed with
    its best count one below its scored tokens: the text, L, its last vectors and steps."""
    lines = []
    for folder, name in runs:
        if not (ROOT / folder / f"{name}.json.progress.jsonl").is_file():
            continue
        for row, line in lines_of(ROOT / folder, name):
            last = line[-1]
            scored = last["L"] - 1  # protocol paper scores every token after the first
            warm = line[0]["warm_start"] is not None
            if warm and not last["lossless"] and last["score"] == scored - 1 and last["vectors"]:
                steps = sum(a["steps"] for a in line)
                run = f"{Path(folder).name}/{name}"
                lines.append(
                    dict(run=run, id=row["id"], text=row["text"], L=last["L"], vectors=last["vectors"], steps=steps)
                )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--steps", type=int, default=100, help="steps of each continuation (default %(default)s)")
    p.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        default=[0.3, 0.1, 0.03],
        help="learning rates, the control first (default %(default)s)",
    )
    p.add_argument("--list", action="store_true", help="print the lines and stop (no model)")
    args = p.parse_args()
    lines = short_lines()
    for e in lines:
        print(f"{e['run']:24s} {e['id']} L={e['L']:3d}: one short after {e['steps']} steps")
    print(f"{len(lines)} warm lines one token short, {sum(e['steps'] for e in lines)} steps in them")
    if args.list or not lines:
        return
    torch.set_num_threads(args.threads)
    spec = resolve_model(args.model, load_registry("config/models.yaml"))
    lm = load_model(spec, "cpu")
    texts = [lm.tokenize(e["text"])[: e["L"]] for e in lines]
    seeds = [derive_seed(spec.name, "lee", 1, e["L"], e["id"]) for e in lines]  # unused: every line has an init
    starts = [torch.tensor(e["vectors"], dtype=torch.float32) for e in lines]
    for lr in args.lrs:
        t0 = time.perf_counter()
        optim = OptimConfig(preset="fast", lr=lr, max_steps=args.steps, patience=args.steps)
        outs = compress_batch(lm, texts, 1, "paper", seeds, optim, init=starts, fresh=[False] * len(lines))
        passed = [lossless(o.status, o.correct, o.max_correct, o.scored, "paper") for o in outs]
        print(
            f"\nlr {lr:g}: {sum(passed)}/{len(lines)} pass, {sum(o.steps for o in outs)} steps, "
            f"{time.perf_counter() - t0:.0f} s"
        )
        for e, ok, o in zip(lines, passed, outs, strict=True):
            print(
                f"  {e['run']} {e['id']} L={e['L']}: {'pass' if ok else 'fail'} in {o.steps} "
                f"({o.max_correct}/{o.scored})"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
