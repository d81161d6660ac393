"""What a record means where several modules decide it: its mode, its text's kind, and when
it is lossless.

    from memcap.records import KINDS, LOSSLESS_ACCURACY, MODES, accuracy_is_lossless, lossless
    accuracy_is_lossless(0.99)               # True: the package's one threshold
    accuracy_is_lossless(frame["acc"])       # elementwise on a pandas column or a numpy array
    lossless(r["status"], r["correct"], r["max_correct"], r["scored"], r["protocol"])  # a record

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
