"""The paper's figures from per-sample records, each saved as PDF and PNG.

Usage::

    from memcap.analysis.figures import figure_paths, write_figures
    files = figure_paths(Path("results/demo/figures"))
    # {"capacity_pdf": .../capacity.pdf, "capacity_png": .../capacity.png, ...}
    pdfs = write_figures(record_files, files)  # writes exactly `files`
    # {"capacity": .../capacity.pdf, "ce_scatter": ..., "utilisation": ...,
    #  "accuracy_vs_length": ..., "multivector": ...}

``write_figures`` takes the path of every file: "<name>_pdf" and "<name>_png" for each name
in FIGURE_NAMES, as the workflow's rule figures names its outputs
(workflow/rules/analysis.smk); ``figure_paths`` gives them all in one folder.

Figures (K = 1 unless the figure is about K):

* ``capacity``: decoding capacity per model and source (the paper's Figure 1), the headline
  capacity of the run's capacity rule (memcap.analysis.capacity_stats), named in the y label.
* ``ce_scatter``: per model, CE with [mem] against CE without, natural samples coloured by
  length, random samples black, dashed fit y = x + b, red dotted lossless threshold
  (Figures 3 and 6).
* ``utilisation``: top, token gain against Eq. 1 capacity (marker size ~ parameters,
  colour = model family); bottom, capacity utilisation natural vs random (Figure 5).
* ``accuracy_vs_length``: mean accuracy per length, per model and source (grid-mode
  records only: a capacity search's attempts at a length are a self-selected subset).
* ``multivector``: capacity, token and information gain against K with the ideal linear
  line K x (K=1 value) and +-1 std bands (Figure 4); a last row shows the paper's own
  curves (Pythia-160M and Llama-3.2-1B on PG-19) with their ideal lines.

The paper's values (paper/reference.yaml) appear as hollow grey markers labelled
"paper". A figure with nothing to show is still written, saying "no data" and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from memcap.analysis import metrics  # noqa: E402
from memcap.analysis.reference import (  # noqa: E402
    is_random_dataset,
    load_reference,
    paper_model,
)
from memcap.analysis.run_view import RunView  # noqa: E402
from memcap.io import check_named_paths, named_paths  # noqa: E402
from memcap.records import LOSSLESS_ACCURACY  # noqa: E402

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"]
PAPER_COLOUR = "0.55"
FIGURE_WIDTH = 6.8  # inches: full text width of a one-column A4/letter page
PNG_DPI = 200
FIGURE_NAMES = ["capacity", "ce_scatter", "utilisation", "accuracy_vs_length", "multivector"]
FIGURE_FORMATS = ["pdf", "png"]  # each figure as PDF (the report) and PNG

STYLE = {
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9.5,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.prop_cycle": plt.cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "legend.frameon": False,
    "pdf.fonttype": 42,
    "figure.constrained_layout.use": True,
}


@contextmanager
def figure_style():
    """Context manager: the package's figure style (STYLE) for every figure drawn inside it."""
    with plt.rc_context(STYLE):
        yield


def family_of(model: str, model_id: str | None = None) -> str:
    """Model family for colouring: the paper's family, random:<family>, or the name's stem."""
    row = paper_model(model, model_id)
    if row:
        return load_reference()["models"][row]["family"]
    if model_id and str(model_id).startswith("random:"):
        return str(model_id).split(":", 1)[1]
    return re.split(r"[-_.\s]", str(model))[0].lower() or str(model)


def _family_colours(families) -> dict[str, str]:
    paper_families = sorted({m["family"] for m in load_reference()["models"].values()})
    ordered = paper_families + sorted(set(families) - set(paper_families))
    return {f: OKABE_ITO[i % len(OKABE_ITO)] for i, f in enumerate(ordered)}


def _label(model: str, protocol: str, mixed: bool) -> str:
    return f"{model} [{protocol}]" if mixed else model


def _log2_axis(axis) -> None:
    """Powers of two as plain integers on a log2 axis (token counts read naturally)."""
    axis.set_major_locator(LogLocator(base=2))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def save_figure_as(fig, pdf: Path, png: Path) -> Path:
    """fig as the PDF and PNG paths given, then closed; returns the PDF's path (also
    memcap.analysis.geometry_figures, memcap.analysis.precision_summary)."""
    fig.savefig(pdf)
    fig.savefig(png, dpi=PNG_DPI)
    plt.close(fig)
    return pdf


