"""Prior files (memcap.core.prior): built by `memcap prior` from saved searches, taken by a
search job's fresh starts (`memcap job --prior`), refused where they do not fit."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from job_fixtures import write_texts
from memcap.cli import main
from memcap.core.engine import OptimConfig
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.prior import load_prior, mean_prior, save_prior
from memcap.core.vectors import read_vectors_file
from memcap.io import read_jsonl
from memcap.records import lossless
from memcap.stages.job import run_job, text_sha

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "config" / "models.yaml"
SEARCH = dict(lengths=[4, 8], K=[1], models_file=MODELS, progress=False, mode="search", batch_size=4)
OPTIM = OptimConfig(lr=0.1, max_steps=60, patience=60)


def _lee(path: Path, first: int, n: int) -> Path:
    """A texts file of Lee articles first .. first + n - 1 (write_texts keeps their ids)."""
    rows = read_jsonl(write_texts(path, n=first + n, words=30))[first:]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A search on three texts, and `memcap prior` over its lossless 4-token attempts."""
    folder = tmp_path_factory.mktemp("prior")
    records = run_job("tiny-llama", _lee(folder / "a.jsonl", 0, 3), folder / "a.jsonl.out", optim=OPTIM, **SEARCH)
    out = folder / "tiny.prior.safetensors"
    assert main(["prior", str(records), "--length", "4", "--out", str(out), "--models-file", str(MODELS)]) == 0
    return folder, read_jsonl(records), out


def test_a_prior_is_the_mean_of_the_lossless_vectors_and_names_their_model_and_texts(built):
    folder, records, out = built
    ok = [
        r
        for r in records
        if r["L"] == 4 and lossless(r["status"], r["correct"], r["max_correct"], r["scored"], "paper")
    ]
    assert ok, "the tiny search passes no 4-token attempt: nothing to average"
    vectors = []
    for r in ok:
        with safe_open(str(folder / r["vectors"]), framework="pt") as f:
            vectors.append(f.get_tensor(r["vectors_key"]))
    with safe_open(str(out), framework="pt") as f:
        prior, meta = f.get_tensor("prior"), f.metadata()
    assert torch.allclose(prior, torch.stack(vectors).mean(0)) and prior.shape == (1, 64)
    assert (meta["model"], meta["K"], meta["L"], meta["n"]) == ("tiny-llama", "1", "4", str(len(ok)))
    assert set(json.loads(meta["texts"])) == {r["text_sha"] for r in ok}


def test_a_search_job_starts_its_fresh_attempts_from_the_prior(built, tmp_path):
    """On other texts: the first attempts differ from the random init's, the job's fingerprint
    keeps the prior's sha1 (another prior refuses to resume there), and a job without a prior
    keeps the fingerprint it always had."""
    _, _, prior = built
    texts = _lee(tmp_path / "b.jsonl", 3, 2)
    plain = read_jsonl(run_job("tiny-llama", texts, tmp_path / "plain.jsonl", optim=OPTIM, **SEARCH))
    used = read_jsonl(run_job("tiny-llama", texts, tmp_path / "used.jsonl", optim=OPTIM, prior=prior, **SEARCH))

    def first(rows):
        return [(r["sample_id"], r["loss_sum"]) for r in rows if r["L"] == 4 and r["retry"] == 0 and not r["extension"]]

    assert len(first(used)) == 2 and first(used) != first(plain)
    sha = __import__("hashlib").sha1(prior.read_bytes()).hexdigest()
    assert {json.dumps(r["search"]["prior"]) for r in used} == {json.dumps({"file": str(prior), "sha1": sha})}
    assert all("prior" not in r["search"] for r in plain)
    # the analysis names the method ("(search, paper + prior)" in the tables and the report)
    from memcap.analysis.metrics import load_records

    assert set(load_records([tmp_path / "used.jsonl"])["method"]) == {"paper + prior"}
    assert set(load_records([tmp_path / "plain.jsonl"])["method"]) == {"paper"}
    stored = json.loads((tmp_path / "used.parts" / "job.json").read_text())
    assert stored["prior"] == sha
    assert "prior" not in json.loads((tmp_path / "plain.parts" / "job.json").read_text())
    other = tmp_path / "other.safetensors"
    save_prior(other, torch.zeros(1, 64), resolve_model("tiny-llama", load_registry(MODELS)), 4, 1, [], [])
    with pytest.raises(ValueError, match=r"holds results made with different settings \(prior"):
        run_job("tiny-llama", texts, tmp_path / "used.jsonl", optim=OPTIM, prior=other, **SEARCH)


