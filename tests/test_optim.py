"""Optimiser options beyond the paper (schedule, init scale, temperature, margin), the presets,
and the search for the fewest vectors a text needs, on tiny random-weight models."""

import dataclasses
import functools
import json
import math

import pytest
import torch

from memcap.core.auto_vectors import fewest_vectors, vector_counts
from memcap.core.engine import PAPER_KEYS, PRESETS, OptimConfig, compress_batch, init_vectors, pad, score
from memcap.core.models import load_model, load_registry
from memcap.corpora import lee_articles
from memcap.stages.job import run_job

PAPER_DICT = {
    "lr": 0.01,
    "beta1": 0.9,
    "beta2": 0.9,
    "weight_decay": 0.01,
    "eps": 1e-8,
    "max_steps": 5000,
    "patience": 2000,
}
QUICK = OptimConfig(lr=0.1, max_steps=400, patience=400)


@functools.cache
def tiny(name="tiny-llama"):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


def text_ids(lm, i=3, n=8):
    return lm.tokenize(lee_articles()[i])[:n]


# --- settings ---------------------------------------------------------------------------


def test_paper_settings_record_exactly_the_keys_they_always_had():
    # the resume fingerprint of every run made before the extensions existed
    assert OptimConfig().as_dict() == PAPER_DICT
    assert tuple(PAPER_DICT) == PAPER_KEYS
    schema_filled = {
        "preset": "paper",
        **dict.fromkeys(["lr", "beta1", "schedule", "warmup", "init_scale", "temperature", "margin"]),
    }
    assert OptimConfig.from_dict(schema_filled).as_dict() == PAPER_DICT
    explicit = {**PAPER_DICT, "schedule": "constant", "warmup": 0, "init_scale": 1.0, "temperature": 1.0, "margin": 0.0}
    assert OptimConfig.from_dict(explicit).as_dict() == PAPER_DICT


def test_a_preset_gives_base_values_and_set_keys_override_them():
    fast = OptimConfig.from_dict({"preset": "fast", "lr": None})
    assert fast.preset == "fast"
    for key, value in PRESETS["fast"].items():
        assert getattr(fast, key) == value
    assert fast.as_dict()["preset"] == "fast"
    mine = OptimConfig.from_dict({"preset": "fast", "lr": 0.05})
    assert mine.lr == 0.05 and mine.max_steps == PRESETS["fast"]["max_steps"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"preset": "quick"}, "optim.preset 'quick' is not one of paper, fast, max"),
        ({"schedule": "linear"}, "optim.schedule 'linear' is not one of constant, cosine"),
        ({"temperature": 0}, "optim.temperature must be > 0"),
        ({"margin": -1}, "optim.margin must be >= 0"),
        ({"init_scale": 0}, "optim.init_scale must be > 0"),
        ({"beta1": 1.0}, "optim.beta1 must be in [0, 1)"),
        ({"momentum": 0.9}, "unknown optim key(s) ['momentum']"),
    ],
)
def test_bad_settings_name_the_key_and_what_is_allowed(values, message):
    with pytest.raises(ValueError) as err:
        OptimConfig.from_dict(values)
    assert message in str(err.value)


def test_warmup_then_cosine_schedule():
    o = OptimConfig(schedule="cosine", warmup=10, max_steps=110)
    assert o.lr_factor(0) == pytest.approx(0.1) and o.lr_factor(9) == pytest.approx(1.0)
    assert o.lr_factor(60) == pytest.approx(0.5) and o.lr_factor(110) == pytest.approx(0.0)
    assert OptimConfig(warmup=4).lr_factor(1) == pytest.approx(0.5) and OptimConfig(warmup=4).lr_factor(50) == 1.0
    assert OptimConfig().lr_factor(1234) == 1.0


def test_schedule_scales_the_updates():
    # with a 1000-step warm-up the first update is a thousandth of the constant-lr one
    lm = tiny()
    ids = text_ids(lm)
    start = init_vectors(1, lm.mem_dim, lm.embedding_std(), 5)
    one = dict(lr=0.1, max_steps=1, patience=10, weight_decay=0.0)
    plain = compress_batch(lm, [ids], 1, "strict", [5], OptimConfig(**one))[0]
    warm = compress_batch(lm, [ids], 1, "strict", [5], OptimConfig(**one, warmup=1000))[0]
    # best vectors are either the start or the one update; compare the update sizes when they moved
    moved_plain = (plain.vectors - start).norm()
    moved_warm = (warm.vectors - start).norm()
    assert moved_warm <= moved_plain / 100 + 1e-7


