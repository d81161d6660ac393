"""Figures 7 and 8 of the geometry stage (memcap.stages.geometry) and the numbers the report quotes.

    from memcap.analysis.geometry_figures import draw_stage, output_paths, summary, write_geometry_figures
    files = output_paths(Path("results/demo/geometry"))
    # {"summary": .../summary.json, "cosine_pdf": .../geometry_cosine.pdf, "cosine_png": ...,
    #  "interpolation_pdf": ..., "interpolation_png": ...}
    draw_stage("runs.csv", "cosine.csv", "interpolation.csv", files)  # writes exactly `files`
    pdfs = write_geometry_figures(cosines, curves, {k: v for k, v in files.items() if k != "summary"})
    # {"geometry_cosine": .../geometry_cosine.pdf, "geometry_interpolation": ...}
    stats = summary(runs, cosines, curves)   # the numbers the report quotes (also memcap.stages.geometry)

The rule geometry_figures calls `draw_stage`, which reads the geometry rule's CSVs, draws
both figures and writes the summary (``summary`` plus the run's settings) to
the paths it is given, keyed as the rule names its outputs (OUTPUTS,
workflow/rules/geometry.smk); an unknown or a missing key raises ValueError naming the
allowed ones. ``output_paths`` gives the default names in one folder, for tests and
notebooks.

* ``geometry_cosine``: densities of cosine similarity, same text vs different texts
  (Figure 7).
* ``geometry_interpolation``: teacher-forced accuracy along the line between two vectors
  of one text, faint lines with the min/max envelope (Figure 8).

A figure with nothing to show is still written, saying "no data" and why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from memcap.analysis import figures
from memcap.io import check_named_paths, check_paths

FIGURE_NAMES = ["geometry_cosine", "geometry_interpolation"]
# the rule's output names: each figure ("cosine", "interpolation") as PDF and PNG
FIGURE_KEYS = {"cosine": "geometry_cosine", "interpolation": "geometry_interpolation"}
FIGURE_FORMATS = ["pdf", "png"]
OUTPUTS = ["summary", *(f"{key}_{fmt}" for key in FIGURE_KEYS for fmt in FIGURE_FORMATS)]


def output_paths(out_dir: Path) -> dict[str, Path]:
    """draw_stage's files in one folder, by OUTPUTS: {"summary": out_dir/summary.json,
    "cosine_pdf": out_dir/geometry_cosine.pdf, ...}. For tests and notebooks; the workflow
    names its own files (rule geometry_figures)."""
    out_dir = Path(out_dir)
    figure_files = {
        f"{key}_{fmt}": out_dir / f"{name}.{fmt}" for key, name in FIGURE_KEYS.items() for fmt in FIGURE_FORMATS
    }
    return {"summary": out_dir / "summary.json", **figure_files}


def cosine_figure(cosines: pd.DataFrame):
    """Figure 7: densities of cosine similarity, same text vs different texts."""
    if cosines.empty:
        return figures.placeholder_figure(
            "Cosine similarity of [mem] vectors", "fewer than two vectors reached accuracy 1.0"
        )
    fig, ax = figures.plt.subplots(figsize=(figures.FIGURE_WIDTH * 0.6, 2.6))
    bins = np.linspace(cosines["cosine"].min(), cosines["cosine"].max(), 31)
    if bins[0] == bins[-1]:
        bins = np.linspace(bins[0] - 0.01, bins[0] + 0.01, 31)
    for same, label, colour in [
        (True, "same text", figures.OKABE_ITO[0]),
        (False, "different texts", figures.OKABE_ITO[1]),
    ]:
        values = cosines.loc[cosines["same_text"] == same, "cosine"]
        if len(values):
            ax.hist(
                values,
                bins=bins,
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                label=f"{label} (n={len(values)}, mean {values.mean():.2f})",
            )
            ax.hist(values, bins=bins, density=True, histtype="step", color=colour)
    ax.set_xlabel("cosine similarity of [mem] vectors")
    ax.set_ylabel("density")
    ax.legend(loc="upper left")
    return fig


def interpolation_figure(curves: pd.DataFrame, max_texts: int = 4):
    """Figure 8: accuracy along the line between two vectors of one text; one faint line per
    pair, the min/max envelope shaded, the mean dashed."""
    if curves.empty:
        return figures.placeholder_figure(
            "Interpolation between [mem] vectors", "no text has two vectors that reached accuracy 1.0"
        )
    texts = list(dict.fromkeys(curves["sample_id"]))[:max_texts]
    fig, axes = figures.panel_grid(len(texts), ncols=min(len(texts), 2), height=2.4, sharey=True)
    for ax, sid in zip(axes, texts, strict=True):
        mine = curves[curves["sample_id"] == sid]
        for _, pair in mine.groupby(["init_a", "init_b"]):
            ax.plot(pair["t"], pair["accuracy"], color=figures.OKABE_ITO[0], alpha=0.15, lw=0.7)
        env = mine.groupby("t")["accuracy"].agg(["min", "max", "mean"])
        ax.fill_between(env.index, env["min"], env["max"], color=figures.OKABE_ITO[0], alpha=0.15, label="min-max")
        ax.plot(env.index, env["mean"], ls="--", color="0.2", lw=1, label="mean")
        n_pairs = mine.groupby(["init_a", "init_b"]).ngroups
        ax.set_title(f"{sid} ({n_pairs} pairs)", loc="left")
        ax.set_xlabel("t in (1 - t) m_a + t m_b")
        ax.set_ylabel("accuracy (teacher forcing)")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(loc="lower left")
    return fig


def summary(runs: pd.DataFrame, cosines: pd.DataFrame, curves: pd.DataFrame) -> dict:
    """Numbers the report quotes: converged runs, mean cosines, worst accuracy on the lines."""
    same = cosines.loc[cosines["same_text"], "cosine"]
    diff = cosines.loc[~cosines["same_text"].astype(bool), "cosine"]
    inner = curves[(curves["t"] > 0) & (curves["t"] < 1)]
    return {
        "texts": int(runs["sample_id"].nunique()),
        "runs": len(runs),
        "converged": int(runs["converged"].sum()),
        "mean_steps": float(runs.loc[runs["converged"].astype(bool), "steps"].mean())
        if runs["converged"].any()
        else float("nan"),
        "same_mean": float(same.mean()) if len(same) else float("nan"),
        "different_mean": float(diff.mean()) if len(diff) else float("nan"),
        "pairs": int(curves.groupby(["sample_id", "init_a", "init_b"]).ngroups) if len(curves) else 0,
        "min_inner_accuracy": float(inner["accuracy"].min()) if len(inner) else float("nan"),
        "mean_inner_accuracy": float(inner["accuracy"].mean()) if len(inner) else float("nan"),
    }


def write_geometry_figures(cosines: pd.DataFrame, curves: pd.DataFrame, paths) -> dict[str, Path]:
    """geometry_cosine and geometry_interpolation as PDF + PNG to `paths` ("cosine_pdf",
    "cosine_png", "interpolation_pdf", "interpolation_png"; ValueError on an unknown or a
    missing key). Returns {name in FIGURE_NAMES: pdf path}."""
    paths = check_named_paths(paths, FIGURE_KEYS, FIGURE_FORMATS, "write_geometry_figures")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    draw = {"cosine": lambda: cosine_figure(cosines), "interpolation": lambda: interpolation_figure(curves)}
    with figures.figure_style():
        return {
            name: figures.save_figure_as(draw[key](), paths[f"{key}_pdf"], paths[f"{key}_png"])
            for key, name in FIGURE_KEYS.items()
        }


def draw_stage(runs_csv, cosine_csv, interpolation_csv, paths) -> dict[str, Path]:
    """Rule geometry_figures: both figures and the summary (the numbers the report quotes),
    written to `paths`, keyed by OUTPUTS as the rule names its outputs (ValueError on an
    unknown or a missing key). Returns `paths` as Paths."""
    paths = check_paths(paths, OUTPUTS, "draw_stage")
    runs = pd.read_csv(runs_csv, dtype={"sample_id": str})
    cosines = pd.read_csv(cosine_csv, dtype={"sample_a": str, "sample_b": str})
    curves = pd.read_csv(interpolation_csv, dtype={"sample_id": str})
    write_geometry_figures(cosines, curves, {k: p for k, p in paths.items() if k != "summary"})
    stats = summary(runs, cosines, curves)
    first = runs.iloc[0] if len(runs) else {}
    stats.update(
        {
            key: (first[key].item() if hasattr(first[key], "item") else first[key])
            for key in ("model", "dataset", "K", "L", "protocol")
            if key in first
        }
    )
    stats["inits"] = int(runs.groupby("sample_id").size().max()) if len(runs) else 0
    paths["summary"].parent.mkdir(parents=True, exist_ok=True)
    paths["summary"].write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    return paths
