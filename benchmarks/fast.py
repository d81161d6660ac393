"""A search preset against the paper-budget reference, on the tuning and the validation texts.

    python benchmarks/fast.py                      # the claimed configuration (CLAIMED), both sets; an hour+
    python benchmarks/fast.py --folder DIR         # the same on any folder with a texts.jsonl
    python benchmarks/fast.py --max-steps 150 --patience 150   # another configuration (flags override CLAIMED)
    python benchmarks/fast.py --save fast.json     # ... and keep each set's result in <folder>/fast.json;
    python benchmarks/fast.py --compare fast.json  # later: the saved results against the references as they are then
    python benchmarks/fast.py --compare fast.json --max-steps 150 ...  # while it runs: so far (give its flags)
    python benchmarks/fast.py --folder DIR --prior OTHER/run.json.progress.jsonl   # fresh starts from a prior
    python benchmarks/fast.py --folder DIR --prior config/priors/smollm2-135m.safetensors   # ... or a prior file
    python benchmarks/fast.py --save new.json --prior-redo ... --fork old.json      # reuse old's attempts

With --save, every attempt is also kept in <folder>/<NAME>.progress.jsonl as it ends (its
vectors too), and a run started again with the same settings replays those attempts instead of
recomputing them: a search of an hour or more survives a stop. Other settings are refused.
--fork OLD starts a new --save from OLD's progress file in the same folder, a run of the same
settings but for the search's (and --prior-redo): per text, its attempts are replayed as far as
this search makes the same ones, and the rest is run.

Runs memcap's capacity search (memcap.core.search) with CLAIMED's settings
(memcap.core.search.CLAIMED), or with the preset, optimiser keys and search flags given, on the
texts of each folder: by default the tuning texts (benchmarks/reference/, and
benchmarks/validation/ and validation2/ since each judged an earlier claim) and the validation
sets (benchmarks/validation3/ to validation9/, which judged F, H, P5, P7, P9, P10 and P11), each chosen by the
rule in docs/benchmarks.md. CLAIMED's fresh starts begin from the model's prior file, rebuilt
on each folder without the vectors of its own texts (--prior, --no-prior). Settings are chosen
on the tuning texts; a claim is made on the validation texts only, and each set's line says
which it is. Each folder's reference (benchmarks/reference.py: the paper's optimiser, 5000
steps, every (text, length) from a fresh start, batch 1, one thread) is read from its records
when the search ends. Seeds are the compress job's (memcap.stages.batching.derive_seed), so a
first attempt starts where the reference's cell did.

Prints, per folder, each text's capacity (its largest lossless grid length) beside the
reference's, then one line per set side by side: the per-text capacities and their mean, the
reference's, the steps ratio and the targets of the trusted-capacity issue: every text at
least the reference's minus one grid step, no 0 where the reference passes any length, a mean
at least the reference's, at most 10 % of its steps. Texts the reference has not bracketed yet
are shown, and counted in the targets as far as the reference goes ("so far"). Steps per decoded
token stand beside the published figures of the closest peer (mrsndmn/compression_horizon), and
a last line says where the steps went: passing attempts, failing ones at or below each text's
capacity, failing ones above it, and the share of fresh starts among them. With two or more
folders, a pooled line takes their texts together: the share within one grid step of the
reference with its Wilson 95 % interval, the mean per-text difference with a paired bootstrap
interval, and the steps ratio (pool one configuration's validation sets, as
`--compare claim-P7.json --folder benchmarks/validation6 --folder benchmarks/validation9`). A text more than a
grid step below its reference gets how often the reference's cell at its capacity passed from
other seeds (<folder>/repeat.jsonl, benchmarks/repeat.py), or the repeat.py command that finds out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from scipy.stats import binomtest

from common import prior_vectors, rows_by_text
from memcap.analysis.capacity_stats import bootstrap_mean_ci
from memcap.analysis.paper_budget import grid_position, text_capacities, within_one_step
from memcap.cli import search_args, search_flags
from memcap.core.engine import PRESETS, OptimConfig
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.search import CLAIMED, Attempt, Search, SearchConfig, search_capacity
from memcap.io import read_jsonl, write_jsonl
from memcap.stages.batching import derive_seed
from memcap.stages.job import text_sha
from memcap.stages.prior import prior_without
from memcap.stages.texts import read_texts
from optimizer import parse_config
from reference import HERE, LENGTHS

# Each set's role (docs/benchmarks.md): a validation set judges one claim, then joins the tuning texts.
SETS = {
    "tuning": HERE,
    "tuning since D2's judgement": HERE.parent / "validation",
    "tuning since E's judgement": HERE.parent / "validation2",
    "validation (it judged F; tuning for later candidates)": HERE.parent / "validation3",
    "validation (it judged H; tuning for later candidates)": HERE.parent / "validation4",
    "validation (it judged P5; tuning for later candidates)": HERE.parent / "validation5",
    "validation (it judged P7, claimed; tuning for later candidates)": HERE.parent / "validation6",
    "validation (it judged P9; tuning for later candidates)": HERE.parent / "validation7",
    "validation (it judged P10; tuning for later candidates)": HERE.parent / "validation8",
    "validation (it judged P11, then P7 again; tuning for later candidates)": HERE.parent / "validation9",
}
# Published by mrsndmn/compression_horizon (SmolLM2-1.7B, growth-schedule ablation): steps per token.
PEER = "peer (compression_horizon, SmolLM2-1.7B): 26 steps/token one token per stage, 14 geometric + bisection"


def main() -> None:
    args = parse_args()
    folders = args.folder or [f for f in SETS.values() if (f / "texts.jsonl").is_file()]
    if args.compare:
        folders = [f for f in folders if (f / args.compare).is_file() or progress_of(f, args.compare).is_file()]
        if not folders:
            raise SystemExit(f"no folder holds a saved search {args.compare!r}; save one with --save")
        runs = [saved_or_so_far(f, args) for f in folders]
    else:
        optim, search = settings(args)
        runs = [run_search(folder, args, optim, search) for folder in folders]
        if args.save:
            for folder, run in zip(folders, runs, strict=True):
                (folder / args.save).write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    named = args.compare or args.save  # its progress rows say which attempts started fresh
    progress = [progress_of(f, named) if named else None for f in folders]
    summaries = [compare(*fields) for fields in zip(runs, folders, progress, strict=True)]
    # pooled only over folders someone chose: the default run's sets mix tuning and validation roles
    side_by_side(summaries, pool=bool(args.folder or args.compare))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """fast.py's flags (argv: sys.argv[1:] when None)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name (default %(default)s)")
    parser.add_argument(
        "--folder",
        type=Path,
        action="append",
        help="a folder with texts.jsonl (and reference records); repeat for more (default: tuning and validation sets)",
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="grid (default: the reference's)")
    parser.add_argument(
        "--growth",
        type=float,
        help="grow geometrically instead of along the grid: start at the grid's first length, multiply by this "
        "while lossless (up to its last), then bisect between the last lossless and the failing length "
        "(a growth schedule; capacities are then read against the grid at the grid length at or below them)",
    )
    parser.add_argument(
        "--resolution", type=int, default=1, help="with --growth: bisect down to this many tokens (default 1)"
    )
    parser.add_argument(
        "--stage",
        type=int,
        help="grow by this many tokens per length instead of along the grid (1: the peer's one token per stage), "
        "from the grid's first length to its last; capacities are read against the grid as with --growth",
    )
    parser.add_argument(
        "--checks-on-grid",
        action="store_true",
        help="with --stage: fresh checks (--fresh-check-below) go to the grid's lengths above a text's capacity, "
        "not to its next stages",
    )
    parser.add_argument("--preset", choices=list(PRESETS), help=f"default: CLAIMED's ({CLAIMED['optim']['preset']})")
    parser.add_argument("--lr", type=float, help="override the preset's lr")
    parser.add_argument("--max-steps", type=int, help="override the preset's max_steps")
    parser.add_argument("--patience", type=int, help="override the preset's patience")
    parser.add_argument(
        "--set",
        default="",
        metavar="KEY=VALUE,...",
        help="override any other OptimConfig keys, e.g. schedule=constant,warmup=0",
    )
    search_args(parser, defaults=CLAIMED["search"])  # --fails, --retry-fresh, --budget, ...: each overrides CLAIMED's
    parser.add_argument(
        "--prior",
        type=Path,
        action="append",
        metavar="FILE",
        help="a saved search run on other texts (a --save progress file; repeat for more) or one prior file "
        "(`memcap prior`, .safetensors): every fresh start begins from the mean of their lossless first-length "
        "vectors instead of the seeded random init (benchmarks/first_length.py measures it). A progress file "
        "of a run on a text of --folder's is refused; a prior file built from some of them is rebuilt from "
        "its recorded sources without their vectors. Default: CLAIMED's prior for the model, if it has one",
    )
    parser.add_argument(
        "--no-prior", action="store_true", help="fresh starts from the random init, whatever CLAIMED says"
    )
    parser.add_argument(
        "--prior-redo",
        action="store_true",
        help="with --prior: a text about to end at 0 or at the first length it passed from the prior redoes that "
        "length once from the seeded random init (fresh settings) and goes on warm from there",
    )
    parser.add_argument(
        "--fork",
        metavar="NAME",
        help="with --save (a new one): begin from <folder>/NAME.progress.jsonl, a run whose header differs from "
        "this one's only in its search settings: each text's attempts are taken as far as this search makes the "
        "same ones",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="texts per batch (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="default %(default)s (the reference ran on the CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s, as the reference)")
    parser.add_argument("--save", metavar="NAME", help="also write each folder's result as JSON to <folder>/NAME")
    parser.add_argument(
        "--compare",
        metavar="NAME",
        help="run nothing: print each folder's saved <folder>/NAME against its reference's records as they are now "
        "(a run still in progress: its progress file so far, replayed under the flags given, which must be its own)",
    )
    args = parser.parse_args(argv)
    if args.stage is not None and (args.growth is not None or args.stage < 1):
        parser.error(
            f"--stage takes a number of tokens >= 1 and no --growth; got --stage {args.stage}, --growth {args.growth}"
        )
    if args.checks_on_grid and args.stage is None:
        parser.error("--checks-on-grid goes with --stage (a grid search's checks are on its grid already)")
    if args.prior_redo and not args.prior:
        parser.error("--prior-redo redoes a start from the prior: give --prior too")
    if args.prior and args.no_prior:
        parser.error("--prior and --no-prior: give one")
    files = [p for p in args.prior or () if p.suffix == ".safetensors"]
    if files and len(args.prior) > 1:
        parser.error(f"--prior: one prior file ({files[0]}) or progress files, not both nor two prior files")
    if args.fork and not args.save:
        parser.error("--fork begins a --save NAME from another run: give --save too")
    return args


def settings(args) -> tuple[OptimConfig, SearchConfig]:
    """CLAIMED's settings, with the flags given on top."""
    optim = dict(CLAIMED["optim"], **(parse_config(args.set) if args.set else {}))
    given = {"preset": args.preset, "lr": args.lr, "max_steps": args.max_steps, "patience": args.patience}
    optim.update({k: v for k, v in given.items() if v is not None})
    # a flag given as "none" turns CLAIMED's setting off (memcap.cli.search_flags)
    return OptimConfig.from_dict(optim), SearchConfig.from_dict({**CLAIMED["search"], **search_flags(args)})


def run_search(folder: Path, args, optim: OptimConfig, search: SearchConfig) -> dict:
    """The search on one folder's texts, as a dict (what --save writes); with --save, resumed
    from <folder>/<NAME>.progress.jsonl where an earlier run of the same settings stopped."""
    torch.set_num_threads(args.threads)
    grid = sorted(set(args.lengths))
    rows = read_texts(folder / "texts.jsonl")
    registry = load_registry("config/models.yaml")
    spec = resolve_model(args.model, registry)
    t0 = time.perf_counter()
    lm = load_model(spec, args.device)
    ids = [lm.tokenize(row["text"]) for row in rows]
    prior, note = fresh_prior(args, spec, rows, grid[0], registry)
    header = run_header(folder, args, spec.name, len(rows), optim, search, lm.device, torch.get_num_threads(), note)
    progress_file = progress_of(folder, args.save) if args.save else None
    if args.fork and not progress_file.is_file():
        fork(progress_of(folder, args.fork), progress_file, header, ids, args, grid, search, prior)
    done, earlier_wall = read_progress(progress_file, header, len(rows))
    log = list(done)  # every attempt in the order made: the replayed ones, then this run's

    def seed(i, L):
        return derive_seed(spec.name, "lee", 1, L, rows[i]["id"])

    def on_attempts(pairs):  # a search takes many minutes on a CPU: show each attempt as it ends
        wall = earlier_wall + time.perf_counter() - t0
        for r, a in pairs:
            accuracy = a.outcome.accuracy if a.outcome is not None else float("nan")
            start = "fresh" if a.warm_start is None else f"warm from {a.warm_start}"
            start += f" mixed with {a.mix:g} of a fresh init" if a.mix else ""
            more = f" extension {a.extension}" if a.extension else ""
            more += f" at lr {a.lr:g} (last token)" if a.lr is not None else ""
            print(
                f"[{wall:7.0f} s] {folder.name} {rows[r.index]['id']} L={a.L} {start}{more}: "
                f"accuracy {accuracy:.3f} in {a.steps} steps ({a.stop_reason}){' -> done' if r.done else ''}",
                file=sys.stderr,
                flush=True,
            )
            log.append(progress_row(r.index, a, wall))
        if progress_file is not None:  # whole batches, rewritten atomically: a stop loses at most one
            write_jsonl([{"header": header}, *log], progress_file)

    history = {i: [attempt_of(r) for r in text] for i, text in rows_by_text(done).items()}
    if done:
        print(f"{folder.name}: {len(done)} attempts replayed from {progress_file}", file=sys.stderr, flush=True)
    results = search_capacity(
        lm,
        ids,
        1,
        "paper",
        seed,
        optim,
        **lengths(args, grid),
        batch_size=args.batch_size,
        on_attempts=on_attempts,
        history=history,
        config=search,
        prior=prior,
        prior_redo=args.prior_redo,
    )
    return saved_run(header, spec.name, grid, earlier_wall + time.perf_counter() - t0, rows, results, log)


def fork(old: Path, new: Path, header: str, ids, args, grid, search: SearchConfig, prior) -> None:
    """Write `new` (this run's progress file) from `old`'s attempts: per text, the head this
    search makes the same (Search.adopt), under this run's header. `old` must be a run of the
    same settings but for the search's, so that the same request gives the same outcome."""
    if not old.is_file():
        raise SystemExit(f"--fork: {old} does not exist")
    first, *rows = read_jsonl(old)
    unsearched = re.compile(r", search \{[^}]*\}|, redone once .*$")
    if unsearched.sub("", first.get("header", "")) != unsearched.sub("", header):
        raise SystemExit(
            f"--fork: {old} is a run of other settings than the search's:\n  {first.get('header')}\nnot\n  {header}"
        )
    replay = Search(
        [len(t) for t in ids], 1, "paper", **lengths(args, grid), config=search, prior=prior, prior_redo=args.prior_redo
    )
    by_text = rows_by_text(rows)
    taken = {i: replay.adopt(i, [attempt_of(r) for r in text]) for i, text in by_text.items()}
    for i, text in sorted(by_text.items()):
        print(f"{new.parent.name}: text {i}: {taken[i]} of {len(text)} attempts taken from {old.name}", file=sys.stderr)
    kept = {id(row) for i, text in by_text.items() for row in text[: taken[i]]}
    write_jsonl([{"header": header}, *(row for row in rows if id(row) in kept)], new)  # in the order made


def saved_run(header: str, model: str, grid: list[int], wall_s: float, rows, results, log) -> dict:
    """A search as --save writes it: per text its capacity, steps and attempts (from the
    progress rows `log`); a text whose search has not ended (so_far()) says "done": false."""
    by_text = defaultdict(list, rows_by_text(log))
    return {
        "header": header,
        "model": model,
        "grid": grid,
        "wall_s": wall_s,
        "texts": [
            {
                "id": str(row["id"]),
                "capacity": r.capacity,
                "steps": r.steps,
                **({} if r.done else {"done": False}),
                "attempts": [
                    {**{k: a[k] for k in ("L", "lossless", "steps", "greedy_exact")}, "fresh": a["warm_start"] is None}
                    for a in by_text[i]
                ],
            }
            for i, (row, r) in enumerate(zip(rows, results, strict=True))
        ],
    }


def fresh_prior(args, spec, rows: list[dict], L: int, registry: dict) -> tuple[torch.Tensor | None, str]:
    """Where the fresh starts on `rows` begin: --prior's vectors (or CLAIMED's prior for this
    model; None: the random init), and how the progress header says so ("" for none). A prior
    file carries its sha1 in the header, so a resume under a rebuilt file is refused; `registry`
    (config/models.yaml's) resolves the models of the sources a prior file is rebuilt from."""
    paths = args.prior
    if paths is None and not args.no_prior and spec.name in CLAIMED["prior"]:
        paths = [Path(CLAIMED["prior"][spec.name])]
    if not paths:
        return None, ""
    if paths[0].suffix != ".safetensors":
        return prior_vectors(paths, L, rows)[0], f", fresh starts from the prior of {', '.join(map(str, paths))}"
    measured = [text_sha(row["text"]) for row in rows]
    try:
        prior = prior_without(paths[0], spec, measured, registry)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"--prior: {err}") from None
    less = f", less its {prior.left_out} vectors of these texts" if prior.left_out else ""
    return prior.vectors, f", fresh starts from the prior file {paths[0]} (sha1 {prior.sha[:12]}{less})"


