"""Capacity search (memcap.core.search) and its job mode, on tiny random models."""

import dataclasses
import functools
import json
from pathlib import Path

import pytest
import torch

from job_fixtures import documented_record_keys, write_texts
from memcap.analysis.metrics import load_records, search_capacity_summary
from memcap.core.engine import OptimConfig, compress_batch
from memcap.core.models import load_model, load_registry, resolve_model
from memcap.core.search import SearchConfig, search_capacity
from memcap.corpora import lee_articles
from memcap.io import read_jsonl
from memcap.stages.job import run_job

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "config" / "models.yaml"
GRID = [4, 8, 12, 16, 24]
OPTIM = OptimConfig(lr=0.1, max_steps=80, patience=80)  # tiny models learn 8 tokens with K=4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run many small steps: one thread, as extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def tiny(name="tiny-llama"):
    torch.manual_seed(0)
    return load_model(resolve_model(name, load_registry(MODELS)), "cpu")


def lee_ids(lm, n=3, length=40):
    return [lm.tokenize(a)[:length] for a in lee_articles()[:n]]


def grid_capacity(lm, texts, seeds, K=4):
    """Per text: the largest grid length lossless from a fresh init (the grid's way)."""
    caps = [0] * len(texts)
    for L in GRID:
        for i, o in enumerate(compress_batch(lm, [t[:L] for t in texts], K, "paper", seeds, OPTIM)):
            if o.max_correct == o.scored:
                caps[i] = L
    return caps


@functools.cache
def searched(name="tiny-llama"):
    lm = tiny(name)
    texts = lee_ids(lm)
    return texts, search_capacity(lm, texts, 4, "paper", [1, 2, 3], OPTIM, lengths_grid=GRID, batch_size=2)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt-neox"])
def test_search_capacity_is_within_one_grid_step_of_grid_runs(name):
    texts, results = searched(name)
    expected = grid_capacity(tiny(name), texts, [1, 2, 3])
    position = {L: i for i, L in enumerate([0, *GRID])}
    for r, cap in zip(results, expected, strict=True):
        assert r.done and abs(position[r.capacity] - position[cap]) <= 1, (r, expected)
        assert r.capacity == max([0] + [a.L for a in r.attempts if a.lossless])
        assert r.steps == sum(a.steps for a in r.attempts)


def test_attempts_grow_warm_started_and_a_failed_warm_start_is_retried_fresh():
    _, results = searched()
    for r in results:
        assert r.attempts[0].warm_start is None and r.attempts[0].retry == 0
        for before, after in zip(r.attempts, r.attempts[1:], strict=False):
            if before.lossless:  # the next grid length, from these vectors
                assert after.L == GRID[GRID.index(before.L) + 1]
                assert after.warm_start == before.L and after.retry == 0
            else:  # only a stuck warm start goes on: from a fresh start at the same length
                assert before.warm_start is not None and before.retry == 0
                assert before.stop_reason == "patience"
                assert after.L == before.L and after.warm_start is None and after.retry == 1
        last = r.attempts[-1]
        assert r.stop_reason == ("grid_end" if last.lossless else "failed")
        # a length fails once a fresh start failed, or a warm start ran out of steps
        assert last.lossless or last.warm_start is None or last.stop_reason == "max_steps"


def test_a_fresh_retry_rescues_a_length_whose_warm_start_failed():
    """A runner that ruins every warm start (vectors 100x too large, a real model run from
    there) makes each warm attempt get stuck: the fresh retries carry the search up the grid."""
    lm = tiny()
    texts = lee_ids(lm, n=1)
    optim = OptimConfig(lr=0.1, max_steps=80, patience=30)  # stuck for 30 steps: patience

    def ruined_warm_starts(lm, ids, K, protocol, seeds, optim, init=None):
        init = [None if v is None else v * 100 for v in init]
        return compress_batch(lm, ids, K, protocol, seeds, optim, init=init)

    (plain,) = search_capacity(lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3])
    (r,) = search_capacity(lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], runner=ruined_warm_starts)
    assert plain.capacity == 12, "needs a text the tiny model decodes at every length tried"
    assert [(a.L, a.retry, a.lossless) for a in r.attempts] == [
        (4, 0, True),
        (8, 0, False),
        (8, 1, True),
        (12, 0, False),
        (12, 1, True),
    ]
    assert r.capacity == 12
    assert all(a.stop_reason == "patience" for a in r.attempts if a.warm_start is not None)
    (no_retry,) = search_capacity(
        lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], runner=ruined_warm_starts, retry_fresh=False
    )
    assert [(a.L, a.lossless) for a in no_retry.attempts] == [(4, True), (8, False)] and no_retry.capacity == 4


def test_warm_start_takes_fewer_steps_than_a_fresh_start():
    lm = tiny()
    texts, results = searched()
    fewer = []
    for r in results:
        for a in r.attempts[1:]:
            if a.lossless:
                fresh = compress_batch(lm, [texts[r.index][: a.L]], 4, "paper", [a.seed], OPTIM)[0]
                fewer.append(a.steps < fresh.steps)
    assert any(fewer)


def test_growth_mode_bisects_down_to_the_resolution():
    lm = tiny()
    texts = lee_ids(lm, n=2)
    for r in search_capacity(lm, texts, 4, "paper", [5, 6], OPTIM, start=4, growth=2, resolution=2):
        failed = [a.L for a in r.attempts if not a.lossless]
        assert r.stop_reason == "failed" and failed
        assert min(failed) - r.capacity <= 2  # the bracket is at most `resolution` wide
        assert len({(a.L, a.retry) for a in r.attempts}) == len(r.attempts)


def test_init_none_is_the_seeded_init_and_given_vectors_are_the_start():
    lm = tiny()
    ids = lee_ids(lm, n=1, length=8)
    plain = compress_batch(lm, ids, 4, "paper", [7], OPTIM)[0]
    same = compress_batch(lm, ids, 4, "paper", [7], OPTIM, init=[None])[0]
    assert torch.equal(plain.vectors, same.vectors) and plain.steps == same.steps
    assert plain.converged
    again = compress_batch(lm, ids, 4, "paper", [99], OPTIM, init=[plain.vectors])[0]
    assert again.converged and again.steps == 0  # starts where the first run ended
    with pytest.raises(ValueError, match="shape"):
        compress_batch(lm, ids, 4, "paper", [7], OPTIM, init=[torch.zeros(2, 3)])


