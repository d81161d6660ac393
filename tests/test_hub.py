"""Issue 25: the Hugging Face paths run for real, offline.

A hub cache is laid out here as the hub client writes it (blobs, snapshots linking to them,
refs, the tree listing of a download that skipped the pickled weights) and holds a tiny
random-weight GPT-NeoX model at two revisions: `main` and Pythia's branch `step143000`. The
download job and a compress job then read it with HF_HUB_OFFLINE=1 in subprocesses, as on a
compute node. The Hub's refusals (a gated model, a revision it lacks) come from a stand-in
endpoint on 127.0.0.1 (HF_ENDPOINT) that answers with the Hub's status and error headers, so
huggingface_hub and transformers raise their own errors. Nothing here reaches the network.

pytest tests/test_hub.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from job_fixtures import write_texts
from memcap.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
REPO_ID = "memcap-test/pythia-tiny"
STEP = "step143000"  # Pythia's final checkpoint is a branch, not a commit
MAIN_SHA = "5f3c9a1e7b2d4c6e8f0a1b3c5d7e9f1a3b5c7d9e"
STEP_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SKIPPED = "pytorch_model.bin"  # on the Hub, left out by the download (safetensors present)
GATED_ID = "memcap-test/gated-llama"
REGISTRY = f"""\
pythia-tiny:
  source: hf
  id: {REPO_ID}
  revision: {STEP}
  params_b: 0.0001
pythia-tiny-commit:
  source: hf
  id: {REPO_ID}
  revision: {STEP_SHA}
pythia-typo:
  source: hf
  id: {REPO_ID}
  revision: step14300
gated:
  source: hf
  id: {GATED_ID}
  revision: main
"""


# --- a hub cache as the hub client writes it ---------------------------------------------------


def saved_model(folder: Path, hidden_size: int) -> Path:
    """tiny-gpt-neox of the registry at `hidden_size`, saved with its tokenizer (save_pretrained)."""
    from memcap.core.models import load_model, load_registry

    spec = dataclasses.replace(load_registry(REPO / "config" / "models.yaml")["tiny-gpt-neox"], hidden_size=hidden_size)
    lm = load_model(spec, "cpu")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def add_snapshot(repo: Path, commit: str, folder: Path, skipped: tuple[str, ...] = ()) -> None:
    """The files of `folder` as the commit `commit` of the cached repository `repo`: each one
    a blob named by its hash, linked (relative symlink) from snapshots/<commit>/; and the tree
    listing (trees/<commit>.json), which also lists the `skipped` files the download left out."""
    tree = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        name = file.relative_to(folder).as_posix()
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        tree[name] = {"size": len(data), "blob_id": hashlib.sha1(data).hexdigest()}
    for name in skipped:
        tree[name] = {"size": 1000, "blob_id": "0" * 40}
    listing = {"format_version": 1, "files": dict(sorted(tree.items()))}
    (repo / "trees").mkdir(exist_ok=True)
    (repo / "trees" / f"{commit}.json").write_text(json.dumps(listing, indent=1))


def add_ref(repo: Path, name: str, commit: str) -> None:
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / name).write_text(commit)  # the client writes the bare sha, no newline


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory) -> Path:
    """A download cache (its hub/ is HF_HUB_CACHE) holding REPO_ID: `main` is a 32-wide model,
    `step143000` a 64-wide one, so a job that loads the wrong revision is seen."""
    work = tmp_path_factory.mktemp("models")
    cache = tmp_path_factory.mktemp("cache")
    repo = cache / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    add_snapshot(repo, MAIN_SHA, saved_model(work / "main", 32))
    add_snapshot(repo, STEP_SHA, saved_model(work / "step", 64), skipped=(SKIPPED,))
    add_ref(repo, "main", MAIN_SHA)
    add_ref(repo, STEP, STEP_SHA)
    return cache


@pytest.fixture
def cache(built_cache, tmp_path) -> Path:
    """A copy of the built cache for one test (links kept), so no test sees another's writes."""
    return Path(shutil.copytree(built_cache, tmp_path / "cache", symlinks=True))


