"""The paper's reference values and how our models and datasets map onto them (memcap.analysis.reference).

pytest tests/test_reference.py
"""

import pytest

from memcap.analysis import metrics
from memcap.analysis.reference import dataset_order, load_reference, paper_model, paper_source, paper_value


@pytest.mark.parametrize(
    "ours,paper",
    [
        ("pythia-160m", "Pythia-160M"),
        ("EleutherAI/pythia-160m", "Pythia-160M"),
        ("llama-3.2-1b", "Llama-3.2-1B"),
        ("mamba-130m", "Mamba-130M"),
        ("smollm2-135m", None),
        ("tiny_model.v2", None),
    ],
)
def test_model_mapping(ours, paper):
    assert paper_model(ours) == paper


@pytest.mark.parametrize(
    "dataset,source",
    [("pg19", "pg19"), ("fanfics", "fanfics"), ("random", "random"), ("random_wordfreq", "random"), ("lee", None)],
)
def test_source_mapping(dataset, source):
    assert paper_source(dataset) == source


def test_reference_values_are_self_consistent():
    """Transcription check: Eq. 1 and utilisation = token gain / L_th for all 14 rows."""
    for name, row in load_reference()["models"].items():
        assert round(metrics.theoretical_capacity(row["d"], row["vocab"])) == row["l_th"], name
        for source, utilisation in row["utilisation"].items():
            gain = row["token_gain"][source][0]
            assert gain / row["l_th"] == pytest.approx(utilisation, abs=0.0015), (name, source)


def test_paper_values_and_the_docstring_example():
    reference = load_reference()
    row = paper_model("pythia-160m")
    assert paper_value(reference, row, "capacity", paper_source("pg19_test", kind="natural")) == 80
    assert paper_value(reference, row, "capacity", None) is None
    assert paper_value(reference, None, "capacity", "pg19") is None


def test_kind_beats_the_name():
    assert paper_source("random_news", kind="natural") is None  # natural text named random*
    assert paper_source("noise", kind="random") == "random"
    assert dataset_order(["random", "lee", "pg19", "fanfics"]) == ["pg19", "fanfics", "lee", "random"]
    assert dataset_order(["noise", "lee"], kinds={"noise": "random"}) == ["lee", "noise"]