def test_search_job_writes_one_record_per_attempt_and_one_capacity_per_sample(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl")
    out = run_job(
        "tiny-llama",
        texts,
        tmp_path / "search.jsonl",
        lengths=GRID,
        K=[4],
        optim=OPTIM,
        models_file=MODELS,
        progress=False,
        mode="search",
        batch_size=2,
    )
    records = read_jsonl(out)
    assert all(set(r) == documented_record_keys() for r in records)
    assert all(r["mode"] == "search" for r in records)
    finals = [r for r in records if r["capacity"] is not None]
    assert sorted(r["sample_id"] for r in finals) == ["lee-0000", "lee-0001", "lee-0002"]
    for r in records:
        mine = sorted((x for x in records if x["sample_id"] == r["sample_id"]), key=lambda x: x["L"])
        final = next(x for x in mine if x["capacity"] is not None)
        assert final is mine[-1]  # the last attempt is the longest length tried
        assert final["capacity"] == max([0] + [x["L"] for x in mine if x["max_accuracy"] == 1.0])
        assert r["warm_start"] is None or r["warm_start"] < r["L"]
    summary = search_capacity_summary(load_records([out]))
    assert len(summary) == 1 and summary["n_samples"].iloc[0] == 3
    assert summary["n_attempts"].iloc[0] == len(records)
    assert summary["steps"].iloc[0] == sum(r["steps"] for r in records)
    # a rerun with every text finished computes nothing and writes the same records
    before = out.read_text()
    run_job(
        "tiny-llama",
        texts,
        out,
        lengths=GRID,
        K=[4],
        optim=OPTIM,
        models_file=MODELS,
        progress=False,
        mode="search",
        batch_size=2,
    )
    assert out.read_text() == before


def test_killed_search_job_resumes_from_its_recorded_attempts(tmp_path, caplog):
    """A kill between batches leaves whole parts: the rerun replays them and ends as an
    uninterrupted run does, without recomputing a recorded attempt."""
    texts = write_texts(tmp_path / "lee.jsonl")
    args = dict(lengths=GRID, K=[4], optim=OPTIM, models_file=MODELS, progress=False, mode="search", batch_size=2)
    whole = read_jsonl(run_job("tiny-llama", texts, tmp_path / "whole.jsonl", **args))
    out = run_job("tiny-llama", texts, tmp_path / "cut.jsonl", **args)
    parts = out.with_suffix(".parts")
    # undo every batch that finished a text: as if the job was killed before they were written
    for part in parts.glob("*.jsonl"):
        if any(r["capacity"] is not None for r in read_jsonl(part)):
            part.unlink()
            part.with_suffix(".safetensors").unlink()
    out.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.jsonl")}
    assert kept, "no part without a final attempt: the texts need more than one batch of attempts"
    with caplog.at_level("INFO", logger="memcap.stages.job"):
        run_job("tiny-llama", texts, out, **args)
    assert "resuming the search of 3 texts" in caplog.text
    resumed = read_jsonl(out)
    key = lambda r: (r["K"], r["L"], r["sample_id"], r["retry"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, whole))
    capacity = {r["sample_id"]: r["capacity"] for r in whole if r["capacity"] is not None}
    assert {r["sample_id"]: r["capacity"] for r in resumed if r["capacity"] is not None} == capacity
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("*.jsonl") if p.name in kept} == kept


def test_replayed_attempts_must_be_the_ones_the_search_would_make():
    from memcap.core.search import Attempt

    lm = tiny()
    texts = lee_ids(lm, n=1)
    wrong = {0: [Attempt(L=8, warm_start=None, seed=1, lossless=False, steps=5)]}  # the grid starts at 4
    with pytest.raises(ValueError, match=r"L=8 \(retry 0\) is not what this search would try next \(L=4 \(retry 0\)\)"):
        search_capacity(lm, texts, 4, "paper", [1], OPTIM, lengths_grid=GRID, history=wrong)
    replayed = {0: [Attempt(L=4, warm_start=None, seed=1, lossless=False, steps=5)]}
    (result,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, lengths_grid=GRID, history=replayed)
    assert result.done and result.capacity == 0 and result.steps == 5  # nothing run after a failure


def test_search_never_mixes_with_grid_parts(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    out = tmp_path / "out.jsonl"
    run_job("tiny-llama", texts, out, lengths=[4], optim=OPTIM, models_file=MODELS, progress=False)
    grid = out.read_text()
    assert all(r["mode"] == "grid" and r["capacity"] is None and r["warm_start"] is None for r in read_jsonl(out))
    parts = sorted(p.name for p in out.with_suffix(".parts").iterdir())
    with pytest.raises(ValueError, match="mode"):
        run_job("tiny-llama", texts, out, lengths=[4], optim=OPTIM, models_file=MODELS, progress=False, mode="search")
    assert sorted(p.name for p in out.with_suffix(".parts").iterdir()) == parts
    run_job("tiny-llama", texts, out, lengths=[4], optim=OPTIM, models_file=MODELS, progress=False)
    assert out.read_text() == grid
    assert search_capacity_summary(load_records([out])).empty


def test_bad_mode_and_search_without_lengths_name_the_problem(tmp_path):
    texts = write_texts(tmp_path / "lee.jsonl", n=1)
    with pytest.raises(ValueError, match="mode 'bisect'"):
        run_job("tiny-llama", texts, tmp_path / "o.jsonl", lengths=[4], mode="bisect", models_file=MODELS)
    with pytest.raises(ValueError, match="needs lengths"):
        run_job("tiny-llama", texts, tmp_path / "o.jsonl", lengths=None, mode="search", models_file=MODELS)


def test_workflow_passes_compress_mode_and_keeps_random_text_on_the_grid(tmp_path):
    import yaml

    from conftest import plan, write_config

    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config = write_config("smoke", tmp_path / "search.yaml", compress={**smoke.get("compress", {}), "mode": "search"})
    compress_jobs = [j for j in plan(config) if j["rule"] == "compress"]
    modes = {j["wildcards"]["dataset"]: j["params"]["mode"] for j in compress_jobs}
    assert modes == {"lee": "search", "random": "grid"}
    assert all(
        j["params"]["search"]
        == {
            "fails": 1,
            "retry_fresh": True,
            "budget": None,
            "fresh_after_stuck": False,
            "fresh_check_below": None,
            "restart_mix": None,
            "retry_stuck": False,
            "fresh_check_from_random": False,
            "fresh_check_rounds": 1,
            "one_fail_from": None,
            "last_token_lr": None,
            "fresh_budget": None,
            "last_token_below": None,
        }
        for j in compress_jobs
    )
    config = write_config(
        "smoke",
        tmp_path / "fails.yaml",
        compress={**smoke.get("compress", {}), "mode": "search", "search": {"fails": 2}},
    )
    assert {j["rule"]: j["params"]["search"]["fails"] for j in plan(config) if j["rule"] == "compress"} == {
        "compress": 2
    }


def test_search_settings_enter_the_fingerprint_only_away_from_their_defaults(tmp_path):
    from memcap.core.models import load_registry
    from memcap.core.search import SearchConfig
    from memcap.stages.job import job_fingerprint

    spec = load_registry(MODELS)["tiny-llama"]
    plain = job_fingerprint(spec, protocol="paper", optim=OPTIM, dataset="lee", mode="search", lengths=[4, 8])
    assert "search" not in plain  # search jobs made before the settings existed still resume
    assert (
        job_fingerprint(
            spec,
            protocol="paper",
            optim=OPTIM,
            dataset="lee",
            mode="search",
            lengths=[4, 8],
            search={"fails": 1, "retry_fresh": True},
        )
        == plain
    )
    assert job_fingerprint(
        spec, protocol="paper", optim=OPTIM, dataset="lee", mode="search", lengths=[4, 8], search={"fails": 2}
    ) == dict(plain, search={"fails": 2})
    assert "search" not in job_fingerprint(
        spec, protocol="paper", optim=OPTIM, dataset="lee", mode="grid", lengths=[4], search={"fails": 2}
    )
    with pytest.raises(ValueError, match="fails must be an integer >= 1, got 0"):
        SearchConfig.from_dict({"fails": 0})
    with pytest.raises(ValueError, match=r"unknown search key\(s\) \['patience'\]; allowed"):
        SearchConfig.from_dict({"patience": 3})
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    args = dict(lengths=GRID[:2], K=[4], optim=OPTIM, models_file=MODELS, progress=False, mode="search")
    out = run_job("tiny-llama", texts, tmp_path / "s.jsonl", **args)
    assert {json.dumps(r["search"]) for r in read_jsonl(out)} == {'{"fails": 1, "retry_fresh": true}'}
    parts = sorted(p.name for p in out.with_suffix(".parts").iterdir())
    with pytest.raises(ValueError, match="different settings.*search"):
        run_job("tiny-llama", texts, out, search={"fails": 2}, **args)
    assert sorted(p.name for p in out.with_suffix(".parts").iterdir()) == parts


def test_fails_lets_a_grid_search_step_over_one_failing_length():
    """Capacity is not monotone in L; with fails=2 a text goes on after one failing length,
    from the last lossless vectors, and stops after two in a row (the reference's rule)."""
    lm = tiny()
    texts = lee_ids(lm, n=1)
    optim = OptimConfig(lr=0.1, max_steps=80, patience=30)

    def fails_at_8(lm, ids, K, protocol, seeds, optim, init=None):  # one step only at L=8: a real, failing run
        short = dataclasses.replace(optim, max_steps=1)
        return compress_batch(lm, ids, K, protocol, seeds, short if len(ids[0]) == 8 else optim, init=init)

    (plain,) = search_capacity(lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], runner=fails_at_8)
    assert [(a.L, a.lossless) for a in plain.attempts] == [(4, True), (8, False)] and plain.capacity == 4
    (r,) = search_capacity(lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], runner=fails_at_8, fails=2)
    assert [(a.L, a.lossless, a.warm_start) for a in r.attempts] == [(4, True, None), (8, False, 4), (12, True, 4)]
    assert r.capacity == 12 and r.stop_reason == "grid_end"
    (again,) = search_capacity(
        lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], runner=fails_at_8, fails=2, history={0: r.attempts}
    )
    assert [a.L for a in again.attempts] == [4, 8, 12] and again.capacity == 12
    with pytest.raises(ValueError, match="fails must be an integer >= 1, got 0"):
        search_capacity(lm, texts, 4, "paper", [1], optim, lengths_grid=GRID[:3], fails=0)