def run_header(folder: Path, args, model: str, n_texts: int, optim, search, device, threads: int, prior="") -> str:
    """The first line of a progress file: every setting of the run, so a resume with other
    settings is refused. `prior`: how fresh_prior() names the fresh starts' prior."""
    values = {k: v for k, v in optim.as_dict().items() if k != "preset"}
    if getattr(args, "prior_redo", False):
        prior += ", redone once from the random init where a text would end at its prior-born first length"
    return (
        f"{folder}: model {model}, {n_texts} texts, K=1, paper protocol, {schedule(args, sorted(set(args.lengths)))}, "
        f"preset {optim.preset} "
        f"{values}, search {search.as_dict()}, batch {args.batch_size}, device {device}, "
        f"torch threads {threads}{prior}"
    )


def progress_of(folder: Path, name: str) -> Path:
    return folder / f"{name}.progress.jsonl"


def saved_or_so_far(folder: Path, args) -> dict:
    """--compare's run: the saved <folder>/NAME, or while it runs, so_far()."""
    path = folder / args.compare
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else so_far(folder, args)


def so_far(folder: Path, args) -> dict:
    """A run still in progress, as --save will write it, from its progress file alone: its
    attempts replayed through the search's own state machine (no model is loaded) under the
    settings given, which must be the run's (the file's header is checked). Each text still
    searching says "done": false. A text's length in tokens needs the tokenizer, so it is taken
    as unbounded here: a text that will end at its own last token shows as still searching."""
    optim, search = settings(args)
    grid = sorted(set(args.lengths))
    rows = read_texts(folder / "texts.jsonl")
    registry = load_registry("config/models.yaml")
    spec = resolve_model(args.model, registry)
    model = spec.name
    prior, note = fresh_prior(args, spec, rows, grid[0], registry)  # a replay compares starts only
    header = run_header(folder, args, model, len(rows), optim, search, args.device, args.threads, note)
    done, wall = read_progress(progress_of(folder, args.compare), header, len(rows))
    history = {i: [attempt_of(r) for r in text] for i, text in rows_by_text(done).items()}
    replayed = Search(
        [10**9] * len(rows),
        1,
        "paper",
        **lengths(args, grid),
        config=search,
        history=history,
        prior=prior,
        prior_redo=args.prior_redo,
    )
    return saved_run(header, model, grid, wall, rows, replayed.results, done)


