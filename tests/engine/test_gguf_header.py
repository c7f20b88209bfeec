"""The bounded header walk also reads what the catalog shows: every value and tensor info that
gguf.GGUFReader gives, without building the vocabulary (which the reader turns into one numpy
object per token)."""

from __future__ import annotations

import math

import gguf

from bitsmith.engine.formats.gguf.header import SHORT_ARRAY, read_gguf_header
from bitsmith.engine.paths import bundled_model_path


def test_values_and_tensor_infos_equal_gguf_readers_on_the_bundled_model():
    path = bundled_model_path()
    header, reader = read_gguf_header(path), gguf.GGUFReader(path)
    compared = 0
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):  # the reader's own entries for version and counts
            continue
        value = field.contents()
        if isinstance(value, list) and len(value) > SHORT_ARRAY:
            assert header.array_lengths[key] == len(value) and key not in header.fields, key  # counted, not kept
        elif isinstance(value, float):
            # Both decode the same 4 bytes; the reader returns numpy's float32 widened, we struct's.
            assert math.isclose(header.fields[key], value, rel_tol=1e-7), key
        else:
            assert header.fields[key] == value, key
        compared += 1
    assert compared == len(header.fields) + sum(1 for k in header.array_lengths if k not in header.fields)
    assert "tokenizer.ggml.tokens" in header.array_lengths and header.array_lengths["tokenizer.ggml.tokens"] == 49152
    assert [(t.name, tuple(int(x) for x in t.shape), int(t.tensor_type), int(t.n_elements), int(t.n_bytes),
             int(t.data_offset) - header.summary.data_start) for t in reader.tensors] == \
        [(t.name, t.shape, t.type, t.n_elements, t.n_bytes, t.offset) for t in header.tensors]
