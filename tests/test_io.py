"""Atomic writes, JSON lines and package data files (memcap.io).

pytest tests/test_io.py
"""

from __future__ import annotations

import re

import pytest

from memcap.io import JsonlError, atomic_open, atomic_path, atomic_write_text, package_file, read_jsonl, write_jsonl
from memcap.stages import vocab


def test_atomic_write_replaces_the_file(tmp_path):
    out = tmp_path / "new" / "dir" / "a.txt"  # parents are made
    atomic_write_text(out, "one\n")
    atomic_write_text(out, "two\n")
    assert out.read_text() == "two\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_while_writing_keeps_the_old_file_and_no_temp_file(tmp_path, error):
    out = tmp_path / "a.txt"
    out.write_text("old\n")
    with pytest.raises(error):
        with atomic_open(out, "w", encoding="utf-8") as f:
            f.write("half of the new")
            raise error
    with pytest.raises(error):
        with atomic_path(out, suffix=".part") as tmp:
            tmp.write_text("half of the new")
            raise error
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_row_that_is_no_json_keeps_the_old_file(tmp_path):
    out = tmp_path / "rows.jsonl"
    write_jsonl([{"a": 1}], out)
    with pytest.raises(TypeError):
        write_jsonl([{"a": 2}, {"b": object()}], out)
    assert read_jsonl(out) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_a_failed_vocabulary_leaves_no_temp_file(tmp_path):
    with pytest.raises(ValueError, match="unknown vocabulary source"):
        vocab.write_vocab({"source": "nowhere"}, tmp_path / "v.txt")
    assert list(tmp_path.iterdir()) == []


def test_jsonl_round_trip_passes_the_json_options(tmp_path):
    rows = [{"b": "café", "a": 1}, {"a": None}]
    out = write_jsonl(rows, tmp_path / "r.jsonl", ensure_ascii=False)
    assert out.read_text(encoding="utf-8") == '{"b": "café", "a": 1}\n{"a": null}\n'
    assert read_jsonl(out) == rows
    write_jsonl(rows, out, sort_keys=True)
    assert out.read_text(encoding="utf-8").splitlines()[0] == '{"a": 1, "b": "caf\\u00e9"}'
    out.write_text('{"a": 1}\n\n  \n{"a": 2}\n')  # blank lines are skipped
    assert read_jsonl(out) == [{"a": 1}, {"a": 2}]


def test_missing_package_or_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not installed"):
        package_file("no_such_package_xyz", "a.txt")
    with pytest.raises(FileNotFoundError, match="pip install it"):
        package_file("no_such_package_xyz", "a.txt", missing="a test needs it: pip install it")
    with pytest.raises(FileNotFoundError, match="not found in package 'gensim'"):
        package_file("gensim", "no/such/file.txt")
    assert package_file("gensim", "test/test_data/lee_background.cor").is_file()


@pytest.mark.parametrize(
    "content, why",
    [
        (b'{"a": 1}\n{"a": 2, "b": "cut sho', "line 2: not valid JSON"),
        (b'{"a": 1}\n\n["a list"]\n', "line 3: a JSON list, not an object"),
        (b'{"a": "caf\xe9"}\n', "line 1: byte 10 of the line is not UTF-8"),
    ],
)
def test_a_bad_line_names_the_file_and_the_line(tmp_path, content, why):
    path = tmp_path / "part.jsonl"
    path.write_bytes(content)
    with pytest.raises(JsonlError, match="^" + re.escape(f"{path}, {why}")) as err:
        read_jsonl(path)
    assert isinstance(err.value, ValueError) and err.value.path == path
