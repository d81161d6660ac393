"""`snakemake --profile slurm` against a real single-node SLURM cluster with one fake GPU.

    pytest tests/test_slurm.py                 # as root on Debian/Ubuntu: about 3 minutes
    pytest tests/test_slurm.py -m "not slow"   # only the profile's dry run, no cluster

The `cluster` fixture starts SLURM 22.05 on localhost (tests/slurm/cluster-up.sh: munge,
slurmctld, slurmd with one GRES gpu on /dev/null; it apt-installs slurm-wlm when missing) and
stops every daemon by PID afterwards, also when a test fails. Without root, or without apt-get
and SLURM, the cluster tests skip with the reason.

The runs use the user profile slurm/config.yaml as shipped, with only what this test cluster
needs layered on top on the command line (TEST_SETTINGS): its partition, squeue status checks
(no slurmdbd, so no sacct), short status intervals, and no automatic retries (the cancel test
reruns by hand). Compress jobs request a GPU (resources.gpu: 1), which the fake GRES grants;
they compute on the CPU (resources.device: cpu), so their results equal a local run's.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT, snakemake, write_config

# pytest -n: one worker runs this module, so it starts its cluster once (a host holds one);
# the first test may also install SLURM (apt): minutes on a fresh machine
pytestmark = [pytest.mark.xdist_group("slurm"), pytest.mark.timeout(1200)]

SCRIPTS = ROOT / "tests" / "slurm"
PIDFILES = [Path("/run/slurm/slurmctld.pid"), Path("/run/slurm/slurmd.pid"), Path("/run/munge/munged.pid")]
# Test-only settings on top of slurm/config.yaml (targets must come before these).
TEST_SETTINGS = [
    "--jobs", "2",
    "--retries", "0",  # a cancelled job fails the run; the test reruns the command
    "--slurm-status-command", "squeue",  # no slurmdbd here; MinJobAge=300 keeps jobs visible
    "--slurm-init-seconds-before-status-checks", "2",  # then +10 s per check (plugin back-off)
    "--seconds-between-status-checks", "2",
    "--latency-wait", "5",  # one machine, no network filesystem; a failed job waits this long
    "--default-resources", "slurm_partition=debug",  # replaces the profile's partition (and account)
]  # fmt: skip
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def alive(pid: int, name: str) -> bool:
    """Whether process `pid` runs and is the daemon `name` (PIDs wrap on a busy machine: a
    stale PID file may name another process); a killed one not yet reaped (a zombie) is not."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return comm == name and state != "Z"


def daemon_pids() -> dict[str, int]:
    """PIDs of the running cluster daemons, from their PID files."""
    pids = {}
    for f in PIDFILES:
        try:
            pid = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid, f.stem):
            pids[f.name] = pid
    return pids