def lengths(args, grid: list[int]) -> dict:
    """search_capacity's length arguments: the grid, stages of a few tokens (the search's own grid
    then; with --checks-on-grid its fresh checks still go to the grid), or geometric growth with
    bisection."""
    if args.stage is not None:
        stages = {"lengths_grid": list(range(grid[0], grid[-1] + 1, args.stage))}
        return {**stages, "check_grid": grid} if args.checks_on_grid else stages
    if args.growth is None:
        return {"lengths_grid": grid}
    return {"start": grid[0], "growth": args.growth, "resolution": args.resolution, "max_length": grid[-1]}


def schedule(args, grid: list[int]) -> str:
    if args.stage is not None:
        checks = ", fresh checks on the grid" if args.checks_on_grid else ""
        return f"stages of {args.stage} token(s) from {grid[0]} to {grid[-1]} (grid {grid}{checks})"
    if args.growth is None:
        return f"grid {grid}"
    return f"growth x{args.growth:g} from {grid[0]} to {grid[-1]}, bisection to {args.resolution} (grid {grid})"


# what an Attempt keeps besides its outcome and vectors: all a replay needs, read off the dataclass
REPLAYED = tuple(f.name for f in dataclasses.fields(Attempt) if f.name not in ("outcome", "vectors"))


