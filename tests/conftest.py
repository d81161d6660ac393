"""Shared test helpers: the repository root and Snakemake runs under a timeout.

Every Snakemake run is a subprocess in its own process group under `timeout -k`, so a hung
run is killed (a hung Snakemake may ignore SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N runs N tests at once: one math thread each (and in their Snakemake and CLI
    # subprocesses) keeps N workers from fighting over the cores. Set before torch is imported.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def snakemake(*args, cwd=ROOT, timeout=120, check=False) -> subprocess.CompletedProcess:
    """Run `snakemake ARGS` from `cwd` under `timeout -k 30`; stdout and stderr together."""
    cmd = ["timeout", "-k", "30", str(timeout), str(BIN / "snakemake"), *map(str, args)]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}"),
    )
    try:
        out, _ = proc.communicate()
    finally:  # pytest-timeout or Ctrl-C: no Snakemake outlives its test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc = subprocess.CompletedProcess(cmd, proc.returncode, out)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout[-5000:]}")
    return proc


_PLAN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings,
                                          ResourceSettings, StorageSettings)
    configfile, snakefile, workdir = sys.argv[1:4]
    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=8),
            config_settings=ConfigSettings(configfiles=[Path(configfile)]),
            storage_settings=StorageSettings(),
            snakefile=Path(snakefile),
            workdir=Path(workdir),
        )
        dag = wf.dag(DAGSettings())
        dag.execute_workflow(executor="dryrun")
        jobs = [
            dict(
                rule=j.rule.name,
                wildcards=dict(j.wildcards),
                params={k: v for k, v in j.params.items()},
                resources={k: v for k, v in j.resources.items() if not k.startswith("_")},
                threads=j.threads,
                input=list(map(str, j.input)),
                output=list(map(str, j.output)),
            )
            for j in dag.workflow_api._workflow.dag.jobs
        ]
    print("PLAN" + json.dumps(jobs, default=str))
    """
)


def plan(configfile, workdir=ROOT, timeout=120) -> list[dict]:
    """The jobs a dry run of `configfile` plans (rule, wildcards, params, resources, threads)."""
    cmd = [
        "timeout", "-k", "30", str(timeout), sys.executable, "-c", _PLAN,
        str(configfile), str(ROOT / "Snakefile"), str(workdir),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, start_new_session=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PLAN")), None)
    if proc.returncode != 0 or line is None:
        raise AssertionError(f"dry run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(line[4:])


def write_config(base: str, path: Path, **changes) -> Path:
    """config/<base>.yaml with `changes` (top-level keys) and absolute registry and reference paths."""
    cfg = yaml.safe_load((ROOT / "config" / f"{base}.yaml").read_text())
    cfg["models_file"] = str(ROOT / "config" / "models.yaml")
    # paths relative to the repository (demo's committed reference) keep working elsewhere
    cfg["budget_reference"] = [str(ROOT / p) for p in cfg.get("budget_reference", [])]
    cfg.update(changes)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def environment_and_folder_restored():
    """Each test leaves the process as it found it: its environment variables (memcap's
    use_cache sets the hub's for good, as a job process should), working folder and signal
    handlers (which children inherit when ignored). Tests then pass in any order (`make
    test-order`)."""
    env, cwd = dict(os.environ), os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    os.chdir(cwd)
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    if dict(os.environ) != env:
        os.environ.clear()
        os.environ.update(env)


@pytest.fixture
def root() -> Path:
    return ROOT