def placeholder_figure(title: str, reason: str):
    """A figure with nothing to show: its title and "no data: <reason>"."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 2.0))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=11, weight="bold")
    ax.text(0.5, 0.3, f"no data: {reason}", ha="center", va="center", fontsize=9)
    return fig


def panel_grid(n: int, ncols: int = 3, height: float = 2.4, sharey: bool = False):
    """A full-width figure of n panels, ncols to a row; returns (fig, the n visible axes)."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(FIGURE_WIDTH, height * nrows + 0.3), squeeze=False, sharey=sharey)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


class _Data(RunView):
    """The run's view (memcap.analysis.run_view) plus what every figure draws from: the
    usable records, natural and random datasets, the (model, protocol) runs, a colour per dataset."""

    def __init__(self, df: pd.DataFrame, capacity_rule: str = "paper"):
        super().__init__(df, capacity_rule=capacity_rule)
        self.ok = metrics.usable(df)
        # natural or random by each record's text kind, never by the dataset's name
        self.natural = [d for d in self.datasets if not self.is_random(d)]
        self.random = [d for d in self.datasets if self.is_random(d)]
        s = self.summary
        self.runs = [(m, p) for m in self.models for p in self.protocols if ((s.model == m) & (s.protocol == p)).any()]
        self.colour = {d: OKABE_ITO[i % len(OKABE_ITO)] for i, d in enumerate(self.datasets)}

    def is_random(self, dataset: str) -> bool:
        return is_random_dataset(dataset, self.kinds)

    def k1(self) -> pd.DataFrame:
        return self.summary[(self.summary.K == 1) & (self.summary.n_samples > 0)]


_NO_CAPACITY = {  # the capacity figure's placeholder, by headline rule (memcap.analysis.capacity_stats)
    "paper": "no length reached mean accuracy >= 0.99 at K=1",
    "per_sample": "no length reached by the capacities of >= 99 % of the texts at K=1",
}


def _paper_capacities(ax, data: _Data, dataset: str, models, xs, shown: bool) -> bool:
    """The paper's capacity of each model on `dataset`'s source as a hollow grey marker at
    x; the legend entry once (`shown`: already drawn). Returns whether it is drawn now."""
    for m, x in zip(models, xs, strict=True):
        ref = data.paper(m, "capacity", dataset)
        if ref is None:
            continue
        label = None if shown else "paper (same source)"
        ax.scatter([x], [ref], s=36, facecolors="none", edgecolors=PAPER_COLOUR, label=label, zorder=2)
        ax.annotate(
            f"{ref}", (x, ref), xytext=(5, 0), textcoords="offset points", va="center", fontsize=7, color=PAPER_COLOUR
        )
        shown = True
    return shown


def capacity_figure(data: _Data):
    """Figure 1: decoding capacity per model (category axis), one series per source."""
    k1_all = data.k1()
    k1 = k1_all.dropna(subset=["capacity"])
    if k1.empty:
        return placeholder_figure("Decoding capacity", _NO_CAPACITY[data.capacity_rule])
    labels = [_label(m, p, data.mixed) for m, p in data.runs]
    x_of = {run: i for i, run in enumerate(data.runs)}
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.0))
    offsets = np.linspace(-0.15, 0.15, len(data.datasets)) if len(data.datasets) > 1 else [0]
    paper_shown = False
    for offset, dataset in zip(offsets, data.datasets, strict=True):
        rows = k1[k1.dataset == dataset]
        xs = [x_of[(m, p)] + offset for m, p in zip(rows.model, rows.protocol, strict=True)]
        ax.scatter(xs, rows.capacity, s=36, color=data.colour[dataset], label=dataset, zorder=3)
        for x, y, mode in zip(xs, rows.capacity, rows["mode"], strict=True):
            label = f"{int(y)} (search)" if mode == "search" else f"{int(y)}"
            ax.annotate(label, (x, y), xytext=(5, 0), textcoords="offset points", va="center", fontsize=7.5)
        failed = k1_all[(k1_all.dataset == dataset) & k1_all.capacity.isna()]
        for m, p, shortest in zip(failed.model, failed.protocol, failed.min_L, strict=True):
            x = x_of[(m, p)] + offset  # even the shortest length failed: mark "< L"
            ax.scatter([x], [shortest], marker="v", s=30, color=data.colour[dataset], zorder=3)
            ax.annotate(
                f"<{int(shortest)}", (x, shortest), xytext=(5, 0), textcoords="offset points", va="center", fontsize=7.5
            )
        paper_shown = _paper_capacities(ax, data, dataset, rows.model, xs, paper_shown)
    ax.set_xticks(
        range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
    )
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_yscale("log", base=2)
    _log2_axis(ax.yaxis)
    rule = "per-sample rule" if data.capacity_rule == "per_sample" else "paper's rule"
    ax.set_ylabel(f"decoding capacity (tokens)\n{rule}")
    ax.set_xlabel("model (K = 1 vector)")
    ax.legend(title="source", loc="best")
    return fig


