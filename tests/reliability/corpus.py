"""The hostile and odd inputs of the corpus test, built from bytes at test time (nothing binary is
checked in): GGUF headers with absurd counts, lengths, offsets and nesting; safetensors headers
with overlapping or out-of-range offsets, huge lengths and wrong dtypes; config.json with absurd
sizes, wrong types and unknown fields; corrupt tokenizers. Each builder writes one case into a
folder of its own and returns the path a user would open."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Callable

U8, I32, U32, F32, STRING, ARRAY, U64 = 0, 5, 4, 6, 8, 9, 10


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def tensor_info(name: str, dims: list[int], ttype: int = 0, offset: int = 0) -> bytes:
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ttype, offset)


def gguf(kvs: list[bytes], tensors: list[bytes] = (), data: bytes = b"", *, version: int = 3,
         n_tensors: int | None = None, n_kv: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(tensors)
    pad = -len(head) % 32
    return head + b"\0" * pad + data


ARCH = kv("general.architecture", STRING, s("llama"))
GOOD_TENSOR = tensor_info("token_embd.weight", [8, 4], 0, 0)  # 32 F32 values, 128 bytes


def _nested(depth: int) -> bytes:
    """An array of arrays `depth` deep, ending in one u8 array of one value."""
    inner = struct.pack("<IQ", U8, 1) + b"\x07"
    for _ in range(depth):
        inner = struct.pack("<IQ", ARRAY, 1) + inner
    return inner


GGUF_CASES: dict[str, bytes] = {
    "empty": b"",
    "magic-only": b"GGUF",
    "version-99": gguf([ARCH], version=99),
    "tensor-count-2^63": gguf([ARCH], n_tensors=2**63),
    "kv-count-2^62": gguf([ARCH], n_kv=2**62),
    "key-length-2^63": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**63) + b"x" * 64,
    "string-value-2^40": gguf([kv("general.name", STRING, struct.pack("<Q", 2**40) + b"abc")]),
    "array-count-2^60": gguf([kv("tokenizer.ggml.scores", ARRAY, struct.pack("<IQ", F32, 2**60) + b"\0" * 16)]),
    "string-array-count-2^50": gguf([kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 2**50) + s("a"))]),
    "nested-arrays-200-deep": gguf([kv("general.deep", ARRAY, _nested(200))]),
    "array-of-arrays-2^40": gguf([kv("general.deep", ARRAY, struct.pack("<IQ", ARRAY, 2**40) + _nested(1))]),
    "unknown-value-type": gguf([kv("general.odd", 77, b"\0" * 8)]),
    "array-of-unknown-type": gguf([kv("general.odd", ARRAY, struct.pack("<IQ", 99, 3) + b"\0" * 8)]),
    "alignment-0": gguf([ARCH, kv("general.alignment", U32, struct.pack("<I", 0))]),
    "alignment-not-power-of-2": gguf([ARCH, kv("general.alignment", U32, struct.pack("<I", 48))]),
    "tensor-offset-past-end": gguf([ARCH], [tensor_info("token_embd.weight", [8, 4], 0, 2**62)], b"\0" * 128),
    "tensor-size-past-end": gguf([ARCH], [tensor_info("token_embd.weight", [2**31, 2**31], 0, 0)], b"\0" * 128),
    "tensor-1000-dims": gguf([ARCH], [tensor_info("token_embd.weight", [1] * 1000, 0, 0)], b"\0" * 128),
    "tensor-dims-overflow-u64": gguf([ARCH], [tensor_info("t", [2**63, 2**63, 2**63, 2**63], 0, 0)], b"\0" * 128),
    "tensor-unknown-type": gguf([ARCH], [tensor_info("token_embd.weight", [8, 4], 999, 0)], b"\0" * 128),
    "tensor-not-whole-blocks": gguf([ARCH], [tensor_info("token_embd.weight", [7], 8, 0)], b"\0" * 128),
    "tensor-misaligned": gguf([ARCH], [tensor_info("token_embd.weight", [8, 4], 0, 3)], b"\0" * 160),
    "tensors-overlap": gguf([ARCH], [GOOD_TENSOR, tensor_info("output.weight", [8, 4], 0, 64)], b"\0" * 256),
    "tensor-name-2^63": gguf([ARCH], [struct.pack("<Q", 2**63) + b"x" * 40]),
    "truncated-mid-kv": gguf([ARCH, kv("general.name", STRING, s("x" * 100))])[:60],
    "non-utf8-template": gguf([ARCH, kv("tokenizer.chat_template", STRING, s(b"{{ \xff\xfe }}"))]),
    "bool-as-architecture": gguf([kv("general.architecture", U8, b"\x01")], [GOOD_TENSOR], b"\0" * 128),
}


def safetensors(header: bytes | dict, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _t(offsets, dtype="F32", shape=(2, 2)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


SAFETENSORS_CASES: dict[str, bytes] = {
    "header-length-2^63": safetensors({}, length=2**63),
    "header-length-past-end": safetensors({"a": _t((0, 16))}, b"\0" * 16, length=10_000),
    "header-not-json": safetensors(b"{not json", b""),
    "header-a-list": safetensors(b"[1, 2, 3]"),
    "header-nested-100000": safetensors(b"[" * 100_000 + b"]" * 100_000),
    "offsets-overlap": safetensors({"a": _t((0, 16)), "b": _t((8, 24))}, b"\0" * 24),
    "offsets-out-of-range": safetensors({"a": _t((0, 16)), "b": _t((16, 2**62))}, b"\0" * 32),
    "offsets-reversed": safetensors({"a": _t((16, 0))}, b"\0" * 16),
    "offsets-negative": safetensors({"a": _t((-16, 0))}, b"\0" * 16),
    "offsets-not-numbers": safetensors({"a": _t(("x", None))}, b"\0" * 16),
    "dtype-unknown": safetensors({"a": _t((0, 16), dtype="F128")}, b"\0" * 16),
    "dtype-not-a-string": safetensors({"a": _t((0, 16), dtype=["F32"])}, b"\0" * 16),
    "shape-does-not-match-bytes": safetensors({"a": _t((0, 16), shape=(1000, 1000))}, b"\0" * 16),
    "shape-huge": safetensors({"a": _t((0, 16), shape=(2**40, 2**40))}, b"\0" * 16),
    "shape-negative": safetensors({"a": _t((0, 16), shape=(-2, -2))}, b"\0" * 16),
    "metadata-a-list": safetensors({"__metadata__": [1], "a": _t((0, 16))}, b"\0" * 16),
    "entry-missing-keys": safetensors({"a": {"dtype": "F32"}}, b"\0" * 16),
}

#: config.json variants, each written over the tiny Llama's own folder.
CONFIG_CASES: dict[str, Callable[[dict], object]] = {
    "not-json": lambda c: b"{\"model_type\": ",
    "a-list": lambda c: [c],
    "layers-10^15": lambda c: {**c, "num_hidden_layers": 10**15, "hidden_size": 10**15, "max_position_embeddings": 10**18},
    "hidden-size-a-string": lambda c: {**c, "hidden_size": "big"},
    "heads-zero": lambda c: {**c, "num_attention_heads": 0, "num_key_value_heads": 0},
    "heads-negative": lambda c: {**c, "num_attention_heads": -4},
    "context-a-float": lambda c: {**c, "max_position_embeddings": 1e308},
    "context-a-dict": lambda c: {**c, "max_position_embeddings": {"x": 1}},
    "model-type-a-list": lambda c: {**c, "model_type": ["llama"]},
    "model-type-unknown": lambda c: {**c, "model_type": "llama-from-mars"},
    "architectures-a-number": lambda c: {**c, "architectures": 5},
    "quantization-config-a-string": lambda c: {**c, "quantization_config": "gptq"},
    "quantization-bits-a-string": lambda c: {**c, "quantization_config": {"quant_method": "gptq", "bits": "four"}},
    "text-config-a-string": lambda c: {**c, "text_config": "x"},
    "unknown-fields": lambda c: {**c, "x_unknown": {"deep": [1, 2, {"a": None}]}, "auto_map": {"AutoModel": "evil.Model"}},
    "nested-50000": lambda c: b"{\"a\": " + b"[" * 50_000 + b"]" * 50_000 + b"}",
}

TOKENIZER_CASES: dict[str, Callable[[Path], None]] = {
    "tokenizer-json-truncated": lambda d: (d / "tokenizer.json").write_bytes((d / "tokenizer.json").read_bytes()[:100]),
    "tokenizer-json-a-list": lambda d: (d / "tokenizer.json").write_text("[]"),
    "tokenizer-json-binary": lambda d: (d / "tokenizer.json").write_bytes(bytes(range(256)) * 4),
    "tokenizer-config-wrong-types": lambda d: (d / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": 5, "model_max_length": "x", "chat_template": 7})),
}


def write_gguf_case(folder: Path, name: str) -> Path:
    path = folder / f"{name}.gguf"
    path.write_bytes(GGUF_CASES[name])
    return path


def write_safetensors_case(folder: Path, name: str, tiny: Path) -> Path:
    """A model folder with the tiny Llama's config and the hostile weights file."""
    model = folder / f"st-{name}"
    model.mkdir()
    shutil.copy(tiny / "config.json", model / "config.json")
    (model / "model.safetensors").write_bytes(SAFETENSORS_CASES[name])
    return model


