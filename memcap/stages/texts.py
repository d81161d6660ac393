"""Texts to compress: natural chunks (second half of their sentences) and random words.

One JSON object per line and sample (format: docs/records.md, "Texts"). The workflow's rules
`texts` and `random_texts` call `write_texts`; by hand:

    python -c "from memcap.stages.texts import write_texts; write_texts('lee', \
        {'source': 'package', 'package': 'gensim', \
         'file': 'test/test_data/lee_background.cor', 'samples': 3}, 'lee.jsonl')"

Natural sources (`source` key of a dataset):
  hf       a Hugging Face dataset (`path`, `split`, `column`, optional `revision`), loaded with
           `datasets.load_dataset`; row i is sample i (the paper uses the first 50 chunks).
           A folder at `path` (e.g. a local copy of the repository's parquet files) comes first.
  package  a text file shipped inside an installed Python package (`package`, `file`), one
           document per line; e.g. gensim's Lee news corpus. The package is never imported.
  file     a local text file (`path`), one document per line.
Each takes the first `samples` documents, or with `documents: [8, 9, 12]` exactly those, by
index (sample ids lee-0008, lee-0009, lee-0012 on a dataset named lee: selected_documents).
Random text (`source: random`) draws words from a vocabulary file (memcap.stages.vocab).
"""

from __future__ import annotations

import random
from pathlib import Path

from memcap.io import package_file, read_jsonl, write_jsonl
from memcap.records import KINDS  # every row's `kind`: how the analysis treats the text

NATURAL_SOURCES = ("hf", "package", "file")


