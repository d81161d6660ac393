"""The optimisation loop on tiny random-weight models of every family the paper used."""

import dataclasses
import functools
import math

import pytest
import torch

from memcap.core.engine import OptimConfig, compress_batch, first_scored, greedy_decode, init_vectors
from memcap.core.models import LOGITS_MIB, ModelSpec, load_model, load_registry
from memcap.corpora import lee_articles

FAMILIES = ["tiny-gpt-neox", "tiny-llama", "tiny-opt", "tiny-olmo", "tiny-mamba"]
# tiny random models learn 8 tokens with 4 vectors in tens of steps (see config/models.yaml)
FAST = OptimConfig(lr=0.1, max_steps=400, patience=400)


@functools.cache
def tiny(name):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


def text_ids(lm, i=3, n=8):
    return lm.tokenize(lee_articles()[i])[:n]


@pytest.mark.parametrize("protocol", ["paper", "strict"])
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_compresses_and_decodes_exactly(name, protocol):
    lm = tiny(name)
    ids = text_ids(lm)
    out = compress_batch(lm, [ids], K=4, protocol=protocol, seeds=[1], optim=FAST)[0]
    first = first_scored(protocol)
    assert out.N == 8 and out.scored == 8 - first
    assert out.converged and out.stop_reason == "converged"
    assert out.correct == out.scored and out.accuracy == 1.0
    assert out.greedy_exact and out.greedy_prefix == out.scored
    # the saved vectors are the scored ones: decoding them alone gives the text back
    prompt = torch.tensor([ids[:first]], dtype=torch.long)
    decoded = greedy_decode(lm, out.vectors[None], 8 - first, prompt)[0].tolist()
    assert ids[:first] + decoded == ids
    assert out.vectors.shape == (4, lm.mem_dim) and out.vectors.dtype == torch.float32
    assert out.loss_sum < out.baseline_loss_sum


def test_opt_mem_width_is_the_projection_width():
    lm = tiny("tiny-opt")
    assert lm.mem_dim == 32 and lm.model.config.hidden_size == 64


def test_bos_counts_toward_the_length():
    assert tiny("tiny-llama").adds_bos() and not tiny("tiny-gpt-neox").adds_bos()
    ids = text_ids(tiny("tiny-llama"))
    assert ids[0] == tiny("tiny-llama").tokenizer.bos_token_id and len(ids) == 8


def test_outcome_does_not_depend_on_batch_mates():
    lm = tiny("tiny-llama")
    texts = [text_ids(lm, i) for i in range(3, 7)]
    alone = compress_batch(lm, texts[:1], K=4, protocol="paper", seeds=[11], optim=FAST)[0]
    batch = compress_batch(lm, texts, K=4, protocol="paper", seeds=[11, 12, 13, 14], optim=FAST)
    assert alone.accuracy == 1.0 and batch[0].accuracy == 1.0
    assert batch[0].steps == alone.steps
    assert torch.allclose(batch[0].vectors, alone.vectors, atol=1e-4)
    assert batch[0].loss_sum == pytest.approx(alone.loss_sum, rel=1e-4)


