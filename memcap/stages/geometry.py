"""Geometry of the [mem] solutions: many vectors per text (the paper's Figures 7 and 8).

    from memcap.stages.geometry import optimise_inits, cosine_pairs, interpolate
    from memcap.analysis.geometry_figures import summary
    runs, vectors = optimise_inits(lm, texts, inits=8, K=1, protocol="paper", optim=optim,
                                   seed_parts=("smollm2-135m", "lee"))
    cosines = cosine_pairs(runs, vectors)           # every pair of converged vectors
    curves = interpolate(lm, texts, runs, vectors, points=11, protocol="paper")
    stats = summary(runs, cosines, curves)          # the numbers the report quotes

Each text (a list of token ids, already cut to its length) is compressed `inits` times from
independent random inits (seeds derived from the text and the init number); the inits of
all texts form one batch for memcap.core.engine.compress_batch, where converged ones freeze. Only
vectors that reached accuracy 1.0 enter the analysis:

* cosine similarity (K x d flattened) between vectors of the same text and of different
  texts (Figure 7: two densities);
* teacher-forced accuracy along the straight line (1 - t) m_a + t m_b for every pair of
  vectors of one text (Figure 8: faint lines with the min/max envelope).

The rule geometry calls `run_stage`; memcap.analysis.geometry_figures draws both figures and writes
summary.json (rule geometry_figures) with its `summary` (pandas only: the analysis layer), which
run_stage also returns.
"""

from __future__ import annotations

import logging
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from memcap.analysis.geometry_figures import summary
from memcap.core.engine import OptimConfig, first_scored, pad, score
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.stages.batching import compress_splitting, derive_seed
from memcap.stages.texts import read_texts

RUN_COLUMNS = [
    "sample_id",
    "init",
    "seed",
    "N",
    "steps",
    "accuracy",
    "converged",
    "greedy_exact",
    "stop_reason",
    "wall_s",
]


