"""The paper-budget reference's cells again, from other seeds: is a reference capacity a draw?

    python benchmarks/repeat.py --folder benchmarks/validation5 --cells lee-0060:16,24 --seeds 4
    python benchmarks/repeat.py --folder benchmarks/validation5 --cells lee-0060:16,24 --seeds 4 --report

The reference (benchmarks/reference.py) runs each (text, L) once, from the seeded random init
with the paper's optimiser (memcap.core.engine.OptimConfig's defaults: AdamW lr 0.01, at most
5000 steps, patience 2000), and a text's capacity is read from those cells. Many of its failing
cells end one token short, and many texts pass a length above one they failed
(benchmarks/monotone.py), so another seed may fail a cell the reference passed, or pass one it
failed. This reruns chosen cells from `--seeds` other seeds (repeat i takes
derive_seed(model, "lee", 1, L, text, "repeat", i)), with the same optimiser and the same
lossless rule (accuracy >= 0.99), and prints each beside the reference's own cell. Cells run
`--batch-size` at a time; each finished batch is appended to <folder>/repeat.jsonl, and a rerun
skips the (text, L, repeat) already there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memcap.io import read_jsonl, write_jsonl
from reference import load_records


def parse_cells(text: str) -> list[tuple[str, int]]:
    """'lee-0060:16,24 lee-0041:12' -> [('lee-0060', 16), ('lee-0060', 24), ('lee-0041', 12)]."""
    cells = []
    for item in text.split():
        sample, _, lengths = item.partition(":")
        try:
            Ls = [int(L) for L in lengths.split(",")]
        except ValueError:
            Ls = []
        if not sample or not Ls or min(Ls) < 2:
            raise SystemExit(f"--cells: {item!r} is not TEXT:L[,L...] with whole lengths >= 2 (e.g. lee-0060:16,24)")
        cells += [(sample, L) for L in Ls]
    return cells


def reference_cells(folder: Path) -> dict[tuple[str, int], dict]:
    """The reference's K = 1 grid records by (text, L), as reference.py reads them."""
    rows = load_records(folder / "lee.jsonl")
    return {(str(r["sample_id"]), r["L"]): r for r in rows if r["K"] == 1 and r["mode"] == "grid"}


