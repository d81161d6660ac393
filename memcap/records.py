"""What a record means where several modules decide it: its mode, its text's kind, when it
is lossless, and how its vectors were optimised.

    from memcap.records import KINDS, LOSSLESS_ACCURACY, MODES, accuracy_is_lossless, lossless, method
    accuracy_is_lossless(0.99)               # True: the package's one threshold
    accuracy_is_lossless(frame["acc"])       # elementwise on a pandas column or a numpy array
    lossless(r["status"], r["correct"], r["max_correct"], r["scored"], r["protocol"])  # a record
    method(r.get("preset"), r.get("optim"), r.get("search"))  # 'fast', 'fast + low_rank r=64 (pca)', 'fast + prior'

Standard library only: the search and the job (torch, no pandas), the metrics (pandas) and
the texts all import it. Threshold convention (docs/method.md section 4.2): a sample is
lossless iff its accuracy >= 0.99; memcap.analysis.metrics explains how the analysis uses it,
and lossless() applies it to an outcome's or a record's fields (accuracy by protocol).
"""

from __future__ import annotations

MODES = ("grid", "search")  # how a compress job runs (memcap.stages.job), recorded as each record's mode
KINDS = ("natural", "random")  # a text's `kind` (memcap.stages.texts), copied into its records
LOSSLESS_ACCURACY = 0.99
# Accuracies are ratios of small integers; this guards 0.99-as-float comparisons only.
FLOAT_SLACK = 1e-9


def accuracy_is_lossless(acc):
    """True where accuracy >= LOSSLESS_ACCURACY (0.99): a float, or elementwise an array."""
    return acc >= LOSSLESS_ACCURACY - FLOAT_SLACK


def lossless(status: str, correct: int, max_correct: int, scored: int, protocol: str) -> bool:
    """The one rule on an outcome's or a record's fields: status ok and accuracy lossless, where
    accuracy is max_correct / scored under protocol paper and correct / scored under strict."""
    if status != "ok" or not scored:
        return False
    return accuracy_is_lossless((max_correct if protocol == "paper" else correct) / scored)


def method(preset, optim, search=None) -> str:
    """How vectors were optimised, as one label: the optimiser preset, the parametrisation
    where it is not full (its rank and basis with it), and a search's prior where its fresh
    starts began from one: 'fast', 'fast + low_rank r=64 (pca)', 'fast + prior'. `optim` is a
    record's optim dict (OptimConfig.as_dict(), which leaves full and the pca basis out),
    `search` its search dict; records and files made before either existed get 'paper', full
    and no prior. No comma inside: the analysis joins a group's methods with commas."""
    optim = optim if isinstance(optim, dict) else {}
    label = preset if isinstance(preset, str) and preset else optim.get("preset", "paper")
    parametrisation = optim.get("parametrisation", "full")
    if parametrisation != "full":
        label += f" + {parametrisation} r={optim.get('rank')} ({optim.get('basis', 'pca')})"
    if isinstance(search, dict) and search.get("prior"):
        label += " + prior"
    return label
