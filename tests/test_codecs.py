"""Lossless codecs and LM arithmetic coding (memcap.stages.codecs): real round trips, honest sizes.

pytest tests/test_codecs.py
"""

import functools
import math
import random

import numpy as np
import pytest

from memcap.core.models import load_model, load_registry
from memcap.corpora import lee_articles
from memcap.stages import codecs

TEXTS = [
    b"",
    b"a",
    b"aaaaaaaa",
    b"abracadabra",
    "naïve café — ünïcödé".encode(),
    lee_articles()[0].encode(),
    bytes(range(256)) * 3,
]


@functools.cache
def tiny(name):
    return load_model(load_registry("config/models.yaml")[name], "cpu")


@pytest.mark.parametrize("data", TEXTS)
def test_huffman_round_trip(data):
    assert codecs.huffman_decode(codecs.huffman_encode(data)) == data


def test_huffman_size_counts_the_table_and_approaches_the_entropy():
    data = lee_articles()[0].encode() * 4
    stream = codecs.huffman_encode(data)
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    entropy_bytes = -(p * np.log2(p)).sum() * len(data) / 8
    n_symbols = int((counts > 0).sum())
    table = 2 * n_symbols  # (symbol, length) pairs
    assert entropy_bytes + table < len(stream) <= entropy_bytes * 1.05 + table + 8
    # canonical code: prefix-free, and lengths satisfy Kraft with equality
    lengths = codecs.huffman_code_lengths(data)
    assert sum(2.0**-n for n in lengths.values()) == pytest.approx(1.0)


def test_random_bytes_round_trip_every_codec():
    rng = random.Random(0)
    for _ in range(20):
        data = bytes(rng.choice(b"abcde fgh\n") for _ in range(rng.randrange(1, 300)))
        sizes = codecs.compressed_sizes(data)  # raises if a round trip fails
        assert set(sizes) == set(codecs.CODECS) and min(sizes.values()) > 0


def test_quantise_is_positive_and_fits_the_total():
    probs = np.array([0.0, 1e-30, 0.25, 0.75 - 1e-30])
    freqs = codecs.quantise(probs)
    assert (freqs >= 1).all() and freqs.sum() <= 1 << codecs.FREQ_BITS


@pytest.mark.parametrize("seed", range(5))
def test_arithmetic_coder_round_trip_with_skewed_tables(seed):
    rng = np.random.default_rng(seed)
    symbols, tables = [], []
    for _ in range(300):
        probs = rng.dirichlet(np.full(50, 0.05))  # very peaked distributions
        tables.append(codecs._cumulative(codecs.quantise(probs)))
        symbols.append(int(rng.choice(50, p=probs)))
    enc = codecs.ArithmeticEncoder()
    ideal = 0.0
    for s, cum in zip(symbols, tables, strict=True):
        enc.encode(int(cum[s]), int(cum[s + 1]), int(cum[-1]))
        ideal -= math.log2((cum[s + 1] - cum[s]) / cum[-1])
    stream = enc.finish()
    dec = codecs.ArithmeticDecoder(stream)
    assert [dec.decode(cum) for cum in tables] == symbols
    assert len(stream) * 8 <= ideal + 16  # within two bits of the ideal code, plus padding


@pytest.mark.parametrize("name", ["tiny-gpt-neox", "tiny-llama", "tiny-mamba"])
def test_lm_arithmetic_coding_round_trip(name):
    lm = tiny(name)
    coder = codecs.LMCoder(lm)
    ids = lm.tokenizer(lee_articles()[2], add_special_tokens=False)["input_ids"][:24]
    stream, ideal = coder.encode(ids)
    assert coder.decode(stream) == ids
    assert coder.decode(coder.encode([])[0]) == []
    # the stream costs the model's cross-entropy plus a few bytes (count + termination)
    assert ideal / 8 < len(stream) <= ideal / 8 + 4


def test_lm_coder_first_token_uses_the_start_token():
    lm = tiny("tiny-gpt-neox")
    coder = codecs.LMCoder(lm)
    first = next(coder._distributions([]))
    logits = lm.model(input_ids=__import__("torch").tensor([[lm.start_token_id]])).logits[0, -1]
    assert np.allclose(first, logits.softmax(-1).double().numpy(), atol=1e-6)