def ce_scatter_figure(data: _Data):
    """Figures 3/6: CE_mem against CE_orig per model, with fit y = x + b and threshold."""
    ok = data.ok[data.ok.K == 1]
    if ok.empty:
        return placeholder_figure("Cross-entropy with and without [mem]", "no usable K=1 samples")
    runs = [(m, p) for m, p in data.runs if ((ok.model == m) & (ok.protocol == p)).any()]
    natural = ok[ok["kind"] != "random"]
    lengths = natural["L"] if len(natural) else pd.Series([1, 2])
    norm_cls = LogNorm if lengths.max() / max(lengths.min(), 1) > 8 else Normalize
    norm = norm_cls(vmin=max(lengths.min(), 1), vmax=max(lengths.max(), 2))
    fig, axes = panel_grid(len(runs), height=2.5)
    points = None
    for ax, (model, protocol) in zip(axes, runs, strict=True):
        run = ok[(ok.model == model) & (ok.protocol == protocol)]
        nat = run[run["kind"] != "random"]
        rnd = run[run["kind"] == "random"]
        if len(nat):
            points = ax.scatter(
                nat.ce_orig,
                nat.ce_mem,
                c=nat.L,
                cmap="viridis",
                norm=norm,
                s=10,
                alpha=0.85,
                linewidths=0,
                label="natural text",
            )
        if len(rnd):
            ax.scatter(rnd.ce_orig, rnd.ce_mem, s=6, color="black", label="random text")
        top = float(np.nanmax([run.ce_orig.max(), run.ce_mem.max(), 1.0]))
        xs = np.array([0.0, top])
        ax.plot(xs, xs, color="0.7", lw=0.7, label="y = x")
        b = metrics.fit_offset(run)
        if not math.isnan(b):
            ax.plot(xs, xs + b, ls="--", color="0.2", lw=1.0, label=f"fit y = x {b:+.0f}")
        threshold = metrics.lossless_ce_threshold(run)
        if not math.isnan(threshold):
            ax.axhline(threshold, ls=":", color="#D55E00", lw=1.2, label=f"lossless max {threshold:.1f}")
        ax.set_xlim(0, top * 1.03)
        ax.set_ylim(0, top * 1.03)
        # A search contributes one point per attempt (its lossless lengths and the failing
        # one), as the grid does per length; the fit and threshold use them alike, but the
        # title says so, since the points are not one per (text, grid length).
        searched = (run["mode"] == "search").any() if "mode" in run.columns else False
        ax.set_title(_label(model, protocol, data.mixed) + (" (search attempts)" if searched else ""))
        ax.set_xlabel("CE without [mem] (nats)")
        ax.set_ylabel("CE with [mem] (nats)")
        ax.legend(loc="upper left", fontsize=6.5)
    if points is not None:
        fig.colorbar(points, ax=axes, label="text length L (tokens)", shrink=0.9)
    return fig


def utilisation_figure(data: _Data):
    """Figure 5: token gain vs Eq. 1 capacity (top) and utilisation natural vs random."""
    k1 = data.k1().dropna(subset=["token_gain_mean"])
    if k1.empty:
        return placeholder_figure("Capacity utilisation", "no saturated K=1 samples (all lossless?)")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(FIGURE_WIDTH, 6.0), height_ratios=[1.2, 1.0])
    _gain_panel(top, data, k1)
    _utilisation_bars(bottom, data, k1)
    return fig