def optimise_inits(
    lm,
    texts: list[tuple[str, list[int]]],
    inits: int,
    K: int,
    protocol: str,
    optim: OptimConfig,
    seed_parts: tuple = (),
    batch_size: int = 64,
    progress=None,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """Compress every (text, init); returns one row per run (RUN_COLUMNS, in text-major order)
    and their vectors (runs x K x d, float32). texts: (sample_id, ids) pairs."""
    cells = [(sid, ids, i) for sid, ids in texts for i in range(inits)]
    seeds = [derive_seed(*seed_parts, "geometry", K, len(ids), sid, i) for sid, ids, i in cells]
    rows, vectors = [], []
    for start in range(0, len(cells), batch_size):
        chunk = cells[start : start + batch_size]
        outcomes = compress_splitting(
            lm, [ids for _, ids, _ in chunk], K, protocol, seeds[start : start + batch_size], optim
        )
        for (sid, ids, init), seed, out in zip(chunk, seeds[start:], outcomes, strict=False):
            if out is None:  # out of memory even alone: recorded, left out of the analysis
                rows.append(
                    dict(
                        sample_id=sid,
                        init=init,
                        seed=seed,
                        N=len(ids),
                        steps=0,
                        accuracy=np.nan,
                        converged=False,
                        greedy_exact=False,
                        stop_reason="oom",
                        wall_s=0.0,
                    )
                )
                vectors.append(torch.full((K, lm.mem_dim), float("nan")))
                continue
            rows.append(
                dict(
                    sample_id=sid,
                    init=init,
                    seed=seed,
                    N=out.N,
                    steps=out.steps,
                    accuracy=out.accuracy,
                    converged=out.converged,
                    greedy_exact=out.greedy_exact,
                    stop_reason=out.stop_reason,
                    wall_s=out.wall_s,
                )
            )
            vectors.append(out.vectors)
        if progress:
            progress(min(start + batch_size, len(cells)), len(cells))
    return pd.DataFrame(rows, columns=RUN_COLUMNS), torch.stack(vectors)


def cosine_pairs(runs: pd.DataFrame, vectors: torch.Tensor) -> pd.DataFrame:
    """Cosine similarity of every pair of converged vectors (K x d flattened), with
    same_text telling whether both came from one text."""
    keep = np.flatnonzero(runs["converged"].to_numpy(bool))
    flat = vectors[keep].reshape(len(keep), -1).double()
    unit = flat / flat.norm(dim=1, keepdim=True)
    sims = (unit @ unit.T).numpy()
    sid, init = runs["sample_id"].to_numpy()[keep], runs["init"].to_numpy()[keep]
    a, b = np.triu_indices(len(keep), k=1)
    return pd.DataFrame(
        {
            "sample_a": sid[a],
            "init_a": init[a],
            "sample_b": sid[b],
            "init_b": init[b],
            "same_text": sid[a] == sid[b],
            "cosine": sims[a, b],
        }
    )


@torch.no_grad()
def interpolate(
    lm,
    texts: list[tuple[str, list[int]]],
    runs: pd.DataFrame,
    vectors: torch.Tensor,
    points: int,
    protocol: str,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Teacher-forced accuracy at `points` evenly spaced points t in [0, 1] of the line
    (1 - t) m_a + t m_b, for every pair (a < b) of converged vectors of each text."""
    first = first_scored(protocol)
    ts = np.linspace(0.0, 1.0, points)
    out = []
    for sid, ids in texts:
        mine = runs.index[(runs["sample_id"] == sid) & runs["converged"].astype(bool)]
        jobs = [(a, b, t) for a, b in combinations(mine, 2) for t in ts]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            mem = torch.stack([(1 - t) * vectors[a] + t * vectors[b] for a, b, t in chunk])
            tokens, lengths = pad([ids] * len(chunk), lm.device)
            loss, correct = score(lm, mem.to(lm.device), lm.embeddings(tokens), tokens, lengths, first)
            scored = len(ids) - first
            for (a, b, t), l_sum, c in zip(chunk, loss.tolist(), correct.tolist(), strict=True):
                out.append(
                    {
                        "sample_id": sid,
                        "init_a": int(runs.at[a, "init"]),
                        "init_b": int(runs.at[b, "init"]),
                        "t": float(t),
                        "accuracy": c / scored,
                        "loss": l_sum / scored,
                    }
                )
    return pd.DataFrame(out, columns=["sample_id", "init_a", "init_b", "t", "accuracy", "loss"])


# --- the workflow stage -------------------------------------------------------------------


def run_stage(
    model: str,
    texts_file,
    dataset: str,
    out: dict,
    *,
    texts: int,
    inits: int,
    length: int,
    K: int,
    points: int,
    protocol: str,
    optim: dict,
    batch_size: int = 64,
    device: str = "auto",
    models_file="config/models.yaml",
    threads: int | None = None,
) -> dict:
    """Rule geometry: load the model once, solve, and write out["runs"] (CSV),
    out["vectors"] (safetensors, one K x d tensor per run, keyed <sample_id>/<init>),
    out["cosine"] and out["interpolation"] (CSV). Texts shorter than `length` are skipped."""
    log = logging.getLogger("memcap.stages.geometry")
    if threads:
        torch.set_num_threads(threads)
    lm = load_model(resolve_model(model, load_registry(models_file)), device)
    chosen = []
    for row in read_texts(texts_file):
        ids = lm.tokenize(row["text"])[:length]
        if len(ids) < length:
            log.warning("text %s has %d tokens < %d: skipped", row["id"], len(ids), length)
            continue
        chosen.append((str(row["id"]), ids))
        if len(chosen) == texts:
            break
    log.info("%s on %s: %d texts x %d inits, L=%d, K=%d", model, dataset, len(chosen), inits, length, K)
    runs, vectors = optimise_inits(
        lm,
        chosen,
        inits,
        K,
        protocol,
        OptimConfig.from_dict(optim),
        (model, dataset),
        batch_size,
        progress=lambda done, total: log.info("solved %d/%d", done, total),
    )
    log.info("%d of %d runs reached accuracy 1.0", int(runs["converged"].sum()), len(runs))
    cosines = cosine_pairs(runs, vectors)
    curves = interpolate(lm, chosen, runs, vectors, points, protocol, batch_size)
    for key in ("runs", "cosine", "interpolation", "vectors"):
        Path(out[key]).parent.mkdir(parents=True, exist_ok=True)
    runs.assign(model=model, dataset=dataset, K=K, L=length, protocol=protocol).to_csv(out["runs"], index=False)
    save_file(
        {f"{s}/{i}": v.contiguous() for s, i, v in zip(runs.sample_id, runs.init, vectors, strict=True)},
        str(out["vectors"]),
    )
    cosines.to_csv(out["cosine"], index=False)
    curves.to_csv(out["interpolation"], index=False)
    return summary(runs, cosines, curves)
