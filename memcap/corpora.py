"""Real text that ships inside installed packages, readable offline.

    from memcap.corpora import lee_articles
    articles = lee_articles()    # 299 English news articles from gensim's test data

gensim is located, never imported (importing it is slow and pulls scipy).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path


def lee_corpus_path() -> Path:
    """The Lee background news corpus inside gensim's wheel (one article per line)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Lee corpus needs the Python package gensim: pip install gensim")
    path = Path(spec.submodule_search_locations[0]) / "test" / "test_data" / "lee_background.cor"
    if not path.is_file():
        raise FileNotFoundError(f"gensim is installed but {path} is missing")
    return path


@functools.cache
def lee_articles() -> tuple[str, ...]:
    lines = lee_corpus_path().read_text(encoding="utf-8", errors="replace").splitlines()
    return tuple(line.strip() for line in lines if line.strip())