def _gain_panel(top, data: _Data, k1: pd.DataFrame) -> None:
    """Figure 5, top: one point per model on its first natural source (else the first
    source), the paper's models hollow; marker area ~ parameters, colour = family."""
    reference = load_reference()
    families = {m: family_of(m, i) for m, i in zip(data.summary.model, data.summary.model_id, strict=True)}
    colours = _family_colours(families.values())
    focus = data.natural[0] if data.natural else data.datasets[0]
    ref_models = reference["models"].values()
    ref_pts = [(r["token_gain"]["pg19"][0], r["l_th"], r["params_b"]) for r in ref_models]
    max_params = max([p * 1e9 for *_, p in ref_pts] + list(k1.params.fillna(0)))
    size = lambda p: 15 + 250 * math.sqrt(max(p, 0) / max_params)  # noqa: E731 area ~ params
    top.scatter(
        [x for x, _, _ in ref_pts],
        [y for _, y, _ in ref_pts],
        s=[size(p * 1e9) for *_, p in ref_pts],
        facecolors="none",
        edgecolors=PAPER_COLOUR,
        label="paper (PG-19, 14 models)",
    )
    shown = set()
    for _, r in k1[k1.dataset == focus].iterrows():
        fam = families[r.model]
        top.scatter(
            [r.token_gain_mean],
            [r.l_th],
            s=size(r.params),
            color=colours[fam],
            alpha=0.85,
            label=None if fam in shown else fam,
            zorder=3,
        )
        shown.add(fam)
        top.annotate(
            _label(r.model, r.protocol, data.mixed),
            (r.token_gain_mean, r.l_th),
            xytext=(6, 3),
            textcoords="offset points",
            fontsize=7,
        )
    top.set_xscale("log", base=2)
    _log2_axis(top.xaxis)
    top.set_xlabel(f"token gain on {focus} (tokens, mean over saturated samples)")
    top.set_ylabel("theoretical capacity L_th (tokens)")
    top.legend(title="family (marker area ~ parameters)", loc="best")


def _utilisation_bars(bottom, data: _Data, k1: pd.DataFrame) -> None:
    """Figure 5, bottom: grouped bars, natural vs random utilisation per model, the paper's
    values as black dashes."""
    groups = ([data.natural[0]] if data.natural else []) + data.random[:1]
    width = 0.8 / max(len(groups), 1)
    labels = [_label(m, p, data.mixed) for m, p in data.runs]
    for gi, dataset in enumerate(groups):
        xs, ys, refs = [], [], []
        for i, (m, p) in enumerate(data.runs):
            row = k1[(k1.model == m) & (k1.protocol == p) & (k1.dataset == dataset)]
            if len(row):
                xs.append(i + (gi - (len(groups) - 1) / 2) * width)
                ys.append(row.utilisation.iloc[0])
                refs.append(data.paper(m, "utilisation", dataset))
        bars = bottom.bar(xs, ys, width=width * 0.95, color=OKABE_ITO[gi * 3 % 8], label=dataset)
        bottom.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        pts = [(x, r) for x, r in zip(xs, refs, strict=True) if r is not None]
        if pts:
            bottom.scatter(
                *zip(*pts, strict=True), marker="_", s=300, color="black", zorder=3, label=f"paper ({dataset})"
            )
    bottom.set_xticks(
        range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
    )
    bottom.set_ylabel("capacity utilisation\n(token gain / L_th)")
    bottom.set_xlabel("model (K = 1 vector)")
    bottom.legend(loc="best")


