"""`memcap compress` / `memcap decode` as a user runs them, in a subprocess."""

import subprocess
import sys
from pathlib import Path

import pytest

from memcap.core.engine import OptimConfig

# pytest -n: one worker runs this module, so it makes one shared vectors file once
# (module fixture llama_vectors)
pytestmark = [pytest.mark.xdist_group("cli")]

REPO = Path(__file__).resolve().parents[1]
MODELS = str(REPO / "config" / "models.yaml")
FOX = "The fox jumps."  # 5 tokens with a BOS under the tiny tokenizer
QUICK = ["--lr", "0.1", "--max-steps", "400", "-k", "4"]


def optim_of(*args):
    """The OptimConfig that these flags give (parsed only; nothing is optimised)."""
    from memcap.cli import _optim, build_parser

    return _optim(build_parser().parse_args(list(args)))


def memcap(*args, stdin=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "memcap.cli", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("protocol", ["strict", "paper"])
def test_compress_then_decode_round_trip(tmp_path, protocol):
    vec = tmp_path / "fox.safetensors"
    done = memcap(
        "compress", FOX, "-m", "tiny-llama", "--models-file", MODELS, "--protocol", protocol, "-o", str(vec), *QUICK
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accuracy 1.000" in done.stdout and "reproduces the text" in done.stdout
    back = memcap("decode", str(vec), "--models-file", MODELS)
    assert back.returncode == 0, back.stderr[-2000:]
    assert back.stdout.strip() == FOX


def test_text_from_stdin_and_file(tmp_path):
    (tmp_path / "t.txt").write_text(FOX)
    from_file = memcap(
        "compress",
        "--file",
        str(tmp_path / "t.txt"),
        "-m",
        "tiny-llama",
        "--models-file",
        MODELS,
        "-o",
        str(tmp_path / "a.safetensors"),
        *QUICK,
    )
    from_stdin = memcap(
        "compress",
        "-m",
        "tiny-llama",
        "--models-file",
        MODELS,
        "-o",
        str(tmp_path / "b.safetensors"),
        *QUICK,
        stdin=FOX,
    )
    assert from_file.returncode == from_stdin.returncode == 0
    assert from_file.stdout.split(" in ")[0] == from_stdin.stdout.split(" in ")[0]


@pytest.mark.parametrize("command", ["compress", "decode", "job"])
def test_help_explains_every_option(command):
    text = memcap(command, "--help").stdout
    options = [w for w in text.split() if w.startswith("--") and w != "--help"]
    assert len(options) >= 3
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") and stripped != "--help" and "  " not in stripped:
            # an option line without its help on the same line must have it on the next
            nxt = text.splitlines()[text.splitlines().index(line) + 1].strip()
            assert nxt and not nxt.startswith("-"), f"{stripped!r} has no help"


def test_compress_takes_the_search_flags_and_defaults_to_the_search_of_before():
    """`memcap compress` passes the capacity search's flags to each K's walk through the
    prefixes; without them each K runs SearchConfig's defaults, as before the flags existed."""
    from memcap.cli import build_parser, search_config
    from memcap.core.search import SearchConfig

    compress = ["compress", FOX, "-m", "tiny-llama"]
    assert search_config(build_parser().parse_args(compress)) == SearchConfig()
    given = search_config(build_parser().parse_args([*compress, "--budget", "800", "--fails", "2", "--no-retry-fresh"]))
    assert (given.budget, given.fails, given.retry_fresh) == (800, 2, False)


def test_a_caller_with_other_search_defaults_gets_flags_that_turn_them_off(monkeypatch):
    """fast.py starts from the claimed search (memcap.core.search.CLAIMED): every bool gets
    --<name> and --no-<name>, so each can be turned off, and a command that turns one on still
    reads the same once it is on already; a number is turned off with none."""
    import argparse

    from memcap.cli import search_args, search_flags
    from memcap.core.search import CLAIMED, SearchConfig

    parser = argparse.ArgumentParser()
    search_args(parser, defaults=CLAIMED["search"])
    args = parser.parse_args(["--no-fresh-after-stuck", "--retry-fresh", "--fresh-check-below", "none"])
    search = SearchConfig.from_dict({**CLAIMED["search"], **search_flags(args)})
    assert (search.fresh_after_stuck, search.retry_fresh, search.fresh_check_below) == (False, True, None)
    assert search.budget == CLAIMED["search"]["budget"]
    on = search_flags(parser.parse_args(["--fresh-after-stuck", "--no-retry-fresh"]))  # as they are already
    assert SearchConfig.from_dict({**CLAIMED["search"], **on}) == SearchConfig.from_dict(CLAIMED["search"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--fresh-after-stuck", "yes"])


def test_max_steps_and_patience_alone_apply_to_fresh_starts_too():
    """With the fast preset (fresh starts: 300 steps) --max-steps 2000 gives 2000 steps from
    a random init too, unless --fresh-max-steps says otherwise; the same for patience."""
    compress = ["compress", FOX, "-m", "tiny-llama"]
    fast = optim_of(*compress)
    assert (fast.max_steps, fast.fresh_max_steps, fast.patience, fast.fresh_patience) == (250, 300, 150, None)
    alone = optim_of(*compress, "--max-steps", "2000", "--patience", "500")
    assert (alone.steps_for(warm=True), alone.steps_for(warm=False)) == (2000, 2000)
    assert (alone.patience_for(warm=True), alone.patience_for(warm=False)) == (500, 500)
    both = optim_of(
        *compress, "--max-steps", "2000", "--fresh-max-steps", "50", "--patience", "9", "--fresh-patience", "7"
    )
    assert (both.max_steps, both.fresh_max_steps, both.patience, both.fresh_patience) == (2000, 50, 9, 7)
    assert optim_of(*compress, "--fresh-patience", "40").patience_for(warm=False) == 40
    # where the preset has no fresh value (paper) None already means the same: the recorded
    # settings, and so a job's resume fingerprint, stay as they were
    job = ["job", "--model", "tiny-llama", "--texts", "t.jsonl", "--out", "r.jsonl"]
    paper = optim_of(*job, "--max-steps", "100", "--patience", "10")
    assert (paper.fresh_max_steps, paper.fresh_patience) == (None, None)
    assert paper.as_dict() == OptimConfig(max_steps=100, patience=10).as_dict()
    assert optim_of(*job, "--preset", "fast", "--max-steps", "100").fresh_max_steps == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["compress", "   ", "-m", "tiny-llama"], "the text is empty"),
        (["compress", FOX, "-m", "no-such-model"], "unknown model 'no-such-model'"),
        (["compress", FOX, "-m", "tiny-llama", "-k", "0"], "--vectors (K) must be >= 1"),
        (["compress", FOX * 400, "-m", "tiny-llama", "-k", "2"], "exceeds the 2048 positions"),
        (["compress", FOX, "-m", "tiny-llama", "--lr", "-1"], "optim.lr must be > 0"),
        (["decode", "missing.safetensors"], "no vectors file"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, message):
    done = memcap(*args, "--models-file", MODELS)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def llama_vectors(tmp_path_factory):
    """Vectors of FOX made by tiny-llama, decoded back losslessly."""
    vec = tmp_path_factory.mktemp("vectors") / "fox.safetensors"
    done = memcap("compress", FOX, "-m", "tiny-llama", "--models-file", MODELS, "-o", str(vec), *QUICK)
    assert done.returncode == 0 and "reproduces the text" in done.stdout, done.stderr[-2000:]
    return vec


def test_decode_with_another_model_of_the_same_width_is_refused(llama_vectors):
    """tiny-olmo has tiny-llama's width: it would decode the vectors into garbage, silently."""
    done = memcap("decode", str(llama_vectors), "-m", "tiny-olmo", "--models-file", MODELS)
    assert done.returncode == 2, done.stdout
    assert "made with model 'tiny-llama' (random:llama), not 'tiny-olmo' (random:olmo)" in done.stderr
    assert "--force" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_decode_force_warns_and_decodes_with_the_other_model(llama_vectors):
    done = memcap("decode", str(llama_vectors), "-m", "tiny-olmo", "--models-file", MODELS, "--force")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WARNING" in done.stderr and "'tiny-llama'" in done.stderr and "'tiny-olmo'" in done.stderr
    assert done.stdout.strip() != FOX  # another model's reading of the vectors


def test_decode_with_the_same_model_named_by_its_registry_name(llama_vectors):
    done = memcap("decode", str(llama_vectors), "-m", "tiny-llama", "--models-file", MODELS)
    assert done.returncode == 0 and done.stdout.strip() == FOX and done.stderr == ""


def test_decode_with_another_width_is_refused_even_with_force(llama_vectors):
    done = memcap("decode", str(llama_vectors), "-m", "tiny-opt", "--models-file", MODELS, "--force")
    assert done.returncode == 2 and "width 64" in done.stderr and "tiny-llama" in done.stderr


@pytest.mark.parametrize("content", [b"The fox jumps.\n", b'{"model": "tiny-llama"}\n', b""])
def test_decode_a_file_that_is_not_a_vectors_file(tmp_path, content):
    path = tmp_path / "notes.safetensors"
    path.write_bytes(content)
    done = memcap("decode", str(path), "--models-file", MODELS)
    assert done.returncode == 2
    assert f"{path} is not a vectors file" in done.stderr and "memcap compress" in done.stderr
    assert "Traceback" not in done.stderr and "SafetensorError" not in done.stderr


def test_decode_a_safetensors_file_of_something_else(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path))
    done = memcap("decode", str(path), "--models-file", MODELS)
    assert done.returncode == 2 and "was not written by `memcap compress`" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["compress", FOX, "-m", "tiny-llama"],
        ["decode", "x.safetensors"],
        ["job", "-m", "tiny-llama", "--texts", "t.jsonl", "--out", "r.jsonl"],
    ],
)
def test_a_missing_models_file_is_named(tmp_path, command):
    missing = tmp_path / "no-such-models.yaml"
    done = memcap(*command, "--models-file", str(missing))
    assert done.returncode == 2
    assert f"--models-file {missing} does not exist" in done.stderr, done.stderr
    assert "omit --models-file to use the registry shipped with memcap" in done.stderr
    assert "registry (empty)" not in done.stderr and "Traceback" not in done.stderr