def test_init_scale_scales_the_seeded_init():
    lm = tiny()
    ids = text_ids(lm)
    out = compress_batch(lm, [ids], 2, "strict", [7], OptimConfig(lr=1e-12, max_steps=1, init_scale=0.25))[0]
    expected = init_vectors(2, lm.mem_dim, lm.embedding_std() * 0.25, 7)
    assert torch.allclose(out.vectors, expected, atol=1e-6)


# --- loss options -----------------------------------------------------------------------


def test_temperature_and_margin_train_but_the_recorded_loss_is_the_plain_ce():
    lm = tiny()
    texts = [text_ids(lm, i) for i in (3, 4)]
    optim = OptimConfig(lr=0.1, max_steps=300, patience=300, temperature=0.5, margin=1.0)
    outs = compress_batch(lm, texts, 4, "strict", [1, 2], optim)
    ids, lengths = pad(texts, lm.device)
    vectors = torch.stack([o.vectors for o in outs])
    with torch.no_grad():
        ce, correct = score(lm, vectors, lm.embeddings(ids), ids, lengths, 0)
        _, _, objective, sure = score(lm, vectors, lm.embeddings(ids), ids, lengths, 0, optim)
    for o, c, k, s in zip(outs, ce.tolist(), correct.tolist(), sure.tolist(), strict=True):
        assert o.loss_sum == pytest.approx(c, rel=1e-5) and o.correct == k
        assert o.converged and o.greedy_exact
        assert s == o.scored  # converged means every position clears the margin
    assert not torch.allclose(objective, ce)


def test_a_margin_keeps_optimising_past_the_first_all_correct_step():
    lm = tiny()
    ids = text_ids(lm, 5)
    plain = compress_batch(lm, [ids], 4, "strict", [3], QUICK)[0]
    sure = compress_batch(lm, [ids], 4, "strict", [3], OptimConfig(lr=0.1, max_steps=400, patience=400, margin=3.0))[0]
    assert plain.converged and sure.converged
    assert sure.steps > plain.steps
    with torch.no_grad():
        i, n = pad([ids], lm.device)
        x = torch.cat([sure.vectors[None], lm.embeddings(i)], 1)
        out = lm.forward(inputs_embeds=x).logits[0, 3:-1].float()
    right = out.gather(-1, i[0, :, None])[:, 0]
    runner_up = out.scatter(-1, i[0, :, None], -math.inf).max(-1).values
    assert bool(((right - runner_up) >= 3.0 - 1e-4).all())


# --- records and resume -------------------------------------------------------------------


def texts_file(tmp_path, n=2):
    path = tmp_path / "lee.jsonl"
    path.write_text("".join(json.dumps({"id": f"lee-{i}", "text": lee_articles()[i]}) + "\n" for i in range(n)))
    return path


def test_a_run_made_before_the_options_resumes_under_the_schema_filled_settings(tmp_path):
    texts, out = texts_file(tmp_path), tmp_path / "r.jsonl"
    run_job("tiny-llama", texts, out, lengths=[6], optim={"max_steps": 5, "patience": 5}, progress=False)
    fingerprint = json.loads((tmp_path / "r.parts" / "job.json").read_text())
    assert fingerprint["optim"] == {**PAPER_DICT, "max_steps": 5, "patience": 5}
    # what the workflow now passes: every key, null where the preset decides
    filled = {
        "preset": "paper",
        "lr": None,
        "beta1": None,
        "beta2": None,
        "weight_decay": None,
        "eps": None,
        "max_steps": 5,
        "patience": 5,
        "schedule": None,
        "warmup": None,
        "init_scale": None,
        "temperature": None,
        "margin": None,
    }
    run_job("tiny-llama", texts, out, lengths=[6, 7], optim=filled, progress=False)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["L"] for r in records) == [6, 6, 7, 7]
    assert {r["preset"] for r in records} == {"paper"}
    with pytest.raises(ValueError, match="different settings"):
        run_job("tiny-llama", texts, out, lengths=[6], optim={**filled, "preset": "fast"}, progress=False)