def test_memcap_compress_takes_a_prior_for_its_k_and_records_it_in_the_vectors_file(built, tmp_path):
    _, _, prior = built
    out = tmp_path / "fox.safetensors"
    text = "The quick brown fox jumps over the lazy dog."
    flags = ["-m", "tiny-llama", "--models-file", str(MODELS), "--max-steps", "20", "-o", str(out)]
    assert main(["compress", text, "-k", "1", "--prior", str(prior), *flags]) == 0
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["prior"] == __import__("hashlib").sha1(prior.read_bytes()).hexdigest()
    assert read_vectors_file(out).method == "fast + prior"  # what `memcap -v decode` logs
    assert main(["compress", text, "-k", "2", "--prior", str(prior), *flags]) == 0  # K = 2: the random init
    with safe_open(str(out), framework="pt") as f:
        assert "prior" not in f.metadata()


def test_a_prior_that_does_not_fit_is_refused_with_what_is_wrong(built, tmp_path):
    folder, records, prior = built
    spec = resolve_model("tiny-llama", load_registry(MODELS))
    lm = load_model(spec, "cpu")
    # built from a text this run measures
    with safe_open(str(prior), framework="pt") as f:
        one = json.loads(f.metadata()["texts"])[0]
    with pytest.raises(ValueError, match="built from 1 of the texts this run measures"):
        load_prior(prior, lm, 1, [one, text_sha("another text")])
    with pytest.raises(ValueError, match="built from .* of the texts this run measures"):
        run_job("tiny-llama", folder / "a.jsonl", tmp_path / "same.jsonl", optim=OPTIM, prior=prior, **SEARCH)
    assert not (tmp_path / "same.parts").exists()  # refused before a fingerprint with it was kept
    # another model, another K, not a prior file, not a search
    other = resolve_model("tiny-gpt-neox", load_registry(MODELS))
    with pytest.raises(ValueError, match="the prior was made with model 'tiny-llama'"):
        load_prior(prior, load_model(other, "cpu"), 1)
    with pytest.raises(ValueError, match=r"the prior is \(1, 64\); this search needs 2 vector\(s\)"):
        load_prior(prior, lm, 2)
    with pytest.raises(ValueError, match="is not a prior file written by `memcap prior`"):
        load_prior(folder / records[0]["vectors"], lm, 1)
    with pytest.raises(ValueError, match="a prior is for the capacity search of one K"):
        run_job("tiny-llama", folder / "a.jsonl", tmp_path / "g.jsonl", lengths=[4], prior=prior, models_file=MODELS)
    assert main(["prior", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "p.safetensors")]) == 2
    job = ["job", "-m", "tiny-llama", "--texts", str(folder / "a.jsonl"), "--out", str(tmp_path / "j.jsonl")]
    assert main([*job, "--lengths", "4", "--prior", str(prior)]) == 2  # the grid: refused before any work
    with pytest.raises(ValueError, match="at least one lossless vector"):
        mean_prior([])


def test_the_shipped_prior_is_the_mean_of_the_sources_it_records_and_leaves_out_measured_texts(monkeypatch):
    """config/priors/smollm2-135m.safetensors (the claimed search's, memcap.core.search.CLAIMED)
    is what its recorded sources average, so benchmarks/fast.py can rebuild it without the texts
    it measures: on validation-3 that is the prior of the other four progress files."""
    from memcap.core.prior import read_prior
    from memcap.core.search import CLAIMED
    from memcap.stages.prior import gather, prior_without

    monkeypatch.chdir(REPO)  # the file records its sources relative to the repository
    registry = load_registry(MODELS)
    spec = resolve_model("smollm2-135m", registry)
    path = Path(CLAIMED["prior"]["smollm2-135m"])
    prior = read_prior(path, spec, 1)
    sources = [Path(s) for s in json.loads(prior.meta["sources"])]
    _, vectors, shas = gather(sources, int(prior.meta["L"]), registry)
    assert len(vectors) == int(prior.meta["n"]) == 25 and torch.allclose(mean_prior(vectors), prior.vectors)
    assert set(shas) == prior.texts
    measured = [text_sha(row["text"]) for row in read_jsonl(REPO / "benchmarks/validation3/texts.jsonl")]
    left = prior_without(path, spec, measured, registry)
    others = [s for s in sources if "validation3" not in str(s)]
    assert left.left_out == 25 - len(gather(others, 8, registry)[1]) > 0 and left.sha == prior.sha
    assert torch.allclose(left.vectors, mean_prior(gather(others, 8, registry)[1]))
    same = prior_without(path, spec, [text_sha("A text no prior was built from.")], registry)
    assert same.left_out == 0 and torch.equal(same.vectors, prior.vectors) and same.sha == prior.sha
