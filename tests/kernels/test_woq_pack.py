"""GPTQ v1 and AWQ GEMM packing: round trips for every bit width, and the exact bit positions."""

from __future__ import annotations

import pytest
import torch

from bitsmith.kernels.woq_pack import (AWQ_ORDER, pack_awq, pack_cols, pack_rows, unpack_awq, unpack_cols,
                              unpack_rows)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rows_and_cols_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    values = torch.randint(0, 2**bits, (96, 40), generator=g)
    packed = pack_rows(values, bits)
    assert packed.dtype == torch.int32 and packed.shape == (96 * bits // 32, 40)
    assert torch.equal(unpack_rows(packed, bits), values.int())
    packed_c = pack_cols(values.t(), bits)
    assert packed_c.shape == (40, 96 * bits // 32)
    assert torch.equal(unpack_cols(packed_c, bits), values.t().int())


def test_all_ones_fill_every_bit():
    for bits in (2, 3, 4, 8):
        packed = pack_rows(torch.full((32, 1), 2**bits - 1), bits)
        assert torch.all(packed == -1)  # 0xFFFFFFFF as int32


def test_three_bit_values_straddle_word_boundaries():
    values = torch.zeros(32, 1, dtype=torch.int64)
    values[10] = 0b111  # bits 30..32 of the stream: two in word 0, one in word 1
    values[21] = 0b101  # bits 63..65: one in word 1, two in word 2
    words = (pack_rows(values, 3).long() & 0xFFFFFFFF)[:, 0].tolist()
    assert words == [0b11 << 30, (1 << 31) | 0b1, 0b10]


def test_four_bit_order_is_sequential():
    values = torch.arange(8).reshape(8, 1)  # value j at bits 4j..4j+3 of one word
    assert int(pack_rows(values, 4)[0, 0]) == 0x76543210


def test_awq_round_trip_and_interleaved_order():
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 16, (24, 64), generator=g)
    packed = pack_awq(values)
    assert packed.shape == (24, 8) and packed.dtype == torch.int32
    assert torch.equal(unpack_awq(packed), values.int())
    row = torch.arange(8).reshape(1, 8)  # column k holds value k
    word = int(pack_awq(row)[0, 0]) & 0xFFFFFFFF
    assert [(word >> (4 * i)) & 0xF for i in range(8)] == list(AWQ_ORDER)


def test_bad_widths_are_refused():
    with pytest.raises(ValueError):
        pack_rows(torch.zeros(20, 1), 3)
    with pytest.raises(ValueError):
        pack_awq(torch.zeros(2, 12))
    with pytest.raises(ValueError):
        pack_rows(torch.zeros(8, 1), 5)