@pytest.mark.parametrize("preset", ["fast", "max"])
def test_records_say_which_preset_made_them(tmp_path, preset):
    out = tmp_path / "r.jsonl"
    run_job(
        "tiny-llama",
        texts_file(tmp_path, 1),
        out,
        lengths=[6],
        optim={"preset": preset, "max_steps": 3},
        progress=False,
    )
    record = json.loads(out.read_text())
    assert record["preset"] == preset and record["optim"]["preset"] == preset
    assert record["optim"]["lr"] == PRESETS[preset]["lr"] and record["optim"]["max_steps"] == 3
    assert record["optim"]["patience"] == PRESETS[preset]["patience"]  # the preset's own values, recorded


# --- fewest vectors -----------------------------------------------------------------------


def test_vector_counts_double_up_to_the_largest():
    assert vector_counts(16) == [1, 2, 4, 8, 16]
    assert vector_counts(6) == [1, 2, 4, 6]
    assert vector_counts(1) == [1]
    assert vector_counts(16, context=20, n_tokens=15) == [1, 2, 4]
    with pytest.raises(ValueError, match="must be >= 1"):
        vector_counts(0)


def test_fewest_vectors_stops_at_the_first_k_that_decodes():
    lm = tiny()
    ids = text_ids(lm, 3, 8)
    found = fewest_vectors(lm, ids, "strict", 0, QUICK, max_vectors=8)
    assert found.exact and found.best.outcome.greedy_exact
    assert [a.K for a in found.attempts][-1] == found.K
    assert all(not a.outcome.greedy_exact for a in found.attempts[:-1])
    assert found.steps == sum(a.steps for a in found.attempts) >= sum(a.outcome.steps for a in found.attempts)


def test_fewest_vectors_that_never_decode_report_the_best_attempt():
    lm = tiny()
    ids = text_ids(lm, 3, 16)
    found = fewest_vectors(lm, ids, "strict", 0, OptimConfig(max_steps=1), max_vectors=4)
    assert not found.exact and [a.K for a in found.attempts] == [1, 2, 4]
    assert found.best in found.attempts


def test_the_schema_offers_exactly_the_presets_and_schedules_the_engine_has():
    import yaml

    from memcap.core.engine import SCHEDULES

    optim = yaml.safe_load(open("workflow/schemas/config.schema.yaml"))["properties"]["optim"]["properties"]
    assert optim["preset"]["enum"] == list(PRESETS) and optim["preset"]["default"] == "paper"
    assert [s for s in optim["schedule"]["enum"] if s] == list(SCHEDULES)
    extension_keys = {f for f in OptimConfig.__dataclass_fields__} - set(PAPER_KEYS)
    assert set(optim) == set(PAPER_KEYS) | extension_keys
    assert all(optim[k]["default"] is None for k in set(optim) - {"preset"})


def test_the_committed_reference_can_still_resume():
    # benchmarks/reference/ holds a long run's parts: today's code must compute its fingerprint
    from pathlib import Path

    from memcap.core.models import resolve_model
    from memcap.stages.job import job_fingerprint

    stored = Path("benchmarks/reference/lee.parts/job.json")
    spec = resolve_model("smollm2-135m", load_registry("config/models.yaml"))
    now = job_fingerprint(
        spec,
        protocol="paper",
        optim=OptimConfig.from_dict({"preset": "paper"}),
        dataset="lee",
        mode="grid",
        lengths=[8],
    )
    assert json.loads(stored.read_text()) == now


