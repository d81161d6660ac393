"""One card per job (memcap.stages.gpu_slots): G + 1 concurrent jobs on G cards, each claiming a slot.

    python benchmarks/slots.py                 # the cards this machine shows (CUDA_VISIBLE_DEVICES, else all)
    python benchmarks/slots.py --simulate 4    # 4 simulated cards, no GPU needed

Starts G + 1 processes at once that each call memcap.stages.gpu_slots.claim_gpu (a lock file per
card in a fresh folder) and hold their card for --hold seconds; on a real card each then
opens CUDA and reports the device it got. Prints the card each job took: G jobs on G distinct
cards, and the extra one failing with its message after --wait seconds; the authors' procedure
(every job on cuda:0) used 1 card for G jobs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from memcap.stages.gpu_slots import visible_cards

JOB = """
import sys, time
from memcap.stages.gpu_slots import claim_gpu
cards = sys.argv[1].split(",") if sys.argv[1] else None
try:
    card = claim_gpu(cards, lock_dir=sys.argv[2], wait_s=float(sys.argv[3]), poll_s=0.2)
except RuntimeError as err:
    print("refused:", str(err).split(":")[0]); sys.exit(3)
device = ""
if cards is None:  # real cards: CUDA starts only now, on the card the lock gave
    import torch
    device = f" -> torch sees {torch.cuda.device_count()} card(s), cuda:0 = {torch.cuda.get_device_name(0)}"
print(f"card {card}{device}", flush=True)
time.sleep(float(sys.argv[4]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulate", type=int, help="this many simulated cards instead of the real ones")
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each job holds its card (default %(default)s)")
    parser.add_argument("--wait", type=float, default=2.0, help="seconds the extra job waits (default %(default)s)")
    args = parser.parse_args()
    cards = [str(i) for i in range(args.simulate)] if args.simulate else visible_cards()
    if not cards:
        raise SystemExit("no GPU visible: use --simulate G")
    with tempfile.TemporaryDirectory() as locks:
        given = ",".join(cards) if args.simulate else ""
        jobs = []
        for _ in range(len(cards) + 1):
            jobs.append(
                subprocess.Popen(
                    [sys.executable, "-c", JOB, given, locks, str(args.wait), str(args.hold)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            time.sleep(0.3)  # in order, so the last one is the one left without a card
        outputs = [(job.communicate()[0].strip().splitlines() or ["(no output)"])[-1] for job in jobs]
    kind = "simulated" if args.simulate else "visible"
    print(f"{len(cards)} {kind} card(s) {','.join(cards)}, {len(jobs)} concurrent jobs")
    for i, (job, out) in enumerate(zip(jobs, outputs, strict=True)):
        print(f"  job {i}: exit {job.returncode}: {out}")
    taken = [out.split()[1] for out in outputs if out.startswith("card ")]
    refused = sum(out.startswith("refused") for out in outputs)
    print(
        f"cards in use at once: {len(set(taken))} for {len(taken)} jobs (authors' procedure: 1, every job on "
        f"cuda:0); distinct: {len(set(taken)) == len(taken)}; jobs beyond the cards refused: {refused}"
    )


if __name__ == "__main__":
    main()
