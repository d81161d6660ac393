"""One run as the tables, the figures and the report see it: its summary, its models and
datasets in display order, and each model's row in the paper.

    from memcap.analysis.run_view import RunView
    view = RunView.from_records(record_files)   # with the cells of empty records files
    view.summary        # memcap.analysis.metrics.summarise of the records
    view.models         # by size (parameters), unknown sizes last, then by name
    view.datasets       # natural sources first (PG-19, fanfics, others by name), random last
    view.paper_row      # {model: the paper's row name, or None}
    view.row("pythia-160m", "lee", "paper")   # the summary row of one cell, or None

``RunView(df)`` views a records frame as it is; ``from_records`` also adds the (model,
dataset) cells of records files that hold no records (``expected_cells``), so that they
show as "not run" rather than disappear. Whether a dataset is natural or random text comes
from its records' ``kind`` (memcap.analysis.metrics.dataset_kinds).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from memcap.analysis import metrics
from memcap.analysis.reference import (
    dataset_kind,
    dataset_order,
    load_reference,
    paper_model,
    paper_source,
    paper_value,
)


def expected_cells(record_files: list[Path]) -> set[tuple[str, str]]:
    """(model, dataset) of record files that hold no records.

    A job that produced nothing still names its model and source in its path
    (``compress/<model>/<dataset>.jsonl`` or ``multivector/<model>/<dataset>/K<K>.jsonl``),
    so the tables can show it as "not run" rather than leave it out.
    """
    cells = set()
    for path in map(Path, record_files):
        if any(line.strip() for line in path.read_text(encoding="utf-8").splitlines()):
            continue
        if re.fullmatch(r"K\d+", path.stem):
            cells.add((path.parent.parent.name, path.parent.name))
        else:
            cells.add((path.parent.name, path.stem))
    return cells


def model_order(summary: pd.DataFrame, models) -> list[str]:
    """Models by size (parameters from the summary), unknown sizes last, then by name."""
    params = summary.groupby("model")["params"].max()
    return sorted(set(models), key=lambda m: (params.get(m, np.inf), m))


class RunView:
    """The records of one run, their summary, and the models/datasets shown (module docstring).

    `models` and `datasets` name cells that should appear even without any record;
    `expected` holds the (model, dataset) cells of empty records files (expected_cells);
    `capacity_rule` ("paper" or "per_sample", memcap.analysis.capacity_stats) picks the
    summary's headline decoding capacity, the one every table, figure and the report show.
    """

    def __init__(self, df: pd.DataFrame, models=(), datasets=(), expected=frozenset(), capacity_rule: str = "paper"):
        self.df = df
        self.expected = set(expected)
        self.reference = load_reference()
        self.capacity_rule = capacity_rule
        self.summary = metrics.summarise(df, capacity_rule)
        self.protocols = sorted(self.summary["protocol"].unique()) or ["paper"]
        self.mixed = len(self.protocols) > 1  # protocol labels only when the run mixes them
        self.models = model_order(self.summary, [*self.summary["model"], *models, *(m for m, _ in self.expected)])
        self.kinds = metrics.dataset_kinds(df)
        self.datasets = dataset_order([*self.summary["dataset"], *datasets, *(d for _, d in self.expected)], self.kinds)
        ids = self.summary.groupby("model")["model_id"].first()
        self.paper_row = {m: paper_model(m, ids.get(m), self.reference) for m in self.models}

    @classmethod
    def from_records(cls, records: list[Path], models=(), datasets=(), capacity_rule: str = "paper") -> RunView:
        """The view of records .jsonl files, with the cells of the empty ones (expected_cells)."""
        return cls(metrics.load_records(records), models, datasets, expected_cells(records), capacity_rule)

    def kind(self, dataset: str) -> str:
        return dataset_kind(dataset, self.kinds)

    def source(self, dataset: str) -> str | None:
        """The paper's source of a dataset, for the paper's values (paper_source)."""
        return paper_source(dataset, self.reference, self.kind(dataset))

    def paper(self, model: str, key: str, dataset: str):
        """The paper's value of `key` (capacity, utilisation, ...) for a model on a dataset's source."""
        return paper_value(self.reference, self.paper_row.get(model), key, self.source(dataset))

    def columns(self) -> list[tuple[str, str, str]]:
        """(label, model, protocol): a protocol suffix only when the run mixes them."""
        return [(f"{m} [{p}]" if self.mixed else m, m, p) for m in self.models for p in self.protocols]

    def row(self, model, dataset, protocol, K=1):
        """The summary row, or None when nothing was recorded for that cell."""
        s = self.summary
        hit = s[(s.model == model) & (s.dataset == dataset) & (s.protocol == protocol) & (s.K == K)]
        return None if hit.empty else hit.iloc[0]
