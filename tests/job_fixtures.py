"""Helpers shared by the job tests: texts files and the record keys docs/records.md lists."""

import json
import re
from pathlib import Path

from memcap.corpora import lee_articles

REPO = Path(__file__).resolve().parents[1]


def write_texts(path, n=3, lengths=None, words=60):
    """A texts file (docs/records.md) of the first n Lee articles, cut to `words` words."""
    rows = []
    for i in range(n):
        row = {
            "id": f"lee-{i:04d}",
            "text": " ".join(lee_articles()[i].split()[:words]),
            "source": "test",
            "seed": None,
            "length": lengths[i] if lengths else None,
        }
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def documented_record_keys():
    """Every key the records table of docs/records.md documents."""
    table = (REPO / "docs" / "records.md").read_text().split("## Records")[1].split("\n## ")[0]
    keys = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", table, flags=re.M):
        keys.update(re.findall(r"`([^`]+)`", cell))
    return keys
