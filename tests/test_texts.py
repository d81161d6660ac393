"""Texts (memcap.stages.texts), vocabularies (memcap.stages.vocab) and the download helpers (memcap.stages.download).

pytest tests/test_texts.py
"""

from __future__ import annotations

import json
import os
import sys
import types
import zipfile

import pytest

from memcap.io import package_file, read_jsonl
from memcap.stages import download, texts, vocab

LEE = {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor"}
HUB_VARIABLES = ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE")
HUB_AT_START = {name: os.environ.get(name) for name in HUB_VARIABLES}  # before any test ran


@pytest.fixture(autouse=True)
def hub_variables_restored():
    """use_cache (download_model calls it) sets the hub's variables for good: each test here
    gets them back as they were, so no later test runs offline or in a removed cache."""
    before = {name: os.environ.get(name) for name in HUB_VARIABLES}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_second_half_keeps_the_later_sentences():
    text = "First one here. Second one follows. Third is next. Fourth ends it."
    assert texts.second_half(text) == "Third is next. Fourth ends it."
    assert texts.second_half("Only one sentence.") == "Only one sentence."
    odd = "A b c. D e f. G h i."
    assert texts.second_half(odd) == "D e f. G h i."  # floor(3 / 2) = 1 sentence dropped


def test_lee_corpus_from_the_installed_package_without_importing_gensim():
    rows = texts.natural_texts("lee", dict(LEE, samples=3))
    assert "gensim" not in sys.modules
    assert [r["id"] for r in rows] == ["lee-0000", "lee-0001", "lee-0002"]
    assert [r["source"] for r in rows] == [f"gensim:lee_background.cor#{i}" for i in range(3)]
    assert all(r["seed"] is None and r["length"] is None for r in rows)
    assert all(r["kind"] == "natural" for r in rows)
    first = package_file("gensim", LEE["file"]).read_text().splitlines()[0]
    assert rows[0]["text"] == texts.second_half(first)
    assert rows[0]["text"][:60] in first and len(rows[0]["text"]) < len(first)


def test_local_file_source(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("One. Two. Three. Four.\n\nFive. Six.\n")
    rows = texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 2})
    assert [r["text"] for r in rows] == ["Three. Four.", "Six."]
    assert [r["source"] for r in rows] == ["file:docs.txt#0", "file:docs.txt#2"]
    with pytest.raises(ValueError, match="3 samples asked, source has 2"):
        texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 3})


def test_a_file_source_splits_documents_on_newlines_only(tmp_path):
    """U+2028, a form feed and U+0085 are characters inside a document, not line breaks."""
    path = tmp_path / "docs.txt"
    path.write_bytes("One. Two.\u2028Three. Four.\nFive.\fSix. Seven.\r\nEight. Nine.\x85Ten.\n".encode())
    rows = texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 3})
    assert [r["source"] for r in rows] == ["file:docs.txt#0", "file:docs.txt#1", "file:docs.txt#2"]
    assert "\u2028" in texts.load_documents({"source": "file", "path": str(path)}, None)[0][0]
    assert [d for d, _ in texts.load_documents({"source": "file", "path": str(path)}, None)][1] == "Five.\fSix. Seven."
    with pytest.raises(ValueError, match="4 samples asked, source has 3"):
        texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 4})


def test_a_file_source_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\u00e9 one. Two.\nNa\u00efve three. Four.\n".encode("latin-1"))
    with pytest.raises(ValueError) as err:
        texts.natural_texts("mine", {"source": "file", "path": str(path), "samples": 1})
    assert f"{path} is not UTF-8: byte 3 (0xe9, line 1)" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\n \n\t\n"])
