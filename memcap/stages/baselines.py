"""Classical lossless compressors beside the [mem] vectors (the paper's Appendix F, Table 4).

    from memcap.stages.baselines import output_paths, run_baselines, write_outputs
    rows = run_baselines(lm, records_df, texts_rows, "lee")   # one BaselineRow per text
    files = output_paths("results/demo/baselines")
    # {"rows": .../rows.csv, "table": .../table.csv, "tex": .../table.tex, "summary": .../summary.json}
    write_outputs(rows, files, "smollm2-135m")   # writes exactly `files`

``write_outputs`` (and ``run_stage``, the rule baselines) take the path of every file, keyed
as the rule names its outputs (OUTPUTS, workflow/rules/baselines.smk); an unknown or a
missing key raises ValueError naming the allowed ones. ``output_paths`` gives the default
names in one folder, for tests and notebooks.

The codecs (zlib, bz2, lzma, Huffman, and arithmetic coding with the LM's own predictions)
are in memcap.stages.codecs; each size is that of a stream checked to decode back to its input. A
compression ratio is UTF-8 bytes / compressed bytes; the ratios, their means and the table are
pure functions in memcap.analysis.baselines.

The texts are those the [mem] vectors carried: for each sample the longest length whose
vector decoded it losslessly (records of the K = 1 run), so the [mem] ratio
(text bytes / (K * d * 16 bits)) and every classical ratio describe the same strings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memcap.analysis import metrics
from memcap.analysis.baselines import SUMMARY_COLUMNS, TABLE_COLUMNS, ratios, summarise, table_frame
from memcap.analysis.latex import latex_boxed, latex_tabular
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.io import check_paths
from memcap.records import accuracy_is_lossless
from memcap.stages.codecs import LMCoder, compressed_sizes
from memcap.stages.texts import read_texts

# --- the texts the [mem] vectors carried, and their sizes under every codec ----------------------


@dataclass
class BaselineRow:
    """One text: its sizes in bytes under every codec, and the [mem] vectors' size."""

    dataset: str
    sample_id: str
    L: int  # tokens of the [mem] model: the longest length this sample decoded losslessly
    lossless: bool  # False: no length was lossless, the text is the shortest length tried
    n_bytes: int
    zlib: int
    bz2: int
    lzma: int
    huffman: int
    arithmetic: int
    arithmetic_tokens: int
    arithmetic_ideal_bits: float
    arithmetic_exact: bool  # decoding gave back the tokens and the text (True unverified)
    mem_bytes: int  # K * d * 16 bits


