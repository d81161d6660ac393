"""The paper's reference values (paper/reference.yaml) and which of our runs they compare with.

    from memcap.analysis.reference import load_reference, paper_model, paper_source, paper_value
    reference = load_reference()                      # the paper's numbers, as transcribed
    row = paper_model("pythia-160m")                  # "Pythia-160M" (registry name or HF id)
    source = paper_source("pg19_test", kind="natural")   # "pg19"
    paper_value(reference, row, "capacity", source)   # 80

Whether a dataset is natural or random text comes from its records' ``kind``
(memcap.analysis.metrics.dataset_kinds), never from its name; the name only maps a natural dataset
to the paper's natural source (pg19, fanfics), and every random dataset compares with the
paper's random text. Only a dataset without ``kind`` (records written before kinds existed,
or no records at all) is read from its name (``legacy_kind``). The tables, figures, report
and baselines all look the paper up here; this module needs no pandas.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path

import yaml

PAPER_DIR = Path(__file__).resolve().parents[2] / "paper"


@lru_cache(maxsize=4)
def load_reference(path: str | Path | None = None) -> dict:
    """The paper's numbers from paper/reference.yaml (or `path`)."""
    with open(path or PAPER_DIR / "reference.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def legacy_kind(dataset: str) -> str:
    """The kind of a dataset whose records predate `kind`: random iff its name says so."""
    patterns = load_reference()["sources"].get("random", [])
    return "random" if any(fnmatch.fnmatch(str(dataset).lower(), p.lower()) for p in patterns) else "natural"


def dataset_kind(dataset: str, kinds: dict[str, str] | None = None) -> str:
    """natural or random: from the records (`kinds`, metrics.dataset_kinds), else, for a
    dataset without records, from its name (legacy_kind)."""
    if kinds and dataset in kinds:
        return kinds[dataset]
    return legacy_kind(dataset)


def is_random_dataset(dataset: str, kinds: dict[str, str] | None = None) -> bool:
    """Random-word text (sampled lengths) rather than natural text (dataset_kind)."""
    return dataset_kind(dataset, kinds) == "random"


def paper_source(dataset: str, reference: dict | None = None, kind: str | None = None) -> str | None:
    """The paper's source (pg19, fanfics, random) whose values our dataset compares with.

    Random text (kind "random") is the paper's random text whatever its name; natural
    text is matched by name against the paper's natural sources only (a natural dataset
    named random_news has no paper value). kind None: a dataset without records, whose
    kind is read from its name as before kinds were recorded (legacy_kind).
    """
    reference = reference or load_reference()
    kind = kind or legacy_kind(dataset)
    if kind == "random":
        return "random" if "random" in reference["sources"] else None
    for source, patterns in reference["sources"].items():
        if source != "random" and any(fnmatch.fnmatch(dataset.lower(), p.lower()) for p in patterns):
            return source
    return None


def paper_model(model: str, model_id: str | None = None, reference: dict | None = None) -> str | None:
    """The paper's row name for our model (matched on registry name or HF id), or None."""
    reference = reference or load_reference()
    names = {str(model).lower(), str(model_id or "").lower()}
    for row, info in reference["models"].items():
        if names & ({alias.lower() for alias in info.get("aliases", [])} | {row.lower()}):
            return row
    return None


def paper_value(reference: dict, row: str | None, key: str, source: str | None):
    """The paper's value of `key` (capacity, token_gain, ...) for a row and source, or None."""
    if row is None or source is None:
        return None
    return reference["models"][row].get(key, {}).get(source)


def dataset_order(datasets, kinds: dict[str, str] | None = None) -> list[str]:
    """Natural sources first (PG-19, fanfics, others by name), random text last."""
    rank = {"pg19": 0, "fanfics": 1, None: 2, "random": 3}
    return sorted(set(datasets), key=lambda ds: (rank[paper_source(ds, kind=dataset_kind(ds, kinds))], ds))