def accuracy_figure(data: _Data):
    """Mean accuracy per length, one panel per model, one line per source and K."""
    if data.ok.empty:
        return placeholder_figure("Accuracy against length", "no usable samples")
    passes = metrics.pass_rate_by_length(data.df)
    # Grid records only: a search tries a text at a length only after it was lossless at
    # the shorter ones, so its mean accuracy per length is over a self-selected subset
    # (near 1 by construction); its capacities are in the search table instead.
    passes = passes[(passes.n > 0) & (passes["mode"] == "grid")]
    s = data.summary[data.summary["mode"] == "grid"]
    runs = [(m, p) for m, p in data.runs if ((s.model == m) & (s.protocol == p)).any()]
    if not runs:
        return placeholder_figure("Accuracy against length", "no grid-mode samples (search runs: see the search table)")
    fig, axes = panel_grid(len(runs), height=2.3, sharey=True)
    for ax, (model, protocol) in zip(axes, runs, strict=True):
        run = passes[(passes.model == model) & (passes.protocol == protocol)]
        for (dataset, K), group in run.groupby(["dataset", "K"]):
            label = dataset if K == 1 else f"{dataset}, K={K}"
            style = dict(color=data.colour[dataset], alpha=1.0 if K == 1 else 0.6)
            if data.is_random(dataset):  # ~one sample per sampled length
                ax.scatter(group.L, group.mean_acc, s=8, label=label, **style)
            else:
                ax.plot(group.L, group.mean_acc, marker="o", ms=3, label=label, ls="-" if K == 1 else "--", **style)
        ax.axhline(LOSSLESS_ACCURACY, ls=":", color="#D55E00", lw=1, label="0.99 (lossless)")
        ax.set_xscale("log", base=2)
        _log2_axis(ax.xaxis)
        ax.set_ylim(-0.02, 1.04)
        ax.set_title(_label(model, protocol, data.mixed))
        ax.set_xlabel("text length L (tokens)")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("mean accuracy (fraction)")
        ax.legend(loc="lower left", fontsize=6.5)
    return fig


_MV_PANELS = [
    # (summary column, std column, paper key, axis label)
    ("capacity", None, "capacity", "decoding capacity (tokens)"),
    ("token_gain_mean", "token_gain_std", "token_gain", "token gain (tokens)"),
    ("info_gain_nats_mean", "info_gain_nats_std", "info_gain_nats", "information gain (nats)"),
]


def multivector_figure(data: _Data):
    """Figure 4: capacity and gains against K, ideal linear scaling dashed, +-1 std bands."""
    s = data.summary[data.summary.n_samples > 0]
    multi = s.groupby(["model", "dataset", "protocol"])["K"].transform("max") > 1
    s = s[multi]
    if s.empty:
        return placeholder_figure("Multiple [mem] vectors", "no runs with K > 1")
    keys = list(s.groupby(["model", "dataset", "protocol"]).groups)
    reference = load_reference()
    paper_runs = reference.get("multivector", {})
    n_rows = len(keys) + bool(paper_runs)  # last row: the paper's own curves
    fig, axes = plt.subplots(n_rows, 3, figsize=(FIGURE_WIDTH, 2.3 * n_rows + 0.3), squeeze=False)
    for row_axes, (model, dataset, protocol) in zip(axes, keys, strict=False):
        run = s[(s.model == model) & (s.dataset == dataset) & (s.protocol == protocol)]
        run = run.sort_values("K")
        ids = run.model_id.iloc[0]
        ref_row = paper_model(model, ids)
        ref = reference.get("multivector", {}).get(ref_row)
        same_source = ref and data.source(dataset) == ref["source"]
        for ax, (col, std, key, ylabel) in zip(row_axes, _MV_PANELS, strict=True):
            ks, ys = run.K.to_numpy(), run[col].to_numpy(dtype=float)
            ax.plot(ks, ys, marker="o", ms=4, color=OKABE_ITO[0], label="this run")
            if np.isnan(ys).all():  # e.g. no length reached the lossless threshold
                ax.text(0.5, 0.5, "no value at any K", transform=ax.transAxes, ha="center", color="0.4")
            if std:
                sd = run[std].fillna(0).to_numpy(dtype=float)
                ax.fill_between(ks, ys - sd, ys + sd, color=OKABE_ITO[0], alpha=0.2, label="±1 std")
            base = run[run.K == 1][col]
            if len(base) and pd.notna(base.iloc[0]):
                ax.plot(ks, base.iloc[0] * ks, ls="--", color="0.4", lw=1, label="ideal: K × (K=1 value)")
            if same_source:
                pts = sorted((int(k), v) for k, v in ref[key].items())
                ax.scatter(*zip(*pts, strict=True), facecolors="none", edgecolors=PAPER_COLOUR, s=25, label="paper")
            ax.set_xscale("log", base=2)
            _log2_axis(ax.xaxis)
            if (ys > 0).any():
                ax.set_yscale("log", base=2)
                _log2_axis(ax.yaxis)
            ax.set_xlabel("[mem] vectors K")
            ax.set_ylabel(ylabel)
        row_axes[0].set_title(_label(model, protocol, data.mixed) + f" on {dataset}", loc="left")
        row_axes[0].legend(loc="upper left", fontsize=6.5)
        row_axes[1].legend(loc="upper left", fontsize=6.5)
    if paper_runs:
        _paper_multivector_row(axes[-1], paper_runs)
    return fig