def test_an_attempt_still_improving_at_its_budget_is_continued_until_it_passes():
    """SearchConfig.budget: an attempt that ran out of steps (not stopped by patience) goes on
    from its own best vectors, one step budget at a time, and passes where the plain search
    declared the text failed; its continuations are replayed, not rerun, on resume."""
    lm = tiny()
    texts = lee_ids(lm, n=1)
    short = OptimConfig(lr=0.1, max_steps=6, patience=80)  # too few steps for 4 tokens at once
    (plain,) = search_capacity(lm, texts, 4, "paper", [1], short, lengths_grid=GRID[:2])
    assert [(a.L, a.lossless, a.stop_reason) for a in plain.attempts] == [(4, False, "max_steps")]
    assert plain.capacity == 0
    (r,) = search_capacity(lm, texts, 4, "paper", [1], short, lengths_grid=GRID[:2], budget=200)
    at4 = [a for a in r.attempts if a.L == 4]
    assert [a.extension for a in at4] == list(range(len(at4))) and len(at4) > 1
    assert all(a.warm_start is None for a in at4)  # continuations of a fresh start stay fresh
    assert at4[-1].lossless and not any(a.lossless for a in at4[:-1])
    assert r.capacity >= 4 and sum(a.steps for a in at4) <= 200
    (again,) = search_capacity(
        lm, texts, 4, "paper", [1], short, lengths_grid=GRID[:2], budget=200, history={0: r.attempts}
    )
    assert [(a.L, a.extension) for a in again.attempts] == [(a.L, a.extension) for a in r.attempts]
    with pytest.raises(ValueError, match="extension"):  # other settings: the records do not fit
        search_capacity(lm, texts, 4, "paper", [1], short, lengths_grid=GRID[:2], history={0: r.attempts})


def test_budget_caps_the_continuations_and_patience_ends_them():
    from memcap.core.search import Attempt, Search

    search = Search([40], 4, "paper", lengths_grid=[8], config=SearchConfig(budget=12))
    state, v = search.states[0], torch.zeros(4, 8)
    for extension in range(3):  # 5 and 10 steps spent are under 12: continued; 15 is not
        (request,) = search.round(1)[0]
        assert request.extension == extension
        state.update(
            Attempt(8, None, 1, False, 5, vectors=v, stop_reason="max_steps", extension=extension, score=extension)
        )
    assert search.done and state.result.capacity == 0 and state.result.steps == 15
    lm = tiny()
    texts = lee_ids(lm, n=1)
    impatient = OptimConfig(lr=1e-6, max_steps=50, patience=3)
    (p,) = search_capacity(lm, texts, 4, "paper", [1], impatient, lengths_grid=GRID[:1], budget=1000)
    assert [a.stop_reason for a in p.attempts] == ["patience"]  # not improving: not continued


def test_a_text_that_fails_its_first_length_goes_on_to_pass_a_later_one():
    """With fails=2 the first length's failure does not end the text: the next length starts
    fresh (there are no lossless vectors yet) and can pass."""
    lm = tiny()
    texts = lee_ids(lm, n=1)

    def fails_at_4(lm, ids, K, protocol, seeds, optim, init=None):  # one step at L=4: a real, failing run
        one = dataclasses.replace(OPTIM, max_steps=1)
        return compress_batch(lm, ids, K, protocol, seeds, one if len(ids[0]) == 4 else optim, init=init)

    (one,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, lengths_grid=GRID[:3], runner=fails_at_4)
    assert one.capacity == 0 and one.stop_reason == "failed"
    (two,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, lengths_grid=GRID[:3], runner=fails_at_4, fails=2)
    assert [(a.L, a.lossless, a.warm_start) for a in two.attempts][:2] == [(4, False, None), (8, True, None)]
    assert two.capacity >= 8


def test_a_continued_fresh_start_keeps_the_fresh_settings():
    """compress_batch(fresh=...): a fresh start continued from its own vectors keeps
    fresh_max_steps and fresh_patience (and fresh_lr), though it has an init."""
    lm = tiny()
    (ids,) = lee_ids(lm, n=1, length=12)
    optim = OptimConfig(lr=0.1, max_steps=40, patience=40, fresh_max_steps=3, fresh_lr=0.05)
    (first,) = compress_batch(lm, [ids], 4, "paper", [1], optim)
    assert first.steps == 3
    (warm,) = compress_batch(lm, [ids], 4, "paper", [1], optim, init=[first.vectors])
    (fresh,) = compress_batch(lm, [ids], 4, "paper", [1], optim, init=[first.vectors], fresh=[True])
    assert fresh.steps == 3 and warm.steps > 3
    with pytest.raises(ValueError, match="fresh needs one entry"):
        compress_batch(lm, [ids], 4, "paper", [1], optim, fresh=[True, False])


