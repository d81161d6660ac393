"""Vocabularies for random text: GloVe 6B top-100k (the paper) or wordfreq top-100k (offline).

The workflow's rule `vocab` calls `write_vocab`; by hand:

    python -c "from memcap.stages.vocab import write_vocab; \
        write_vocab({'source': 'wordfreq', 'lang': 'en', 'size': 100000}, 'wordfreq.txt')"

Sources (`source` key of a vocabulary):
  wordfreq  `wordfreq.top_n_list(lang, size)`, read from the installed package (offline).
  url       a GloVe zip downloaded once from `url` into `cache_dir`; the first `size` words of
            its `member` file (GloVe files list words by descending frequency).
  hf        the same zip from a Hugging Face repository (`repo`, `file`, `revision`) through
            `huggingface_hub.hf_hub_download`, a mirror for when the URL is unreachable.
The output is one word per line, most frequent first.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from memcap.io import atomic_open

SOURCES = ("wordfreq", "url", "hf")


def label(spec: dict) -> str:
    """Short provenance string recorded as each random text's `source`."""
    source = spec["source"]
    if source == "wordfreq":
        return f"wordfreq:{spec.get('lang', 'en')}"
    if source == "url":
        return f"glove:{spec.get('member', '')}@{spec['url']}"
    if source == "hf":
        return f"glove:{spec.get('member', '')}@hf:{spec['repo']}/{spec['file']}"
    raise ValueError(f"unknown vocabulary source {source!r}; allowed: {SOURCES}")


def download(url: str, dest: str | Path) -> Path:
    """Download `url` to `dest` once (atomic: a killed download leaves no partial file)."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    with atomic_open(dest, "wb", suffix=".part") as f, urllib.request.urlopen(url, timeout=60) as r:
        shutil.copyfileobj(r, f, length=1 << 20)
    return dest


def fetch_zip(spec: dict, cache_dir: str | Path) -> Path:
    """Local path of the vocabulary's zip file, downloading it into `cache_dir` if needed."""
    if spec["source"] == "url":
        name = spec.get("file") or spec["url"].rsplit("/", 1)[-1]
        return download(spec["url"], Path(cache_dir) / name)
    if spec["source"] == "hf":
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(
                spec["repo"],
                spec["file"],
                revision=spec.get("revision"),
                cache_dir=cache_dir,
                token=os.environ.get("HF_TOKEN"),
            )
        )
    raise ValueError(f"source {spec['source']!r} has no zip file")


def glove_words(zip_path: str | Path, member: str, size: int) -> list[str]:
    """The first `size` words of a GloVe text file inside a zip (word, then the vector)."""
    words = []
    with zipfile.ZipFile(zip_path) as z, z.open(member) as raw:
        for line in io.TextIOWrapper(raw, encoding="utf-8", newline="\n"):
            words.append(line.rstrip("\n").split(" ", 1)[0])
            if len(words) == size:
                break
    if len(words) < size:
        raise ValueError(f"{zip_path}:{member} has {len(words)} words, {size} asked")
    return words


def words(spec: dict, cache_dir: str | Path = "results/cache") -> list[str]:
    """The vocabulary described by `spec`, most frequent word first."""
    size = spec.get("size", 100000)
    if spec["source"] == "wordfreq":
        import wordfreq

        return wordfreq.top_n_list(spec.get("lang", "en"), size)
    if spec["source"] in ("url", "hf"):
        return glove_words(fetch_zip(spec, cache_dir), spec["member"], size)
    raise ValueError(f"unknown vocabulary source {spec['source']!r}; allowed: {SOURCES}")


def write_vocab(spec: dict, out: str | Path, cache_dir: str | Path = "results/cache") -> Path:
    """Write the vocabulary one word per line (atomic)."""
    out = Path(out)
    with atomic_open(out, "w", encoding="utf-8") as f:
        f.writelines(w + "\n" for w in words(spec, cache_dir))
    return out


def read_vocab(path: str | Path) -> list[str]:
    """Read a vocabulary file written by `write_vocab`."""
    # split on "\n" only: str.splitlines would also split words holding e.g. U+2028
    return Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")