def write_config_case(folder: Path, name: str, tiny: Path) -> Path:
    model = folder / f"cfg-{name}"
    shutil.copytree(tiny, model)
    value = CONFIG_CASES[name](json.loads((tiny / "config.json").read_text()))
    (model / "config.json").write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())
    return model


def write_tokenizer_case(folder: Path, name: str, tiny: Path) -> Path:
    model = folder / name
    shutil.copytree(tiny, model)
    TOKENIZER_CASES[name](model)
    return model


def odd_folder_entries(folder: Path, tiny: Path) -> dict[str, Path]:
    """Symlink loops, a FIFO and unreadable files among real models, non-UTF-8 and very long names."""
    import os

    made = {}
    loop_a, loop_b = folder / "loop-a.gguf", folder / "loop-b.gguf"
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    made["symlink-loop-file"] = loop_a
    (folder / "loop-dir").mkdir()
    os.symlink(folder / "loop-dir", folder / "loop-dir" / "again")  # a folder containing itself
    made["symlink-loop-dir"] = folder / "loop-dir"
    os.symlink(folder / "nowhere.gguf", folder / "dangling.gguf")
    made["dangling-symlink"] = folder / "dangling.gguf"
    os.mkfifo(folder / "fifo.gguf")  # opening it would block forever
    made["fifo"] = folder / "fifo.gguf"
    unreadable = folder / "unreadable.gguf"
    unreadable.write_bytes(b"GGUF" + b"\0" * 60)
    unreadable.chmod(0)
    made["unreadable"] = unreadable
    raw_name = os.fsencode(folder) + b"/caf\xe9-\xff\xfe.gguf"  # Latin-1 bytes, not UTF-8
    with open(raw_name, "wb") as f:
        f.write(GGUF_CASES["tensor-count-2^63"])
    made["non-utf8-name"] = Path(os.fsdecode(raw_name))
    shutil.copytree(tiny, folder / ("m" * 250))  # a 250-byte folder name (255 is the limit)
    made["long-name"] = folder / ("m" * 250)
    deep = folder
    for i in range(12):  # a path over 3,000 bytes
        deep = deep / (f"{i:02d}" + "d" * 250)
    deep.mkdir(parents=True)
    (deep / "deep.gguf").write_bytes(b"GGUF")
    made["deep-path"] = deep / "deep.gguf"
    return made
