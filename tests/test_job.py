"""Compress jobs: records, resuming after a real SIGKILL, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import memcap.stages.job
from job_fixtures import documented_record_keys, write_texts
from memcap.corpora import lee_articles
from memcap.io import read_jsonl
from memcap.stages.job import run_job
from memcap.stages.store import record_key

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "config" / "models.yaml"
QUICK = {"lr": 0.1, "max_steps": 20, "patience": 20}


def file_keys(path) -> list[tuple]:
    """(K, L, sample_id) of every record in a records file, in file order."""
    return [record_key(r) for r in read_jsonl(path)]


def test_records_have_every_documented_field_once_per_cell(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl")
    out = run_job(
        "tiny-gpt-neox",
        texts,
        tmp_path / "out.jsonl",
        lengths=[4, 8],
        K=[1, 2],
        optim=QUICK,
        models_file=MODELS,
        progress=False,
    )
    records = read_jsonl(out)
    assert len(records) == 3 * 2 * 2
    assert len(set(file_keys(out))) == len(records)
    assert set(records[0]) == documented_record_keys()
    r = next(r for r in records if r["K"] == 2 and r["L"] == 8)
    assert r["dataset"] == "lee" and r["protocol"] == "paper" and r["scored"] == r["N"] - 1 == 7
    assert r["model_source"] == "random" and r["mem_dim"] == 64 and r["vocab_size"] == 512
    assert r["versions"]["torch"] == torch.__version__ and r["optim"]["lr"] == 0.1
    # the stored vectors are those of the record
    from safetensors.torch import load_file

    vec = load_file(str(out.parent / r["vectors"]))[r["vectors_key"]]
    assert vec.shape == (2, 64)
    # the same (model, dataset, K, L, sample) always gets the same seed
    assert r["seed"] == memcap.stages.job.derive_seed("tiny-gpt-neox", "lee", 2, 8, r["sample_id"])


def test_records_carry_the_kind_of_their_text(tmp_path, monkeypatch):
    """Random text named `noise` is random in its records; a texts row without `kind` is
    random iff it has its own length; records of parts written before `kind` get it at merge."""
    texts = write_texts(tmp_path / "noise.jsonl", n=3, lengths=[4, 5, 6])
    rows = [json.loads(line) for line in texts.read_text().splitlines()]
    rows[0]["kind"] = "random"  # the others have none: their `length` says random
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_job(
        "tiny-gpt-neox",
        texts,
        tmp_path / "noise_out.jsonl",
        lengths=None,
        optim=QUICK,
        models_file=MODELS,
        progress=False,
        dataset="noise",
    )
    assert [r["kind"] for r in read_jsonl(out)] == ["random"] * 3
    natural = run_job(
        "tiny-gpt-neox",
        write_texts(tmp_path / "random_news.jsonl", n=1),
        tmp_path / "news.jsonl",
        lengths=[4],
        optim=QUICK,
        models_file=MODELS,
        progress=False,
    )
    assert [r["kind"] for r in read_jsonl(natural)] == ["natural"]
    # a part written before records had `kind`: the merge fills it in, computing nothing
    parts = tmp_path / "noise_out.parts"
    for part in parts.glob("*.jsonl"):
        old = [{k: v for k, v in r.items() if k != "kind"} for r in read_jsonl(part)]
        part.write_text("".join(json.dumps(r) + "\n" for r in old))
    monkeypatch.setattr(memcap.stages.job, "load_model", lambda *a, **k: pytest.fail("model loaded with nothing to do"))
    out = run_job(
        "tiny-gpt-neox", texts, out, lengths=None, optim=QUICK, models_file=MODELS, progress=False, dataset="noise"
    )
    assert [r["kind"] for r in read_jsonl(out)] == ["random"] * 3


def test_a_texts_row_of_an_unknown_kind_is_refused(tmp_path):
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"id": "a", "text": "The fox jumps.", "kind": "words"}) + "\n")
    with pytest.raises(ValueError, match=r"kind 'words' is not one of natural, random"):
        run_job("tiny-gpt-neox", texts, tmp_path / "o.jsonl", lengths=[4], models_file=MODELS)


def test_rerun_computes_nothing_and_duplicates_nothing(tmp_path, monkeypatch):
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    out = tmp_path / "out.jsonl"
    run_job("tiny-llama", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False)
    first = out.read_text()
    monkeypatch.setattr(memcap.stages.job, "load_model", lambda *a, **k: pytest.fail("model loaded with nothing to do"))
    run_job("tiny-llama", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False)
    assert out.read_text() == first


def test_growing_the_grid_computes_only_new_cells(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    out = tmp_path / "out.jsonl"
    run_job("tiny-llama", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False)
    before = {tuple(k): r for k, r in zip(file_keys(out), read_jsonl(out), strict=True)}
    run_job("tiny-llama", texts, out, lengths=[4, 6], optim=QUICK, models_file=MODELS, progress=False)
    after = dict(zip(file_keys(out), read_jsonl(out), strict=True))
    assert len(after) == 4
    for key, record in before.items():
        assert after[key]["wall_s"] == record["wall_s"]  # untouched, not recomputed


def test_job_resumes_after_sigkill(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=4, words=80)
    out = tmp_path / "out.jsonl"
    parts = tmp_path / "out.parts"
    cmd = [
        sys.executable,
        "-m",
        "memcap.cli",
        "job",
        "--model",
        "tiny-gpt-neox",
        "--models-file",
        str(MODELS),
        "--texts",
        str(texts),
        "--out",
        str(out),
        "--lengths",
        "8",
        "12",
        "16",
        "20",
        "24",
        "--batch-size",
        "1",
        "--max-steps",
        "150",
        "--patience",
        "150",
        "--lr",
        "0.1",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(list(parts.glob("*.jsonl"))) < 3:
            assert proc.poll() is None, "job finished before it could be killed; give it more work"
            assert time.time() < deadline, "no parts written in time"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not out.exists()
    survivors = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.jsonl")}
    assert 3 <= len(survivors) < 20
    assert not list(parts.glob("*.tmp"))  # nothing half-written counts as done
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(survivors)} samples done before, {20 - len(survivors)} to do" in result.stderr
    keys = file_keys(out)
    assert len(keys) == len(set(keys)) == 20
    assert set(keys) == {(1, L, f"lee-{i:04d}") for L in (8, 12, 16, 20, 24) for i in range(4)}
    for name, mtime in survivors.items():
        assert (parts / name).stat().st_mtime_ns == mtime


def test_random_text_uses_each_texts_own_length(tmp_path):
    texts = write_texts(tmp_path / "random.jsonl", n=3, lengths=[3, 7, 5])
    out = run_job(
        "tiny-gpt-neox", texts, tmp_path / "out.jsonl", lengths=None, optim=QUICK, models_file=MODELS, progress=False
    )
    assert sorted((r["sample_id"], r["L"], r["N"]) for r in read_jsonl(out)) == [
        ("lee-0000", 3, 3),
        ("lee-0001", 7, 7),
        ("lee-0002", 5, 5),
    ]


def test_short_text_is_recorded_as_short_not_padded(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=1, words=3)
    out = run_job(
        "tiny-gpt-neox", texts, tmp_path / "out.jsonl", lengths=[64], optim=QUICK, models_file=MODELS, progress=False
    )
    (r,) = read_jsonl(out)
    assert r["L"] == 64 and r["N"] < 64 and r["short"] and r["scored"] == r["N"] - 1


def test_out_of_memory_splits_the_batch_then_records_oom(tmp_path, monkeypatch):
    """Out-of-memory is injected by a hook on a real model: batches over 1 text fail."""
    real_load = memcap.stages.job.load_model
    state = {"limit": 1, "raised": 0}

    def load_with_small_memory(*args, **kwargs):
        lm = real_load(*args, **kwargs)

        def hook(module, args, kwargs):
            x = kwargs.get("inputs_embeds")
            x = kwargs["input_ids"] if x is None else x
            if x.shape[0] > state["limit"]:
                state["raised"] += 1
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")

        lm.model.register_forward_pre_hook(hook, with_kwargs=True)
        return lm

    monkeypatch.setattr(memcap.stages.job, "load_model", load_with_small_memory)
    texts = write_texts(tmp_path / "lee.jsonl", n=3)
    out = run_job(
        "tiny-gpt-neox",
        texts,
        tmp_path / "a.jsonl",
        lengths=[6],
        batch_size=3,
        optim=QUICK,
        models_file=MODELS,
        progress=False,
    )
    assert [r["status"] for r in read_jsonl(out)] == ["ok"] * 3
    assert {r["batch_size"] for r in read_jsonl(out)} == {1}
    # 3 -> 1 + 2 -> 1 + 1 + 1: two out-of-memory errors, after which the job remembers
    # what does not fit: the next batches of 3 and 2 are split before they are tried
    assert state["raised"] == 2
    state["raised"] = 0
    six = write_texts(tmp_path / "six.jsonl", n=6)
    run_job(
        "tiny-gpt-neox",
        six,
        tmp_path / "six-out.jsonl",
        lengths=[6],
        batch_size=3,
        optim=QUICK,
        models_file=MODELS,
        progress=False,
    )
    assert state["raised"] == 2  # not 4: one batch of 3 and one of 2 ran out, not each of them

    state["limit"] = 0  # nothing fits: recorded, and the job still finishes
    out = run_job(
        "tiny-gpt-neox",
        texts,
        tmp_path / "b.jsonl",
        lengths=[6],
        batch_size=3,
        optim=QUICK,
        models_file=MODELS,
        progress=False,
    )
    records = read_jsonl(out)
    assert [r["status"] for r in records] == ["oom"] * 3 and records[0]["loss_sum"] is None


def test_changed_settings_refuse_to_resume(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=1)
    out = tmp_path / "out.jsonl"
    run_job("tiny-gpt-neox", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False)
    with pytest.raises(ValueError, match="different settings.*optim"):
        run_job("tiny-gpt-neox", texts, out, lengths=[4], optim=dict(QUICK, lr=0.5), models_file=MODELS, progress=False)


def test_context_overflow_names_k_plus_l(tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text("short-ctx:\n  source: random\n  family: llama\n  max_positions: 16\n")
    texts = write_texts(tmp_path / "lee.jsonl", n=1)
    with pytest.raises(ValueError, match=r"K \+ L = 4 \+ 16 = 20.*K \+ L <= 16"):
        run_job("short-ctx", texts, tmp_path / "o.jsonl", lengths=[16], K=[4], models_file=models, progress=False)


@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ([{"id": "a", "text": "  "}], {"lengths": [4]}, "empty text"),
        ([{"id": "a", "text": "x y"}, {"id": "a", "text": "z"}], {"lengths": [4]}, "appears twice"),
        ([{"id": "a", "text": "x y"}], {"lengths": None}, "own integer `length`"),
        ([{"id": "a", "text": "x y"}], {"lengths": [1]}, "lengths >= 2"),
        ([{"id": "a", "text": "x y"}], {"lengths": [4], "K": [0]}, "K"),
        ([{"id": "a", "text": "x y"}], {"lengths": [4], "model": "no-such-model"}, "unknown model 'no-such-model'"),
        ([{"id": "a", "text": "x y"}], {"lengths": [4], "optim": {"steps": 3}}, "unknown optim key"),
    ],
)
def test_bad_input_names_the_problem(tmp_path, rows, kwargs, message):
    texts = tmp_path / "t.jsonl"
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kwargs = {"model": "tiny-gpt-neox", **kwargs}
    with pytest.raises(ValueError, match=message):
        run_job(kwargs.pop("model"), texts, tmp_path / "o.jsonl", models_file=MODELS, progress=False, **kwargs)


def test_cast_weights_enter_the_fingerprint_only_when_on(tmp_path):
    from memcap.core.engine import OptimConfig
    from memcap.core.models import load_registry
    from memcap.stages.job import job_fingerprint

    spec = load_registry(MODELS)["tiny-gpt-neox"]
    plain = job_fingerprint(spec, protocol="paper", optim=OptimConfig(), dataset="lee", mode="grid", lengths=[4])
    assert (
        job_fingerprint(
            spec, protocol="paper", optim=OptimConfig(), dataset="lee", mode="grid", lengths=[4], cast_weights=False
        )
        == plain
    )
    assert "cast_weights" not in plain
    assert job_fingerprint(
        spec, protocol="paper", optim=OptimConfig(), dataset="lee", mode="grid", lengths=[4], cast_weights=True
    ) == dict(plain, cast_weights=True)
    texts = write_texts(tmp_path / "lee.jsonl", n=1)
    out = tmp_path / "out.jsonl"
    run_job("tiny-gpt-neox", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False)
    with pytest.raises(ValueError, match="different settings.*cast_weights"):
        run_job(
            "tiny-gpt-neox", texts, out, lengths=[4], optim=QUICK, models_file=MODELS, progress=False, cast_weights=True
        )


def test_a_changed_text_never_keeps_its_old_records(tmp_path):
    """Records carry text_sha: resuming over records of a text that has changed since is
    refused, naming the sample, and the parts are left as they were."""
    texts = tmp_path / "lee.jsonl"
    rows = [{"id": f"lee-{i}", "text": lee_articles()[i]} for i in range(2)]
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = dict(lengths=[4], K=[2], optim={"max_steps": 3}, models_file=MODELS, progress=False)
    out = run_job("tiny-gpt-neox", texts, tmp_path / "r.jsonl", **args)
    parts = sorted(p.name for p in out.with_suffix(".parts").iterdir())
    rows[1]["text"] = "An edited text. " + rows[1]["text"]
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"1 sample\(s\) whose text .* has changed since \(lee-1\)"):
        run_job("tiny-gpt-neox", texts, out, **args)
    assert sorted(p.name for p in out.with_suffix(".parts").iterdir()) == parts


def test_records_of_samples_no_longer_in_the_texts_are_kept_apart(tmp_path):
    """Fewer samples (e.g. `samples` lowered from 2 to 1): the records file holds only the texts
    there are now; the others stay in the parts and come back, not recomputed, with their texts."""
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    args = dict(lengths=[4], K=[2], optim={"max_steps": 3}, models_file=MODELS, progress=False)
    out = run_job("tiny-gpt-neox", texts, tmp_path / "r.jsonl", **args)
    both = read_jsonl(out)
    assert len({r["sample_id"] for r in both}) == 2
    rows = read_jsonl(texts)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(rows[0]) + "\n")
    run_job("tiny-gpt-neox", one, out, dataset="lee", **args)
    assert [r["sample_id"] for r in read_jsonl(out)] == [rows[0]["id"]]
    monkey = pytest.MonkeyPatch()
    monkey.setattr(memcap.stages.job, "load_model", lambda *a, **k: pytest.fail("recomputed"))
    try:
        run_job("tiny-gpt-neox", texts, out, **args)
    finally:
        monkey.undo()
    assert read_jsonl(out) == both


def test_samples_computes_only_the_named_texts_and_keeps_the_others_records(tmp_path):
    """run_job(samples=...) fills one records file one text at a time (benchmarks/reference.py):
    each call computes its text and keeps the records of the file's other texts."""
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    ids = [str(r["id"]) for r in read_jsonl(texts)]
    args = dict(lengths=[4], K=[2], optim={"max_steps": 3}, models_file=MODELS, progress=False)
    out = run_job("tiny-gpt-neox", texts, tmp_path / "r.jsonl", samples={ids[1]}, **args)
    assert [str(r["sample_id"]) for r in read_jsonl(out)] == [ids[1]]
    run_job("tiny-gpt-neox", texts, out, samples={ids[0]}, **args)
    assert sorted(str(r["sample_id"]) for r in read_jsonl(out)) == sorted(ids)
    with pytest.raises(ValueError, match=r"samples \['lee-nope'\] are not in .*lee.jsonl"):
        run_job("tiny-gpt-neox", texts, out, samples={"lee-nope"}, **args)