def test_search_budget_in_a_job_is_recorded_resumes_and_stays_out_of_the_default_fingerprint(tmp_path):
    from memcap.core.search import SearchConfig
    from memcap.stages.job import job_fingerprint

    spec = resolve_model("tiny-llama", load_registry(MODELS))
    plain = job_fingerprint(spec, protocol="paper", optim=OPTIM, dataset="lee", mode="search", lengths=[4, 8])
    assert "search" not in plain
    assert (
        job_fingerprint(
            spec, protocol="paper", optim=OPTIM, dataset="lee", mode="search", lengths=[4, 8], search={"budget": None}
        )
        == plain
    )
    assert job_fingerprint(
        spec, protocol="paper", optim=OPTIM, dataset="lee", mode="search", lengths=[4, 8], search={"budget": 50}
    ) == dict(plain, search={"budget": 50})
    with pytest.raises(ValueError, match="budget must be an integer >= 1 or null, got 0"):
        SearchConfig.from_dict({"budget": 0})
    texts = write_texts(tmp_path / "lee.jsonl", n=2)
    short = {"lr": 0.1, "max_steps": 6, "patience": 80}
    args = dict(lengths=GRID[:2], K=[4], optim=short, models_file=MODELS, progress=False, mode="search")
    out = run_job("tiny-llama", texts, tmp_path / "s.jsonl", search={"budget": 60}, **args)
    records = read_jsonl(out)
    assert {r["search"]["budget"] for r in records} == {60}
    assert any(r["extension"] > 0 for r in records)
    assert len({r["vectors_key"] for r in records}) == len(records)
    again = run_job("tiny-llama", texts, tmp_path / "s.jsonl", search={"budget": 60}, **args)
    assert read_jsonl(again) == records  # finished: nothing rerun, nothing duplicated


def test_a_continuation_that_does_not_raise_the_best_count_ends_the_line():
    """Still improving means the line's best count rises from one continuation to the next."""
    from memcap.core.search import Attempt, Search

    search = Search([40], 4, "paper", lengths_grid=[8, 12], config=SearchConfig(budget=10_000))
    v = torch.zeros(4, 8)
    for extension, score, more in [(0, 3, True), (1, 5, True), (2, 5, False)]:
        (request,) = search.round(1)[0]
        assert (request.L, request.extension) == (8, extension)
        state = search.states[0]
        state.update(
            Attempt(
                L=8,
                warm_start=None,
                seed=1,
                lossless=False,
                steps=300,
                vectors=v,
                stop_reason="max_steps",
                extension=extension,
                score=score,
            )
        )
        assert (state.extending is not None) == more


def test_fresh_budget_caps_the_lines_at_the_fresh_settings_only():
    """SearchConfig.fresh_budget: a line at the fresh settings (warm_start None) is continued up
    to fresh_budget steps, a warm line still up to budget; at its default it stays out of the
    records and the fingerprint."""
    from memcap.core.search import Attempt, Search

    assert "fresh_budget" not in SearchConfig().as_dict() and SearchConfig(fresh_budget=600).changed() == {
        "fresh_budget": 600
    }
    with pytest.raises(ValueError, match="fresh_budget must be an integer >= 1 or null, got 0"):
        SearchConfig(fresh_budget=0)
    config = SearchConfig(budget=10_000, fresh_budget=600, fails=2)
    search = Search([40], 4, "paper", lengths_grid=[8, 12], config=config)
    state, v = search.states[0], torch.zeros(4, 8)
    asked = []
    for extension in range(2):  # fresh at 8: 300, then 600 steps; each window raises the count
        (request,) = search.round(1)[0]
        asked.append((request.L, request.warm_start, request.extension))
        state.update(
            Attempt(
                8, None, 1, False, 300, vectors=v, stop_reason="max_steps", extension=extension, score=3 + extension
            )
        )
    assert asked == [(8, None, 0), (8, None, 1)] and state.extending is None  # 600 spent: not continued
    for extension in range(4):  # the next length goes on fresh too (no lossless vectors yet): the same cap
        requests = search.round(1)
        if not requests:
            break
        (request,) = requests[0]
        asked.append((request.L, request.warm_start, request.extension))
        state.update(
            Attempt(
                12, None, 1, False, 300, vectors=v, stop_reason="max_steps", extension=extension, score=6 + extension
            )
        )
    assert asked[2:] == [(12, None, 0), (12, None, 1)] and search.done

    warm = Search([40], 4, "paper", lengths_grid=[8, 12], config=config)
    state = warm.states[0]
    (request,) = warm.round(1)[0]
    state.update(Attempt(8, None, 1, True, 50, vectors=v, stop_reason="converged", score=7))
    for extension in range(8):  # a warm line at 12: continued while it rises, past 600 steps
        (request,) = warm.round(1)[0]
        assert (request.L, request.warm_start, request.extension) == (12, 8, extension)
        state.update(
            Attempt(12, 8, 1, False, 100, vectors=v, stop_reason="max_steps", extension=extension, score=8 + extension)
        )
    assert state.extending is not None and sum(a.steps for a in state.result.attempts if a.L == 12) == 800


def _feed(search, outcomes, mixes: list | None = None):
    """Step a one-text Search through outcomes of 50-step attempts, (lossless, score) or
    (lossless, score, stop_reason; default max_steps); returns what it asked for: (L, retry,
    warm_start) per attempt (and appends each one's mix to `mixes`, if given)."""
    from memcap.core.search import Attempt

    v, asked = torch.zeros(4, 8), []
    for lossless, score, *reason in outcomes:
        (request,) = search.round(1)[0]
        asked.append((request.L, request.retry, request.warm_start))
        if mixes is not None:
            mixes.append(request.mix)
        search.states[0].update(
            Attempt(
                request.L,
                request.warm_start,
                1,
                lossless,
                50,
                vectors=v,
                stop_reason=reason[0] if reason else "max_steps",
                score=score,
                retry=request.retry,
                extension=request.extension,
                mix=request.mix,
                lr=request.lr,
            )
        )
    return asked


def _stuck_search(fresh_after_stuck: bool, history=None):
    from memcap.core.search import Search

    config = SearchConfig(fails=2, fresh_after_stuck=fresh_after_stuck)
    return Search([40], 4, "paper", lengths_grid=[8, 12, 16, 24], config=config, history=history)


def test_after_a_warm_line_stuck_at_its_prefix_the_next_length_starts_fresh():
    """SearchConfig.fresh_after_stuck: a warm line that never scores past the lossless prefix it
    started from (7 of 7 at L=8, still 7 at L=12) leaves those vectors; the next length starts from
    the random init, and once it passes, warm starts resume from it. A warm line that did rise
    (8 > 7) keeps them; so does the default."""
    stuck = [(True, 7), (False, 7), (True, 15), (False, 16)]
    assert _feed(_stuck_search(True), stuck) == [(8, 0, None), (12, 0, 8), (16, 0, None), (24, 0, 16)]
    assert _feed(_stuck_search(False), stuck) == [(8, 0, None), (12, 0, 8), (16, 0, 8), (24, 0, 16)]
    rose = [(True, 7), (False, 8), (True, 15)]
    assert _feed(_stuck_search(True), rose)[2] == (16, 0, 8)
    search = _stuck_search(True)
    _feed(search, stuck)
    assert search.done and search.results[0].capacity == 16
    replayed = _stuck_search(True, history={0: search.results[0].attempts})  # a resumed job: same path
    assert replayed.done and replayed.results[0].capacity == 16
    with pytest.raises(ValueError, match="not what this search would try next"):
        _stuck_search(False, history={0: search.results[0].attempts})
    assert SearchConfig(fresh_after_stuck=False).changed() == {}  # off: no fingerprint change
    assert "fresh_after_stuck" not in SearchConfig().as_dict()


