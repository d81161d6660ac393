"""One GPU per job on a workstation: take the first free card by a lock file, before CUDA starts.

    from memcap.stages.gpu_slots import claim_gpu
    card = claim_gpu()        # e.g. "3"; CUDA_VISIBLE_DEVICES is now "3", so the job uses cuda:0

Snakemake gives local jobs no GPU ids (its `--resources gpu=G` only counts them), so every
job would otherwise open cuda:0. Each model job calls this first (memcap.stages.script.
start_model_job): the cards are those in CUDA_VISIBLE_DEVICES if set, else every card the
driver lists; the job takes a non-blocking exclusive lock (flock) on `<lock_dir>/gpu-<id>.lock`
for the first card whose lock is free and keeps it open for its lifetime, so the kernel drops
the lock when the job ends in any way, SIGKILL included. With `snakemake --resources gpu=G`
and G cards no two jobs share one; a job that finds every card taken waits up to `wait_s`
and then fails with a message naming the cards and the lock folder. Under SLURM the
scheduler has already given the job its card, and nothing is locked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

log = logging.getLogger("memcap.stages.gpu_slots")
LOCK_DIR = Path(os.environ.get("MEMCAP_GPU_LOCK_DIR", "/tmp/memcap-gpu-locks"))
_held: list = []  # open lock files: closing one (or the process ending) frees its card


def visible_cards() -> list[str]:
    """Card ids this process may use: CUDA_VISIBLE_DEVICES, else the driver's list (none without one)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [c.strip() for c in env.split(",") if c.strip()]
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def claim_gpu(
    cards: list[str] | None = None, lock_dir: str | Path = LOCK_DIR, wait_s: float = 600, poll_s: float = 2.0
) -> str | None:
    """Lock the first free card of `cards` (default visible_cards()) and make it the only
    visible one; returns its id, or None when there is no card (CPU jobs) or under SLURM.

    Must run before torch initialises CUDA. Raises RuntimeError when every card stays taken
    for `wait_s` seconds.
    """
    if os.environ.get("SLURM_JOB_ID"):
        return None
    cards = visible_cards() if cards is None else list(cards)
    if not cards:
        return None
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for card in cards:
            handle = open(lock_dir / f"gpu-{card}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _held.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = card
            log.info("using GPU %s (of %s; lock %s)", card, ",".join(cards), handle.name)
            return card
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"every GPU is taken by another job ({', '.join(cards)}; locks in {lock_dir}) for {wait_s:.0f} s: "
                "run with --resources gpu=N for N cards, so that Snakemake starts no more jobs than cards"
            )
        time.sleep(poll_s)


def release_gpus() -> None:
    """Free the cards this process holds (the process's end does the same)."""
    while _held:
        _held.pop().close()
