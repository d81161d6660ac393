"""The paper-budget reference's per-text capacities and summary (memcap.analysis.paper_budget)."""

from memcap.analysis.paper_budget import reference_summary, text_capacities


def cell(sample, L, correct, scored=None, steps=100):
    scored = scored or L - 1
    return {
        "model": "smollm2-135m",
        "dataset": "lee",
        "K": 1,
        "L": L,
        "sample_id": sample,
        "status": "ok",
        "correct": correct,
        "max_correct": correct,
        "scored": scored,
        "protocol": "paper",
        "max_accuracy": correct / scored,
        "steps": steps,
        "wall_s": 1.0,
    }


def test_a_text_that_failed_its_first_length_is_capacity_0_and_the_summary_does_not_crash():
    records = [cell("a", 8, 7), cell("a", 12, 11), cell("b", 8, 6), cell("b", 12, 10)]
    texts = text_capacities(records)
    assert [(t["sample_id"], t["capacity"], t["bracketed"], t["first_fail"]) for t in texts] == [
        ("a", 12, False, None),
        ("b", 0, True, 8),
    ]
    (summary,) = reference_summary(texts)
    assert summary["capacity"] == 0 and summary["capacities"] == [12, 0] and not summary["complete"]
    assert summary["steps"] == 400


def test_a_text_that_fails_once_and_then_passes_keeps_its_later_capacity():
    records = [cell("a", 8, 5), cell("a", 12, 11), cell("a", 16, 9), cell("a", 24, 10)]
    (t,) = text_capacities(records, fails=2)
    assert (t["capacity"], t["first_fail"], t["bracketed"]) == (12, 16, True)