def progress_row(index: int, a: Attempt, wall_s: float) -> dict:
    """One attempt as the progress file keeps it: all a replay needs (its vectors: a later
    attempt may start from them) and what the summary prints."""
    return {
        "index": index,
        # runs before restart_mix and last_token_lr stay as they were
        **{k: getattr(a, k) for k in REPLAYED if k not in ("mix", "lr") or getattr(a, k)},
        "greedy_exact": a.outcome is not None and a.outcome.greedy_exact,
        "vectors": a.vectors.float().tolist() if a.vectors is not None else None,
        "wall_s": round(wall_s, 1),
    }


def attempt_of(row: dict) -> Attempt:
    vectors = torch.tensor(row["vectors"], dtype=torch.float32) if row["vectors"] is not None else None
    return Attempt(**{k: row[k] for k in REPLAYED if k in row}, vectors=vectors)


def read_progress(path: Path | None, header: str, n_texts: int) -> tuple[list[dict], float]:
    """The attempts an earlier run of these settings recorded in `path`, and its wall time;
    nothing when there is no such file. SystemExit when the file is another run's."""
    if path is None or not path.is_file():
        return [], 0.0
    first, *done = read_jsonl(path)
    if first.get("header") != header:
        raise SystemExit(
            f"{path} holds attempts of other settings:\n  {first.get('header')}\nnot\n  {header}\n"
            "give another --save NAME, or delete the file to start again"
        )
    if any(not 0 <= row["index"] < n_texts for row in done):
        raise SystemExit(f"{path} names texts that {path.parent / 'texts.jsonl'} does not hold")
    return done, max((row["wall_s"] for row in done), default=0.0)


