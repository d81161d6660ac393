"""The fast preset against the paper-budget reference: same model, texts and grid.

    python benchmarks/fast.py --threads 1          # SmolLM2-135M, the reference's texts; minutes
    python benchmarks/fast.py --preset paper --max-steps 300   # any other settings, same comparison
    python benchmarks/fast.py --save fast.json     # ... and keep the result;
    python benchmarks/fast.py --compare fast.json  # later: the same against the reference as it is then

Runs memcap's capacity search (memcap.core.search: each text up the grid, warm-started, a stuck
warm start retried fresh) with `--preset` (default fast, memcap.core.engine.PRESETS) on the texts
of benchmarks/reference/, and compares it with that run's records (benchmarks/reference.py:
the paper's optimiser, 5000 steps, every (text, length) from a fresh start, batch 1, one
thread). Seeds are the compress job's (memcap.stages.batching.derive_seed), so a first attempt starts
where the reference's cell did.

Prints per text both capacities (the largest lossless grid length) and whether ours is within
one grid step of the reference's or above it with greedy decoding confirming, then the total
optimiser steps and wall time of both (the reference's is the summed compute time its records
hold), their ratios and the targets: <= 10 % of the reference's steps, >= 10x less wall time,
every bracketed text within one grid step. Texts the reference has not bracketed yet are shown
but left out of the targets. The reference is read when the search ends, so a search run beside
a still-running reference is compared with every cell that run finished meanwhile; `--save`
keeps the search's result, and `--compare` prints it against the reference again later.
benchmarks/reference/fast-search.json is the fast preset's saved search (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from memcap.analysis.paper_budget import text_capacities
from memcap.cli import search_args, search_config
from memcap.core.engine import PRESETS, OptimConfig
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.search import search_capacity
from memcap.io import read_jsonl
from memcap.stages.batching import derive_seed
from memcap.stages.texts import read_texts
from optimizer import parse_config
from reference import HERE, LENGTHS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    parser.add_argument("--folder", type=Path, default=HERE, help="the reference's folder (default %(default)s)")
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="grid (default: the reference's)")
    parser.add_argument("--preset", choices=list(PRESETS), default="fast", help="default %(default)s")
    parser.add_argument("--lr", type=float, help="override the preset's lr")
    parser.add_argument("--max-steps", type=int, help="override the preset's max_steps")
    parser.add_argument("--patience", type=int, help="override the preset's patience")
    parser.add_argument(
        "--set",
        default="",
        metavar="KEY=VALUE,...",
        help="override any other OptimConfig keys, e.g. schedule=constant,warmup=0",
    )
    search_args(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="texts per batch (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="default %(default)s (the reference ran on the CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s, as the reference)")
    parser.add_argument("--save", type=Path, help="also write the search's result as JSON (for --compare later)")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="JSON",
        help="run nothing: print a result saved with --save against the reference's records as they are now",
    )
    args = parser.parse_args()
    if args.compare:
        compare(json.loads(args.compare.read_text(encoding="utf-8")), args.folder)
        return
    torch.set_num_threads(args.threads)
    overrides = parse_config(args.set) if args.set else {}
    optim = OptimConfig.from_dict(
        {"preset": args.preset, "lr": args.lr, "max_steps": args.max_steps, "patience": args.patience, **overrides}
    )
    grid = sorted(set(args.lengths))
    search = search_config(args)
    rows = read_texts(args.folder / "texts.jsonl")
    spec = resolve_model(args.model, load_registry("config/models.yaml"))

    t0 = time.perf_counter()
    lm = load_model(spec, args.device)
    ids = [lm.tokenize(row["text"]) for row in rows]

    def seed(i, L):
        return derive_seed(spec.name, "lee", 1, L, rows[i]["id"])

    def progress(pairs):  # a search takes many minutes on a CPU: show each attempt as it ends
        for r, a in pairs:
            accuracy = a.outcome.accuracy if a.outcome is not None else float("nan")
            print(
                f"[{time.perf_counter() - t0:7.0f} s] {rows[r.index]['id']} L={a.L} "
                f"{'fresh' if a.warm_start is None else f'warm from {a.warm_start}'}: accuracy "
                f"{accuracy:.3f} in {a.steps} steps ({a.stop_reason}){' -> done' if r.done else ''}",
                file=sys.stderr,
                flush=True,
            )

    results = search_capacity(
        lm,
        ids,
        1,
        "paper",
        seed,
        optim,
        lengths_grid=grid,
        batch_size=args.batch_size,
        on_attempts=progress,
        config=search,
    )
    wall = time.perf_counter() - t0
    settings = {k: v for k, v in optim.as_dict().items() if k != "preset"}
    run = {
        "header": (
            f"model {spec.name}, {len(rows)} texts, K=1, paper protocol, grid {grid}, preset {optim.preset} "
            f"{settings}, fails {search.fails}, retry fresh {search.retry_fresh}, device {lm.device}, "
            f"torch threads {torch.get_num_threads()}"
        ),
        "model": spec.name,
        "grid": grid,
        "wall_s": wall,
        "texts": [
            {
                "id": str(row["id"]),
                "capacity": r.capacity,
                "steps": r.steps,
                "attempts": [
                    {
                        "L": a.L,
                        "lossless": a.lossless,
                        "steps": a.steps,
                        "greedy_exact": a.outcome is not None and a.outcome.greedy_exact,
                    }
                    for a in r.attempts
                ],
            }
            for row, r in zip(rows, results, strict=True)
        ],
    }
    if args.save:
        args.save.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    compare(run, args.folder)


def compare(run: dict, folder: Path) -> None:
    """Print a search run (as --save writes it) against the reference's records as they are now."""
    cells = [r for r in read_jsonl(folder / "lee.jsonl") if r["model"] == run["model"]]
    reference = {t["sample_id"]: t for t in text_capacities(cells)}
    # The recorded wall times include whatever else shared the machine (one cell was paused by
    # SIGSTOP for over an hour): a steady estimate prices each cell's steps at the median
    # seconds per step of the cells at its length.
    per_step = {
        L: statistics.median(r["wall_s"] / r["steps"] for r in cells if r["L"] == L and r["steps"])
        for L in {r["L"] for r in cells if r["steps"]}
    }
    steady = defaultdict(float)
    for r in cells:
        steady[str(r["sample_id"])] += r["steps"] * per_step.get(r["L"], 0.0)
    print(run["header"])
    position = {L: j for j, L in enumerate([0, *run["grid"]])}
    counted, within, ref_steps, ref_wall, ref_steady, our_steps = 0, 0, 0, 0.0, 0.0, 0
    for text in run["texts"]:
        ref = reference.get(text["id"])
        tried = " ".join(f"{a['L']}{'+' if a['lossless'] else '-'}({a['steps']})" for a in text["attempts"])
        last_ok = [a for a in text["attempts"] if a["lossless"] and a["L"] == text["capacity"]]
        exact = bool(last_ok) and last_ok[-1]["greedy_exact"]
        if ref is None or not ref["bracketed"]:
            state = "reference not bracketed yet" + (f" (>= {ref['capacity']})" if ref else "")
            print(
                f"  {text['id']}: ours {text['capacity']} (greedy {'exact' if exact else 'not exact'}); {state}; "
                f"attempts {tried}"
            )
            continue
        close = abs(position[text["capacity"]] - position[ref["capacity"]]) <= 1 or (
            text["capacity"] > ref["capacity"] and exact
        )
        counted += 1
        within += close
        ref_steps += ref["steps"]
        ref_wall += ref["wall_s"]
        ref_steady += steady[text["id"]]
        our_steps += text["steps"]
        print(
            f"  {text['id']}: ours {text['capacity']} (greedy {'exact' if exact else 'not exact'}), reference "
            f"{ref['capacity']} (first fail {ref['first_fail']}, {ref['steps']} steps): "
            f"{'within one grid step' if close else 'OFF'}; attempts {tried}"
        )
    all_steps = sum(t["steps"] for t in run["texts"])
    wall = run["wall_s"]
    print(f"{'procedure':36s} {'steps':>8s} {'wall s':>9s}  capacities per text")
    print(f"{'fast search (all texts)':36s} {all_steps:8d} {wall:9.1f}  {[t['capacity'] for t in run['texts']]}")
    if not counted:
        print("no text of the reference is bracketed yet: nothing to compare")
        return
    # our wall time on the compared texts: their share of our steps (one batch holds all texts)
    ours_wall = wall * our_steps / max(all_steps, 1)
    print(f"{'reference, bracketed texts':36s} {ref_steps:8d} {ref_wall:9.1f}")
    print(f"{'fast search, the same texts':36s} {our_steps:8d} {ours_wall:9.1f}  (wall: its share of the steps)")
    print(f"steps ratio fast / reference: {our_steps / ref_steps:.3f} (target <= 0.10)")
    ids = {t["id"] for t in run["texts"]}
    so_far = sum(t["steps"] for t in reference.values() if t["sample_id"] in ids)
    if counted < len(run["texts"]) and so_far:  # the unfinished texts' reference steps can only grow
        print(
            f"all texts, against the reference's steps so far ({so_far}): {all_steps / so_far:.3f} "
            "(an upper bound: the reference is still running)"
        )
    print(
        f"wall-time speed-up reference / fast: {ref_wall / max(ours_wall, 1e-9):.1f}x as recorded, "
        f"{ref_steady / max(ours_wall, 1e-9):.1f}x against the reference's steady estimate ({ref_steady:.0f} s: "
        "each cell's steps at the median s/step of its length) (target >= 10x)"
    )
    print(
        f"texts within one grid step of the reference (or above it, greedy-confirmed): {within}/{counted} (target: all)"
    )


if __name__ == "__main__":
    main()