def test_mixed_lengths_in_one_batch_match_single_runs():
    """Right padding leaks nothing into a shorter text: the same vectors score the same and
    get the same gradient alone and beside a longer text. Whole runs agree up to rounding
    (a padded batch takes other matmul kernels, and many steps amplify the last bits)."""
    from memcap.core.engine import pad, score

    lm = tiny("tiny-gpt-neox")
    long, short = text_ids(lm, 3, 8), text_ids(lm, 4, 5)
    mem = torch.randn(2, 4, lm.mem_dim, generator=torch.Generator().manual_seed(0)).requires_grad_()
    results = []
    for texts, rows in (([long, short], slice(1, 2)), ([short], slice(1, 2))):
        ids, lengths = pad(texts, lm.device)
        loss, correct = score(lm, mem[rows] if len(texts) == 1 else mem, lm.embeddings(ids), ids, lengths, 0)
        (grad,) = torch.autograd.grad(loss[-1], mem)
        results.append((loss[-1].item(), correct[-1].item(), grad[1]))
    (loss_b, correct_b, grad_b), (loss_a, correct_a, grad_a) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5) and correct_b == correct_a
    assert torch.allclose(grad_b, grad_a, rtol=1e-4, atol=1e-6)

    both = compress_batch(lm, [long, short], K=4, protocol="strict", seeds=[5, 6], optim=FAST)
    alone = compress_batch(lm, [short], K=4, protocol="strict", seeds=[6], optim=FAST)[0]
    assert both[1].N == 5 and both[1].scored == 5
    assert both[1].baseline_loss_sum == pytest.approx(alone.baseline_loss_sum, rel=1e-5)
    assert both[1].converged and alone.converged and both[1].greedy_exact
    assert abs(both[1].steps - alone.steps) <= max(3, alone.steps // 10)


def test_converged_text_stops_while_others_go_on():
    lm = tiny("tiny-llama")
    texts = [text_ids(lm, i) for i in range(3, 7)]
    optim = OptimConfig(lr=0.1, max_steps=60, patience=60)
    out = compress_batch(lm, texts, K=4, protocol="paper", seeds=[1, 2, 3, 4], optim=optim)
    assert any(o.converged for o in out)
    for o in out:
        assert o.steps <= 60
        if o.converged:
            # the recorded score is that of the saved vectors, re-evaluated
            assert o.correct == o.max_correct == o.scored
        else:
            assert o.stop_reason == "max_steps" and o.steps == 60


def test_patience_stops_a_text_that_does_not_improve():
    lm = tiny("tiny-gpt-neox")
    ids = lm.tokenize(lee_articles()[10])[:40]  # too long for 1 vector of a tiny model
    out = compress_batch(lm, [ids], K=1, protocol="paper", seeds=[0], optim=OptimConfig(patience=5, max_steps=500))[0]
    assert out.stop_reason == "patience" and out.steps < 500 and not out.converged


def test_protocols_score_different_positions():
    lm = tiny("tiny-gpt-neox")
    ids = text_ids(lm)
    optim = OptimConfig(max_steps=1)
    paper = compress_batch(lm, [ids], K=1, protocol="paper", seeds=[0], optim=optim)[0]
    strict = compress_batch(lm, [ids], K=1, protocol="strict", seeds=[0], optim=optim)[0]
    assert (paper.scored, strict.scored) == (7, 8)
    # the strict baseline also pays for t1, predicted from the start-of-document token
    assert strict.baseline_loss_sum > paper.baseline_loss_sum


def test_nan_loss_is_recorded_not_raised():
    lm = tiny("tiny-gpt-neox")
    out = compress_batch(
        lm, [text_ids(lm)], K=1, protocol="paper", seeds=[0], optim=OptimConfig(lr=1e30, max_steps=50)
    )[0]
    assert out.status == "nan" and out.stop_reason == "nan" and not out.greedy_exact


def test_init_is_seeded_per_text():
    a, b = init_vectors(2, 8, 0.5, seed=7), init_vectors(2, 8, 0.5, seed=7)
    assert torch.equal(a, b) and not torch.equal(a, init_vectors(2, 8, 0.5, seed=8))
    assert init_vectors(1, 20000, 0.5, seed=1).std().item() == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(K=0, protocol="paper"), "K"),
        (dict(K=1, protocol="fast"), "protocol"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    lm = tiny("tiny-gpt-neox")
    with pytest.raises(ValueError, match=message):
        compress_batch(lm, [text_ids(lm)], seeds=[0], **kwargs)


def test_paper_protocol_needs_two_tokens():
    lm = tiny("tiny-gpt-neox")
    with pytest.raises(ValueError, match="at least 2"):
        compress_batch(lm, [text_ids(lm)[:1]], K=1, protocol="paper", seeds=[0])


@pytest.mark.parametrize("bad", [dict(lr=0), dict(beta1=1.0), dict(max_steps=0), dict(nesterov=True)])
def test_bad_optimiser_settings_name_the_key(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        OptimConfig.from_dict(bad)


def test_compiled_forward_gives_the_plain_models_outcomes():
    """compile: true (registry) runs the steps through torch.compile with dynamic shapes: the
    batch shrinks as texts converge, and the results are those of the plain model."""
    import dataclasses

    spec = load_registry("config/models.yaml")["tiny-llama"]
    compiled = load_model(dataclasses.replace(spec, compile=True), "cpu")
    assert compiled.forward is not compiled.model
    plain = tiny("tiny-llama")
    assert plain.forward is plain.model
    texts = [text_ids(plain, i) for i in range(3, 6)]
    a = compress_batch(plain, texts, K=4, protocol="strict", seeds=[1, 2, 3], optim=FAST)
    b = compress_batch(compiled, texts, K=4, protocol="strict", seeds=[1, 2, 3], optim=FAST)
    assert len({o.steps for o in a}) > 1  # texts left the batch at different steps
    for x, y in zip(a, b, strict=True):
        assert y.converged and y.greedy_exact
        assert abs(x.steps - y.steps) <= 2
        if x.steps == y.steps:
            assert torch.allclose(x.vectors, y.vectors, atol=1e-2)
        # a step or two apart (rounding in the compiled kernels), still the same path: the
        # vectors point the same way and are as long
        cosine = torch.nn.functional.cosine_similarity(x.vectors.flatten(), y.vectors.flatten(), dim=0)
        assert cosine > 0.99 and abs(y.vectors.norm() / x.vectors.norm() - 1) < 0.01


# A Llama-3-sized vocabulary on a tiny body: the LM head dominates, as in the 1B-8B models.
BIG_VOCAB = ModelSpec(
    name="llama-128k", source="random", family="llama", hidden_size=32, num_layers=1, num_heads=2, vocab_size=128256
)


@functools.cache
def big_vocab(tied: bool):
    return load_model(dataclasses.replace(BIG_VOCAB, config={"tie_word_embeddings": tied}), "cpu")


def _score_and_grad(lm, texts, optim, logits_mib):
    """score() of fixed [mem] vectors under a logits budget: its four sums and d(objective)/d(mem)."""
    from memcap.core.engine import pad, score

    lm.logits_mib = logits_mib
    try:
        ids, lengths = pad(texts, lm.device)
        mem = torch.randn(len(texts), 2, lm.mem_dim, generator=torch.Generator().manual_seed(0)).requires_grad_()
        sums = score(lm, mem, lm.embeddings(ids), ids, lengths, 0, optim)
        (grad,) = torch.autograd.grad((sums[2] / lengths).sum(), mem)
        return sums, grad
    finally:
        lm.logits_mib = LOGITS_MIB


@pytest.mark.parametrize("optim", [OptimConfig(), OptimConfig(temperature=0.5, margin=1.0)], ids=["paper", "T+margin"])
@pytest.mark.parametrize("model", ["tiny-llama", "tiny-opt", "big-vocab-tied", "big-vocab-untied"])
def test_chunked_cross_entropy_equals_the_whole_logits(model, optim):
    """Above lm.logits_mib the head runs on chunks of positions (here 5 positions a chunk, so
    a batch of 3 texts of up to 12 tokens takes 8 chunks): loss, accuracy, objective and the
    gradient of the [mem] vectors are those of the whole logits tensor to 1e-5."""
    lm = big_vocab(model.endswith("-tied")) if model.startswith("big") else tiny(model)
    texts = [text_ids(lm, i, n) for i, n in zip((3, 4, 5), (12, 7, 10), strict=True)]
    whole, whole_grad = _score_and_grad(lm, texts, optim, math.inf)
    chunked, chunked_grad = _score_and_grad(lm, texts, optim, 5 * lm.position_logits_mib)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-5), (a, b)
    assert torch.allclose(whole_grad, chunked_grad, rtol=1e-5, atol=1e-5 * whole_grad.abs().max().item())
    assert whole_grad.abs().max() > 0


def test_chunked_cross_entropy_never_holds_more_positions_than_a_chunk():
    """The head's outputs, seen by a forward hook, never exceed the chunk, forward or backward
    (the backward recomputes one chunk at a time); the whole-logits path passes all positions."""
    from memcap.core.engine import split_head

    lm = big_vocab(True)
    texts = [text_ids(lm, i, 12) for i in (3, 4)]
    # split_head's one check per model (the whole model on 3 positions) runs before the hook
    # sees anything: whether an earlier test on this worker ran it must not matter
    assert split_head(lm) is not None
    seen = []
    hook = lm.model.get_output_embeddings().register_forward_hook(lambda m, i, out: seen.append(out.shape[:-1].numel()))
    try:
        _score_and_grad(lm, texts, OptimConfig(), 4 * lm.position_logits_mib)
        chunked = list(seen)
        seen.clear()
        _score_and_grad(lm, texts, OptimConfig(), math.inf)
    finally:
        hook.remove()
    assert max(chunked) == 4 and len(chunked) == 2 * 6  # 24 positions: 6 chunks, recomputed once each
    assert seen == [2 * 13]  # 2 texts x (12 tokens + 1 mem position kept by logits_to_keep)


def test_compress_with_chunked_cross_entropy_gives_the_same_outcomes():
    """Whole runs agree up to rounding (each step agrees to 1e-5 above; many steps amplify
    the last bits, as with other batch shapes)."""
    lm = tiny("tiny-llama")
    texts = [text_ids(lm, i) for i in range(3, 6)]
    whole = compress_batch(lm, texts, K=4, protocol="strict", seeds=[1, 2, 3], optim=FAST)
    lm.logits_mib = 3 * lm.position_logits_mib
    try:
        chunked = compress_batch(lm, texts, K=4, protocol="strict", seeds=[1, 2, 3], optim=FAST)
    finally:
        lm.logits_mib = LOGITS_MIB
    for a, b in zip(whole, chunked, strict=True):
        assert a.converged and b.converged and a.greedy_exact and b.greedy_exact
        assert abs(a.steps - b.steps) <= 2
        assert a.loss_sum == pytest.approx(b.loss_sum, rel=1e-3) or a.steps != b.steps


def test_a_batch_halved_on_out_of_memory_keeps_each_texts_own_start_and_settings():
    """memcap.stages.batching.compress_splitting: a batch of three that runs out of memory (a hook
    on the real model refuses batches over one text) is halved down to single texts, and each
    text keeps its own init, fresh flag, mix and lr: every outcome equals that text compressed
    alone with its own settings."""
    from memcap.stages.batching import OomLimit, compress_splitting

    lm = load_model(load_registry("config/models.yaml")["tiny-llama"], "cpu")  # its own: a hook is added
    texts = [text_ids(lm, i) for i in (1, 2, 3)]
    start = torch.randn(4, lm.mem_dim)
    per_text = dict(init=[start, None, start], fresh=[False, True, True], mix=[0.5, 0.0, 0.0], lr=[None, None, 0.03])
    optim = dataclasses.replace(FAST, max_steps=30, patience=30)
    alone = [
        compress_batch(lm, [ids], 4, "paper", [seed], optim, **{k: [v[i]] for k, v in per_text.items()})[0]
        for i, (ids, seed) in enumerate(zip(texts, [1, 2, 3], strict=True))
    ]
    refused = []

    def refuse_batches(module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is not None and x.shape[0] > 1:
            refused.append(x.shape[0])
            raise torch.OutOfMemoryError("out of memory (injected)")

    lm.model.register_forward_pre_hook(refuse_batches, with_kwargs=True)
    limit = OomLimit()
    halved = compress_splitting(lm, texts, 4, "paper", [1, 2, 3], optim, limit=limit, **per_text)
    assert refused == [3, 2] and limit.tokens < float("inf")
    for got, want in zip(halved, alone, strict=True):
        assert (got.correct, got.steps, got.stop_reason) == (want.correct, want.steps, want.stop_reason)
        assert torch.equal(got.vectors, want.vectors)