def test_fresh_after_stuck_on_a_real_model_restarts_from_the_random_init():
    """On a tiny model: warm starts at L=8 cannot move (lr 1e-9), so they stay at the prefix's
    count; with fresh_after_stuck the next length starts fresh and passes."""
    lm = tiny()
    texts = lee_ids(lm, n=1)

    def frozen_warm_at_8(lm, ids, K, protocol, seeds, optim, init=None, **kw):  # real runs
        frozen = dataclasses.replace(optim, lr=1e-9, max_steps=2, patience=2)
        warm = init is not None and init[0] is not None
        return compress_batch(
            lm, ids, K, protocol, seeds, frozen if warm and len(ids[0]) == 8 else optim, init=init, **kw
        )

    args = dict(lengths_grid=GRID[:3], runner=frozen_warm_at_8, fails=2)
    (plain,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, **args)
    (fresh,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, fresh_after_stuck=True, **args)
    assert [(a.L, a.lossless, a.warm_start) for a in plain.attempts][:2] == [(4, True, None), (8, False, 4)]
    assert plain.attempts[1].score <= plain.attempts[0].score  # stuck at the prefix's count
    assert plain.attempts[2].warm_start == 4  # the default warm-starts 12 from the stuck vectors
    assert [(a.L, a.lossless, a.warm_start) for a in fresh.attempts] == [
        (4, True, None),
        (8, False, 4),
        (12, True, None),
    ]
    assert fresh.capacity == 12


def test_a_stuck_warm_line_whose_fresh_retry_failed_too_still_leaves_its_prefix_vectors():
    """retry_fresh and fresh_after_stuck together: the warm line at 12 stuck by patience at the
    prefix's count, its fresh retry failed as well; the next length still starts fresh."""
    from memcap.core.search import Search

    config = SearchConfig(fails=2, retry_fresh=True, fresh_after_stuck=True)
    search = Search([40], 4, "paper", lengths_grid=[8, 12, 16], config=config)
    asked = _feed(search, [(True, 7, "converged"), (False, 7, "patience"), (False, 9, "patience")])
    (request,) = search.round(1)[0]
    assert asked == [(8, 0, None), (12, 0, 8), (12, 1, None)]
    assert (request.L, request.warm_start, request.init) == (16, None, None)


def test_a_text_ending_low_gets_fresh_checks_and_goes_on_warm_from_one_that_passes():
    """SearchConfig.fresh_check_below: a text about to end at 8 (below 24) after warm failures at
    12 and 16 tries 12 and 16 again from fresh starts (retry 1); 16 passes, and the warm search
    goes on from it until two lengths fail; no second check. A text ending at or above the bound
    ends as before."""
    from memcap.core.search import Search

    grid = [8, 12, 16, 24, 32, 40]
    config = SearchConfig(fails=2, fresh_check_below=24)
    search = Search([60], 4, "paper", lengths_grid=grid, config=config)
    outcomes = [(True, 7), (False, 9), (False, 10), (False, 9), (True, 15), (False, 20), (False, 25)]
    assert _feed(search, outcomes) == [
        (8, 0, None),
        (12, 0, 8),
        (16, 0, 8),
        (12, 1, None),  # the fresh checks
        (16, 1, None),
        (24, 0, 16),  # warm again, from the check that passed
        (32, 0, 16),
    ]
    (result,) = search.results
    assert search.done and result.capacity == 16 and result.stop_reason == "failed"
    replayed = Search([60], 4, "paper", lengths_grid=grid, config=config, history={0: result.attempts})
    assert replayed.done and replayed.results[0].capacity == 16  # a resumed job takes the same path
    high = Search([60], 4, "paper", lengths_grid=grid, config=config)
    ending_high = [(True, 7), (True, 11), (True, 15), (True, 23), (False, 25), (False, 30)]
    assert [a[0] for a in _feed(high, ending_high)] == [8, 12, 16, 24, 32, 40] and high.done
    off = Search([60], 4, "paper", lengths_grid=grid, config=SearchConfig(fails=2))
    assert len(_feed(off, outcomes[:3])) == 3 and off.done and off.results[0].capacity == 8
    assert "fresh_check_below" not in SearchConfig().as_dict() and not SearchConfig().changed()


def test_fresh_checks_end_the_text_when_they_fail_and_skip_lengths_already_started_fresh():
    from memcap.core.search import Search

    grid = [8, 12, 16, 24]
    search = Search([60], 4, "paper", lengths_grid=grid, config=SearchConfig(fails=2, fresh_check_below=16))
    # no length passes: 8 and 12 both start fresh already, so the checks are 16 and 24
    asked = _feed(search, [(False, 3), (False, 5), (False, 6), (False, 8)])
    assert asked == [(8, 0, None), (12, 0, None), (16, 1, None), (24, 1, None)]
    assert search.done and search.results[0].capacity == 0 and search.results[0].stop_reason == "failed"


def test_fresh_check_on_a_real_model_finds_what_frozen_warm_starts_missed():
    """On a tiny model: warm starts cannot move (lr 1e-9), so the warm search ends at 4 tokens;
    the fresh checks at 8 and 12 are real fresh runs and pass."""
    lm = tiny()
    texts = lee_ids(lm, n=1)

    def frozen_warm(lm, ids, K, protocol, seeds, optim, init=None, **kw):  # real runs
        frozen = dataclasses.replace(optim, lr=1e-9, max_steps=2, patience=2)
        warm = init is not None and init[0] is not None
        return compress_batch(lm, ids, K, protocol, seeds, frozen if warm else optim, init=init, **kw)

    args = dict(lengths_grid=GRID[:4], runner=frozen_warm, fails=2)
    (plain,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, **args)
    assert plain.capacity == 4 and [a.L for a in plain.attempts] == [4, 8, 12]
    (checked,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, fresh_check_below=12, **args)
    fresh = [(a.L, a.lossless) for a in checked.attempts if a.retry == 1]
    assert fresh[0] == (8, True) and checked.capacity >= 8


def test_fresh_checks_of_a_staged_search_go_to_the_grid_when_asked():
    """Stages of one token (8, 9, 10, ...): a text about to end at 8 after failing 9 and 10 warm
    checks 9 and 10 from fresh starts, its next stages; with check_grid, the grid's 12 and 16
    (where a fresh start passes on a text like lee-0041), and its warm stages go on from there."""
    from memcap.core.search import Search

    stages, grid = list(range(8, 33)), [8, 12, 16, 24, 32]
    config = SearchConfig(fails=2, fresh_check_below=24)
    ending = [(True, 7), (False, 7), (False, 7)]
    own = Search([60], 4, "paper", lengths_grid=stages, config=config)
    asked = _feed(own, [*ending, (False, 7), (False, 8)])
    assert asked[3:] == [(9, 1, None), (10, 1, None)] and own.done and own.results[0].capacity == 8
    on_grid = Search([60], 4, "paper", lengths_grid=stages, config=config, check_grid=grid)
    asked = _feed(on_grid, [*ending, (False, 9), (True, 15), (True, 16)])
    assert asked[3:] == [(12, 1, None), (16, 1, None), (17, 0, 16)] and not on_grid.done
    assert on_grid.results[0].capacity == 17