def test_fresh_lr_applies_to_fresh_starts_only_and_stays_out_of_paper_settings():
    """fresh_lr=lr gives the same run as no fresh_lr; a warm start ignores fresh_lr."""
    tiny_lm = tiny()
    ids = [[5, 9, 13, 2, 7, 11]]
    assert "fresh_lr" not in OptimConfig().as_dict()
    plain = compress_batch(tiny_lm, ids, 1, "paper", [3], OptimConfig(lr=0.1, max_steps=5, patience=5))[0]
    same = compress_batch(tiny_lm, ids, 1, "paper", [3], OptimConfig(lr=0.1, fresh_lr=0.1, max_steps=5, patience=5))[0]
    assert torch.equal(plain.vectors, same.vectors)
    gentle = compress_batch(tiny_lm, ids, 1, "paper", [3], OptimConfig(lr=0.1, fresh_lr=1e-4, max_steps=5, patience=5))[
        0
    ]
    assert not torch.allclose(plain.vectors, gentle.vectors)
    start = [plain.vectors]
    warm = compress_batch(tiny_lm, ids, 1, "paper", [3], OptimConfig(lr=0.1, max_steps=5, patience=5), init=start)[0]
    warm_fresh = compress_batch(
        tiny_lm, ids, 1, "paper", [3], OptimConfig(lr=0.1, fresh_lr=1e-4, max_steps=5, patience=5), init=start
    )[0]
    assert torch.equal(warm.vectors, warm_fresh.vectors)
    with pytest.raises(ValueError, match="fresh_lr"):
        OptimConfig(fresh_lr=0)


def test_a_texts_own_lr_replaces_its_settings_lr_in_a_mixed_batch():
    """compress_batch(lr=[...]): a text given its own learning rate (a search's last-token
    window) runs as if the settings had that lr, beside a text that keeps the settings'; bad
    entries are named."""
    tiny_lm = tiny()
    ids = [[5, 9, 13, 2, 7, 11]] * 2
    optim = OptimConfig(lr=0.1, fresh_lr=0.05, max_steps=5, patience=5)
    start = compress_batch(tiny_lm, ids[:1], 1, "paper", [3], optim)[0].vectors
    own, kept = compress_batch(tiny_lm, ids, 1, "paper", [3, 3], optim, init=[start, start], lr=[0.01, None])
    alone = compress_batch(tiny_lm, ids[:1], 1, "paper", [3], dataclasses.replace(optim, lr=0.01), init=[start])[0]
    warm = compress_batch(tiny_lm, ids[:1], 1, "paper", [3], optim, init=[start])[0]

    def close(a, b):  # a batch of two and a batch of one round apart
        return torch.allclose(a.vectors, b.vectors, atol=1e-3)

    assert close(own, alone) and close(kept, warm) and not close(own, kept)
    for bad in ([0.01], [0.0, None], [True, None]):
        with pytest.raises(ValueError, match="lr"):
            compress_batch(tiny_lm, ids, 1, "paper", [3, 3], optim, init=[start, start], lr=bad)


def test_fresh_max_steps_caps_fresh_starts_only_and_stays_out_of_paper_settings():
    """In one batch a fresh start runs to fresh_max_steps and a warm one stops at max_steps."""
    tiny_lm = tiny()
    ids = [[5, 9, 13, 2, 7, 11, 4, 8, 3, 6, 12, 10]] * 2
    assert "fresh_max_steps" not in OptimConfig().as_dict()
    assert "fresh_max_steps" not in OptimConfig(fresh_max_steps=None).as_dict()
    slow = OptimConfig(lr=1e-4, max_steps=3, patience=50)  # far from converging in a few steps
    (first,) = compress_batch(tiny_lm, ids[:1], 1, "paper", [3], slow)
    assert first.steps == 3
    both = compress_batch(
        tiny_lm, ids, 1, "paper", [3, 3], dataclasses.replace(slow, fresh_max_steps=7), init=[None, first.vectors]
    )
    assert [o.steps for o in both] == [7, 3]
    assert [o.stop_reason for o in both] == ["max_steps", "max_steps"]
    same = compress_batch(tiny_lm, ids[:1], 1, "paper", [3], dataclasses.replace(slow, fresh_max_steps=3))[0]
    assert torch.equal(same.vectors, first.vectors)
    with pytest.raises(ValueError, match="fresh_max_steps must be >= 1"):
        OptimConfig(fresh_max_steps=0)


def test_each_k_grows_through_prefixes_of_the_text():
    from memcap.core.auto_vectors import prefix_lengths

    assert prefix_lengths(30, "strict") == [8, 16, 30]
    assert prefix_lengths(16, "paper") == [8, 16]
    assert prefix_lengths(5, "strict") == [5]
    lm = tiny()
    ids = text_ids(lm, n=20)
    found = fewest_vectors(lm, ids, "strict", 0, OptimConfig(max_steps=2, patience=2), max_vectors=1)
    (attempt,) = found.attempts
    assert attempt.L == 8 and not found.exact  # the first prefix failed, so no longer one was tried