def rates(folder: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """(text, L) -> (runs that passed, runs) over what <folder>/repeat.jsonl holds so far."""
    out = folder / "repeat.jsonl"
    counts: dict[tuple[str, int], tuple[int, int]] = {}
    for r in read_jsonl(out) if out.exists() else []:
        passed, runs = counts.get((r["sample_id"], r["L"]), (0, 0))
        counts[(r["sample_id"], r["L"])] = (passed + r["lossless"], runs + 1)
    return counts


def describe(row: dict | None) -> str:
    if row is None:
        return "not run"
    verdict = "passed" if row["lossless"] else "failed"
    return f"{verdict} ({row['max_correct']} of {row['scored']}, {row['steps']} steps)"


def run(args, todo: list[tuple[str, int, int]], texts: dict[str, str], out: Path) -> None:
    """Compress the cells (text, L, repeat) to do, a batch at a time, appending each batch."""
    import torch

    from memcap.core.engine import OptimConfig, compress_batch
    from memcap.core.models import load_model, load_registry, resolve_model
    from memcap.records import lossless
    from memcap.stages.batching import derive_seed

    torch.set_num_threads(args.threads)
    spec = resolve_model(args.model, load_registry(args.models_file))
    lm = load_model(spec, "cpu")
    optim = OptimConfig(max_steps=args.max_steps) if args.max_steps else OptimConfig()
    for start in range(0, len(todo), args.batch_size):
        batch = todo[start : start + args.batch_size]
        ids = [lm.tokenize(texts[sample])[:L] for sample, L, _ in batch]
        seeds = [derive_seed(spec.name, "lee", 1, L, sample, "repeat", i) for sample, L, i in batch]

        def show(step, active, best, _first=start):  # a line every 500 steps: these runs take hours
            if step % 500 == 0:
                accuracies = " ".join(f"{b:.2f}" for b in best)
                print(f"  cells {_first + 1}-{_first + len(best)}: step {step}, {active} running, best {accuracies}")

        outcomes = compress_batch(lm, ids, 1, "paper", seeds, optim, progress=show)
        rows = read_jsonl(out) if out.exists() else []
        for (sample, L, i), seed, o in zip(batch, seeds, outcomes, strict=True):
            passed = lossless(o.status, o.correct, o.max_correct, o.scored, "paper")
            rows.append(
                dict(
                    sample_id=sample, L=L, repeat=i, seed=seed, lossless=passed, max_correct=o.max_correct,
                    scored=o.scored, steps=o.steps, stop_reason=o.stop_reason, max_steps=optim.max_steps,
                )
            )  # fmt: skip
            print(f"{sample} L={L} repeat {i}: {describe(rows[-1])}", flush=True)
        write_jsonl(rows, out)


def report(cells: list[tuple[str, int]], seeds: int, reference: dict, repeats: list[dict]) -> None:
    """Per cell the reference's outcome and the repeats' (up to `seeds`), and how often they agree."""
    from memcap.records import lossless

    same_total = runs_total = 0
    for sample, L in cells:
        ref = reference.get((sample, L))
        own = [r for r in repeats if (r["sample_id"], r["L"]) == (sample, L) and r["repeat"] <= seeds]
        if ref is not None:
            ref = {
                **ref,
                "lossless": lossless(ref["status"], ref["correct"], ref["max_correct"], ref["scored"], "paper"),
            }
        passed = sum(r["lossless"] for r in own)
        print(
            f"  {sample} L={L}: reference {describe(ref)}; other seeds passed {passed} of {len(own)}: "
            + ", ".join(describe(r) for r in sorted(own, key=lambda r: r["repeat"]))
        )
        if ref is not None:
            same_total += sum(r["lossless"] == ref["lossless"] for r in own)
            runs_total += len(own)
    print(f"the reference's outcome repeated in {same_total} of {runs_total} runs from other seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="a reference's folder (texts.jsonl, lee.parts)")
    parser.add_argument("--cells", required=True, help="TEXT:L[,L...], space-separated, e.g. 'lee-0060:16,24'")
    parser.add_argument("--seeds", type=int, default=4, help="other seeds per cell (default %(default)s)")
    parser.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    parser.add_argument("--models-file", default="config/models.yaml")
    parser.add_argument("--batch-size", type=int, default=8, help="cells optimised together (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    parser.add_argument("--max-steps", type=int, help="for tests only: fewer steps than the paper's 5000")
    parser.add_argument("--report", action="store_true", help="print what is recorded, run nothing")
    args = parser.parse_args()
    if args.seeds < 1 or args.batch_size < 1:
        parser.error("--seeds and --batch-size must be >= 1")
    cells = parse_cells(args.cells)
    texts = {str(r["id"]): r["text"] for r in read_jsonl(args.folder / "texts.jsonl")}
    unknown = sorted({sample for sample, _ in cells} - set(texts))
    if unknown:
        parser.error(f"--cells: {', '.join(unknown)} not in {args.folder / 'texts.jsonl'} (it has {', '.join(texts)})")
    out = args.folder / "repeat.jsonl"
    done = {(r["sample_id"], r["L"], r["repeat"]) for r in read_jsonl(out)} if out.exists() else set()
    todo = [(s, L, i) for s, L in cells for i in range(1, args.seeds + 1) if (s, L, i) not in done]
    if todo and not args.report:
        run(args, todo, texts, out)
    print(f"{args.folder}: the reference's cells and the same cells from other seeds (paper optimiser, K=1)")
    report(cells, args.seeds, reference_cells(args.folder), read_jsonl(out) if out.exists() else [])


if __name__ == "__main__":
    main()