def steady_walls(cells: list[dict]) -> dict[str, float]:
    """Per text, the reference's compute time priced at the median s/step of each length: the
    recorded wall times include whatever else shared the machine (one cell was paused by
    SIGSTOP for over an hour)."""
    per_step = {
        L: statistics.median(r["wall_s"] / r["steps"] for r in cells if r["L"] == L and r["steps"])
        for L in {r["L"] for r in cells if r["steps"]}
    }
    steady = defaultdict(float)
    for r in cells:
        steady[str(r["sample_id"])] += r["steps"] * per_step.get(r["L"], 0.0)
    return steady


def where_steps_go(texts: list[dict], progress: list[dict] | None = None) -> dict[str, int]:
    """A search's steps by what they bought: attempts that passed, failing ones at or below the
    text's capacity (stuck lines, restarts, checks), failing ones above it (the bracket), and,
    across those, the attempts that started fresh (their own init or a continuation of one).
    `texts` as a saved run holds them; runs saved before an attempt kept "fresh" take it from
    their progress rows (`progress`; without either, "fresh" is None)."""
    where = {"passing": 0, "at or below": 0, "above": 0, "fresh": 0}
    fresh_of = defaultdict(list)
    for row in progress or []:
        fresh_of[row["index"]].append(row["warm_start"] is None)
    known = True
    for i, text in enumerate(texts):
        flags = [a.get("fresh") for a in text["attempts"]]
        if None in flags:
            flags = fresh_of.get(i, [])
            known = known and len(flags) == len(text["attempts"])
        for a, fresh in zip(text["attempts"], flags, strict=False):
            kind = "passing" if a["lossless"] else "at or below" if a["L"] <= text["capacity"] else "above"
            where[kind] += a["steps"]
            where["fresh"] += a["steps"] if fresh else 0
    if not known:
        where["fresh"] = None
    return where


