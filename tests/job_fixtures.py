"""Helpers shared by the job tests: texts files and the record keys docs/records.md lists."""

import json
import re
from pathlib import Path

from memcap.corpora import lee_articles

REPO = Path(__file__).resolve().parents[1]


def write_texts(path, n=3, lengths=None, words=60):
    """A texts file (docs/records.md) of the first n Lee articles, cut to `words` words."""
    rows = []
    for i in range(n):
        row = {
            "id": f"lee-{i:04d}",
            "text": " ".join(lee_articles()[i].split()[:words]),
            "source": "test",
            "seed": None,
            "length": lengths[i] if lengths else None,
        }
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def documented_record_keys():
    """Every key the records table of docs/records.md documents."""
    table = (REPO / "docs" / "records.md").read_text().split("## Records")[1].split("\n## ")[0]
    keys = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", table, flags=re.M):
        keys.update(re.findall(r"`([^`]+)`", cell))
    return keys


def job_json(cfg, job, registry, **changes):
    """The fingerprint `job` (memcap.stages.plan.model_jobs) makes under `cfg`, as a job writes
    it (job.json); `changes` replace the keyword arguments of job_fingerprint."""
    from memcap.core.engine import OptimConfig
    from memcap.core.models import ModelSpec
    from memcap.stages.job import job_fingerprint

    kwargs = dict(
        protocol=cfg["protocol"],
        optim=OptimConfig.from_dict(cfg["optim"]),
        dataset=job.dataset,
        mode=job.mode,
        lengths=job.lengths or [],
        cast_weights=cfg["compress"]["cast_weights"],
        search=cfg["compress"]["search"],
    )
    spec = ModelSpec(name=job.model, **registry[job.model])
    return json.loads(json.dumps(job_fingerprint(spec, **(kwargs | changes))))
