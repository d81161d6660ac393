"""The paper-budget reference: each text's decoding capacity under the paper's own optimiser.

    python benchmarks/reference.py                 # runs or resumes it: hours on one CPU thread
    python benchmarks/reference.py --report        # prints what is recorded so far, runs nothing
    python benchmarks/reference.py --folder benchmarks/validation --skip 6   # the validation set

Two text sets, chosen by a rule fixed before any result was seen (docs/benchmarks.md):
- tuning (benchmarks/reference/): the first 6 Lee articles with >= 100 tokens (second halves);
  every optimiser and search setting is chosen by looking at these;
- validation (benchmarks/validation/): the next 6 such articles (`--skip 6`), in corpus order;
  every number claimed for a preset is measured on these, and nothing is tuned on them.

SmolLM2-135M, paper protocol, K = 1, AdamW exactly as the paper (lr 1e-2, betas 0.9/0.9,
weight decay 0.01, at most 5000 steps, patience 2000: memcap.core.engine.OptimConfig's defaults),
on the first `--texts` Lee news articles (second halves, gensim's wheel) with at least
`--min-tokens` tokens. Every (text, L) is an independent fresh start, as in the paper's grid,
run by the resumable grid job (memcap.stages.job.run_job, batch 1, one torch thread): its records and
vectors live in benchmarks/reference/, small enough to commit, so a later session or machine
resumes where this one stopped and never computes a cell twice.

What it saves against the paper's full grid: a text goes up `--lengths` only until it has
failed at `--fails` consecutive lengths (or the next length is longer than the text), so the
grid brackets every text's capacity (the last length it passes and the first it fails are
both in it) without spending 5000 steps at every length far above it. Lengths are taken round
robin (every text's next length, shortest first), so an interrupted run has advanced all texts.
Each cell's records are a file of their own (lee.parts/), so processes given disjoint texts
(`--samples`) run one reference on several cores, each cell exactly as one process would.

Prints per text the best accuracy and steps at each length, its capacity (largest lossless
length; lossless = accuracy >= 0.99, memcap's one rule), whether it is bracketed yet, then the
decoding capacity over the texts ((a) the paper's rule over the lengths every text has run,
(b) the per-sample rule, memcap.analysis.metrics.capacity_from_samples), total optimiser steps and the
summed compute time of the cells (model loads aside).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HERE = Path(__file__).resolve().parent / "reference"
ARTICLES = 120  # Lee articles the sets are drawn from (the first 60 held 34 of >= 100 tokens: five sets)
LENGTHS = [8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 128]


def select_texts(path: Path, n: int, min_tokens: int, model: str, models_file: str, skip: int = 0) -> list[dict]:
    """The reference's texts, written once to `path` (then always read back from it): the
    Lee articles with at least `min_tokens` tokens, in corpus order, after the first `skip`."""
    from memcap.core.models import load_model, load_registry, resolve_model
    from memcap.io import write_jsonl
    from memcap.stages.texts import natural_texts, read_texts

    if path.exists():
        return read_texts(path)
    tokenize = load_model(resolve_model(model, load_registry(models_file)), "cpu").tokenize
    lee = {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor"}
    # the first ARTICLES in corpus order: a longer prefix leaves every earlier set as it was
    articles = natural_texts("lee", lee, samples=ARTICLES)
    rows = [r for r in articles if len(tokenize(r["text"])) >= min_tokens][skip : skip + n]
    if len(rows) < n:
        raise SystemExit(f"only {skip + len(rows)} of the first {ARTICLES} Lee articles have {min_tokens} tokens")
    write_jsonl(rows, path, ensure_ascii=False)
    return rows


def load_records(out: Path) -> list[dict]:
    from memcap.io import read_jsonl

    parts = out.with_suffix(".parts")
    return [r for p in sorted(parts.glob("*.jsonl")) for r in read_jsonl(p)] if parts.exists() else []


def next_length(records: list[dict], lengths: list[int], fails: int) -> int | None:
    """The text's next grid length, or None when its capacity is bracketed (memcap.analysis.paper_budget:
    `fails` failing lengths in a row, or the text ended) or the grid is done. Lengths run in
    grid order, so the stop rule sees them in that order."""
    from memcap.analysis.paper_budget import text_capacities

    if records and text_capacities(records, fails)[0]["bracketed"]:
        return None
    done = {r["L"] for r in records}
    return next((L for L in lengths if L not in done), None)


def report(rows: list[dict], records: list[dict], lengths: list[int], fails: int) -> None:
    from memcap.analysis.paper_budget import reference_summary, text_capacities
    from memcap.records import accuracy_is_lossless

    print(f"{len(rows)} texts, K=1, paper protocol, grid {lengths}, a text stops after {fails} failing lengths")
    texts = {t["sample_id"]: t for t in text_capacities(records, fails)}
    for row in rows:
        t = texts.get(str(row["id"]))
        if t is None:
            print(f"  {row['id']}: not started")
            continue
        state = f"bracketed {t['capacity']}..{t['first_fail']}" if t["bracketed"] else "running"
        cells = " ".join(
            f"{r['L']}:{r['max_accuracy']:.2f}({r['steps']})"
            for r in sorted(records, key=lambda r: r["L"])
            if str(r["sample_id"]) == str(row["id"])
        )
        print(f"  {row['id']}: capacity {t['capacity']} ({state}); L:accuracy(steps) {cells}")
    common = [
        L
        for L in lengths
        if all(any(r["L"] == L and str(r["sample_id"]) == str(row["id"]) for r in records) for row in rows)
    ]
    passing = [
        L for L in common if accuracy_is_lossless(sum(r["max_accuracy"] for r in records if r["L"] == L) / len(rows))
    ]
    for s in reference_summary([texts[str(r["id"])] for r in rows if str(r["id"]) in texts]):  # rows' order
        print(f"per-text capacities: {s['capacities']} ({s['n_bracketed']}/{len(rows)} texts bracketed)")
        print(
            f"decoding capacity: (a) paper's rule over the lengths every text ran ({common}): "
            f"{max(passing) if passing else 'none'}; (b) per-sample rule: "
            f"{'' if s['complete'] else '>= '}{s['capacity']}"
        )
        print(f"total optimiser steps {s['steps']}, compute time {s['hours']:.2f} h over {len(records)} cells")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    parser.add_argument("--models-file", default="config/models.yaml")
    parser.add_argument("--texts", type=int, default=6, help="number of Lee texts (default %(default)s)")
    parser.add_argument(
        "--skip", type=int, default=0, help="qualifying texts skipped before the first one kept (default %(default)s)"
    )
    parser.add_argument("--min-tokens", type=int, default=100, help="shortest text kept (default %(default)s)")
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="length grid (default %(default)s)")
    parser.add_argument(
        "--fails", type=int, default=2, help="consecutive failing lengths that end a text (default %(default)s)"
    )
    parser.add_argument("--folder", type=Path, default=HERE, help="where texts and records live (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    parser.add_argument(
        "--samples",
        nargs="+",
        metavar="ID",
        help="run only these texts' cells (default: all); processes on disjoint texts share one folder safely",
    )
    parser.add_argument("--report", action="store_true", help="print what is recorded, run nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lengths = sorted(set(args.lengths))
    protocol = "paper"
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    rows = select_texts(folder / "texts.jsonl", args.texts, args.min_tokens, args.model, args.models_file, args.skip)
    ids = [str(row["id"]) for row in rows]
    unknown = sorted(set(args.samples or []) - set(ids))
    if unknown:
        parser.error(f"--samples: {', '.join(unknown)} not in {folder / 'texts.jsonl'} (it has {', '.join(ids)})")
    out = folder / "lee.jsonl"
    while not args.report:
        records = load_records(out)
        todo = []
        for row in rows:
            if args.samples and str(row["id"]) not in args.samples:
                continue
            own = [r for r in records if str(r["sample_id"]) == str(row["id"])]
            L = next_length(own, lengths, args.fails)
            if L is not None:
                todo.append((L, row))
        if not todo:
            break
        L_round = min(L for L, _ in todo)
        from memcap.stages.job import run_job

        for L, row in todo:
            if L != L_round:
                continue
            # one text at a time: the others' records stay in the records file
            run_job(
                args.model,
                folder / "texts.jsonl",
                out,
                lengths=[L],
                K=[1],
                protocol=protocol,
                optim=None,
                batch_size=1,
                device="cpu",
                models_file=args.models_file,
                dataset="lee",
                threads=args.threads,
                progress=False,
                samples={str(row["id"])},
            )
    report(rows, load_records(out), lengths, args.fails)


if __name__ == "__main__":
    main()
