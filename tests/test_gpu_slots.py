"""One card per job: the lock-file slots of memcap.stages.gpu_slots with simulated cards (no CUDA)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from memcap.stages.gpu_slots import claim_gpu, release_gpus, visible_cards

CLAIM = """
import os, sys, time
from memcap.stages.gpu_slots import claim_gpu
card = claim_gpu(sys.argv[1].split(","), sys.argv[2], wait_s=float(sys.argv[3]), poll_s=0.1)
print(card, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[4]))
"""


def job(cards, lock_dir, wait_s=0.0, hold_s=30.0):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, ",".join(cards), str(lock_dir), str(wait_s), str(hold_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def first_line(proc):
    return proc.stdout.readline().split()


def test_g_concurrent_jobs_get_g_distinct_cards_and_one_more_fails_clearly(tmp_path):
    cards = ["0", "1", "2", "3"]
    jobs = [job(cards, tmp_path) for _ in cards]
    try:
        got = [first_line(p) for p in jobs]
        assert sorted(card for card, _ in got) == cards
        assert all(card == visible for card, visible in got)  # the job sees only its own card
        extra = job(cards, tmp_path, wait_s=0.5, hold_s=0)
        _, err = extra.communicate(timeout=60)
        assert extra.returncode != 0
        assert "every GPU is taken by another job (0, 1, 2, 3" in err and str(tmp_path) in err
    finally:
        for p in jobs:
            p.kill()
            p.wait()


def test_a_killed_job_frees_its_card_for_the_next(tmp_path):
    first = job(["5", "7"], tmp_path)
    second = job(["5", "7"], tmp_path)
    try:
        taken = {first_line(first)[0]: first, first_line(second)[0]: second}
        assert set(taken) == {"5", "7"}
        waiting = job(["5", "7"], tmp_path, wait_s=60)
        time.sleep(0.5)
        assert waiting.poll() is None  # both cards taken: it waits
        os.kill(taken["7"].pid, signal.SIGKILL)
        assert first_line(waiting)[0] == "7"
        waiting.kill()
        waiting.wait()
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_no_card_or_slurm_means_no_lock(tmp_path, monkeypatch):
    assert claim_gpu([], tmp_path) is None
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert claim_gpu(["0"], tmp_path) is None and not list(tmp_path.iterdir())


def test_cards_come_from_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 6")
    assert visible_cards() == ["2", "6"]
    try:
        assert claim_gpu(lock_dir=tmp_path) == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    finally:
        release_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_cards() == [] and claim_gpu(lock_dir=tmp_path) is None


@pytest.mark.parametrize("script", ["compress", "geometry", "baselines"])
def test_every_model_job_claims_its_card_before_loading_a_model(script):
    text = open(f"scripts/{script}.py").read()
    assert 'gpu=snakemake.resources.get("gpu", 0)' in text
    assert text.index("start_model_job(") < text.index("\nfrom memcap.", text.index("start_model_job("))