def test_restarts_keep_the_prefix_vectors_mixed_with_the_random_init_when_asked():
    """SearchConfig.restart_mix: fresh_after_stuck's and fresh_check_below's restarts start from
    the last lossless vectors (warm_start that length, mix m, so the warm starts' settings)
    instead of the random init; the first length, with no prefix, and continuations do not mix.
    A resumed search takes the same path; records made without it do not replay under it."""
    from memcap.core.search import Search

    grid = [8, 12, 16, 24, 32, 40]
    config = SearchConfig(fails=2, fresh_after_stuck=True, fresh_check_below=24, restart_mix=0.5)
    search = Search([60], 4, "paper", lengths_grid=grid, config=config)
    mixes = []
    # 12 warm from 8 is stuck at the prefix's 7, so 16 restarts, mixed from 8's vectors, and fails;
    # about to end at 8, the text checks 12 (16 had its restart), mixed again, which passes, and
    # the warm search goes on from 12 until 16 and 24 fail
    outcomes = [(True, 7), (False, 7), (False, 9), (True, 11, "converged"), (False, 12), (False, 13)]
    asked = _feed(search, outcomes, mixes)
    assert asked == [(8, 0, None), (12, 0, 8), (16, 0, 8), (12, 1, 8), (16, 0, 12), (24, 0, 12)]
    assert mixes == [0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    (result,) = search.results
    assert search.done and result.capacity == 12
    assert [a.restart for a in result.attempts] == [True, False, True, True, False, False]
    replayed = Search([60], 4, "paper", lengths_grid=grid, config=config, history={0: result.attempts})
    assert replayed.done and replayed.results[0].capacity == 12
    plain = SearchConfig(fails=2, fresh_after_stuck=True, fresh_check_below=24)
    with pytest.raises(ValueError, match="warm from L=8 mixed with 0.5 of a fresh init"):
        Search([60], 4, "paper", lengths_grid=grid, config=plain, history={0: result.attempts})
    # a text with no lossless length yet restarts from the random init alone
    none_yet = Search([60], 4, "paper", lengths_grid=grid, config=config)
    assert _feed(none_yet, [(False, 3), (False, 4)], mixes := []) == [(8, 0, None), (12, 0, None)]
    assert mixes == [0.0, 0.0]


def test_fresh_checks_start_from_the_random_init_when_asked_whatever_the_mix_and_prior():
    """SearchConfig.fresh_check_from_random: with restart_mix and a prior, a text about to end at
    8 (its first length born from the prior, warm 12 and 16 one short) checks 12 and 16 from the
    seeded random init with the fresh settings (retry 1, init None, mix 0), not mixed into 8's
    vectors; 12 passes and the warm search goes on from it. A length already started from the
    random init is not checked again; a mixed restart there does not count. A replay takes the
    same path; a run without the setting (mixed checks) is another search's. Off by default,
    and out of the fingerprint there."""
    from memcap.core.search import Search

    assert "fresh_check_from_random" not in SearchConfig().as_dict()
    assert SearchConfig(fresh_check_from_random=True).changed() == {"fresh_check_from_random": True}
    grid, prior = [8, 12, 16, 24, 32], torch.ones(4, 8)
    mixed = SearchConfig(fails=2, fresh_after_stuck=True, fresh_check_below=24, restart_mix=0.5)
    config = dataclasses.replace(mixed, fresh_check_from_random=True)
    search = Search([60], 4, "paper", lengths_grid=grid, config=config, prior=prior)
    first = search.round(1)[0][0]
    assert torch.equal(first.init, prior) and first.fresh  # the first length still starts from the prior
    outcomes = [(True, 7), (False, 10), (False, 14), (True, 11), (False, 14), (False, 20)]
    mixes = []
    asked = _feed(search, outcomes, mixes)
    assert asked == [(8, 0, None), (12, 0, 8), (16, 0, 8), (12, 1, None), (16, 0, 12), (24, 0, 12)]
    assert mixes == [0.0] * 6 and search.done and search.results[0].capacity == 12
    check = Search([60], 4, "paper", lengths_grid=grid, config=config, prior=prior)
    _feed(check, outcomes[:3])
    (request,) = check.round(1)[0]
    assert (request.L, request.retry, request.init, request.mix, request.fresh) == (12, 1, None, 0.0, True)
    (result,) = search.results
    replayed = Search([60], 4, "paper", lengths_grid=grid, config=config, prior=prior, history={0: result.attempts})
    assert replayed.done and replayed.results[0].capacity == 12
    with pytest.raises(ValueError, match="mixed with 0.5"):  # the checks of a run without it were mixed
        old = Search([60], 4, "paper", lengths_grid=grid, config=mixed, prior=prior)
        _feed(old, outcomes[:4])
        Search([60], 4, "paper", lengths_grid=grid, config=config, prior=prior, history={0: old.results[0].attempts})
    # 12 warm is stuck at the prefix's 7, so 16 restarts: from the random init without a mix, and
    # that start is not checked again (the checks are 12 and 24); mixed, it is (12 and 16)
    stuck = [(True, 7), (False, 7), (False, 9), (False, 9), (False, 15)]
    for mix, restart_16, checks in ((None, (16, 0, None), [12, 24]), (0.5, (16, 0, 8), [12, 16])):
        search = Search([60], 4, "paper", lengths_grid=grid, config=dataclasses.replace(config, restart_mix=mix))
        asked = _feed(search, stuck)
        assert asked == [(8, 0, None), (12, 0, 8), restart_16, *[(L, 1, None) for L in checks]]
        assert search.done and search.results[0].capacity == 8


def test_a_text_that_would_end_low_again_after_a_check_checks_again_up_to_its_rounds():
    """SearchConfig.fresh_check_rounds, as on lee-0060: the check at 12 passes, then warm 16 and
    24 fail, so with 2 rounds the text checks 16 and 24 from the random init (12 had such a
    start) and goes on warm from 24; with the default 1 it ends at 12. No third round: a text
    at 24 or above is not checked. Out of the fingerprint at 1; it counts rounds, so 0 is refused."""
    from memcap.core.search import Search

    assert "fresh_check_rounds" not in SearchConfig().as_dict() and not SearchConfig(fresh_check_rounds=1).changed()
    assert SearchConfig(fresh_check_rounds=2).changed() == {"fresh_check_rounds": 2}
    with pytest.raises(ValueError, match="fresh_check_rounds must be an integer >= 1"):
        SearchConfig(fresh_check_rounds=0)
    grid = [8, 12, 16, 24, 32, 40]
    once = SearchConfig(fails=2, fresh_check_below=24, restart_mix=0.5, fresh_check_from_random=True)
    first = [(True, 7), (False, 10), (False, 14), (True, 11), (False, 14), (False, 18)]
    head = [(8, 0, None), (12, 0, 8), (16, 0, 8), (12, 1, None), (16, 0, 12), (24, 0, 12)]
    search = Search([60], 4, "paper", lengths_grid=grid, config=once)
    assert _feed(search, first) == head and search.done and search.results[0].capacity == 12
    twice = dataclasses.replace(once, fresh_check_rounds=2)
    search = Search([60], 4, "paper", lengths_grid=grid, config=twice)
    asked = _feed(search, [*first, (False, 14), (True, 23), (False, 30), (False, 35)])
    assert asked == [*head, (16, 1, None), (24, 1, None), (32, 0, 24), (40, 0, 24)]
    assert search.done and search.results[0].capacity == 24
    replayed = Search([60], 4, "paper", lengths_grid=grid, config=twice, history={0: search.results[0].attempts})
    assert replayed.done and replayed.results[0].capacity == 24
    # a second round that fails ends the text at the first round's capacity
    search = Search([60], 4, "paper", lengths_grid=grid, config=twice)
    assert _feed(search, [*first, (False, 14), (False, 20)])[-2:] == [(16, 1, None), (24, 1, None)]
    assert search.done and search.results[0].capacity == 12


def test_restart_mix_is_a_share_and_stays_out_of_the_fingerprint_unset():
    assert SearchConfig().changed() == {} and "restart_mix" not in SearchConfig().as_dict()
    assert SearchConfig(restart_mix=0.5).changed() == {"restart_mix": 0.5}
    for bad in (0, 1, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match=r"restart_mix must be a number in \(0, 1\) or null"):
            SearchConfig(restart_mix=bad)


def test_a_mixed_start_is_the_prefix_and_the_seeded_random_init_in_proportion():
    """compress_batch(mix=...): with lr ~0 the kept vectors are the start itself, which must be
    sqrt(1 - m^2) * init + m * the seeded random init (the same draw as a fresh start's)."""
    from memcap.core.engine import init_vectors

    lm = tiny()
    (ids,) = lee_ids(lm, n=1)
    prefix = torch.randn(4, lm.mem_dim)
    still = OptimConfig(lr=1e-12, weight_decay=0.0, max_steps=1, patience=1)
    (mixed,) = compress_batch(lm, [ids[:8]], 4, "paper", [7], still, init=[prefix], mix=[0.6])
    random = init_vectors(4, lm.mem_dim, lm.embedding_std(), 7)
    assert torch.allclose(mixed.vectors, 0.8 * prefix + 0.6 * random, atol=1e-5)
    (kept,) = compress_batch(lm, [ids[:8]], 4, "paper", [7], still, init=[prefix], mix=[0.0])
    assert torch.allclose(kept.vectors, prefix)
    with pytest.raises(ValueError, match="needs an init to mix into"):
        compress_batch(lm, [ids[:8]], 4, "paper", [7], still, mix=[0.5])


def test_mixed_restarts_on_a_real_model_leave_frozen_warm_lines():
    """On a tiny model: warm starts that keep their vectors as they are cannot move (lr 1e-9),
    so the warm search ends at 4 tokens; the fresh checks as mixed restarts from the 4-token
    vectors are real runs at the warm settings and pass."""
    lm = tiny()
    texts = lee_ids(lm, n=1)

    def frozen_warm(lm, ids, K, protocol, seeds, optim, init=None, mix=None, **kw):  # real runs
        frozen = dataclasses.replace(optim, lr=1e-9, max_steps=2, patience=2)
        plain_warm = init is not None and init[0] is not None and not (mix and mix[0])
        return compress_batch(lm, ids, K, protocol, seeds, frozen if plain_warm else optim, init=init, mix=mix, **kw)

    args = dict(lengths_grid=GRID[:4], runner=frozen_warm, fails=2, fresh_check_below=12)
    (checked,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, restart_mix=0.5, **args)
    restarts = [(a.L, a.warm_start, a.mix, a.lossless) for a in checked.attempts if a.retry == 1]
    assert restarts[0] == (8, 4, 0.5, True) and checked.capacity >= 8


def test_a_prior_starts_each_fresh_attempt_under_the_fresh_settings():
    """search_capacity(prior=...): a fresh start begins from the prior (not the seeded random
    init) and keeps the fresh settings; warm attempts start from their prefix's vectors."""
    lm = tiny()
    texts = lee_ids(lm, n=1)
    prior = torch.full((4, lm.mem_dim), 0.02)
    seen = []

    def watched(lm, ids, K, protocol, seeds, optim, init=None, fresh=None, **kw):  # real runs
        seen.extend(
            zip([None if v is None else v.clone() for v in init], fresh or [v is None for v in init], strict=True)
        )
        return compress_batch(lm, ids, K, protocol, seeds, optim, init=init, fresh=fresh, **kw)

    (r,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, lengths_grid=GRID[:2], runner=watched, prior=prior)
    (first, first_fresh), (second, second_fresh) = seen[0], seen[1]
    assert torch.equal(first, prior) and first_fresh, "the first attempt is the prior, with the fresh settings"
    assert r.attempts[0].lossless and r.attempts[0].warm_start is None
    assert torch.equal(second, r.attempts[0].vectors) and not second_fresh, "the next warm-starts from the pass"


def test_prior_redo_restarts_a_text_stuck_at_its_prior_born_first_length_from_the_random_init():
    """On a tiny model: warm lines from the prior's first-length vectors are frozen (lr 1e-9, real
    runs), so without prior_redo the text ends at 4 tokens; with it, the text redoes 4 from the
    random init (retry REDO) and its warm line from there passes 8. Replaying the attempts
    gives the same search; adopt() takes the head of the plain run that the redo search shares."""
    from memcap.core.search import REDO, Search

    lm = tiny()
    texts = lee_ids(lm, n=1)
    prior = 0.5 * torch.randn(4, lm.mem_dim, generator=torch.Generator().manual_seed(3)) * lm.embedding_std()
    born = []  # vectors that came out of an attempt started from the prior

    def frozen_from_prior(lm, ids, K, protocol, seeds, optim, init=None, fresh=None, **kw):
        from_prior = init[0] is not None and torch.equal(init[0], prior)
        stuck = init[0] is not None and any(torch.equal(init[0], v) for v in born)
        run = dataclasses.replace(optim, lr=1e-9, max_steps=2, patience=2) if stuck else optim
        out = compress_batch(lm, ids, K, protocol, seeds, run, init=init, fresh=fresh, **kw)
        if from_prior or stuck:
            born.append(out[0].vectors)
        return out

    args = dict(lengths_grid=GRID[:2], runner=frozen_from_prior, fails=2, prior=prior)
    (plain,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, **args)
    assert [(a.L, a.lossless) for a in plain.attempts] == [(4, True), (8, False)]
    assert plain.capacity == 4
    (redone,) = search_capacity(lm, texts, 4, "paper", [1], OPTIM, prior_redo=True, **args)
    assert [(a.L, a.retry, a.warm_start, a.lossless) for a in redone.attempts] == [
        (4, 0, None, True),
        (8, 0, 4, False),
        (4, REDO, None, True),
        (8, 0, 4, True),
    ]
    assert redone.capacity == 8 and redone.stop_reason == "grid_end"
    again = Search(
        [len(texts[0])],
        4,
        "paper",
        lengths_grid=GRID[:2],
        config=SearchConfig(fails=2),
        prior=prior,
        prior_redo=True,
        history={0: redone.attempts},
    )
    assert again.done and again.results[0].capacity == 8
    fork = Search(
        [len(texts[0])], 4, "paper", lengths_grid=GRID[:2], config=SearchConfig(fails=2), prior=prior, prior_redo=True
    )
    assert fork.adopt(0, plain.attempts) == 2 and fork.states[0].request().retry == REDO
    with pytest.raises(ValueError, match="needs a prior and lengths_grid"):
        Search([40], 4, "paper", lengths_grid=GRID, prior_redo=True)


def test_a_warm_line_stuck_at_its_prefix_is_retried_at_its_length_from_the_random_init():
    """SearchConfig.retry_stuck: the warm line at 12 never scores past the 8-token prefix's 7, so
    12 is run once more from the seeded random init (retry 1, no mix although restart_mix is set,
    no prior although one is given), and the warm search goes on from it; a warm line that moved
    (16: 13 of 15) fails as before. Off by default, and out of the fingerprint there."""
    from memcap.core.search import Search

    assert "retry_stuck" not in SearchConfig().as_dict() and SearchConfig(retry_stuck=True).changed() == {
        "retry_stuck": True
    }
    config = SearchConfig(fails=2, fresh_after_stuck=True, restart_mix=0.5, retry_stuck=True)
    prior = torch.ones(4, 8)
    search = Search([60], 4, "paper", lengths_grid=[8, 12, 16, 24], config=config, prior=prior)
    mixes = []
    first = search.round(1)[0][0]
    assert torch.equal(first.init, prior) and first.fresh  # a fresh start from the prior
    outcomes = [(True, 7), (False, 7), (True, 11), (False, 13), (False, 20)]
    asked = _feed(search, outcomes, mixes)
    assert asked == [(8, 0, None), (12, 0, 8), (12, 1, None), (16, 0, 12), (24, 0, 12)]
    assert mixes == [0, 0, 0, 0, 0] and search.done and search.results[0].capacity == 12
    # the request for the retry itself: the random init (init None), fresh settings
    replay = Search([60], 4, "paper", lengths_grid=[8, 12, 16, 24], config=config, prior=prior)
    _feed(replay, outcomes[:2])
    (retry,) = replay.round(1)[0]
    assert (retry.L, retry.retry, retry.init, retry.mix, retry.fresh) == (12, 1, None, 0.0, True)
    without = Search(
        [60], 4, "paper", lengths_grid=[8, 12, 16, 24], config=SearchConfig(fails=2, fresh_after_stuck=True)
    )
    assert _feed(without, outcomes[:2] + [(False, 9)]) == [(8, 0, None), (12, 0, 8), (16, 0, None)]


def test_a_warm_line_one_token_short_gets_one_window_at_the_last_token_lr():
    """SearchConfig.last_token_lr: the warm line at 16 ends 14 of 15 (one short), so it gets one
    more window from its own vectors at that lr (extension 1, warm settings) and passes; at 24
    (20 of 23) nothing more is tried; at 32 the window fails too and the text ends. A fresh
    start one short (8: 6 of 7) gets no window. A replay asks for the same windows; records of a
    run without them are another search's. Off by default, and out of the fingerprint there."""
    from memcap.core.search import Attempt, Search

    assert "last_token_lr" not in SearchConfig().as_dict() and SearchConfig(last_token_lr=0.03).changed() == {
        "last_token_lr": 0.03
    }
    for bad in (0, -0.1, True, "fast"):
        with pytest.raises(ValueError, match="last_token_lr must be a number > 0 or null"):
            SearchConfig(last_token_lr=bad)
    config = SearchConfig(fails=2, last_token_lr=0.03)

    def search(history=None):
        return Search([60], 4, "paper", lengths_grid=[8, 12, 16, 24, 32], config=config, history=history)

    run, made = search(), []
    outcomes = [(False, 6), (True, 11), (False, 14), (True, 15), (False, 20), (False, 30), (False, 30)]
    for k, (ok, score) in enumerate(outcomes):
        (request,) = run.round(1)[0]
        if k == 3:  # the window: from the vectors its line ended with, warm settings, its own lr
            assert torch.equal(request.init, made[-1].vectors) and not request.fresh
        attempt = Attempt(request.L, request.warm_start, 1, ok, 50, vectors=torch.full((4, 8), float(k)), score=score)
        attempt.retry, attempt.extension, attempt.lr = request.retry, request.extension, request.lr
        made.append(attempt)
        run.states[0].update(attempt)
    assert [(a.L, a.warm_start, a.extension, a.lr) for a in made] == [
        (8, None, 0, None),
        (12, None, 0, None),
        (16, 12, 0, None),
        (16, 12, 1, 0.03),
        (24, 16, 0, None),
        (32, 16, 0, None),
        (32, 16, 1, 0.03),
    ]
    assert run.done and run.results[0].capacity == 16
    assert search(history={0: made}).results[0].capacity == 16  # a resumed job replays the windows
    without = [dataclasses.replace(a, lr=None) for a in made]
    with pytest.raises(ValueError, match="different search settings"):
        search(history={0: without})


def test_last_token_below_keeps_the_last_token_windows_to_texts_still_short():
    """SearchConfig.last_token_below: the warm line at 12 ends one short while the text's capacity
    is 8 (below 24), so it gets its last-token window and passes; once the text holds 24 tokens,
    the one-short lines at 32 and 40 get none and the text ends at 24, where without the bound
    each would have had one. Off by default, and out of the fingerprint there."""
    from memcap.core.search import Attempt, Search

    assert "last_token_below" not in SearchConfig().as_dict()
    assert SearchConfig(last_token_lr=0.03, last_token_below=24).changed() == {
        "last_token_lr": 0.03,
        "last_token_below": 24,
    }
    with pytest.raises(ValueError, match="last_token_below must be an integer >= 1 or null, got 0"):
        SearchConfig(last_token_below=0)
    outcomes = [(True, 7), (False, 10), (True, 11), (True, 15), (True, 23), (False, 30), (False, 38)]

    def asked(below):
        config = SearchConfig(fails=2, last_token_lr=0.03, last_token_below=below)
        search = Search([60], 4, "paper", lengths_grid=[8, 12, 16, 24, 32, 40], config=config)
        made = []
        for ok, score in outcomes:
            if search.done:
                break
            (request,) = search.round(1)[0]
            made.append((request.L, request.warm_start, request.extension, request.lr))
            attempt = Attempt(request.L, request.warm_start, 1, ok, 50, vectors=torch.zeros(4, 8), score=score)
            attempt.retry, attempt.extension, attempt.lr = request.retry, request.extension, request.lr
            search.states[0].update(attempt)
        return made, search

    made, search = asked(24)
    assert made == [
        (8, None, 0, None),
        (12, 8, 0, None),
        (12, 8, 1, 0.03),
        (16, 12, 0, None),
        (24, 16, 0, None),
        (32, 24, 0, None),
        (40, 24, 0, None),
    ]
    assert search.done and search.results[0].capacity == 24
    made, search = asked(None)  # unbounded: the one-short line at 32 gets its window (here it fails)
    assert made[5:] == [(32, 24, 0, None), (32, 24, 1, 0.03)] and not search.done


def test_from_one_fail_from_tokens_up_the_first_failing_length_ends_a_text():
    """SearchConfig.one_fail_from: below it a text goes on past a failing length (fails 2: 12
    fails, 16 passes); from it up, the first failing length (40) ends the text, where fails 2
    alone would try 48. Off by default, and out of the fingerprint there."""
    from memcap.core.search import Search

    assert "one_fail_from" not in SearchConfig().as_dict() and SearchConfig(one_fail_from=40).changed() == {
        "one_fail_from": 40
    }
    with pytest.raises(ValueError, match="one_fail_from must be an integer >= 1 or null"):
        SearchConfig(one_fail_from=0)
    grid = [8, 12, 16, 24, 32, 40, 48]
    outcomes = [(True, 7), (False, 8), (True, 15), (True, 23), (True, 31), (False, 36), (False, 40)]
    once = Search([60], 4, "paper", lengths_grid=grid, config=SearchConfig(fails=2, one_fail_from=40))
    assert [a[0] for a in _feed(once, outcomes[:6])] == [8, 12, 16, 24, 32, 40]
    assert once.done and once.results[0].capacity == 32 and once.results[0].stop_reason == "failed"
    twice = Search([60], 4, "paper", lengths_grid=grid, config=SearchConfig(fails=2))
    assert [a[0] for a in _feed(twice, outcomes)] == grid and twice.results[0].capacity == 32
