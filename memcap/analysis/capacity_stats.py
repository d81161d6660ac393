"""Statistics of per-text capacities: their distribution, a bootstrap interval of their mean,
and the saturation estimate of the paper's mean-accuracy rule from a capacity search.

    from memcap.analysis.capacity_stats import capacity_distribution, estimated_accuracies
    capacity_distribution([0, 64, 96, 128])    # n_texts, mean, 95 % interval, quartiles, n_at_min, n_zero
    table = estimated_accuracies(attempts, capacities, "paper")   # texts x candidate lengths
    paper_rule_estimate(table)                 # largest L whose mean estimated accuracy >= 0.99

Pure functions over numbers and small frames (numpy and pandas only); memcap.analysis.metrics
feeds them the records (docs/method.md section 4.3).

**Headline rule** (``CAPACITY_RULES``): ``paper``, the paper's rule "the largest L whose mean
accuracy over the samples is >= 0.99" (grid records: the rule itself; search records: the
saturation estimate below), or ``per_sample`` (memcap.analysis.metrics.capacity_from_samples:
the largest L reached by the capacities of >= 99 % of the texts, so with fewer than 100 texts
the smallest one, and one text with capacity 0 gives none).

**Saturation estimate** (search records): the candidate lengths are every distinct L attempted
in the group. A text's accuracy at L is its best accuracy among its attempts at L (``acc``:
max_accuracy under protocol paper, accuracy under strict) where it was attempted there; 1.0
where it was not and L is at most its capacity; and at any other L (above its capacity, not
attempted: above every length it reached, or between two of its failing lengths)
min(1, C / scored(L)), where C is the most positions it got right in any attempt (``n_correct``:
max_correct under paper, correct under strict) and scored(L) = L - FIRST_SCORED[protocol]. So a
text is taken to keep decoding C tokens at longer lengths, the token-gain saturation the paper
reports. The estimate is the largest candidate L whose mean estimated accuracy over the texts is
>= 0.99 (memcap.records.accuracy_is_lossless), NaN if none.

**Bootstrap**: percentile interval of the mean over texts, BOOTSTRAP_RESAMPLES resamples of the
texts with replacement from numpy's Generator seeded with BOOTSTRAP_SEED (the same numbers give
the same interval, byte for byte); one text, or texts of one capacity, give the mean itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from memcap.records import accuracy_is_lossless

CAPACITY_RULES = ("paper", "per_sample")  # the headline decoding capacity (config report.capacity_rule)
DEFAULT_CAPACITY_RULE = "paper"
ESTIMATOR = "saturation estimate"  # the paper's rule from search attempts (module docstring)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 1568  # fixed: reproducible intervals
CI_LEVEL = 0.95
# index of the first scored text token (memcap.core.engine.first_scored; the analysis never imports core)
FIRST_SCORED = {"paper": 1, "strict": 0}

DISTRIBUTION_COLUMNS = [  # capacity_distribution's keys, in order
    "n_texts",
    "capacity_mean",
    "capacity_ci_low",
    "capacity_ci_high",
    "capacity_q1",
    "capacity_median",
    "capacity_q3",
    "capacity_min",
    "capacity_max",
    "n_at_min",
    "n_zero",
]


def check_capacity_rule(rule: str) -> str:
    """`rule` if it is one of CAPACITY_RULES, else ValueError naming them."""
    if rule not in CAPACITY_RULES:
        raise ValueError(f"capacity rule {rule!r} is not one of {', '.join(CAPACITY_RULES)}")
    return rule


def _numbers(values: Iterable) -> np.ndarray:
    """Finite-or-not floats of `values`, NaN (and None) dropped."""
    x = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)
    return x[~np.isnan(x)]


def bootstrap_mean_ci(
    values: Iterable,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of the mean of `values` (module docstring).

    (mean, mean) for one value or for identical values, (NaN, NaN) for none.
    """
    x = _numbers(values)
    if not x.size:
        return math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1 or bool(np.all(x == x[0])):
        return mean, mean
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def capacity_distribution(capacities: Iterable) -> dict:
    """The distribution of per-text capacities (tokens; 0: nothing lossless), DISTRIBUTION_COLUMNS.

    n_texts; mean and its bootstrap interval (bootstrap_mean_ci); first quartile, median and
    third quartile (linear interpolation between order statistics, numpy's default); min and
    max; n_at_min, the texts whose capacity is the smallest (the ones that set the per-sample
    rule's capacity with fewer than 100 texts); n_zero, the texts with capacity 0.
    """
    x = _numbers(capacities)
    if not x.size:
        return {key: (0 if key.startswith("n_") else math.nan) for key in DISTRIBUTION_COLUMNS}
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    low, high = bootstrap_mean_ci(x)
    values = [x.size, x.mean(), low, high, q1, median, q3, x.min(), x.max()]
    out = {key: float(v) for key, v in zip(DISTRIBUTION_COLUMNS, values, strict=False)}
    out["n_texts"] = int(x.size)
    out["n_at_min"] = int((x == x.min()).sum())
    out["n_zero"] = int((x == 0).sum())
    return out


def estimated_accuracies(attempts: pd.DataFrame, capacities: pd.Series, protocol: str) -> pd.DataFrame:
    """Each text's estimated accuracy at each candidate length of one search group (module docstring).

    `attempts`: the group's usable attempts, columns sample_id, L, acc and n_correct;
    `capacities`: each text's capacity, indexed by sample_id (every text of the group, also one
    without a usable attempt). Returns a frame indexed by sample_id with one column per
    candidate length (ascending).
    """
    texts = pd.Index(capacities.index, name="sample_id")
    lengths = sorted(int(L) for L in attempts["L"].unique())
    if not lengths:
        return pd.DataFrame(index=texts, columns=pd.Index([], name="L"), dtype=float)
    best = attempts.groupby(["sample_id", "L"])["acc"].max().unstack("L")
    best = best.reindex(index=texts, columns=lengths)
    most = attempts.groupby("sample_id")["n_correct"].max().reindex(texts).fillna(0.0).to_numpy(float)
    cap = pd.to_numeric(capacities, errors="coerce").fillna(0.0).to_numpy(float)
    L = np.asarray(lengths, dtype=float)
    scored = np.maximum(L - FIRST_SCORED[protocol], 1.0)
    saturated = np.minimum(1.0, most[:, None] / scored[None, :])
    assumed = np.where(L[None, :] <= cap[:, None], 1.0, saturated)
    estimate = best.where(best.notna(), pd.DataFrame(assumed, index=texts, columns=lengths))
    estimate.columns.name = "L"
    return estimate.astype(float)


def paper_rule_estimate(accuracies: pd.DataFrame) -> float:
    """The largest candidate length (column) whose mean estimated accuracy over the texts
    (rows) is >= 0.99 (estimated_accuracies); NaN when none is or there is no text."""
    if accuracies.empty:
        return math.nan
    means = accuracies.mean(axis=0)
    passing = [L for L, mean in means.items() if accuracy_is_lossless(mean)]
    return float(max(passing)) if passing else math.nan