def compare(run: dict, folder: Path, progress: Path | None = None) -> dict:
    """Print one folder's search (as --save writes it) against its reference's records as they
    are now; returns the set's figures for side_by_side(). `progress`: the run's progress file,
    read only for a run saved before its attempts kept "fresh" (where_steps_go())."""
    records = folder / "lee.jsonl"
    cells = [r for r in read_jsonl(records) if r["model"] == run["model"]] if records.is_file() else []
    reference = {t["sample_id"]: t for t in text_capacities(cells)}
    steady = steady_walls(cells)
    steps_up = [0, *run["grid"]]

    print(run["header"])
    # ours: the capacities found; on_grid: each read against the grid (the grid length at or
    # below it), the same for a grid search, and what a growth schedule is compared by
    s = {"set": folder.name, "ours": [], "on_grid": [], "reference": [], "ok": 0, "zeros": 0, "bracketed": 0}
    s["differences"] = []  # per text with a reference: ours on the grid minus the reference's, for pooled()
    # a run in progress (so_far()): texts still searching, and ended texts already below the
    # reference's minus one grid step (final: a text's capacity only grows while it searches)
    s["searching"] = sum(not text.get("done", True) for text in run["texts"])
    s["settled_below"] = []
    s["below_cells"] = []  # (text, L) of those texts' reference capacities, for repeat.py
    s["folder"] = folder
    s["exact"] = 0
    s["role"] = next((role for role, f in SETS.items() if f.resolve() == folder.resolve()), "")
    s.update(
        steps=0, tokens=0, ref_steps=0, ref_wall=0.0, ref_steady=0.0, all_steps=sum(t["steps"] for t in run["texts"])
    )
    for text in run["texts"]:
        ref = reference.get(text["id"])
        tried = " ".join(f"{a['L']}{'+' if a['lossless'] else '-'}({a['steps']})" for a in text["attempts"])
        last_ok = [a for a in text["attempts"] if a["lossless"] and a["L"] == text["capacity"]]
        exact = "exact" if last_ok and last_ok[-1]["greedy_exact"] else "not exact"
        s["ours"].append(text["capacity"])
        s["on_grid"].append(steps_up[grid_position(text["capacity"], run["grid"])])
        s["exact"] += exact == "exact"
        if ref is None:
            print(f"  {text['id']}: ours {text['capacity']} (greedy {exact}); no reference yet; attempts {tried}")
            continue
        ok = within_one_step(text["capacity"], ref["capacity"], run["grid"])
        searching = not text.get("done", True)
        if not ok and not searching:
            s["settled_below"].append(f"{text['id']} ended at {text['capacity']}, reference {ref['capacity']}")
            s["below_cells"].append((text["id"], ref["capacity"]))
        s["reference"].append(ref["capacity"])
        s["differences"].append(s["on_grid"][-1] - ref["capacity"])
        s["ok"] += ok
        s["zeros"] += text["capacity"] == 0 and ref["capacity"] > 0
        s["bracketed"] += ref["bracketed"]
        s["steps"] += text["steps"]
        s["tokens"] += text["capacity"]  # found, on the grid or off it
        s["ref_steps"] += ref["steps"]
        s["ref_wall"] += ref["wall_s"]
        s["ref_steady"] += steady[text["id"]]
        state = f"first fail {ref['first_fail']}" if ref["bracketed"] else "not bracketed yet: so far"
        print(
            f"  {text['id']}: ours {text['capacity']} (greedy {exact}), reference {ref['capacity']} ({state}, "
            f"{ref['steps']} steps): {'ok' if ok else 'BELOW by more than one grid step'}"
            f"{' (still searching: so far)' if searching else ''}; attempts {tried}"
        )
    s["wall_s"] = run["wall_s"] * s["steps"] / max(s["all_steps"], 1)  # its share of the steps
    dated = any("fresh" not in a for text in run["texts"] for a in text["attempts"])
    rows = read_jsonl(progress)[1:] if dated and progress is not None and progress.is_file() else None
    s["where"] = where_steps_go(run["texts"], rows)
    return s


