"""optim.parametrisation low_rank (memcap.core.parametrisation, docs/method.md section 8.5) on
tiny random-weight models: the bases, compression in the subspace, warm starts, the settings."""

import functools
import json
import logging
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from memcap.cli import main
from memcap.core import engine
from memcap.core.engine import OptimConfig, compress_batch, greedy_decode
from memcap.core.models import load_model, load_registry
from memcap.core.parametrisation import pca_basis, random_basis, subspace
from memcap.core.vectors import read_metadata, read_vectors_file, save_vectors
from memcap.corpora import lee_articles

QUICK = dict(lr=0.1, max_steps=400, patience=400)  # tests/test_engine.py's FAST


@functools.cache
def tiny(name="tiny-llama"):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


def text_ids(lm, i=3, n=8):
    return lm.tokenize(lee_articles()[i])[:n]


def low_rank(rank, basis="pca", **values):
    return OptimConfig(**QUICK, parametrisation="low_rank", rank=rank, basis=basis, **values)


# --- settings ---------------------------------------------------------------------------


def test_the_defaults_leave_every_settings_fingerprint_as_it_was():
    # OptimConfig().as_dict() and the fast preset's, as they were before these keys existed
    paper = {"lr": 0.01, "beta1": 0.9, "beta2": 0.9, "weight_decay": 0.01, "eps": 1e-8, "max_steps": 5000}
    paper["patience"] = 2000
    fast = {
        "lr": 0.3,
        "beta1": 0.9,
        "beta2": 0.9,
        "weight_decay": 0.01,
        "eps": 1e-8,
        "max_steps": 250,
        "patience": 150,
        "fresh_lr": 0.01,
        "fresh_max_steps": 300,
        "preset": "fast",
    }
    assert list(OptimConfig().as_dict().items()) == list(paper.items())
    assert list(OptimConfig.from_dict({"preset": "fast"}).as_dict().items()) == list(fast.items())
    explicit = {"parametrisation": "full", "rank": None, "basis": "pca"}
    assert OptimConfig.from_dict(explicit).as_dict() == paper


def test_a_low_rank_setting_is_recorded_and_its_default_basis_is_not():
    assert OptimConfig(parametrisation="low_rank", rank=8).as_dict() == {
        **OptimConfig().as_dict(),
        "parametrisation": "low_rank",
        "rank": 8,
    }
    assert OptimConfig(parametrisation="low_rank", rank=8, basis="random").as_dict()["basis"] == "random"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"parametrisation": "lowrank"}, "optim.parametrisation 'lowrank' is not one of full, low_rank"),
        ({"parametrisation": "low_rank"}, "optim.rank must be a whole number >= 1 (and <= d) with optim."),
        ({"parametrisation": "low_rank", "rank": 0}, "optim.rank must be a whole number >= 1"),
        ({"parametrisation": "low_rank", "rank": 8, "basis": "svd"}, "optim.basis 'svd' is not one of pca, random"),
        ({"rank": 8}, "optim.rank 8 applies to optim.parametrisation low_rank only"),
        ({"basis": "random"}, "optim.basis 'random' applies to optim.parametrisation low_rank only"),
    ],
)
def test_bad_settings_name_the_key_the_value_and_what_is_allowed(values, message):
    with pytest.raises(ValueError) as err:
        OptimConfig.from_dict(values)
    assert message in str(err.value)


def test_a_rank_above_the_width_is_refused_where_the_width_is_known(capsys):
    lm = tiny()
    with pytest.raises(ValueError, match=r"optim.rank must be between 1 and d = 64 .*tiny-llama.*, got 65"):
        compress_batch(lm, [text_ids(lm)], K=1, protocol="strict", seeds=[0], optim=low_rank(65))
    code = main(["compress", "The fox jumps.", "-m", "tiny-llama", "-k", "1", "--parametrisation", "low_rank"])
    assert code == 2 and "optim.rank must be a whole number >= 1" in capsys.readouterr().err


# --- the bases --------------------------------------------------------------------------


