"""Issue 24: errors before the work, vectors files and registries not taken on trust, Ctrl-C,
corrupted parts, LaTeX without shell escape, the README's resuming advice.

Models are real: tiny random-weight ones from config/models.yaml, saved to a directory or a
Hugging Face cache where a test needs one there. pytest tests/test_hardening.py
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

# pytest -n: one worker runs this module, so it makes shared model folders once
# (module fixtures fox, llama_dir)
pytestmark = [pytest.mark.xdist_group("hardening")]

REPO = Path(__file__).resolve().parents[1]
MODELS = str(REPO / "config" / "models.yaml")
FOX = "The fox jumps."
QUICK = ["--lr", "0.1", "--max-steps", "400", "-k", "4"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the cached snapshot's revision


def memcap(*args, cwd=None, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "memcap.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else dict(os.environ, **env),
    )


def refused(done, *words):
    """Exit status 2, one line on stderr holding every word, no traceback, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().split("\n")
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert done.stdout == ""
    return lines[0]


def edit_metadata(src: Path, dst: Path, **changes) -> Path:
    """A copy of a vectors file with some metadata fields changed (None: removed)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.fixture(scope="module")
def fox(tmp_path_factory):
    """FOX compressed by tiny-llama (registry name), strict protocol, decoded exactly."""
    vec = tmp_path_factory.mktemp("fox") / "fox.safetensors"
    done = memcap("compress", FOX, "-m", "tiny-llama", "--models-file", MODELS, "-o", str(vec), *QUICK)
    assert done.returncode == 0 and "reproduces the text" in done.stdout, done.stderr[-2000:]
    return vec


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """tiny-llama saved as a local Hugging Face model directory (weights and tokenizer)."""
    from memcap.core.models import load_model, load_registry, resolve_model

    lm = load_model(resolve_model("tiny-llama", load_registry(MODELS)), "cpu")
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


# --- item 2: memcap compress -o is checked before the work ----------------------------------


@pytest.mark.parametrize("where", ["folder", "under a file", "/proc"])
def test_compress_checks_the_out_path_before_loading_the_model(tmp_path, where):
    (tmp_path / "notes.txt").write_text("a file\n")
    out = {
        "folder": tmp_path,
        "under a file": tmp_path / "notes.txt" / "sub" / "fox.safetensors",
        "/proc": Path("/proc/x.safetensors"),
    }[where]
    done = memcap("compress", FOX, "-m", "tiny-llama", "--models-file", MODELS, "-o", str(out), *QUICK)
    why = {"folder": "is a folder", "under a file": f"{tmp_path / 'notes.txt'} is a file", "/proc": "takes no new file"}
    refused(done, f"-o {out}", why[where])  # stdout empty: no model loaded, no step run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# --- item 2: a corrupted part names its file and what to do --------------------------------


def test_a_part_with_a_cut_last_line_is_named_with_what_to_do(tmp_path):
    import torch

    from memcap.stages.store import PartStore

    store = PartStore(tmp_path / "lee.parts", fingerprint={"model": "tiny-llama"})
    rows = [{"K": 1, "L": 8, "sample_id": f"lee-{i}", "vectors": "K1_L8_0000.safetensors"} for i in range(3)]
    store.write_part("K1_L8_0000", rows, {"lee-0": torch.zeros(1, 4)})
    store.write_part("K1_L8_0003", [dict(rows[0], sample_id="lee-3")], {"lee-3": torch.zeros(1, 4)})
    part = tmp_path / "lee.parts" / "K1_L8_0000.jsonl"
    part.write_bytes(part.read_bytes()[:-20])  # a copy that stopped midway through the last line
    with pytest.raises(ValueError) as err:
        store.done_keys()
    message = str(err.value)
    assert f"{part}, line 3: not valid JSON" in message
    assert "Move that part aside" in message and f"mv {part} {part}.corrupt" in message
    assert "rerun" in message
    part.rename(f"{part}.corrupt")  # what the message says: the other part resumes
    assert store.done_keys() == {(1, 8, "lee-3")}


# --- item 4: the registry ships with the package -------------------------------------------


def test_the_packaged_registry_is_config_models_yaml():
    from memcap.core.models import packaged_registry

    assert packaged_registry().read_bytes() == (REPO / "config" / "models.yaml").read_bytes()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["memcap"]
    assert "models.yaml" in shipped and "models.schema.yaml" in shipped  # the registry and its schema


def test_compress_outside_the_repository_uses_the_packaged_registry(tmp_path):
    done = memcap(
        "compress", FOX, "-m", "tiny-llama", "-k", "1", "--max-steps", "1", "-o", "v.safetensors", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "v.safetensors").is_file()


def test_models_file_replaces_the_packaged_registry(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("tiny-mine:\n  source: random\n  family: llama\n  hidden_size: 32\n")
    line = refused(
        memcap("compress", FOX, "-m", "tiny-llama", "--models-file", str(mine)), "unknown model 'tiny-llama'"
    )
    assert f"the registry read: {mine} (given with --models-file)" in line and "tiny-mine" in line


# --- item 4: models memcap cannot use --------------------------------------------------------


def test_an_encoder_decoder_model_is_named_as_not_a_causal_lm(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "tiny-t5")
    done = memcap("compress", FOX, "-m", str(tmp_path / "tiny-t5"), "-o", str(tmp_path / "v.safetensors"))
    refused(done, "'t5' model", "T5Config", "not a causal LM", "AutoModelForCausalLM")


def test_a_hub_id_that_is_not_in_the_offline_cache_is_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    done = memcap("compress", FOX, "-m", "nosuch-org/nosuch-model", "-o", str(tmp_path / "v.safetensors"), env=env)
    refused(done, "'nosuch-org/nosuch-model'", "is not in the Hugging Face cache", "HF_HUB_OFFLINE=1")


# --- item 4: option values -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-2"])
def test_max_tokens_below_one_is_refused(tmp_path, value):
    done = memcap("compress", FOX, "-m", "tiny-llama", "--max-tokens", value, "-o", str(tmp_path / "v.safetensors"))
    assert done.returncode == 2 and f"--max-tokens: must be a whole number >= 1, got '{value}'" in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("device", ["bogus", "cuda", "cuda:7"])
@pytest.mark.parametrize("command", ["compress", "decode"])
def test_a_device_this_machine_lacks_is_refused_with_the_allowed_ones(tmp_path, device, command):
    import torch

    if torch.cuda.is_available() and device == "cuda":
        pytest.skip("CUDA is here")
    args = [FOX, "-m", "tiny-llama", "-o", str(tmp_path / "v.safetensors")] if command == "compress" else ["x"]
    line = refused(memcap(command, *args, "--device", device), f"--device {device!r}", "allowed here: auto, cpu")
    if not torch.cuda.is_available() and device.startswith("cuda"):
        assert "CUDA is not available here" in line


# --- item 4: decode finds the model that made the file ----------------------------------------


def test_decode_finds_a_local_model_directory_it_was_made_with(tmp_path, llama_dir):
    vec = tmp_path / "fox.safetensors"
    done = memcap("compress", FOX, "-m", str(llama_dir), "-o", str(vec), *QUICK)
    assert done.returncode == 0 and "reproduces the text" in done.stdout, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    back = memcap("decode", str(vec), cwd=elsewhere)  # 'tiny-llama' is also a registry name
    assert back.returncode == 0 and back.stdout.strip() == FOX, back.stderr[-2000:]
    assert "WARNING" not in back.stderr and "note" not in back.stderr  # only transformers' loading bar
    moved = shutil.move(llama_dir, llama_dir.with_name("moved"))
    try:
        refused(memcap("decode", str(vec)), str(llama_dir.resolve()), "not there any more")
    finally:
        shutil.move(moved, llama_dir)


def _hub_cache(cache: Path, llama_dir: Path) -> Path:
    """A Hugging Face cache holding myorg/tiny-llama at COMMIT; its `main` names a missing
    snapshot, so only the pinned revision loads."""
    repo = cache / "models--myorg--tiny-llama"
    shutil.copytree(llama_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("f" * 40)
    return cache


def test_decode_finds_a_hub_id_at_its_recorded_revision(tmp_path, llama_dir):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(_hub_cache(tmp_path / "hub", llama_dir))}
    registry = tmp_path / "mine.yaml"
    registry.write_text(f"mine:\n  source: hf\n  id: myorg/tiny-llama\n  revision: {COMMIT}\n")
    vec = tmp_path / "fox.safetensors"
    done = memcap("compress", FOX, "-m", "mine", "--models-file", str(registry), "-o", str(vec), *QUICK, env=env)
    assert done.returncode == 0 and "reproduces the text" in done.stdout, done.stderr[-2000:]
    back = memcap("decode", str(vec), env=env)  # 'mine' is in no registry decode reads
    assert back.returncode == 0 and back.stdout.strip() == FOX, back.stderr[-2000:]
    assert "WARNING" not in back.stderr and "note" not in back.stderr


def test_decode_of_a_file_with_an_edited_model_name_names_no_flag_not_given(tmp_path, fox):
    vec = edit_metadata(fox, tmp_path / "v.safetensors", model="tiny-olmo")  # model_id still random:llama
    line = refused(
        memcap("decode", str(vec)), "'tiny-olmo' (random:llama)", "the registry's 'tiny-olmo' is random:olmo"
    )
    assert "Omit --model" not in line and "--force" not in line


def test_decode_warns_when_the_decoded_tokens_are_not_the_recorded_ones(tmp_path, fox):
    vec = edit_metadata(fox, tmp_path / "v.safetensors", model="tiny-olmo", model_id="random:olmo")
    done = memcap("decode", str(vec))
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.strip() != FOX  # tiny-olmo's reading of tiny-llama's vectors
    assert "WARNING" in done.stderr and "NOT the ones these vectors were made from" in done.stderr
    assert "ids_sha" in done.stderr and "Traceback" not in done.stderr


def test_decode_of_vectors_that_were_not_exact_says_so_without_failing(tmp_path, fox):
    vec = edit_metadata(fox, tmp_path / "v.safetensors", ids_sha="0" * 40, greedy_exact="false", accuracy="0.500000")
    done = memcap("decode", str(vec))
    assert done.returncode == 0 and done.stdout.strip() == FOX
    assert "did not reproduce their text when they were made" in done.stderr and "WARNING" not in done.stderr


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"N": "100000"}, ["N='100000'", "the 2048 positions of 'tiny-llama'"]),
        ({"N": "abc"}, ["N='abc'", "whole number >= 1"]),
        ({"N": "0"}, ["N='0'", "whole number >= 1"]),
        ({"prompt": "not json"}, ["prompt='not json'", "JSON list of token ids"]),
        ({"protocol": "paper", "prompt": "[999999]"}, ["prompt='[999999]'", "below 512"]),
        ({"prompt": "[1]"}, ["prompt='[1]'", "protocol strict stores 0 prompt token(s)"]),
        ({"K": "3"}, ["K=3 asks for (K, width)"]),
        ({"K": "-1"}, ["K='-1'", "whole number >= 1"]),
        ({"protocol": "loose"}, ["protocol='loose'", "paper, strict"]),
        ({"ids_sha": "xyz"}, ["ids_sha='xyz'", "40 lowercase hex"]),
        ({"accuracy": "2"}, ["accuracy='2'", "from 0 to 1"]),
        ({"steps": "many"}, ["steps='many'", "whole number >= 0"]),
        ({"source": "ftp"}, ["source='ftp'", "hf, gguf, random"]),
        ({"greedy_exact": "yes"}, ["greedy_exact='yes'", "true or false"]),
        ({"optim": "lr 0.3"}, ["optim='lr 0.3'", "a JSON object of optimiser settings"]),
        ({"model": " "}, ["model=' '", "must name the model"]),
        ({"model_id": None}, ["metadata lacks model_id"]),
    ],
)
def test_decode_checks_every_metadata_field(tmp_path, fox, changes, words):
    vec = edit_metadata(fox, tmp_path / "v.safetensors", **changes)
    refused(memcap("decode", str(vec), timeout=120), str(vec), *words)


# --- item 4: Ctrl-C ------------------------------------------------------------------------


def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_file(tmp_path):
    out = tmp_path / "v.safetensors"
    from memcap.corpora import lee_articles

    # long news articles in one vector of a tiny model: it cannot converge before the signal
    # (a repeated sentence could, and then the signal came after the work was done). The paper
    # preset, one fresh start of up to 100000 steps at its lr
    text = " ".join(lee_articles()[:3])
    args = ["compress", text, "-m", "tiny-llama", "-k", "1", "--preset", "paper"]
    args += ["--max-steps", "100000", "--patience", "100000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcap.cli", *args, "-o", str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (`pytest &`) ignores SIGINT, and a
        # child inherits that, so Python would never raise KeyboardInterrupt in it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert "tokens, tiny-llama" in proc.stdout.readline()  # the optimisation has started
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().split("\n")[-1].strip() == "memcap compress: interrupted; no vectors file was written"
    others = [line for line in err.split("\n") if line.strip() and not line.lstrip("\r").startswith("compress:")]
    assert len(others) == 1  # beside the progress bar, one line
    assert list(tmp_path.iterdir()) == []


# --- item 6: latexmk without shell escape; the README's rebuild command ----------------------


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk")
def test_latexmk_runs_without_shell_escape_even_when_a_latexmkrc_turns_it_on(tmp_path, monkeypatch):
    from memcap.analysis.report import compile_latex

    home = tmp_path / "home"
    home.mkdir()
    (home / ".latexmkrc").write_text("$pdflatex = 'pdflatex -shell-escape %O %S';\n")
    monkeypatch.setenv("HOME", str(home))
    build = tmp_path / "build"
    build.mkdir()
    tex = build / "doc.tex"
    tex.write_text(r"\documentclass{article}\begin{document}\immediate\write18{touch escaped}Hi.\end{document}")
    assert compile_latex(tex).is_file()
    assert not (build / "escaped").exists()


def test_readme_says_how_to_rebuild_a_deleted_table():
    text = (REPO / "README.md").read_text()
    resuming = text[text.index("**Resuming.**") :].split("\n\n")[0]
    assert "tables/summary.csv" in resuming and "--forcerun tables" in resuming
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert re.search(r"^rule tables:", rules, re.M)