def test_outside_the_repository_an_unknown_model_names_the_packaged_registry(tmp_path):
    """Run from a directory without config/models.yaml and without --models-file."""
    done = subprocess.run(
        [sys.executable, "-m", "memcap.cli", "compress", FOX, "-m", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unknown model 'no-such-model'" in done.stderr and "tiny-llama" in done.stderr
    assert "the registry read: " in done.stderr and "(the one shipped with memcap)" in done.stderr
    assert "--models-file" not in done.stderr  # a flag the user did not give


@pytest.mark.slow
def test_k_auto_is_the_default_and_doubles_k_until_the_text_decodes(tmp_path):
    vec = tmp_path / "auto.safetensors"
    # the fast preset's fresh lr (the paper's 0.01) is for pretrained models; a random-weight tiny
    # model needs the warm lr from the start to decode within the test's time
    done = memcap(
        "compress",
        "The fox jumps over the lazy dog again and again.",
        "-m",
        "tiny-llama",
        "--models-file",
        MODELS,
        "-o",
        str(vec),
        "--fresh-lr",
        "0.3",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "preset fast" in lines[0] and "K auto (up to 16)" in lines[0]
    tried = [int(line.split(":")[0][2:]) for line in lines if line.startswith("K=")]
    assert tried == [1, 2, 4, 8, 16][: len(tried)]
    assert "reproduces the text" in lines[-1] and f"K={tried[-1]} vector(s)" in lines[-1]
    back = memcap("decode", str(vec), "--models-file", MODELS)
    assert back.stdout.strip() == "The fox jumps over the lazy dog again and again."


def test_k_auto_that_fails_at_the_largest_k_says_so_with_the_best_accuracy(tmp_path):
    vec = tmp_path / "v.safetensors"
    done = memcap(
        "compress",
        FOX * 3,
        "-m",
        "tiny-llama",
        "--models-file",
        MODELS,
        "-o",
        str(vec),
        "--max-steps",
        "1",
        "--max-vectors",
        "2",
    )
    assert done.returncode == 1
    assert "no K up to 2 reproduced the text" in done.stderr and "accuracy" in done.stderr
    assert "Traceback" not in done.stderr
    assert vec.exists()  # the best attempt's vectors are kept
