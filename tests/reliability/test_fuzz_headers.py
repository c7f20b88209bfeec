"""A fuzzing pass (Hypothesis) over the GGUF and safetensors header readers: valid small files
mutated (bytes flipped, counts and lengths overwritten with extreme values, cut short, grown) and
raw bytes behind a valid magic. Every reader may refuse a file only with a typed one-line
EngineError; anything else (an IndexError from numpy, a MemoryError, a hang the deadline-free run
would show as a stall) is a failure. The fast sample (700 examples each) runs every suite; the
long run (BITSMITH_RELIABILITY=1) takes hundreds of times more examples."""

from __future__ import annotations

import json
import struct
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitsmith.engine.catalog.readers import _gguf_header_info
from bitsmith.engine.catalog.safetensors_header import read_header
from bitsmith.engine.errors import EngineError
from bitsmith.engine.formats.gguf.header import check_gguf_header
from bitsmith.engine.formats.gguf.source import open_gguf as import_open_gguf

from . import corpus
from .conftest import FULL
from .helpers import record

EXAMPLES = {"gguf": 30_000 if FULL else 700, "safetensors": 30_000 if FULL else 700}
SETTINGS = dict(deadline=None, database=None, derandomize=not FULL, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _seed_gguf() -> bytes:
    """A small valid GGUF: every value kind, a string array (a vocabulary), and two tensors."""
    kvs = [
        corpus.ARCH,
        corpus.kv("general.name", corpus.STRING, corpus.s("fuzz")),
        corpus.kv("llama.block_count", corpus.U32, struct.pack("<I", 1)),
        corpus.kv("llama.rope.freq_base", corpus.F32, struct.pack("<f", 1e4)),
        corpus.kv("tokenizer.ggml.tokens", corpus.ARRAY, struct.pack("<IQ", corpus.STRING, 3) + b"".join(
            corpus.s(t) for t in ("<s>", "a", "b"))),
        corpus.kv("tokenizer.ggml.scores", corpus.ARRAY, struct.pack("<IQ", corpus.F32, 3) + b"\0" * 12),
        corpus.kv("tokenizer.chat_template", corpus.STRING, corpus.s("{{ messages }}")),
    ]
    tensors = [corpus.tensor_info("token_embd.weight", [8, 4], 0, 0), corpus.tensor_info("output_norm.weight", [8], 0, 128)]
    return corpus.gguf(kvs, tensors, b"\x01" * 160)


def _seed_safetensors() -> bytes:
    header = {"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "F16", "shape": [4], "data_offsets": [16, 24]}}
    return corpus.safetensors(json.dumps(header).encode(), b"\x01" * 24)


EXTREMES = [0, 1, 3, 2**31 - 1, 2**32 - 1, 2**32, 2**62, 2**63, 2**64 - 1]


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "u64", "u32", "cut", "grow", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind in ("u64", "u32"):
            width = 8 if kind == "u64" else 4
            value = draw(st.sampled_from(EXTREMES) | st.integers(0, 2**(8 * width) - 1)) % 2**(8 * width)
            data[at:at + width] = value.to_bytes(width, "little")
        elif kind == "cut":
            del data[at:]
        elif kind == "grow":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[at:at + 8] = draw(st.binary(min_size=0, max_size=8))
    return bytes(data)


def _only_typed_errors(read, path: Path) -> str:
    try:
        read(path)
        return "ok"
    except EngineError as exc:
        assert "\n" not in str(exc)
        return "refused"


class _Tally:
    def __init__(self):
        self.counts, self.started = {}, time.monotonic()

    def add(self, outcome: str):
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


@pytest.mark.parametrize("fmt", ["gguf", "safetensors"])
def test_fuzzed_headers_are_read_or_refused_in_one_line(fmt):
    seed = _seed_gguf() if fmt == "gguf" else _seed_safetensors()
    tally = _Tally()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz.{fmt}"
        path.write_bytes(seed)  # the seed itself is valid
        if fmt == "gguf":
            check_gguf_header(path)
        else:
            read_header(path)

        raw = st.binary(min_size=0, max_size=512).map(lambda b: (b"GGUF\x03\0\0\0" if fmt == "gguf" else b"") + b)

        def catalog_header(p: Path):  # what a scan reads of a GGUF, without its per-file cache
            return _gguf_header_info.__wrapped__(str(p), str(p), 0, 0)

        @settings(max_examples=EXAMPLES[fmt], **SETTINGS)
        @given(mutated(seed) | raw)
        def run(data: bytes):
            path.write_bytes(data)
            if fmt == "gguf":
                outcomes = {_only_typed_errors(check_gguf_header, path), _only_typed_errors(catalog_header, path),
                            _only_typed_errors(import_open_gguf, path)}
            else:
                outcomes = {_only_typed_errors(read_header, path)}
            tally.add("/".join(sorted(outcomes)))

        run()
    seconds = time.monotonic() - tally.started
    record("fuzz", format=fmt, examples=sum(tally.counts.values()), seconds=round(seconds, 1), outcomes=tally.counts)
    assert tally.counts.get("refused", 0) > 0  # the mutations do reach the checks