def mem_texts(records: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per sample of `dataset` (K = 1, usable records): the longest lossless length, or the
    shortest length tried (lossless False) when none was lossless."""
    ok = metrics.usable(records)
    ok = ok[(ok.dataset == dataset) & (ok.K == 1)].copy()
    if ok.empty:
        return ok.assign(lossless=pd.Series(dtype=bool))
    ok["lossless"] = accuracy_is_lossless(ok["acc"])
    # lossless rows first, then the longest of them (or the shortest of the failures)
    ok["order"] = np.where(ok["lossless"], -ok["L"], ok["L"])
    ok = ok.sort_values(["lossless", "order"], ascending=[False, True])
    return ok.groupby("sample_id", sort=False).head(1).sort_values("sample_id")


def run_baselines(
    lm,
    records: pd.DataFrame,
    texts: list[dict],
    dataset: str,
    verify: bool = True,
    bits_per_value: int = metrics.BITS_PER_VALUE,
    progress=None,
) -> list[BaselineRow]:
    """Every codec on the texts of `dataset` that the [mem] vectors carried (mem_texts).

    lm must be the model of the records: its tokenizer cuts each text to its length L.
    """
    by_id = {str(row["id"]): row["text"] for row in texts}
    coder = LMCoder(lm)
    rows = []
    chosen = mem_texts(records, dataset)
    for i, rec in enumerate(chosen.itertuples()):
        if rec.sample_id not in by_id:
            raise ValueError(f"sample {rec.sample_id!r} of {dataset} is not in the texts file")
        # the same string the record's n_bytes counted (job._record)
        ids = lm.tokenize(by_id[rec.sample_id])[: rec.L]
        text = lm.tokenizer.decode(ids, skip_special_tokens=True)
        data = text.encode("utf-8")
        sizes = compressed_sizes(data, verify=verify)
        coded = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        stream, ideal = coder.encode(coded)
        exact = True
        if verify:
            back = coder.decode(stream)
            exact = back == coded and lm.tokenizer.decode(back) == text
        rows.append(
            BaselineRow(
                dataset=dataset,
                sample_id=rec.sample_id,
                L=int(rec.L),
                lossless=bool(rec.lossless),
                n_bytes=len(data),
                **sizes,
                arithmetic=len(stream),
                arithmetic_tokens=len(coded),
                arithmetic_ideal_bits=ideal,
                arithmetic_exact=exact,
                mem_bytes=int(rec.K) * int(rec.mem_dim) * bits_per_value // 8,
            )
        )
        if progress:
            progress(i + 1, len(chosen))
    return rows


def rows_frame(rows: list[BaselineRow]) -> pd.DataFrame:
    columns = list(BaselineRow.__dataclass_fields__)
    return pd.DataFrame([asdict(r) for r in rows], columns=columns)


# --- the stage's files --------------------------------------------------------------------------

OUTPUTS = ["rows", "table", "tex", "summary"]  # the rule's output names: what write_outputs writes
_DEFAULT_NAMES = {"rows": "rows.csv", "table": "table.csv", "tex": "table.tex", "summary": "summary.json"}


def output_paths(out_dir) -> dict[str, Path]:
    """write_outputs' files in one folder, by OUTPUTS: {"rows": out_dir/rows.csv, "table":
    out_dir/table.csv, "tex": out_dir/table.tex, "summary": out_dir/summary.json}. For tests
    and notebooks; the workflow names its own files (rule baselines)."""
    return {key: Path(out_dir) / _DEFAULT_NAMES[key] for key in OUTPUTS}


def write_outputs(rows: list[BaselineRow], paths, model: str = "", verified: bool = True) -> dict[str, Path]:
    """To `paths` (keyed by OUTPUTS, as the rule names its outputs; ValueError on an unknown
    or a missing key): "rows" the per-text CSV with ratios, "table" the table as CSV, "tex"
    the table as LaTeX (booktabs), "summary" the JSON the report quotes. Returns `paths` as
    Paths."""
    paths = check_paths(paths, OUTPUTS, "baselines.write_outputs")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    frame = rows_frame(rows)
    ratios(frame).to_csv(paths["rows"], index=False)
    table = table_frame(summarise(frame) if len(frame) else pd.DataFrame(columns=SUMMARY_COLUMNS))
    table.to_csv(paths["table"], index=False)
    tex = latex_boxed(latex_tabular(table, "ll" + "r" * (len(TABLE_COLUMNS) - 2), groups=table["Values"]))
    paths["tex"].write_text(tex + "\n", encoding="utf-8")
    facts = {
        "model": model,
        "datasets": list(dict.fromkeys(frame["dataset"])),
        "texts": len(frame),
        "lossless": int(frame["lossless"].sum()),
        "arithmetic_exact": int(frame["arithmetic_exact"].sum()),
        "verified": verified,
    }
    paths["summary"].write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    return paths


def run_stage(
    model: str,
    record_files: list,
    texts_files: dict,
    paths,
    *,
    verify: bool = True,
    device: str = "auto",
    models_file="config/models.yaml",
    threads: int | None = None,
) -> dict[str, Path]:
    """Rule baselines: texts_files maps each dataset to its texts JSONL; record_files are
    the model's K = 1 records. Writes the rule's outputs, `paths` (write_outputs: keyed by
    OUTPUTS, checked before the model is loaded)."""
    log = logging.getLogger("memcap.stages.baselines")
    paths = check_paths(paths, OUTPUTS, "baselines.run_stage")
    if threads:
        torch.set_num_threads(threads)
    records = metrics.load_records(record_files)
    lm = load_model(resolve_model(model, load_registry(models_file)), device)
    rows = []
    for dataset, texts_file in texts_files.items():
        done = run_baselines(lm, records[records.model == model], read_texts(texts_file), dataset, verify=verify)
        log.info(
            "%s: %d texts, arithmetic round trips exact: %d", dataset, len(done), sum(r.arithmetic_exact for r in done)
        )
        rows += done
    return write_outputs(rows, paths, model, verify)