def _mean(values) -> str:
    return f"{statistics.mean(values):5.1f}" if values else "    -"


def side_by_side(summaries: list[dict], pool: bool = True) -> None:
    """One line per set: capacities, the steps ratio and the targets; then, with `pool`, the sets pooled."""
    print(
        f"{'set':11s} {'texts':>5s} {'ours: mean':>10s} {'reference':>9s} {'steps':>7s} {'ref steps':>9s} "
        f"{'ratio':>6s} {'>= ref-1 step':>13s} {'0 where ref > 0':>15s} {'bracketed':>9s} {'steps/token':>11s}"
    )
    for s in summaries:
        n = len(s["reference"])
        if s.get("searching"):
            searching = f"{s['searching']} of {len(s['ours'])} texts still searching"
            print(f"{s['set']}: in progress, {searching} (figures so far)")
        ratio = f"{s['steps'] / s['ref_steps']:6.3f}" if s["ref_steps"] else "     -"
        per_token = s["all_steps"] / max(sum(s["ours"]), 1)
        print(
            f"{s['set']:11s} {len(s['ours']):5d} {_mean(s['on_grid']):>10s} {_mean(s['reference']):>9s} "
            f"{s['steps']:7d} {s['ref_steps']:9d} {ratio} {s['ok']:>6d}/{n:<6d} {s['zeros']:>15d} "
            f"{s['bracketed']:>5d}/{n:<3d} {per_token:11.1f}"
        )
        if n < len(s["ours"]):  # the steps column and the ratio count only texts with a reference
            print(
                f"{'':11s} {len(s['ours']) - n} of {len(s['ours'])} texts have no reference yet: their "
                f"{s['all_steps'] - s['steps']} optimiser steps are left out of the steps column and the ratio"
            )
        low, high = bootstrap_mean_ci(s["ours"])
        print(
            f"{'':11s} {s['role'] + ' texts: ' if s['role'] else ''}ours {s['ours']} (mean "
            f"{statistics.mean(s['ours']):.1f}, bootstrap 95 % interval "
            f"{low:.1f}-{high:.1f}; greedy decoding exact at the capacity: {s['exact']}/{len(s['ours'])}); "
            f"reference {s['reference']}"
        )
        if s["on_grid"] != s["ours"]:  # a growth schedule's or stages' capacities, read against the grid
            low, high = bootstrap_mean_ci(s["on_grid"])
            print(
                f"{'':11s} read against the grid: {s['on_grid']} (mean {statistics.mean(s['on_grid']):.1f}, "
                f"bootstrap 95 % interval {low:.1f}-{high:.1f}): what is compared with grid searches"
            )
        if s["ref_steps"]:
            print(
                f"{'':11s} steps ratio ours / reference: {s['steps'] / s['ref_steps']:.3f} (target <= 0.10); "
                f"wall-time speed-up: {s['ref_wall'] / max(s['wall_s'], 1e-9):.1f}x as recorded, "
                f"{s['ref_steady'] / max(s['wall_s'], 1e-9):.1f}x against the steady estimate"
            )
            ours, ref = s["steps"] / max(s["tokens"], 1), s["ref_steps"] / max(sum(s["reference"]), 1)
            print(
                f"{'':11s} steps per decoded token: ours {ours:.1f}, reference {ref:.1f} "
                f"(ratio {ours / ref:.3f}; a search that finds more tokens spends more steps)"
            )
        where, total = s["where"], max(s["all_steps"], 1)
        fresh = f"; {100 * where['fresh'] / total:.0f} % in fresh starts" if where["fresh"] is not None else ""
        print(
            f"{'':11s} where the steps go: {100 * where['passing'] / total:.0f} % in passing attempts, "
            f"{100 * where['at or below'] / total:.0f} % in failing ones at or below the capacity, "
            f"{100 * where['above'] / total:.0f} % above it{fresh}"
        )
        if s["below_cells"]:  # a reference capacity is one draw of its cells (benchmarks/monotone.py)
            from repeat import rates

            repeated = rates(s["folder"])
            for sample, L in s["below_cells"]:
                if (sample, L) in repeated:
                    passed, runs = repeated[(sample, L)]
                    print(f"{'':11s} {sample} at {L}, the reference's cell: passed from {passed} of {runs} other seeds")
            cells = " ".join(f"{sample}:{L}" for sample, L in s["below_cells"] if (sample, L) not in repeated)
            if cells:
                print(
                    f"{'':11s} below the reference by more than a grid step: is its cell there a draw? "
                    f"python benchmarks/repeat.py --folder {s['folder']} --cells '{cells}' --seeds 4"
                )
    if pool:
        pooled(summaries)
    print(PEER)


