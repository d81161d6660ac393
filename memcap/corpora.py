"""Real text that ships inside installed packages, readable offline.

    from memcap.corpora import lee_articles
    articles = lee_articles()    # 299 English news articles from gensim's test data

gensim is located, never imported (importing it is slow and pulls scipy).
"""

from __future__ import annotations

import functools
from pathlib import Path

from memcap.io import package_file


def lee_corpus_path() -> Path:
    """The Lee background news corpus inside gensim's wheel (one article per line)."""
    return package_file(
        "gensim",
        "test/test_data/lee_background.cor",
        missing="the Lee corpus needs the Python package gensim: pip install gensim",
    )


@functools.cache
def lee_articles() -> tuple[str, ...]:
    lines = lee_corpus_path().read_text(encoding="utf-8", errors="replace").splitlines()
    return tuple(line.strip() for line in lines if line.strip())