def text_kind(row: dict) -> str:
    """A texts row's kind, natural or random; rows written before `kind` existed are random
    iff they carry their own sampled `length` (only random text does)."""
    kind = row.get("kind")
    if kind is None:
        return "random" if isinstance(row.get("length"), int) else "natural"
    if kind not in KINDS:
        raise ValueError(f"text {row.get('id')!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def second_half(text: str, language: str = "en") -> str:
    """Keep the second half of the text's sentences, joined by single spaces (docs/method.md section 3.1)."""
    import pysbd  # no model download; deterministic for a pinned version

    segmenter = pysbd.Segmenter(language=language, clean=False)
    sentences = [s.strip() for s in segmenter.segment(text) if s.strip()]
    return " ".join(sentences[len(sentences) // 2 :])


def load_documents(spec: dict, samples: int | None) -> list[tuple[str, str]]:
    """The first `samples` documents (None: all) of a natural source as (text, source reference) pairs."""
    source = spec["source"]
    if source == "hf":
        import datasets

        split, column = spec.get("split", "train"), spec.get("column", "text")
        rows = datasets.load_dataset(spec["path"], split=split, revision=spec.get("revision"))
        if column not in rows.column_names:
            raise ValueError(
                f"dataset {spec['path']} (split {split!r}) has no column {column!r}; "
                f"set `column` to one of: {', '.join(rows.column_names)}"
            )
        n = len(rows) if samples is None else min(samples, len(rows))
        return [(rows[i][column], f"hf:{spec['path']}#{i}") for i in range(n)]
    if source == "package":
        path = package_file(spec["package"], spec["file"])
        prefix = f"{spec['package']}:{path.name}"
    elif source == "file":
        path = Path(spec["path"])
        prefix = f"file:{path.name}"
    else:
        raise ValueError(f"unknown natural source {source!r}; allowed: {NATURAL_SOURCES}")
    docs = [(line, f"{prefix}#{i}") for i, line in enumerate(document_lines(path)) if line.strip()]
    if not docs:
        raise ValueError(f"{path} holds no document: it is empty or blank; give one document per line")
    return docs if samples is None else docs[:samples]


def document_lines(path: Path) -> list[str]:
    r"""The lines of a documents file, UTF-8, split on "\n" only (a trailing "\r" dropped):
    str.splitlines would also split at U+2028, form feeds or U+0085 inside a document."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path} is not UTF-8: byte {err.start} (0x{data[err.start]:02x}, line {line}) {err.reason}; "
            "save the file as UTF-8"
        ) from None
    return [line.removesuffix("\r") for line in text.split("\n")]


def natural_texts(dataset: str, spec: dict, samples: int | None = None) -> list[dict]:
    """Rows for a natural dataset: sample i keeps the second half of document i's sentences.

    With `min_words`, documents whose second half has fewer words are skipped (the ids keep
    the document's index, so a sample's id and seed do not depend on the filter). With
    `documents` (a list of document indices), exactly those documents, in that order
    (selected_documents; `samples` is then not used).
    """
    if spec.get("documents") is not None:
        return selected_documents(dataset, spec, spec["documents"])
    samples = spec.get("samples", 50) if samples is None else samples
    language = spec.get("language", "en")
    min_words = spec.get("min_words") or 0
    rows = []
    for i, (text, ref) in enumerate(load_documents(spec, None if min_words else samples)):
        kept = second_half(text, language)
        if len(kept.split()) < min_words:
            continue
        rows.append(_natural_row(dataset, i, kept, ref))
        if len(rows) == samples:
            break
    if len(rows) < samples:
        fewer = f" with at least {min_words} words" if min_words else ""
        raise ValueError(f"dataset {dataset!r}: {samples} samples asked, source has {len(rows)}{fewer}")
    return rows


def _natural_row(dataset: str, i: int, text: str, ref: str) -> dict:
    """One natural texts row: document i's kept half, id `<dataset>-<i:04d>`."""
    return {"id": f"{dataset}-{i:04d}", "text": text, "source": ref, "kind": "natural", "seed": None, "length": None}


def missing_document(dataset: str, indices: list[int], n: int) -> str | None:
    """The error for the first of `indices` beyond a source of `n` documents, or None."""
    missing = [i for i in indices if i >= n]
    if not missing:
        return None
    return (
        f"Invalid config key 'datasets.{dataset}.documents': document {missing[0]} does not exist; "
        f"allowed: 0 to {n - 1} (the source has {n} documents)"
    )


def selected_documents(dataset: str, spec: dict, documents) -> list[dict]:
    """Rows for the documents of a natural dataset chosen by index (config key
    `datasets.<dataset>.documents`), in the order given: index i is document i of the source
    (the i-th non-blank line of a file, row i of a Hugging Face split), the sample id
    `<dataset>-<i:04d>` that natural_texts gives it, so `documents: [8, 9, 12]` on a dataset
    named lee gives lee-0008, lee-0009 and lee-0012, the ids and texts of
    benchmarks/validation/texts.jsonl. With `min_words`, a chosen document whose kept half
    is shorter is an error, not skipped. A ValueError names the key, the bad value and what
    is allowed."""
    key = f"datasets.{dataset}.documents"
    indices = list(documents) if isinstance(documents, list | tuple) else None
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices):
        raise ValueError(
            f"Invalid config key {key!r}: {documents!r} is not a list of document indices; "
            "allowed: a non-empty list of distinct integers >= 0 (index i is sample id "
            f"{dataset}-<i as 4 digits>), or null for the first `samples` documents"
        )
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if twice:
        raise ValueError(
            f"Invalid config key {key!r}: document {twice[0]} is listed twice; allowed: each document once"
        )
    docs = load_documents(spec, max(indices) + 1)
    missing = missing_document(dataset, indices, len(docs))
    if missing:
        raise ValueError(missing)
    language, min_words = spec.get("language", "en"), spec.get("min_words") or 0
    rows = []
    for i in indices:
        text, ref = docs[i]
        kept = second_half(text, language)
        if len(kept.split()) < min_words:
            raise ValueError(
                f"Invalid config key {key!r}: document {i} keeps {len(kept.split())} words, fewer than "
                f"min_words {min_words}; allowed: documents whose kept half has at least min_words words, "
                "or min_words null"
            )
        rows.append(_natural_row(dataset, i, kept, ref))
    return rows


def random_texts(
    dataset: str,
    words: list[str],
    samples: int,
    max_length: int,
    seed: int = 0,
    source: str = "vocab",
) -> list[dict]:
    """Random-word texts: per sample L ~ U[2, max_length], then 5*L words with replacement.

    Sample i uses the seed `seed + i` (recorded), so a sample never depends on the others.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    if not words:
        raise ValueError("empty vocabulary")
    rows = []
    for i in range(samples):
        rng = random.Random(seed + i)
        length = rng.randint(2, max_length)
        text = " ".join(rng.choices(words, k=5 * length))
        rows.append(
            {
                "id": f"{dataset}-{i:04d}",
                "text": text,
                "source": source,
                "kind": "random",
                "seed": seed + i,
                "length": length,
            }
        )
    return rows


def write_texts(
    dataset: str,
    spec: dict,
    out: str | Path,
    *,
    vocab: str | Path | None = None,
    vocab_spec: dict | None = None,
    max_length: int | None = None,
) -> Path:
    """Build one dataset's texts file: natural (`spec['source']` in hf/package/file) or random.

    Random text needs the vocabulary file `vocab` (one word per line, from memcap.stages.vocab), its
    config `vocab_spec` (recorded as each row's source) and `max_length` (L_up).
    """
    if spec["source"] == "random":
        from memcap.stages.vocab import label, read_vocab

        if vocab is None or max_length is None:
            raise ValueError("random text needs a vocabulary file and max_length")
        words = read_vocab(vocab)
        rows = random_texts(
            dataset,
            words,
            spec.get("samples", 100),
            max_length,
            seed=spec.get("seed", 0),
            source=label(vocab_spec) if vocab_spec else f"vocab:{Path(vocab).name}",
        )
    else:
        rows = natural_texts(dataset, spec)
    return write_jsonl(rows, out, ensure_ascii=False)


def read_texts(path: str | Path, max_samples: int | None = None) -> list[dict]:
    """Texts JSONL (docs/records.md), checked: ids unique, no empty text."""
    rows = read_jsonl(Path(path))
    if max_samples is not None:
        rows = rows[:max_samples]
    seen = set()
    for row in rows:
        if "id" not in row or "text" not in row:
            raise ValueError(f"{path}: every row needs `id` and `text`; got keys {sorted(row)}")
        sid = str(row["id"])
        if sid in seen:
            raise ValueError(f"{path}: sample id {sid!r} appears twice")
        seen.add(sid)
        if not str(row["text"]).strip():
            raise ValueError(f"{path}: sample {sid!r} has an empty text")
        text_kind(row)  # a kind that is there must be one the analysis knows
    if not rows:
        raise ValueError(f"{path}: no texts")
    return rows
