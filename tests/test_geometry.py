"""Many [mem] solutions per text: cosine similarities and interpolation (Figures 7 and 8).

pytest tests/test_geometry.py
"""

import functools

import numpy as np
import pytest
import torch

from memcap.analysis import geometry_figures
from memcap.core.engine import OptimConfig
from memcap.core.models import load_model, load_registry
from memcap.corpora import lee_articles
from memcap.stages import geometry

FAST = OptimConfig(lr=0.1, max_steps=300, patience=300)


@functools.cache
def tiny(name):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


@functools.cache
def solved(protocol="paper", K=4, n=6):
    """2 texts x 3 inits; tiny models learn 6 tokens with 4 vectors in tens of steps."""
    lm = tiny("tiny-llama")
    texts = [(f"lee-{i:04d}", lm.tokenize(lee_articles()[i])[:n]) for i in (1, 2)]
    runs, vectors = geometry.optimise_inits(
        lm, texts, inits=3, K=K, protocol=protocol, optim=FAST, seed_parts=("tiny-llama", "lee"), batch_size=4
    )
    return lm, texts, runs, vectors


def test_every_init_converges_from_its_own_seed():
    lm, texts, runs, vectors = solved()
    assert list(zip(runs.sample_id, runs.init, strict=True)) == [(s, i) for s, _ in texts for i in range(3)]
    assert runs.converged.all() and (runs.accuracy == 1.0).all()
    assert runs.seed.nunique() == 6
    assert vectors.shape == (6, 4, lm.mem_dim)
    # independent inits end in different vectors
    assert not torch.allclose(vectors[0], vectors[1])


def test_seeds_are_stable_and_batching_does_not_change_a_solution():
    lm, texts, runs, vectors = solved()
    again, vec2 = geometry.optimise_inits(
        lm, texts[:1], inits=1, K=4, protocol="paper", optim=FAST, seed_parts=("tiny-llama", "lee")
    )
    assert again.seed[0] == runs.seed[0]
    assert torch.allclose(vec2[0], vectors[0], atol=1e-3)  # batched matmuls round differently


def test_cosine_pairs_cover_every_pair_once():
    _, _, runs, vectors = solved()
    cos = geometry.cosine_pairs(runs, vectors)
    assert len(cos) == 15 and cos.same_text.sum() == 2 * 3
    flat = vectors.reshape(6, -1).double()
    expected = torch.nn.functional.cosine_similarity(flat[0], flat[4], dim=0).item()
    row = cos[
        (cos.sample_a == runs.sample_id[0])
        & (cos.init_a == 0)
        & (cos.sample_b == runs.sample_id[4])
        & (cos.init_b == 1)
    ]
    assert row.cosine.item() == pytest.approx(expected)
    assert cos.cosine.between(-1, 1).all()


def test_unconverged_runs_are_left_out():
    _, _, runs, vectors = solved()
    runs = runs.copy()
    runs.loc[0, "converged"] = False
    assert len(geometry.cosine_pairs(runs, vectors)) == 10


@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_interpolation_ends_at_the_solutions(protocol):
    lm, texts, runs, vectors = solved(protocol)
    curves = geometry.interpolate(lm, texts, runs, vectors, points=5, protocol=protocol, batch_size=7)
    assert len(curves) == 2 * 3 * 5  # texts x pairs x points
    ends = curves[curves.t.isin([0.0, 1.0])]
    assert (ends.accuracy == 1.0).all()
    assert curves.accuracy.between(0, 1).all()
    stats = geometry_figures.summary(runs, geometry.cosine_pairs(runs, vectors), curves)
    assert stats["converged"] == 6 and stats["pairs"] == 6 and stats["texts"] == 2


def test_one_vector_per_text():
    lm, texts, runs, vectors = solved(K=1, n=4)
    assert vectors.shape == (6, 1, lm.mem_dim) and runs.converged.all()
    curves = geometry.interpolate(lm, texts, runs, vectors, points=3, protocol="paper")
    assert (curves[curves.t == 0].accuracy == 1.0).all()


