"""The method study of issue 26 (docs/benchmarks.md, "The method study", designed before any of
its runs): whole capacity searches on the tuning texts, one factor at a time away from fast.py's
CLAIMED, each saved as benchmarks/reference/study-<name>.json and resumable.

    python benchmarks/study.py --list             # the runs, their fast.py flags, which are saved
    python benchmarks/study.py lowrank-256        # run one (resumes from its progress file)
    python benchmarks/study.py                    # every run not saved yet, in the table's order
    python benchmarks/study.py --compare          # every saved run against the reference
    python benchmarks/study.py --choose           # the study table, and the max rule applied to it
    python benchmarks/study.py combined           # the run that rule builds from the factors that helped
    python benchmarks/study.py --claim            # the chosen max on the validation texts, once
    python benchmarks/study.py --judge            # that run against issue 26's targets

Each run is `python benchmarks/fast.py --folder benchmarks/reference --save study-<name>.json
<flags>` (run from the repository root) with one torch thread; a run that stops resumes where it stopped, its settings
checked by fast.py's progress header.

The `max` preset is chosen by a rule written down (docs/benchmarks.md, "The max preset") before
the results of the rows it reads: a factor *helps* when its run's mean per-text capacity is at
least HELPS tokens above the base's with every text within one grid step of the reference; the
`combined` run puts every factor that helps (the better learning rate only) on the claimed
search (CLAIMED as it was then, F, fresh_check_below included); max is the run, base and combined
included, with the highest mean among those with every text within one grid step and no more
steps than the reference's, ties going to fewer steps. `--choose` prints each step of that.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUNING = Path("benchmarks/reference")  # relative to REPO, as fast.py's progress headers name it
# The study's base: CLAIMED when it started (candidate E); CLAIMED has since gained
# fresh_check_below (candidate F), which every run but the combined one turns off so the base
# stays the same, and P7's settings and prior, which every run turns off (SINCE_F): the combined
# run was made on CLAIMED as it was then (F).
SINCE_F = ["--restart-mix", "none", "--no-fresh-check-from-random", "--one-fail-from", "none", "--no-prior"]
BASE = ["--fresh-check-below", "none", *SINCE_F]
# name -> fast.py flags on top of the base, in docs/benchmarks.md's order (the costliest last)
STUDY = {
    "base": [],
    "lowrank-64": ["--set", "parametrisation=low_rank,rank=64"],
    "lowrank-256": ["--set", "parametrisation=low_rank,rank=256"],
    # both learning rates times sqrt(d / r) = 3 for SmolLM2-135M (d = 576, r = 64)
    "lowrank-64-lr": ["--lr", "0.9", "--set", "fresh_lr=0.03,parametrisation=low_rank,rank=64"],
    "temperature": ["--set", "temperature=0.25"],
    "margin": ["--set", "margin=0.5"],
    "lr-0.1": ["--lr", "0.1"],
    "lr-1.0": ["--lr", "1.0"],
    "growth": ["--growth", "2"],
    # added 2026-12-05 before its result: the peer's schedule with the most tokens, one token per
    # stage, each warm from the last (on a 1-token grid fresh_after_stuck would restart a text
    # fresh after any one stuck token, which the peer's schedule never does)
    "progressive": ["--stage", "1", "--no-fresh-after-stuck"],
    "generous": ["--max-steps", "1000", "--patience", "500", "--set", "fresh_max_steps=2000,fresh_patience=1000"],
}
# a tuple: one of them at most (the one with the higher mean)
FACTORS = [
    ("lowrank-64", "lowrank-256", "lowrank-64-lr"),
    "temperature",
    "margin",
    ("lr-0.1", "lr-1.0"),
    ("growth", "progressive"),
    "generous",
]
HELPS = 2.0  # tokens of mean per-text capacity above the base's that a factor must add
COMBINED = "combined"  # built by the rule from the saved rows (combined_flags), so run after them
VALIDATION = Path("benchmarks/validation3")  # where max is judged, once (docs/benchmarks.md)
CLAIM = "max.json"  # max's run there, as fast.py --save writes it


def saved(name: str) -> Path:
    return REPO / TUNING / f"study-{name}.json"


def flags_of(name: str) -> list[str]:
    """A run's fast.py flags: the base's and its own (combined: the rule's, on CLAIMED as F was)."""
    return [*SINCE_F, *combined_flags(figures(), settled())] if name == COMBINED else [*BASE, *STUDY[name]]


def command(name: str, compare: bool = False) -> list[str]:
    """The fast.py command line of one run (or of its comparison with the reference)."""
    base = [sys.executable, "benchmarks/fast.py", "--folder", str(TUNING)]
    if compare:
        return [*base, "--compare", saved(name).name]
    return [*base, "--save", saved(name).name, *flags_of(name)]


def figures() -> dict[str, dict]:
    """Each saved run's figures against the tuning reference as it is now: summary()."""
    return {name: summary(saved(name), REPO / TUNING) for name in [*STUDY, COMBINED] if saved(name).is_file()}


def settled() -> dict[str, list[str]]:
    """Runs still in progress that can no longer help (docs/benchmarks.md, "A run that can no
    longer help"): a text of theirs has ended below the reference's minus one grid step, and
    "helps" needs every text within one. Each with those texts, from its progress file so far
    (fast.so_far: replayed without the model)."""
    fast = _fast()
    out = {}
    for name in STUDY:
        progress = fast.progress_of(REPO / TUNING, saved(name).name)
        if saved(name).is_file() or not progress.is_file():
            continue
        args = fast.parse_args(["--folder", str(TUNING), "--compare", saved(name).name, *flags_of(name)])
        with _in_repo(), contextlib.redirect_stdout(io.StringIO()):
            s = fast.compare(fast.so_far(TUNING, args), TUNING)
        if s["settled_below"]:
            out[name] = s["settled_below"]
    return out


@contextlib.contextmanager
def _in_repo():
    """fast.py names folders relative to the repository root, as its progress headers do."""
    import os

    here = Path.cwd()
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(here)


def _fast():
    if str(REPO / "benchmarks") not in sys.path:  # once, however many runs are summarised
        sys.path.insert(0, str(REPO / "benchmarks"))
    import fast

    return fast


def summary(path: Path, folder: Path) -> dict:
    """One saved fast.py search against its folder's reference as it is now (fast.compare,
    quietly): capacities (per text), reference (its capacities), mean, ok (every text within one
    grid step), exact (texts that greedy decoding reproduces exactly at their capacity), steps,
    ref_steps, bracketed (texts the reference has bracketed). A growth schedule's or stages'
    capacities are read against the grid (the grid length at or below each; "found" keeps them
    as found), as docs/benchmarks.md registered them, so every run is compared on the grid."""
    fast = _fast()
    with contextlib.redirect_stdout(io.StringIO()):
        s = fast.compare(json.loads(path.read_text(encoding="utf-8")), folder)
    return {
        "capacities": s["on_grid"],
        "found": s["ours"],
        "reference": s["reference"],
        "exact": s["exact"],
        "mean": statistics.mean(s["on_grid"]),
        "ok": s["ok"] == len(s["ours"]) == len(s["reference"]),
        "steps": s["all_steps"],
        "ref_steps": s["ref_steps"],
        "bracketed": s["bracketed"],
    }


def helps(name: str, figs: dict[str, dict]) -> bool:
    return name in figs and figs[name]["ok"] and figs[name]["mean"] >= figs["base"]["mean"] + HELPS


def waiting(figs: dict[str, dict], decided: frozenset | set | dict = frozenset()) -> list[str]:
    """The runs the combined run reads that are not saved yet, but those in `decided`: still
    running, they can no longer help (settled())."""
    runs = [n for f in ["base", *FACTORS] for n in (f if isinstance(f, tuple) else (f,))]
    return [n for n in runs if n not in figs and n not in decided]


def combined_flags(figs: dict[str, dict], decided: frozenset | set | dict = frozenset()) -> list[str]:
    """The combined run's flags: every factor that helps, merged (one --set), on CLAIMED as it is.
    Refused until the base and every factor's runs are saved or can no longer help (`decided`)."""
    if waiting(figs, decided):
        missing = ", ".join(waiting(figs, decided))
        raise SystemExit(f"the combined run reads every factor's run; not saved yet: {missing}")
    chosen = []
    for factor in FACTORS:
        good = [n for n in (factor if isinstance(factor, tuple) else (factor,)) if helps(n, figs)]
        chosen += sorted(good, key=lambda n: -figs[n]["mean"])[:1]
    flags, sets = [], []
    for name in chosen:
        own = iter(STUDY[name])
        for flag in own:  # "--set K=V,...", "--flag value" or a bare "--flag"
            if flag == "--set":
                sets.append(next(own))
            else:
                flags.append(flag)
    return flags + (["--set", ",".join(sets)] if sets else [])


def choose(figs: dict[str, dict]) -> str | None:
    """The max preset's run: the highest mean among runs with every text within one grid step
    and no more steps than the reference's; ties to fewer steps, then to the combined run (None:
    no run qualifies)."""
    fit = [n for n, f in figs.items() if f["ok"] and f["steps"] <= f["ref_steps"]]
    return min(fit, key=lambda n: (-figs[n]["mean"], figs[n]["steps"], n != COMBINED), default=None)


def main() -> None:
    runs = [*STUDY, COMBINED]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"runs to make (default: those not saved yet); of {', '.join(runs)}")
    parser.add_argument("--list", action="store_true", help="print the runs, their flags and which are saved")
    parser.add_argument("--compare", action="store_true", help="print every saved run against the reference")
    parser.add_argument(
        "--claim", action="store_true", help=f"run the chosen max on {VALIDATION} (saved as {CLAIM}; resumable)"
    )
    parser.add_argument("--judge", action="store_true", help=f"print max's run on {VALIDATION} against the targets")
    parser.add_argument(
        "--choose",
        action="store_true",
        help="print the saved runs side by side and apply the max preset's rule to them",
    )
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in runs]
    if unknown:
        raise SystemExit(f"unknown study run(s) {unknown}; the study's runs are {', '.join(runs)}")
    if args.list:
        for name in runs:
            state = "saved" if saved(name).is_file() else "to run"
            flags = "(the max rule's: --choose)" if name == COMBINED else " ".join(STUDY[name]) or "(the base)"
            print(f"{name:14s} {state:7s} {flags}")
    elif args.choose:
        print_choice(figures(), settled())
    elif args.claim:
        figs = figures()
        chosen = choose(figs) if COMBINED in figs else None
        if chosen is None:
            raise SystemExit("no max chosen yet: `study.py --choose` says what the rule still waits for")
        cmd = [sys.executable, "benchmarks/fast.py", "--folder", str(VALIDATION), "--save", CLAIM, *flags_of(chosen)]
        print(f"== max = {chosen}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
        print_judgement(summary(REPO / VALIDATION / CLAIM, REPO / VALIDATION))
    elif args.judge:
        if not (REPO / VALIDATION / CLAIM).is_file():
            raise SystemExit(f"no {VALIDATION / CLAIM} yet: `study.py --claim` makes it")
        print_judgement(summary(REPO / VALIDATION / CLAIM, REPO / VALIDATION))
    elif args.compare:
        for name in [n for n in args.names or runs if saved(n).is_file()]:
            print(f"== {name}", flush=True)
            subprocess.run(command(name, compare=True), check=True, cwd=REPO)
    else:
        for name in args.names or [n for n in runs if not saved(n).is_file()]:
            cmd = command(name)  # combined: built now, from the runs saved before it
            print(f"== {name}: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True, cwd=REPO)


def judge(f: dict) -> dict[str, bool]:
    """Issue 26's targets for max on the validation texts: a mean per-text capacity at least 1.5
    times the reference's, no text below the reference's minus one grid step, no more optimiser
    steps than the reference spent."""
    ref_mean = statistics.mean(f["reference"]) if f["reference"] else float("nan")
    return {
        f"mean >= 1.5 x the reference's ({f['mean']:.1f} vs {1.5 * ref_mean:.1f})": f["mean"] >= 1.5 * ref_mean,
        "every text within one grid step of the reference or above": f["ok"],
        f"steps <= the reference's ({f['steps']} vs {f['ref_steps']})": f["steps"] <= f["ref_steps"],
    }


def print_judgement(f: dict) -> None:
    n = len(f["capacities"])
    print(
        f"max on {VALIDATION}: per-text {f['capacities']} (mean {f['mean']:.1f}; greedy exact {f['exact']}/{n}), "
        f"reference {f['reference']} ({f['bracketed']}/{n} bracketed)"
    )
    for target, met in judge(f).items():
        print(f"  {'met' if met else 'MISSED'}: {target}")
    if f["bracketed"] < n:
        print("  provisional: the reference has not bracketed every text yet")


def print_choice(figs: dict[str, dict], decided: dict[str, list[str]] | None = None) -> None:
    """The study's table (each saved run: per-text capacities, mean with its bootstrap 95 %
    interval, greedy-exact share, steps, steps per decoded token, whether it helps), then the
    combined run's flags or, once it is saved, max."""
    from memcap.analysis.capacity_stats import bootstrap_mean_ci

    print(f"{'run':14s} {'per-text capacities':24s} {'mean (95 % CI)':>17s} {'exact':>5s} {'steps':>6s} "
          f"{'/token':>6s} {'all ok':>6s}")  # fmt: skip
    for name, f in figs.items():
        low, high = bootstrap_mean_ci(f["capacities"])
        found = f.get("found", f["capacities"])  # tokens found, on the grid or off it
        mark = "helps" if name not in ("base", COMBINED) and "base" in figs and helps(name, figs) else ""
        print(
            f"{name:14s} {str(f['capacities']):24s} {f['mean']:5.1f} ({low:4.1f}-{high:4.1f}) "
            f"{f['exact']:>3d}/{len(f['capacities'])} {f['steps']:6d} {f['steps'] / max(sum(found), 1):6.1f} "
            f"{'yes' if f['ok'] else 'no':>6s} {mark}"
        )
        if found != f["capacities"]:
            print(f"{'':14s} as found (off the grid): {found}, mean {statistics.mean(found):.1f}")
    print(f"reference: {next(iter(figs.values()))['ref_steps'] if figs else '-'} steps; 'all ok': every text within "
          f"one grid step of it; 'helps': a mean {HELPS} above the base's with all ok")  # fmt: skip
    decided = decided or {}
    for name, below in decided.items():
        print(f"{name:14s} still running; can no longer help: {'; '.join(below)}")
    if waiting(figs, decided):
        print(f"{COMBINED}: waits for {', '.join(waiting(figs, decided))}")
    elif COMBINED in figs:
        print(f"max: {choose(figs) or 'none (no run has every text within one grid step in the reference steps)'}")
    else:
        flags = " ".join(combined_flags(figs, decided))
        print(f"{COMBINED} (to run next): {flags or '(no factor helps: CLAIMED as it is)'}")


if __name__ == "__main__":
    main()