def wait_for_no_daemons(seconds: int) -> dict[str, int]:
    """The daemons still running after up to `seconds` (a stopped cluster takes a moment)."""
    running = daemon_pids()
    for _ in range(seconds):
        if not running:
            break
        time.sleep(1)
        running = daemon_pids()
    return running


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A single-node SLURM cluster with FAKE_GPUS=1, held under a host-wide lock (a host holds
    one cluster: pytest workers that set this fixture up at once take turns); stopped by PID."""
    if os.geteuid() != 0:
        pytest.skip("starting SLURM daemons needs root (tests/slurm/cluster-up.sh)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and apt-get is not available to install slurm-wlm")
    with open(Path(tempfile.gettempdir()) / "memcap-test-slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _cluster(tmp_path_factory)


def _cluster(tmp_path_factory):
    running = wait_for_no_daemons(60)  # a cluster this session just stopped may still be going
    if running:
        pytest.skip(f"SLURM or munge already runs on this host ({running}); stop it first")
    log = tmp_path_factory.mktemp("cluster") / "cluster-up.log"
    try:
        with open(log, "w") as out:  # a file, not a pipe: the daemons fork and keep fds
            up = subprocess.run(
                ["bash", SCRIPTS / "cluster-up.sh"], stdout=out, stderr=subprocess.STDOUT,
                env=dict(os.environ, FAKE_GPUS="1"), timeout=900, start_new_session=True,
            )  # fmt: skip
        assert up.returncode == 0, f"cluster-up.sh failed:\n{log.read_text()[-3000:]}"
        started = daemon_pids()
        assert len(started) == 3, started
        yield started
    finally:
        started = daemon_pids()
        subprocess.run(
            ["bash", SCRIPTS / "cluster-down.sh"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=180, start_new_session=True,
        )  # fmt: skip
        for name, pid in started.items():  # cluster-down.sh sends KILL after 20 s; check
            if alive(pid, Path(name).stem):
                os.kill(pid, signal.SIGKILL)
        assert not wait_for_no_daemons(15), "SLURM daemons survived cluster-down.sh"


def slurm_config(path: Path, run: str, **changes) -> Path:
    """The smoke config with GPU compress jobs (the fake GRES grants them; they run on the CPU)."""
    smoke = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    resources = smoke["resources"] | {"gpu": 1, "device": "cpu", "threads": 1}
    return write_config("smoke", path, run=run, **({"resources": resources} | changes))


def slurm_cmd(workdir: Path, cfg: Path, *targets, timeout: int) -> list[str]:
    """`snakemake TARGETS --profile slurm ...` (run from the repository root) under timeout."""
    args = [*targets, "--profile", "slurm", "--directory", workdir, "--configfile", cfg, *TEST_SETTINGS]
    return ["timeout", "-k", "30", str(timeout), str(BIN / "snakemake"), *map(str, args)]


@contextlib.contextmanager
def started(cmd: list[str], log: Path):
    """Run `cmd` from the repository root in its own process group, output to `log`.

    Leaving the block early (a failed assertion, pytest-timeout) kills the group, so no
    Snakemake outlives the test, and cancels the jobs it left on the test cluster.
    """
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            cancel_jobs()


def cancel_jobs(wait: float = 60) -> None:
    """Cancel every job of this user on the test cluster; wait until SLURM has ended them."""
    subprocess.run(["scancel", "--user", getpass.getuser()], timeout=30)
    deadline = time.time() + wait
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
        if not queue.stdout.strip():
            break
        time.sleep(0.5)


def job_info(jobid: str) -> dict[str, str]:
    """`scontrol show job` as key=value pairs (finished jobs stay visible for MinJobAge=300 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, timeout=30).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def read_csv(path: Path) -> list[dict]:
    """Rows of a table without run-dependent columns (none today; wall times if ever added)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if not re.search(r"wall|time|/ ?s\b", k, re.I)} for r in rows]


def read_records(path: Path) -> list[dict]:
    records = [json.loads(x) for x in path.read_text().splitlines()]
    for r in records:
        r.pop("wall_s")
    return sorted(records, key=lambda r: (r["K"], r["L"], r["sample_id"]))


def test_profile_plans_gpu_jobs(tmp_path):
    """The shipped profile as is (dry run, no cluster): GPU jobs, memory and runtime by model size."""
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg = write_config("config", tmp_path / "paper.yaml", resources=paper["resources"] | {"runtime_per_billion": 60})
    proc = snakemake("-n", "--profile", "slurm", "--directory", tmp_path, "--configfile", cfg, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:]
    assert "Using profiles slurm and workflow specific profile profiles/default" in out
    jobs = re.findall(r"\nrule (compress|multivector):\n(.*?)\n\n", out, re.S)
    res = {}
    for _, block in jobs:
        model = re.search(r"wildcards: model=([^,\s]+)", block)[1]
        res[model] = dict(kv.split("=") for kv in re.search(r"resources: (.*)", block)[1].split(", "))
        assert res[model]["gpu"] == "1" and res[model]["slurm_partition"] == "gpu", block
    assert set(res) == set(paper["models"])  # every model's jobs
    # mem_mb + mem_mb_per_billion x params_b; runtime + runtime_per_billion x params_b
    assert res["llama-3.1-8b"]["mem_mb"] == str(int(8000 + 6000 * 8.03))
    assert res["pythia-1.4b"]["mem_mb"] == str(int(8000 + 6000 * 1.415))
    assert res["pythia-1.4b"]["runtime"] == str(int(1440 + 60 * 1.415))
    assert res["llama-3.1-8b"]["runtime"] == "4320"  # the model's own runtime wins


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_slurm_run_matches_local_run(cluster, tmp_path):
    """Compress jobs go through sbatch with one GPU each; the tables equal a local run's."""
    cfg = slurm_config(tmp_path / "smoke.yaml", run="slurm")
    target = "results/slurm/tables/table1.csv"  # the tables rule writes every table
    local_cmd = ["timeout", "-k", "30", "400", str(BIN / "snakemake"), target, "--cores", "1",
                 "--directory", str(tmp_path / "local"), "--configfile", str(cfg)]  # fmt: skip
    # the local reference run shares the two cores with the cluster's one-GPU-at-a-time jobs
    with started(local_cmd, tmp_path / "local.log") as local, \
         started(slurm_cmd(tmp_path / "slurm", cfg, target, timeout=400), tmp_path / "slurm.log") as slurm:  # fmt: skip
        local.wait(timeout=450)
        slurm.wait(timeout=450)
    out = (tmp_path / "slurm.log").read_text()
    assert slurm.returncode == 0, out[-5000:]
    assert local.returncode == 0, (tmp_path / "local.log").read_text()[-5000:]

    # exactly the three GPU jobs were submitted; texts, vocab and tables ran locally
    submitted = dict(SUBMITTED.findall(out))
    logs = sorted(
        Path(p).relative_to(tmp_path / "slurm/.snakemake/slurm_logs").parent.as_posix() for p in submitted.values()
    )
    assert logs == [
        "rule_compress/tiny-gpt-neox_lee", "rule_compress/tiny-gpt-neox_random",
        "rule_multivector/tiny-gpt-neox_lee_2",
    ], out[-5000:]  # fmt: skip
    for rule in ("texts", "random_texts", "vocab", "tables"):
        assert f"localrule {rule}:" in out
    for jobid, log in submitted.items():
        assert Path(log.replace("%j", jobid)).is_file()  # kept: slurm-keep-successful-logs
        info = job_info(jobid)
        assert info["JobState"] == "COMPLETED", info
        assert info["Partition"] == "debug" and "gres:gpu:1" in info["TresPerJob"], info
        assert info["TimeLimit"] == "00:10:00" and info["MinMemoryNode"] == "1000M", info

    tables = sorted(p.name for p in (tmp_path / "local/results/slurm/tables").glob("*.csv"))
    assert tables == [
        "capacities.csv",
        "capacity.csv",
        "multivector.csv",
        "pass_rate.csv",
        "search.csv",
        "summary.csv",
        "table1.csv",
    ]
    for name in tables:
        local_rows = read_csv(tmp_path / "local/results/slurm/tables" / name)
        searched = name == "search.csv"  # this run is all grid mode: a header-only search table
        assert bool(local_rows) != searched, name
        assert read_csv(tmp_path / "slurm/results/slurm/tables" / name) == local_rows, name
    for records in ("compress/tiny-gpt-neox/lee", "compress/tiny-gpt-neox/random", "multivector/tiny-gpt-neox/lee/K2"):
        local_records = read_records(tmp_path / f"local/results/slurm/{records}.jsonl")
        assert read_records(tmp_path / f"slurm/results/slurm/{records}.jsonl") == local_records, records


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cancelled_job_resumes_on_rerun(cluster, tmp_path):
    """scancel a compress job mid-run; the same command again finishes it from its parts."""
    cfg = slurm_config(
        tmp_path / "cancel.yaml", run="cancel", lengths=[4, 6, 8, 10, 12, 14], multivector={},
        optim={"max_steps": 150, "patience": 150},
    )  # fmt: skip
    data = yaml.safe_load(cfg.read_text())
    data["resources"]["batch_size"] = 1  # one part per sample
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    work = tmp_path / "work"
    target = "results/cancel/compress/tiny-gpt-neox/lee.jsonl"
    parts = work / "results/cancel/compress/tiny-gpt-neox/lee.parts"
    cmd = slurm_cmd(work, cfg, target, timeout=300)

    first_log = tmp_path / "first.log"
    with started(cmd, first_log) as first:
        deadline = time.time() + 240
        while len(list(parts.glob("*.jsonl"))) < 3:
            assert first.poll() is None, first_log.read_text()[-3000:]
            assert time.time() < deadline, "no parts appeared"
            time.sleep(0.1)
        jobid = SUBMITTED.search(first_log.read_text())[1]
        subprocess.run(["scancel", jobid], check=True, timeout=30)
        first.wait(timeout=120)  # Snakemake sees the cancelled job fail and stops
    assert first.returncode not in (0, 124, 137), first_log.read_text()[-3000:]
    assert job_info(jobid)["JobState"] == "CANCELLED"
    assert not (work / target).exists(), "the job finished before scancel: make it longer"

    # the parts the cancelled job finished: contents and mtimes must survive the rerun
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in parts.iterdir() if not p.name.startswith(".")}
    done = {}
    for part in parts.glob("*.jsonl"):
        for line in part.read_text().splitlines():
            r = json.loads(line)
            done[r["K"], r["L"], r["sample_id"]] = (r["wall_s"], r["seed"], r["steps"])
    assert 3 <= len(done) < 12

    with started(cmd, tmp_path / "second.log") as second:  # the same command again
        second.wait(timeout=360)
    out = (tmp_path / "second.log").read_text()
    assert second.returncode == 0, out[-5000:]
    rerun = SUBMITTED.findall(out)
    assert len(rerun) == 1 and rerun[0][0] != jobid, out[-3000:]
    assert job_info(rerun[0][0])["JobState"] == "COMPLETED"

    for name, (mtime, content) in before.items():
        assert (parts / name).stat().st_mtime_ns == mtime and (parts / name).read_bytes() == content, name
    records = [json.loads(x) for x in (work / target).read_text().splitlines()]
    keys = Counter((r["K"], r["L"], r["sample_id"]) for r in records)
    assert len(keys) == 12 and set(keys.values()) == {1}  # complete, each (K, L, sample) once
    for r in records:
        key = (r["K"], r["L"], r["sample_id"])
        if key in done:  # finished before the cancel: taken over, not recomputed
            assert (r["wall_s"], r["seed"], r["steps"]) == done[key]
    job_log = (work / "results/cancel/logs/compress/tiny-gpt-neox/lee.log").read_text()
    resumed = re.findall(r"(\d+) samples done before, (\d+) to do", job_log)
    assert resumed == [(str(len(done)), str(12 - len(done)))], job_log[-3000:]