def test_figures_are_written_with_and_without_data(tmp_path):
    lm, texts, runs, vectors = solved()
    cos = geometry.cosine_pairs(runs, vectors)
    curves = geometry.interpolate(lm, texts, runs, vectors, points=3, protocol="paper")
    figure_files = lambda folder: {k: p for k, p in geometry_figures.output_paths(folder).items() if k != "summary"}  # noqa: E731
    paths = geometry_figures.write_geometry_figures(cos, curves, figure_files(tmp_path / "full"))
    assert set(paths) == set(geometry_figures.FIGURE_NAMES)
    for path in paths.values():
        assert path.read_bytes()[:5] == b"%PDF-" and path.with_suffix(".png").is_file()
    empty = geometry_figures.write_geometry_figures(cos.iloc[:0], curves.iloc[:0], figure_files(tmp_path / "empty"))
    assert all(p.is_file() for p in empty.values())
    assert np.isnan(geometry_figures.summary(runs.iloc[:0], cos.iloc[:0], curves.iloc[:0])["same_mean"])


def test_the_stage_writes_exactly_the_paths_it_is_given(tmp_path):
    """draw_stage writes the rule's named outputs and nothing else; a wrong or a missing key
    says which keys are allowed before anything is read or written."""
    import json

    lm, texts, runs, vectors = solved()
    inputs = {
        "runs": runs,
        "cosine": geometry.cosine_pairs(runs, vectors),
        "interpolation": geometry.interpolate(lm, texts, runs, vectors, points=3, protocol="paper"),
    }
    for name, frame in inputs.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    csvs = [tmp_path / f"{name}.csv" for name in inputs]
    paths = {
        key: tmp_path / "out" / f"{key}-file{path.suffix}" for key, path in geometry_figures.output_paths("").items()
    }
    written = geometry_figures.draw_stage(*csvs, paths)
    assert written == paths and set(paths) == set(geometry_figures.OUTPUTS)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    assert paths["cosine_pdf"].read_bytes()[:5] == b"%PDF-" and json.loads(paths["summary"].read_text())["inits"] == 3
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'cosine_svg'.*: summary, cosine_pdf, cosine_png, "):
        geometry_figures.draw_stage(*csvs, {**paths, "cosine_svg": tmp_path / "x.svg"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'summary'.*: cosine_pdf, cosine_png, interpolation_pdf"):
        geometry_figures.write_geometry_figures(inputs["cosine"], inputs["interpolation"], paths)
    with pytest.raises(ValueError, match=r"missing key\(s\) 'interpolation_png'"):
        geometry_figures.draw_stage(*csvs, {k: p for k, p in paths.items() if k != "interpolation_png"})
    assert not (tmp_path / "x.svg").exists()


def test_report_section_quotes_the_summary_or_says_not_run(tmp_path):
    from analysis_fixtures import make_record, write_records
    from memcap.analysis import report

    files = write_records(tmp_path, [make_record("pythia-160m", "lee", 64, "lee-0")])
    lm, texts, runs, vectors = solved()
    cos = geometry.cosine_pairs(runs, vectors)
    curves = geometry.interpolate(lm, texts, runs, vectors, points=3, protocol="paper")
    facts = geometry_figures.summary(runs, cos, curves) | {
        "model": "tiny_llama",
        "dataset": "lee",
        "K": 4,
        "L": 6,
        "inits": 3,
    }
    shown = {*report.FIGURE_NAMES, *report.GEOMETRY_FIGURES}
    source = report.render_report(report.report_context(files, available_figures=shown, geometry=facts))
    assert r"\texttt{tiny\_llama} from 3 independent" in source
    assert f"{facts['same_mean']:.3f}" in source
    assert r"{figures/geometry\_interpolation.pdf}" in source
    absent = report.render_report(report.report_context(files))
    assert "Not run: set \\texttt{geometry.model}" in absent
    assert "figures/geometry" not in absent and "Geometry of the solutions" in absent