def pooled(summaries: list[dict]) -> None:
    """The sets' texts taken together, when there are two or more: one set's six texts say
    little about how often a search lands within a grid step of the paper's optimiser, so this
    gives that rate with its Wilson 95 % interval, the mean per-text difference with a paired
    bootstrap interval, and the steps ratio. Pool only sets of the same role (give their
    folders): a configuration's validation sets, never its tuning sets with them."""
    sets = [s for s in summaries if s["reference"]]
    if len(sets) < 2:
        return
    n, ok = sum(len(s["reference"]) for s in sets), sum(s["ok"] for s in sets)
    references = [r for s in sets for r in s["reference"]]
    differences = [d for s in sets for d in s["differences"]]
    steps, ref_steps = sum(s["steps"] for s in sets), sum(s["ref_steps"] for s in sets)
    bracketed = sum(s["bracketed"] for s in sets)
    rate = binomtest(ok, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = bootstrap_mean_ci(differences)
    so_far = f"; {n - bracketed} of their references not bracketed yet: so far" if bracketed < n else ""
    print(f"pooled over {', '.join(s['set'] for s in sets)}: {n} texts with a reference{so_far}")
    print(
        f"{'':11s} at least the reference's minus one grid step: {ok}/{n} texts ({100 * ok / n:.0f} %, Wilson 95 % "
        f"interval {100 * rate.low:.0f}-{100 * rate.high:.0f} %); 0 where the reference passes a length: "
        f"{sum(s['zeros'] for s in sets)}"
    )
    print(
        f"{'':11s} mean per-text capacity {statistics.mean(references) + statistics.mean(differences):.1f} against "
        f"the reference's {statistics.mean(references):.1f}: {statistics.mean(differences):+.1f} tokens per text "
        f"(paired bootstrap 95 % interval {low:+.1f} to {high:+.1f})"
    )
    if ref_steps:
        ratio = steps / ref_steps
        print(f"{'':11s} steps ratio ours / reference: {steps} / {ref_steps} = {ratio:.3f} (target <= 0.10)")


if __name__ == "__main__":
    main()