def _paper_multivector_row(row_axes, paper_runs: dict) -> None:
    """The paper's Figure 4 values (paper/reference.yaml), each model with its ideal line."""
    for ax, (_, _, key, ylabel) in zip(row_axes, _MV_PANELS, strict=True):
        for i, (name, ref) in enumerate(paper_runs.items()):
            colour = OKABE_ITO[(i + 1) % len(OKABE_ITO)]
            ks, ys = map(np.array, zip(*sorted((int(k), v) for k, v in ref[key].items()), strict=True))
            ax.plot(ks, ys, marker="o", mfc="none", ms=4, color=colour, label=name)
            if ks[0] == 1:
                ax.plot(ks, ys[0] * ks, ls="--", color=colour, lw=0.8, alpha=0.7)
        ax.set_xscale("log", base=2)
        _log2_axis(ax.xaxis)
        ax.set_yscale("log", base=2)
        _log2_axis(ax.yaxis)
        ax.set_xlabel("[mem] vectors K")
        ax.set_ylabel(ylabel)
    sources = sorted({load_reference()["source_labels"].get(r["source"], r["source"]) for r in paper_runs.values()})
    row_axes[0].set_title(f"the paper, on {', '.join(sources)} (dashed: ideal linear)", loc="left")
    row_axes[0].legend(loc="upper left", fontsize=6.5)


_FIGURES = {
    "capacity": capacity_figure,
    "ce_scatter": ce_scatter_figure,
    "utilisation": utilisation_figure,
    "accuracy_vs_length": accuracy_figure,
    "multivector": multivector_figure,
}


def figure_paths(out_dir: Path) -> dict[str, Path]:
    """write_figures' files in one folder: {"capacity_pdf": out_dir/capacity.pdf,
    "capacity_png": out_dir/capacity.png, ...}. For tests and notebooks; the workflow names
    its own files."""
    return named_paths(out_dir, FIGURE_NAMES, FIGURE_FORMATS)


def write_figures(
    records: list[Path], paths: Mapping[str, str | Path], capacity_rule: str = "paper"
) -> dict[str, Path]:
    """Write every figure as PDF and PNG to `paths`.

    `records` are records .jsonl files; `paths` maps "<name>_pdf" and "<name>_png" of every
    name in FIGURE_NAMES to the file to write (the rule's named outputs; figure_paths: all
    in one folder); an unknown or a missing key raises ValueError naming the allowed ones.
    Returns {name: pdf path} for capacity, ce_scatter, utilisation, accuracy_vs_length and
    multivector; a figure with nothing to show becomes a placeholder that says so, so
    every file always exists. `capacity_rule` ("paper" or "per_sample") picks the headline
    decoding capacity drawn (memcap.analysis.capacity_stats), as in the tables.
    """
    paths = check_named_paths(paths, FIGURE_NAMES, FIGURE_FORMATS, "write_figures")
    data = _Data(metrics.load_records(records), capacity_rule)
    written = {}
    with figure_style():
        for name, draw in _FIGURES.items():
            if data.summary.empty:
                fig = placeholder_figure(name.replace("_", " "), "no records")
            else:
                fig = draw(data)
            pdf, png = paths[f"{name}_pdf"], paths[f"{name}_png"]
            for path in (pdf, png):
                path.parent.mkdir(parents=True, exist_ok=True)
            written[name] = save_figure_as(fig, pdf, png)
    return written
