"""engine/formats/safetensors_shards.py: shards written one tensor at a time read back exactly through
the safetensors library (which checks the header, the offsets and that the tensors tile the data),
whatever the dtypes and the order the tensors arrive in, and the writer keeps no tensor once added."""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bitsmith.engine.formats.safetensors_shards import INDEX_FILE, SINGLE_FILE, ShardWriter, plan_shards


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "model.norm.weight": torch.randn(7, generator=g).to(torch.float16),  # odd length: 14 bytes
        "model.layers.0.qweight": torch.randint(-2**31, 2**31 - 1, (3, 5), dtype=torch.int32, generator=g),
        "model.embed_tokens.weight": torch.randn(11, 3, generator=g).to(torch.bfloat16),
        "lm_head.weight": torch.randn(5, 3, generator=g),
        "model.layers.0.weight_int8": torch.randint(-128, 127, (9,), dtype=torch.int8, generator=g),
        "model.layers.0.g_idx": torch.arange(5, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "transposed": torch.randn(4, 6, generator=g).t(),  # not contiguous
    }


def _size(t):
    return t.numel() * t.element_size()


@pytest.mark.parametrize("max_bytes", [10**9, 150])  # one file; several shards with an index
def test_shards_read_back_exactly(tmp_path, max_bytes):
    tensors = _tensors()
    plan = plan_shards([(n, _size(t)) for n, t in tensors.items()], max_bytes)
    writer = ShardWriter(tmp_path, plan)
    for name, t in tensors.items():
        writer.add(name, t)
    files = writer.finish()
    loaded = {}
    for f in files:
        if f.endswith(".safetensors"):
            loaded.update(load_file(str(tmp_path / f)))
            with safe_open(str(tmp_path / f), "pt") as h:
                assert h.metadata() == {"format": "pt"}
    assert loaded.keys() == tensors.keys()
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t), name
    assert not list(tmp_path.glob("*.part")), "side files left behind"
    if len(plan) == 1:
        assert files == [SINGLE_FILE]
    else:
        index = json.loads((tmp_path / INDEX_FILE).read_text())
        assert index["metadata"]["total_size"] == sum(map(_size, tensors.values()))
        assert set(index["weight_map"]) == set(tensors)


def test_each_tensor_starts_aligned_to_its_element_size(tmp_path):
    tensors = _tensors()
    writer = ShardWriter(tmp_path, plan_shards([(n, _size(t)) for n, t in tensors.items()]))
    for name, t in tensors.items():
        writer.add(name, t)
    writer.finish()
    raw = (tmp_path / SINGLE_FILE).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0  # the data starts on an 8-byte boundary
    header = json.loads(raw[8:8 + n])
    for name, t in tensors.items():
        assert header[name]["data_offsets"][0] % t.element_size() == 0, name


def test_the_writer_holds_no_tensor_once_added(tmp_path):
    """A shard's tensors used to wait in memory until the shard was complete (up to 2 GiB)."""
    writer = ShardWriter(tmp_path, plan_shards([("a", 4096), ("b", 4096)]))
    a = torch.ones(1024)
    ref = weakref.ref(a)
    writer.add("a", a)
    del a
    gc.collect()
    assert ref() is None
    writer.add("b", torch.ones(1024))
    writer.finish()
    assert torch.equal(load_file(str(tmp_path / SINGLE_FILE))["a"], torch.ones(1024))


def test_an_unfinished_shard_leaves_no_side_file_after_close(tmp_path):
    writer = ShardWriter(tmp_path, plan_shards([("a", 4096), ("b", 4096)]))
    writer.add("a", torch.ones(1024))
    assert list(tmp_path.glob("*.part"))
    writer.close()
    assert not list(tmp_path.iterdir())