@pytest.fixture
def registry(tmp_path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY)
    return path


# --- subprocesses with the environment a test gives them --------------------------------------


def hub_env(tmp_path: Path, **settings: str) -> dict:
    """This environment without any Hugging Face setting or token, plus `settings`: HF_HOME in
    tmp_path (no saved token is read, nothing is written to the user's cache) and no proxy for
    the stand-in endpoint."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_"))}
    return keep | {"HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"} | settings


def python(code: str, *args, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def memcap(*args, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return python("from memcap.cli import main; raise SystemExit(main())", *args, env=env, cwd=cwd)


# What the rule `download` runs (scripts/download.py), the error's text on stdout if it fails.
DOWNLOAD = """
import sys
from memcap.stages.download import download_model
try:
    download_model(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
except ValueError as err:
    print(err)
    raise SystemExit(3)
"""

# What the rule `compress` runs (scripts/compress.py): start_model_job (the download cache,
# offline), then run_job; a few optimiser steps.
COMPRESS = """
import sys
from memcap.stages.script import start_model_job
start_model_job(sys.argv[1], sys.argv[2])
from memcap.stages.job import run_job
run_job(sys.argv[3], sys.argv[4], sys.argv[5], lengths=[4], optim={"lr": 0.1, "max_steps": 10, "patience": 10},
        models_file=sys.argv[6], device="cpu", progress=False)
"""


def one_line(done: subprocess.CompletedProcess, code: int) -> str:
    """The one line a failed command wrote (stdout for DOWNLOAD, stderr for the CLI), no traceback."""
    text = done.stdout if code == 3 else done.stderr
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = text.strip().split("\n")
    assert len(lines) == 1, text
    return lines[0]


# --- the download job and a compress job over the cache, offline -------------------------------


def test_the_download_job_finds_the_pinned_branch_and_commit_in_the_cache_offline(tmp_path, cache, registry):
    """With HF_HUB_OFFLINE=1 the download job resolves `step143000` through refs/ (not main) and
    a pinned commit directly, counts the blobs' bytes behind the links, and takes the snapshot
    that lacks the pickled copy the tree listing names (the cached listing picks the same files
    as the Hub's would)."""
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    for name in ("pythia-tiny", "pythia-tiny-commit"):
        done = python(DOWNLOAD, name, registry, cache, tmp_path / f"{name}.json", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        record = json.loads((tmp_path / f"{name}.json").read_text())
        snapshot = cache / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / STEP_SHA
        files = sorted(snapshot.iterdir())
        assert record["resolved_revision"] == STEP_SHA and record["path"] == str(snapshot.resolve())
        assert record["files"] == len(files) == 5 and all(p.is_symlink() for p in files)
        assert record["bytes"] == sum(p.resolve().stat().st_size for p in files) > 10_000
        assert record["id"] == REPO_ID and record["source"] == "hf"


def test_a_compress_job_loads_the_registry_revision_offline(tmp_path, cache, registry):
    """A compress job as on a compute node (HF_HUB_OFFLINE=1, start_model_job, run_job) loads
    the registry entry's `step143000` snapshot from the hub cache and compresses a text."""
    texts = write_texts(tmp_path / "lee.jsonl", n=1, words=20)
    out, log = tmp_path / "pythia-tiny" / "lee.jsonl", tmp_path / "compress.log"
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    done = python(COMPRESS, log, cache, "pythia-tiny", texts, out, registry, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    [record] = read_jsonl(out)
    assert record["model_source"] == "hf" and record["model_id"] == REPO_ID and record["revision"] == STEP
    assert record["mem_dim"] == 64  # the step143000 model; main's is 32 wide
    assert record["N"] == 4 and record["steps"] >= 1
    assert "Traceback" not in log.read_text()


def test_a_revision_missing_from_the_cache_fails_the_download_naming_id_and_revision(tmp_path, cache, registry):
    """Offline, a revision the cache lacks is one line naming the id, the revision, the
    revisions the cache does hold and what to do."""
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    done = python(DOWNLOAD, "pythia-typo", registry, cache, tmp_path / "typo.json", env=env, cwd=tmp_path)
    line = one_line(done, 3)
    for words in (f"'{REPO_ID}' at revision step14300", f"holds it at main, {STEP} only", "HF_HUB_OFFLINE=1"):
        assert words in line, line
    assert not (tmp_path / "typo.json").exists()


def test_a_download_when_the_hub_does_not_answer_takes_the_cache_or_names_the_network(tmp_path, cache, registry):
    """Online but with no answer from the Hub (connection refused), the download job takes the
    snapshot already in the cache; a revision the cache lacks is one line naming the id, the
    revision and the network."""
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        env = hub_env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed.getsockname()[1]}")
        done = python(DOWNLOAD, "pythia-tiny", registry, cache, tmp_path / "ok.json", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert json.loads((tmp_path / "ok.json").read_text())["resolved_revision"] == STEP_SHA
        done = python(DOWNLOAD, "pythia-typo", registry, cache, tmp_path / "typo.json", env=env, cwd=tmp_path)
    line = one_line(done, 3)
    for words in (f"'{REPO_ID}' at revision step14300", "could not be downloaded", "check the id and the network"):
        assert words in line, line


def test_an_interrupted_download_found_offline_says_to_download_again(tmp_path, cache, registry):
    """Offline, a snapshot that lacks a file its tree listing names (an interrupted download)
    is one line naming the id, the revision and the snapshot, and saying to download again."""
    snapshot = cache / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / STEP_SHA
    (snapshot / "tokenizer.json").unlink()
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1")
    done = python(DOWNLOAD, "pythia-tiny", registry, cache, tmp_path / "t.json", env=env, cwd=tmp_path)
    line = one_line(done, 3)
    for words in (f"'{REPO_ID}' at revision {STEP}", str(snapshot.resolve()), "run the download again"):
        assert words in line, line


def compress_fox(model: str, registry, tmp_path, env):
    """`memcap compress "The fox jumps." -m MODEL` in a subprocess with `env`."""
    args = ["compress", "The fox jumps.", "-m", model, "--models-file", registry, "-o", tmp_path / "v.safetensors"]
    return memcap(*args, env=env, cwd=tmp_path)


def test_a_revision_missing_from_the_cache_fails_a_compress_naming_id_and_revision(tmp_path, cache, registry):
    """The same for a compress (memcap compress, transformers' loading): exit status 2, one line."""
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache / "hub"))
    done = compress_fox("pythia-typo", registry, tmp_path, env)
    line = one_line(done, 2)
    for words in (f"'{REPO_ID}' at revision step14300", f"holds it at main, {STEP} only", "HF_HUB_OFFLINE=1"):
        assert words in line, line


# --- the Hub's refusals, from a stand-in endpoint on 127.0.0.1 ---------------------------------


class RefusingHub(http.server.ThreadingHTTPServer):
    """Answers every request as the Hub answers one it refuses: `answer(authorized)` gives the
    status, X-Error-Code and X-Error-Message (the headers huggingface_hub turns into its
    errors). Keeps (method, path, Authorization header) of each request in `seen`."""

    def __init__(self, answer):
        self.answer, self.seen = answer, []
        super().__init__(("127.0.0.1", 0), _Refusal)

    def tokens(self, repo_id: str) -> list[str | None]:
        """The Authorization headers of the requests about `repo_id` (the client also asks for
        other things, e.g. /api/agent-harnesses)."""
        return [auth for _, path, auth in self.seen if repo_id in path]


class _Refusal(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        authorization = self.headers.get("Authorization")
        self.server.seen.append((self.command, self.path, authorization))
        status, code, message = self.server.answer(authorization is not None)
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_POST = do_GET

    def log_message(self, *args):  # quiet: pytest shows what matters
        pass


def gated(authorized: bool) -> tuple[int, str, str]:
    """The Hub's answers for a gated repository: 401 without a token, 403 with one that has no access."""
    if authorized:
        return 403, "GatedRepo", f"Access to model {GATED_ID} is restricted and you are not in the authorized list."
    return 401, "GatedRepo", f"Access to model {GATED_ID} is restricted. You must be authenticated to access it."


@contextmanager
def refusing_hub(answer):
    """A RefusingHub serving in a thread; yields it and its URL (for HF_ENDPOINT)."""
    server = RefusingHub(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("token", [None, "hf_not-a-real-token-0123"])
def test_a_gated_model_fails_the_download_saying_to_set_hf_token(tmp_path, registry, token):
    """The download of a gated model the token cannot open: one line naming the id, where the
    token came from (HF_TOKEN unset, or set and without access), the licence page and what to
    export; the token travels in the Authorization header and never into the message."""
    with refusing_hub(gated) as (hub, url):
        env = hub_env(tmp_path, HF_ENDPOINT=url, **({"HF_TOKEN": token} if token else {}))
        done = python(DOWNLOAD, "gated", registry, tmp_path / "cache", tmp_path / "g.json", env=env, cwd=tmp_path)
    line = one_line(done, 3)
    origin = "the token in HF_TOKEN has no access to it" if token else "is gated and HF_TOKEN is not set"
    for words in (f"'gated' ({GATED_ID}) is gated", origin, f"https://huggingface.co/{GATED_ID}", "export HF_TOKEN="):
        assert words in line, line
    assert set(hub.tokens(GATED_ID)) == {f"Bearer {token}" if token else None}
    assert "not-a-real-token" not in line and not (tmp_path / "g.json").exists()


def test_a_gated_model_fails_a_compress_saying_to_set_hf_token(tmp_path, registry):
    """transformers' loading of a gated model without a token (memcap compress): exit status 2,
    one line that says HF_TOKEN is not set and where the licence is accepted."""
    with refusing_hub(gated) as (hub, url):
        env = hub_env(tmp_path, HF_ENDPOINT=url, HF_HUB_CACHE=str(tmp_path / "hub"))
        done = compress_fox("gated", registry, tmp_path, env)
    line = one_line(done, 2)
    for words in (f"({GATED_ID}) is gated", "is gated and HF_TOKEN is not set", f"https://huggingface.co/{GATED_ID}"):
        assert words in line, line
    assert set(hub.tokens(GATED_ID)) == {None}


@pytest.mark.parametrize(
    "answer, words",
    [
        (
            (404, "RevisionNotFound", "Invalid rev id: step14300"),
            [f"{REPO_ID} has no revision 'step14300'", f"huggingface.co/{REPO_ID}/commits"],
        ),
        (
            (401, "RepoNotFound", "Repository not found"),
            [f"{REPO_ID} is not on the Hugging Face Hub", "without a token (HF_TOKEN is not set)", "check the id"],
        ),
    ],
    ids=["revision", "repository"],
)
def test_what_the_hub_does_not_have_fails_the_download_naming_it(tmp_path, registry, answer, words):
    """Online, a revision or a repository the Hub does not have (its RevisionNotFound,
    RepoNotFound) is one line naming the registry entry, the id, and what to check."""
    with refusing_hub(lambda _: answer) as (hub, url):
        env = hub_env(tmp_path, HF_ENDPOINT=url)
        done = python(DOWNLOAD, "pythia-typo", registry, tmp_path / "cache", tmp_path / "t.json", env=env, cwd=tmp_path)
    line = one_line(done, 3)
    for word in ["model 'pythia-typo'", *words]:
        assert word in line, line
    assert any(REPO_ID in path and "step14300" in path for _, path, _ in hub.seen)
