"""The method study of issue 26 (docs/benchmarks.md, "The method study", designed before any of
its runs): whole capacity searches on the tuning texts, one factor at a time away from fast.py's
CLAIMED, each saved as benchmarks/reference/study-<name>.json and resumable.

    python benchmarks/study.py --list             # the runs, their fast.py flags, which are saved
    python benchmarks/study.py lowrank-256        # run one (resumes from its progress file)
    python benchmarks/study.py                    # every run not saved yet, in the table's order
    python benchmarks/study.py --compare          # every saved run against the reference

Each run is `python benchmarks/fast.py --folder benchmarks/reference --save study-<name>.json
<flags>` (run from the repository root) with one torch thread; a run that stops resumes where it stopped, its settings
checked by fast.py's progress header.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUNING = Path("benchmarks/reference")  # relative to REPO, as fast.py's progress headers name it
# The study's base: CLAIMED when it started (candidate E); CLAIMED has since gained
# fresh_check_below (candidate F), which every run turns off so the base stays the same.
BASE = ["--fresh-check-below", "none"]
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
    "generous": ["--max-steps", "1000", "--patience", "500", "--set", "fresh_max_steps=2000,fresh_patience=1000"],
}


def saved(name: str) -> Path:
    return REPO / TUNING / f"study-{name}.json"


def command(name: str, compare: bool = False) -> list[str]:
    """The fast.py command line of one run (or of its comparison with the reference)."""
    base = [sys.executable, "benchmarks/fast.py", "--folder", str(TUNING)]
    if compare:
        return [*base, "--compare", saved(name).name]
    return [*base, "--save", saved(name).name, *BASE, *STUDY[name]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"runs to make (default: those not saved yet); of {', '.join(STUDY)}")
    parser.add_argument("--list", action="store_true", help="print the runs, their flags and which are saved")
    parser.add_argument("--compare", action="store_true", help="print every saved run against the reference")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in STUDY]
    if unknown:
        raise SystemExit(f"unknown study run(s) {unknown}; the study's runs are {', '.join(STUDY)}")
    if args.list:
        for name, flags in STUDY.items():
            state = "saved" if saved(name).is_file() else "to run"
            print(f"{name:14s} {state:7s} {' '.join(flags) or '(CLAIMED as it is)'}")
        return
    if args.compare:
        for name in [n for n in args.names or STUDY if saved(n).is_file()]:
            print(f"== {name}: {' '.join(STUDY[name]) or '(CLAIMED as it is)'}", flush=True)
            subprocess.run(command(name, compare=True), check=True, cwd=REPO)
        return
    for name in args.names or [n for n in STUDY if not saved(n).is_file()]:
        print(f"== {name}: {' '.join(command(name))}", flush=True)
        subprocess.run(command(name), check=True, cwd=REPO)


if __name__ == "__main__":
    main()
