"""Append a benchmark's printed output to docs/benchmarks.md as a dated block.

    python benchmarks/record.py --title "steps, shape-pythia-160m" -- python benchmarks/steps.py --threads 1
    python benchmarks/record.py --from gpu_check.txt --title "GPU check" --command "bash benchmarks/gpu_check.sh" \
        --hardware "1x NVIDIA H200"

With a command after `--`, runs it, shows its output as it comes, and appends only when it
exits 0; with --from, takes output saved elsewhere (e.g. the GPU machine's $OUT). The block
holds the date, hardware (this machine's unless --hardware), the git commit, the command,
an optional note and the output as printed, minus progress bars: the figures in
docs/benchmarks.md come from the scripts, never typed in.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every block below was appended by `benchmarks/record.py` from a benchmark script's own output
(never typed in). Timings depend on the machine and its load; each block says where it ran.
"""
PROGRESS = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])")


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs visible"
    try:
        gpus = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout.split("\n")
        gpus = [g for g in gpus if g.strip()]
        if gpus:
            text += f"; GPU: {len(gpus)}x {gpus[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    sha = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return sha + (" (with uncommitted changes in the checkout)" if dirty else "")


def clean(output: str) -> str:
    """Output without progress bars (\\r redraws keep their last state)."""
    lines = []
    for line in output.splitlines():
        line = line.split("\r")[-1].rstrip()
        if line and not PROGRESS.search(line):
            lines.append(line)
    return "\n".join(lines)


def block(title, command, output, note=None, hw=None) -> str:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"\n## {date}: {title}\n",
        f"- hardware: {hw or hardware()}",
        f"- commit: {commit()}",
        f"- command: `{command}`",
    ]
    if note:
        parts.append(f"- note: {note}")
    parts.append(f"\n```\n{clean(output)}\n```\n")
    return "\n".join(parts)


def append(text: str, doc: Path = DOC) -> None:
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(HEADER)
    with doc.open("a", encoding="utf-8") as f:
        f.write(text)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--title", required=True, help="heading of the block")
    parser.add_argument("--note", help="a line of context, e.g. 'machine shared with other work'")
    parser.add_argument("--from", dest="source", type=Path, help="saved output to record instead of running")
    parser.add_argument("--command", help="with --from: the command that produced it")
    parser.add_argument("--hardware", help="with --from: where it ran (default: this machine)")
    parser.add_argument("--doc", type=Path, default=DOC, help="file to append to (default %(default)s)")
    args = parser.parse_args(argv)
    if bool(command) == bool(args.source):
        parser.error("give either a command after `--` or --from FILE")
    if args.source:
        output = args.source.read_text(encoding="utf-8", errors="replace")
        shown = args.command or f"(output of {args.source.name})"
    else:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        chunks = []
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()  # shown as it comes, also when redirected to a file
            chunks.append(line)
        if proc.wait() != 0:
            print(f"record.py: the command exited {proc.returncode}; nothing appended", file=sys.stderr)
            return proc.returncode
        output = "".join(chunks)
        shown = " ".join(command)
    append(block(args.title, shown, output, args.note, args.hardware), args.doc)
    print(f"record.py: appended to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
