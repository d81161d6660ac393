"""Lossless codecs whose stream sizes stand beside the [mem] vectors (memcap.stages.baselines).

    from memcap.stages.codecs import compressed_sizes, LMCoder
    compressed_sizes(b"some text")        # {"zlib": 17, "bz2": 48, "lzma": 68, "huffman": 15}
    coder = LMCoder(lm)                   # arithmetic coding driven by the LM's own predictions
    stream, ideal_bits = coder.encode([17, 4, 99]); coder.decode(stream) == [17, 4, 99]

Every size is the length of a real stream that decodes back to the input (the tests check
each round trip): zlib, bz2 and lzma (xz container) from the standard library with their
headers and checksums; a canonical Huffman code over bytes whose code table is part of the
stream; and an integer arithmetic coder whose symbol frequencies are the LM's next-token
probabilities, quantised deterministically so that the decoder, running the same model on
the tokens it has decoded so far, rebuilds exactly the same frequencies.
"""

from __future__ import annotations

import bz2
import heapq
import inspect
import lzma
import zlib
from collections import Counter

import numpy as np
import torch

CODECS = ("zlib", "bz2", "lzma", "huffman")

# --- variable-length integers (stream headers) ----------------------------------------------


def _varint(n: int) -> bytes:
    """LEB128: 7 bits per byte, high bit set on every byte but the last."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


# --- canonical Huffman coding over bytes ------------------------------------------------------


def huffman_code_lengths(data: bytes) -> dict[int, int]:
    """Code length per byte value present (a lone symbol gets length 1)."""
    counts = Counter(data)
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    # (weight, tie-break, symbols): ties broken by insertion order, so lengths are deterministic
    heap = [(w, i, [s]) for i, (s, w) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    order = len(heap)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, order, s1 + s2))
        order += 1
    return lengths


def canonical_codes(lengths: dict[int, int]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length): codes assigned in (length, symbol) order (RFC 1951 style),
    so the lengths alone define the code and only they need to be stored."""
    codes, code, prev = {}, 0, 0
    for symbol, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev
        codes[symbol] = (code, length)
        code, prev = code + 1, length
    return codes