def test_the_pca_basis_is_orthonormal_and_spans_the_top_principal_directions(monkeypatch):
    lm = tiny()
    E = lm.embeddings.weight.detach().double()
    centred = E - E.mean(dim=0)
    values, vectors = torch.linalg.eigh(centred.T @ centred / len(E))
    r = 8
    P = subspace(lm, r, "pca")
    assert P.shape == (64, r) and P.dtype == torch.float32
    assert torch.allclose(P.T @ P, torch.eye(r), atol=1e-5)
    top = vectors[:, -r:]  # the same subspace: equal projectors (a basis is unique up to sign)
    assert torch.allclose(P.double() @ P.double().T, top @ top.T, atol=1e-4)
    # largest first: column j carries the (j+1)-th largest variance
    variance = ((centred @ P.double()) ** 2).mean(dim=0)
    assert torch.allclose(variance, values.flip(0)[:r], rtol=1e-4)
    # the covariance is summed over row chunks; chunks of 100 rows give the same basis
    monkeypatch.setattr("memcap.core.parametrisation._ROWS", 100)
    assert torch.allclose(pca_basis(lm.embeddings.weight.detach(), r), P, atol=1e-5)


def test_bases_are_cached_per_model_rank_and_kind_and_random_is_fixed():
    lm = tiny()
    assert subspace(lm, 8, "pca") is not subspace(lm, 8, "random")
    assert torch.equal(subspace(lm, 8, "random"), random_basis(64, 8))
    assert set(lm.model._memcap_subspaces) >= {("pca", 8), ("random", 8)}
    R = random_basis(64, 64)
    assert torch.allclose(R.T @ R, torch.eye(64), atol=1e-5)
    assert not torch.allclose(random_basis(64, 8, seed=1), random_basis(64, 8))


# --- compression in the subspace --------------------------------------------------------


@pytest.mark.parametrize("basis", ["pca", "random"])
def test_a_low_rank_compression_decodes_the_text_from_vectors_in_the_subspace(basis):
    lm = tiny()
    ids = text_ids(lm)
    out = compress_batch(lm, [ids], K=4, protocol="strict", seeds=[1], optim=low_rank(32, basis))[0]
    assert out.converged and out.greedy_exact and out.accuracy == 1.0
    assert out.vectors.shape == (4, 64) and out.vectors.dtype == torch.float32  # saved as full vectors
    P = subspace(lm, 32, basis)
    assert torch.allclose(out.vectors @ P @ P.T, out.vectors, atol=1e-5 * out.vectors.abs().max().item())
    assert greedy_decode(lm, out.vectors[None], len(ids))[0].tolist() == ids


def test_an_identity_basis_reproduces_the_full_parametrisation_step_for_step(monkeypatch):
    """The plumbing (the start projected, gradients through the basis, the best kept as full
    vectors) adds nothing when the basis is the identity: the same steps, the same vectors."""
    lm = tiny()
    ids = text_ids(lm)
    full = compress_batch(lm, [ids], K=2, protocol="strict", seeds=[3], optim=OptimConfig(**QUICK))[0]
    monkeypatch.setattr(engine, "subspace", lambda lm, rank, basis: torch.eye(lm.mem_dim))
    same = compress_batch(lm, [ids], K=2, protocol="strict", seeds=[3], optim=low_rank(64))[0]
    assert full.converged and same.steps == full.steps
    assert torch.allclose(same.vectors, full.vectors, atol=1e-6)


def test_a_full_rank_random_basis_converges_too():
    """A full-rank orthonormal basis is a rotation: the same model of the vectors, but Adam's
    per-coordinate steps are not rotation-invariant, so the trajectory differs from the full
    one; what must hold is that it still converges and decodes."""
    lm = tiny()
    ids = text_ids(lm)
    out = compress_batch(lm, [ids], K=2, protocol="strict", seeds=[3], optim=low_rank(64, "random"))[0]
    assert out.converged and out.greedy_exact


def test_a_warm_start_begins_at_its_projection_onto_the_subspace():
    lm = tiny()
    P = subspace(lm, 8, "pca")
    start = torch.randn(2, 64, generator=torch.Generator().manual_seed(5))
    vectors = engine._Vectors(lm, 2, [0, 1], [start, None], low_rank(8), [False, True])
    assert vectors.params[0].shape == (2, 8)
    assert torch.allclose(vectors.params[0], start @ P)
    assert torch.allclose(vectors.saved()[0], start @ P @ P.T)  # what lies outside is lost
    # the random init is today's init, projected
    fresh = engine.init_vectors(2, 64, lm.embedding_std(), 1)
    assert torch.allclose(vectors.saved()[1], fresh @ P @ P.T, atol=1e-6)


