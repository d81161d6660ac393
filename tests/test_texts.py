"""Texts (memcap.stages.texts), vocabularies (memcap.stages.vocab) and the download helpers (memcap.stages.download).

pytest tests/test_texts.py
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from unittest.mock import create_autospec

import pytest

from memcap.io import package_file, read_jsonl
from memcap.stages import download, texts, vocab

LEE = {"source": "package", "package": "gensim", "file": "test/test_data/lee_background.cor"}
HUB_VARIABLES = ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE")
# use_cache (download_model calls it) sets the hub's variables for good; conftest's autouse
# environment_and_folder_restored gives each test them back, so none runs offline by accident


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


def chunk_dataset(folder: Path, splits: dict[str, int]) -> Path:
    """A local copy of a chunk dataset, laid out as the authors' Hub repositories are: one
    parquet file per split (data/<split>-00000-of-00001.parquet), a `text` column and another."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True)
    for split, n in splits.items():
        table = pa.table(
            {
                "text": [f"{split.title()} chunk {i} starts. It goes on. It ends {i}." for i in range(n)],
                "book_id": list(range(n)),
            }
        )
        pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """datasets and huggingface_hub offline (as on a node without network), datasets' Arrow
    cache in tmp_path; restored after the test."""
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


HF_SPEC = {
    "source": "hf",
    "path": "yurakuratov/pg19_valid_1k_chunks",
    "split": "train",
    "column": "text",
    "samples": 4,
}


def test_hf_source_reads_the_first_rows_of_the_split_through_datasets(tmp_path, monkeypatch, offline_datasets):
    """The hf source through the real datasets.load_dataset, ending in a texts file: a local
    copy of the repository found under the config's own id (relative to the working
    directory), the rows of `split` (not of validation) in order, second halves of `column`."""
    chunk_dataset(tmp_path / "yurakuratov" / "pg19_valid_1k_chunks", {"train": 10, "validation": 3})
    monkeypatch.chdir(tmp_path)
    out = texts.write_texts("pg19", HF_SPEC, tmp_path / "pg19.jsonl")
    rows = texts.read_texts(out)
    assert [r["id"] for r in rows] == [f"pg19-{i:04d}" for i in range(4)]
    assert rows[2]["source"] == "hf:yurakuratov/pg19_valid_1k_chunks#2"
    assert rows[2]["text"] == "It goes on. It ends 2."
    assert {r["kind"] for r in rows} == {"natural"} and all(r["length"] is None for r in rows)
    assert list((tmp_path / "datasets-cache").iterdir())  # datasets' cache went where it was told
    with pytest.raises(ValueError, match="11 samples asked, source has 10"):
        texts.natural_texts("pg19", dict(HF_SPEC, samples=11))


def test_hf_source_names_the_columns_when_its_column_is_missing(tmp_path, offline_datasets):
    """A `column` the dataset lacks is one line naming the dataset, the split and its columns."""
    folder = chunk_dataset(tmp_path / "fanfics_1k_chunks", {"train": 2})
    with pytest.raises(ValueError) as err:
        texts.natural_texts("fanfics", dict(HF_SPEC, path=str(folder), column="content"))
    assert str(err.value) == (
        f"dataset {folder} (split 'train') has no column 'content'; set `column` to one of: text, book_id"
    )


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
    import huggingface_hub

    # autospec of the real function: a call its signature refuses fails the test
    hf_hub_download = create_autospec(huggingface_hub.hf_hub_download, return_value=str(archive))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    spec = {
        "source": "hf",
        "repo": "stanfordnlp/glove",
        "file": "glove.6B.zip",
        "member": "glove.6B.50d.txt",
        "size": 5,
    }
    assert vocab.words(spec, tmp_path) == [f"word{i}" for i in range(5)]
    hf_hub_download.assert_called_once_with(
        "stanfordnlp/glove", "glove.6B.zip", revision=None, cache_dir=tmp_path, token=None
    )


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
    """Online, download_model lists the repository at the pinned revision, skips the pickled
    weights beside safetensors, snapshots into the cache with HF_TOKEN and keeps the token out
    of its record. HfApi and snapshot_download are autospecs of the real ones (their signatures
    are checked); tests/test_hub.py runs the real ones over a hub cache."""
    import huggingface_hub
    from huggingface_hub.hf_api import ModelInfo

    registry = tmp_path / "models.yaml"
    registry.write_text("m:\n  source: hf\n  id: org/model\n  revision: abc123\n")
    snap = tmp_path / "snap" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    api = create_autospec(huggingface_hub.HfApi)
    files = ["config.json", "model.safetensors", "pytorch_model.bin"]
    api.return_value.model_info.return_value = ModelInfo(id="org/model", siblings=[{"rfilename": f} for f in files])
    snapshot_download = create_autospec(huggingface_hub.snapshot_download, return_value=str(snap))
    monkeypatch.setattr(huggingface_hub, "HfApi", api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # online, whatever the shell says
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(name, "")
    out = download.download_model("m", registry, tmp_path / "cache", tmp_path / "m.json")
    record = json.loads(out.read_text())
    api.return_value.model_info.assert_called_once_with("org/model", revision="abc123", token="secret-token")
    [call] = snapshot_download.call_args_list
    assert call.args == ("org/model",) and call.kwargs["revision"] == "abc123"
    assert call.kwargs["token"] == "secret-token" and "*.bin" in call.kwargs["ignore_patterns"]  # safetensors only
    assert call.kwargs["cache_dir"] == str((tmp_path / "cache" / "hub").resolve())
    assert record["resolved_revision"] == "abc123" and record["files"] == 1
    assert "secret-token" not in out.read_text()


def test_download_model_needs_nothing_for_random_models(tmp_path, root):
    out = download.download_model("tiny-gpt-neox", root / "config/models.yaml", tmp_path, tmp_path / "t.json")
    assert json.loads(out.read_text())["source"] == "random"