def huffman_encode(data: bytes) -> bytes:
    """Stream: varint(len(data)), varint(n symbols), n x (symbol, code length), then the
    code bits MSB first, zero-padded to a whole byte."""
    if not data:
        return _varint(0)
    lengths = huffman_code_lengths(data)
    if max(lengths.values()) > 255:  # needs ~ Fibonacci(255) bytes of input: never for text
        raise ValueError("Huffman code longer than 255 bits")
    codes = canonical_codes(lengths)
    header = _varint(len(data)) + _varint(len(lengths))
    header += bytes(b for s in sorted(lengths) for b in (s, lengths[s]))
    acc, n_bits = 0, 0
    for byte in data:
        code, length = codes[byte]
        acc = (acc << length) | code
        n_bits += length
    pad = -n_bits % 8
    return header + (acc << pad).to_bytes((n_bits + pad) // 8, "big")


def huffman_decode(stream: bytes) -> bytes:
    size, pos = _read_varint(stream, 0)
    if size == 0:
        return b""
    n_symbols, pos = _read_varint(stream, pos)
    lengths = {stream[pos + 2 * i]: stream[pos + 2 * i + 1] for i in range(n_symbols)}
    pos += 2 * n_symbols
    by_code = {(code, length): s for s, (code, length) in canonical_codes(lengths).items()}
    out = bytearray()
    code = length = 0
    for byte in stream[pos:]:
        for bit in range(7, -1, -1):
            code, length = (code << 1) | ((byte >> bit) & 1), length + 1
            symbol = by_code.get((code, length))
            if symbol is not None:
                out.append(symbol)
                if len(out) == size:
                    return bytes(out)
                code = length = 0
    raise ValueError("Huffman stream ended early")


# --- the standard library's compressors ---------------------------------------------------------

_COMPRESS = {
    "zlib": lambda b: zlib.compress(b, 9),
    "bz2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
    "huffman": huffman_encode,
}
_DECOMPRESS = {
    "zlib": zlib.decompress,
    "bz2": bz2.decompress,
    "lzma": lzma.decompress,
    "huffman": huffman_decode,
}


def compressed_sizes(data: bytes, verify: bool = True) -> dict[str, int]:
    """Bytes of each codec's stream; with verify, every stream is decoded and compared."""
    sizes = {}
    for name in CODECS:
        stream = _COMPRESS[name](data)
        if verify and _DECOMPRESS[name](stream) != data:
            raise AssertionError(f"{name} round trip failed")
        sizes[name] = len(stream)
    return sizes


# --- arithmetic coding --------------------------------------------------------------------------

STATE_BITS = 32
_FULL = (1 << STATE_BITS) - 1
_HALF = 1 << (STATE_BITS - 1)
_QUARTER = 1 << (STATE_BITS - 2)
FREQ_BITS = 24  # frequency total <= 2^24 < _QUARTER: every symbol keeps a non-empty range


def quantise(probs: np.ndarray, total: int = 1 << FREQ_BITS) -> np.ndarray:
    """Integer frequencies >= 1 from probabilities (float64, deterministic): the encoder and
    the decoder call this on bit-identical inputs and so get identical tables."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) >= total:
        raise ValueError(f"vocabulary of {len(probs)} does not fit a frequency total of {total}")
    return np.floor(probs * (total - len(probs))).astype(np.int64) + 1


class ArithmeticEncoder:
    """Integer arithmetic coder (Witten, Neal and Cleary 1987) with pending-bit carry."""

    def __init__(self):
        self.low, self.high, self.pending = 0, _FULL, 0
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)
        self.pending = 0

    def encode(self, cum_low: int, cum_high: int, total: int) -> None:
        span = self.high - self.low + 1
        self.high = self.low + span * cum_high // total - 1
        self.low = self.low + span * cum_low // total
        while True:
            if self.high < _HALF:
                self._emit(0)
            elif self.low >= _HALF:
                self._emit(1)
                self.low -= _HALF
                self.high -= _HALF
            elif self.low >= _QUARTER and self.high < _HALF + _QUARTER:
                self.pending += 1  # straddles the middle: decide the bit later
                self.low -= _QUARTER
                self.high -= _QUARTER
            else:
                break
            self.low, self.high = 2 * self.low, 2 * self.high + 1

    def finish(self) -> bytes:
        """Two more bits pin a value inside the final range; zero-padded to whole bytes."""
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


class ArithmeticDecoder:
    def __init__(self, stream: bytes):
        self.bits = [(byte >> (7 - i)) & 1 for byte in stream for i in range(8)]
        self.pos = 0
        self.low, self.high, self.value = 0, _FULL, 0
        for _ in range(STATE_BITS):
            self.value = (self.value << 1) | self._bit()

    def _bit(self) -> int:
        bit = self.bits[self.pos] if self.pos < len(self.bits) else 0  # zeros past the end
        self.pos += 1
        return bit

    def decode(self, cumulative: np.ndarray) -> int:
        """The symbol s with cumulative[s] <= target < cumulative[s + 1]; updates the state."""
        total = int(cumulative[-1])
        span = self.high - self.low + 1
        target = ((self.value - self.low + 1) * total - 1) // span
        symbol = int(np.searchsorted(cumulative, target, side="right")) - 1
        cum_low, cum_high = int(cumulative[symbol]), int(cumulative[symbol + 1])
        self.high = self.low + span * cum_high // total - 1
        self.low = self.low + span * cum_low // total
        while True:
            if self.high < _HALF:
                pass
            elif self.low >= _HALF:
                self.low -= _HALF
                self.high -= _HALF
                self.value -= _HALF
            elif self.low >= _QUARTER and self.high < _HALF + _QUARTER:
                self.low -= _QUARTER
                self.high -= _QUARTER
                self.value -= _QUARTER
            else:
                break
            self.low, self.high = 2 * self.low, 2 * self.high + 1
            self.value = (self.value << 1) | self._bit()
        return symbol


def _cumulative(freqs: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(freqs)])


class LMCoder:
    """Arithmetic coding of token ids with a frozen LM's next-token distributions.

    The context starts with the model's start-of-document token (BOS, else EOS), so the
    first text token is coded with the model's start-token distribution. Encoder and
    decoder feed the model the same tokens through the same calls (one token at a time
    with its key/value cache where the model has one, else the whole prefix each step), so
    their probabilities are bit-identical. Stream: varint(number of tokens) + coder bits.
    """

    def __init__(self, lm):
        self.lm = lm
        # Mamba keeps its state in `cache_params`: it recomputes the prefix instead
        self.cached = "past_key_values" in inspect.signature(lm.model.forward).parameters

    @torch.no_grad()
    def _distributions(self, tokens):
        """Yields the next-token probabilities (float64 numpy) before each token of `tokens`
        (a list the caller may extend while iterating: the decoder appends as it goes)."""
        model, device = self.lm.model, self.lm.device
        context = [self.lm.start_token_id]
        past = None
        i = 0
        while True:
            if self.cached:
                step = context if past is None else context[-1:]
                out = model(input_ids=torch.tensor([step], device=device), past_key_values=past, use_cache=True)
                past = out.past_key_values
            else:
                out = model(input_ids=torch.tensor([context], device=device), use_cache=False)
            logits = out.logits[0, -1].float()
            yield torch.softmax(logits, dim=-1).double().cpu().numpy()
            if i >= len(tokens):
                return
            context.append(tokens[i])
            i += 1

    def encode(self, ids: list[int]) -> tuple[bytes, float]:
        """(stream, ideal bits = sum of -log2 p over the tokens)."""
        encoder = ArithmeticEncoder()
        ideal = 0.0
        for token, probs in zip(ids, self._distributions(ids), strict=False):
            freqs = quantise(probs)
            cum = _cumulative(freqs)
            encoder.encode(int(cum[token]), int(cum[token + 1]), int(cum[-1]))
            ideal -= float(np.log2(max(probs[token], 1e-300)))
        return _varint(len(ids)) + encoder.finish(), ideal

    def decode(self, stream: bytes) -> list[int]:
        n, pos = _read_varint(stream, 0)
        decoder = ArithmeticDecoder(stream[pos:])
        ids: list[int] = []
        if n == 0:
            return ids
        for probs in self._distributions(ids):
            ids.append(decoder.decode(_cumulative(quantise(probs))))
            if len(ids) == n:
                return ids
        return ids