def test_vectors_of_a_low_rank_run_warm_start_it_losslessly():
    """The search's warm starts (vectors of a prefix, or an attempt's own best) already lie in
    the subspace, so the projection keeps them whole: lossless vectors stay lossless at step 0."""
    lm = tiny()
    ids = text_ids(lm)
    optim = low_rank(32)
    first = compress_batch(lm, [ids], K=4, protocol="strict", seeds=[1], optim=optim)[0]
    again = compress_batch(lm, [ids], K=4, protocol="strict", seeds=[1], optim=optim, init=[first.vectors])[0]
    assert first.converged and again.converged and again.steps == 0


def test_the_command_line_compresses_low_rank_and_decode_reads_the_file(tmp_path, capsys):
    out, models = tmp_path / "fox.safetensors", ["--models-file", "config/models.yaml"]
    flags = ["--preset", "paper", "--lr", "0.1", "--max-steps", "400", "-k", "4"]
    flags += ["--parametrisation", "low_rank", "--rank", "32"]
    assert main(["compress", "The fox jumps.", "-m", "tiny-llama", "-o", str(out), *models, *flags]) == 0
    assert "reproduces the text" in capsys.readouterr().out
    assert main(["decode", str(out), *models]) == 0
    assert capsys.readouterr().out.strip() == "The fox jumps."
    assert read_vectors_file(out).method == "paper + low_rank r=32 (pca)"


def test_a_vectors_file_records_its_parametrisation_and_older_files_still_read(tmp_path, caplog):
    lm, path = tiny(), tmp_path / "v.safetensors"
    ids = text_ids(lm)
    optim = OptimConfig.from_dict({"preset": "fast", "parametrisation": "low_rank", "rank": 4, "max_steps": 40})
    made = SimpleNamespace(accuracy=0.5, greedy_exact=False, steps=40)
    save_vectors(path, torch.randn(2, 64), lm, "strict", ids, made, optim)
    vf = read_vectors_file(path)
    assert vf.meta["preset"] == "fast" and vf.method == "fast + low_rank r=4 (pca)"
    recorded = json.loads(vf.meta["optim"])
    assert (recorded["parametrisation"], recorded["rank"], recorded["max_steps"]) == ("low_rank", 4, 40)
    assert OptimConfig.from_dict(recorded) == optim  # the whole setting, not only the preset's name
    caplog.set_level(logging.INFO, logger="memcap.decode")
    assert main(["-v", "decode", str(path), "--models-file", "config/models.yaml"]) == 0  # made inexact: a note
    assert "K=2 vector(s) of tiny-llama, 8 tokens, protocol strict, method fast + low_rank r=4 (pca)" in caplog.text
    assert "search" not in vf.meta  # the search's defaults: nothing recorded, as before the field
    save_vectors(path, torch.randn(2, 64), lm, "strict", ids, made, optim, {"budget": 800, "fails": 2})
    assert json.loads(read_vectors_file(path).meta["search"]) == {"budget": 800, "fails": 2}
    caplog.set_level(logging.INFO, logger="memcap.decode")
    assert main(["-v", "decode", str(path), "--models-file", "config/models.yaml"]) == 0
    assert 'method fast + low_rank r=4 (pca), search {"budget": 800, "fails": 2}' in caplog.text
    save_vectors(path, torch.randn(2, 64), lm, "strict", ids, made, optim)
    # a file written before optim (and preset) were recorded: the paper's, full
    meta = {k: v for k, v in read_metadata(path).items() if k not in ("optim", "preset")}
    save_file(load_file(path), path, metadata=meta)
    assert read_vectors_file(path).method == "paper"
    save_file(load_file(path), path, metadata={**meta, "optim": "[4]"})
    with pytest.raises(ValueError, match=r"metadata optim='\[4\]' is not valid: optim must be a JSON object"):
        read_vectors_file(path)
    save_file(load_file(path), path, metadata={**meta, "search": "800"})
    with pytest.raises(ValueError, match=r"metadata search='800' is not valid: search must be a JSON object"):
        read_vectors_file(path)