def test_an_empty_file_source_fails_when_the_texts_are_made(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="holds no document: it is empty or blank"):
        texts.write_texts("mine", {"source": "file", "path": str(path), "samples": 1}, tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()


def test_hf_source_takes_the_first_rows_of_the_split(monkeypatch):
    calls = {}

    def load_dataset(path, split, revision):
        calls.update(path=path, split=split, revision=revision)
        return [{"text": f"Chunk {i} starts. It goes on. It ends {i}.", "other": i} for i in range(10)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec = {
        "source": "hf",
        "path": "yurakuratov/pg19_valid_1k_chunks",
        "split": "train",
        "column": "text",
        "samples": 4,
    }
    rows = texts.natural_texts("pg19", spec)
    assert calls == {"path": "yurakuratov/pg19_valid_1k_chunks", "split": "train", "revision": None}
    assert [r["id"] for r in rows] == [f"pg19-{i:04d}" for i in range(4)]
    assert rows[2]["source"] == "hf:yurakuratov/pg19_valid_1k_chunks#2"
    assert rows[2]["text"] == "It goes on. It ends 2."


def test_random_texts_follow_the_paper_and_are_reproducible():
    words = [f"w{i}" for i in range(1000)]
    rows = texts.random_texts("random", words, samples=50, max_length=40, seed=7, source="test")
    assert [r["seed"] for r in rows] == list(range(7, 57))
    for r in rows:
        assert 2 <= r["length"] <= 40
        drawn = r["text"].split(" ")
        assert len(drawn) == 5 * r["length"] and set(drawn) <= set(words)
    assert len({r["length"] for r in rows}) > 10  # uniform over [2, 40], not constant
    assert rows == texts.random_texts("random", words, samples=50, max_length=40, seed=7, source="test")
    # sample i depends on its own seed only, not on how many samples there are
    assert texts.random_texts("random", words, 3, 40, seed=7, source="test") == rows[:3]
    with pytest.raises(ValueError):
        texts.random_texts("random", words, 3, 1)


def test_write_texts_random_and_natural(tmp_path):
    vocab_file = vocab.write_vocab({"source": "wordfreq", "lang": "en", "size": 1000}, tmp_path / "v.txt")
    out = texts.write_texts(
        "random", {"source": "random", "vocab": "wordfreq", "samples": 5, "seed": 3}, tmp_path / "r.jsonl",
        vocab=vocab_file, vocab_spec={"source": "wordfreq", "lang": "en"}, max_length=16,
    )  # fmt: skip
    rows = read_jsonl(out)
    assert len(rows) == 5 and set(rows[0]) == {"id", "text", "source", "kind", "seed", "length"}
    assert {r["kind"] for r in rows} == {"random"}
    assert rows[0]["source"] == "wordfreq:en" and rows[0]["seed"] == 3
    assert set(" ".join(r["text"] for r in rows).split()) <= set(vocab.read_vocab(vocab_file))
    lee = read_jsonl(texts.write_texts("lee", dict(LEE, samples=2), tmp_path / "lee.jsonl"))
    assert [r["id"] for r in lee] == ["lee-0000", "lee-0001"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    with pytest.raises(ValueError, match="vocabulary file"):
        texts.write_texts("random", {"source": "random"}, tmp_path / "x.jsonl")


def test_wordfreq_vocabulary_is_the_top_100k(tmp_path):
    out = vocab.write_vocab({"source": "wordfreq", "lang": "en", "size": 100000}, tmp_path / "w.txt")
    words = vocab.read_vocab(out)
    assert len(words) == 100000 and words[:3] == ["the", "to", "and"]
    assert all(w and " " not in w for w in words)


def make_glove_zip(path, n=30):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("glove.6B.50d.txt", "".join(f"word{i} 0.1 -0.2 0.3\n" for i in range(n)))
    return path


def test_glove_vocabulary_from_a_url_is_downloaded_once(tmp_path):
    archive = make_glove_zip(tmp_path / "glove.6B.zip")
    spec = {"source": "url", "url": archive.as_uri(), "member": "glove.6B.50d.txt", "size": 20}
    out = vocab.write_vocab(spec, tmp_path / "glove.txt", cache_dir=tmp_path / "cache")
    assert vocab.read_vocab(out) == [f"word{i}" for i in range(20)]
    cached = tmp_path / "cache" / "glove.6B.zip"
    assert cached.is_file()
    archive.unlink()  # the second time comes from the cache
    assert vocab.words(spec, tmp_path / "cache")[:2] == ["word0", "word1"]
    assert vocab.label(spec).startswith("glove:glove.6B.50d.txt@file:")
    with pytest.raises(ValueError, match="30 words, 35 asked"):
        vocab.glove_words(cached, "glove.6B.50d.txt", 35)


def test_glove_vocabulary_from_a_hf_mirror(tmp_path, monkeypatch):
    archive = make_glove_zip(tmp_path / "glove.6B.zip")
    seen = {}

    def hf_hub_download(repo, file, revision, cache_dir, token):
        seen.update(repo=repo, file=file, revision=revision)
        return str(archive)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    spec = {
        "source": "hf",
        "repo": "stanfordnlp/glove",
        "file": "glove.6B.zip",
        "member": "glove.6B.50d.txt",
        "size": 5,
    }
    assert vocab.words(spec, tmp_path) == [f"word{i}" for i in range(5)]
    assert seen == {"repo": "stanfordnlp/glove", "file": "glove.6B.zip", "revision": None}


def test_failed_download_leaves_no_file(tmp_path):
    with pytest.raises(OSError):  # urllib's URLError
        vocab.download((tmp_path / "missing.zip").as_uri(), tmp_path / "out.zip")
    assert list(tmp_path.iterdir()) == []


def test_read_vocab_splits_on_newlines_only(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a\nb\u2028c\nd\n", encoding="utf-8")
    assert vocab.read_vocab(path) == ["a", "b\u2028c", "d"]


def test_use_cache_points_the_hub_at_the_cache(tmp_path, monkeypatch):
    for name in HUB_VARIABLES:
        # setenv first: monkeypatch records the variable's state (absent too) and restores it,
        # where delenv(raising=False) of an absent one records nothing
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    download.use_cache(tmp_path / "c")
    assert os.environ["HF_HUB_CACHE"] == str((tmp_path / "c" / "hub").resolve())
    assert os.environ["HF_DATASETS_CACHE"] == str((tmp_path / "c" / "datasets").resolve())
    assert "HF_HUB_OFFLINE" not in os.environ
    download.use_cache(tmp_path / "c", offline=True)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_download_model_hf_uses_the_pinned_revision(tmp_path, monkeypatch):
    import huggingface_hub

    registry = tmp_path / "models.yaml"
    registry.write_text("m:\n  source: hf\n  id: org/model\n  revision: abc123\n")
    snap = tmp_path / "snap" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    seen = {}

    class Api:
        def list_repo_files(self, repo, revision, token):
            return ["config.json", "model.safetensors", "pytorch_model.bin"]

    def snapshot_download(repo, revision, token, ignore_patterns, cache_dir):
        seen.update(repo=repo, revision=revision, token=token, ignore=ignore_patterns, cache=cache_dir)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(name, "")
    out = download.download_model("m", registry, tmp_path / "cache", tmp_path / "m.json")
    record = json.loads(out.read_text())
    assert seen["repo"] == "org/model" and seen["revision"] == "abc123"
    assert seen["token"] == "secret-token" and "*.bin" in seen["ignore"]  # safetensors only
    assert seen["cache"] == str((tmp_path / "cache" / "hub").resolve())
    assert record["resolved_revision"] == "abc123" and record["files"] == 1
    assert "secret-token" not in out.read_text()


def test_download_model_needs_nothing_for_random_models(tmp_path, root):
    out = download.download_model("tiny-gpt-neox", root / "config/models.yaml", tmp_path, tmp_path / "t.json")
    assert json.loads(out.read_text())["source"] == "random"


def test_the_hub_variables_are_as_they_were_before_these_tests():
    """The last test of the file: what later test files see."""
    assert {name: os.environ.get(name) for name in HUB_VARIABLES} == HUB_AT_START
