"""Every GGUF file type the linked llama.cpp quantizes, and the importance matrix the very low-bit
ones need (issue 15: types that need one are offered only with one)."""

from __future__ import annotations

import shutil

import gguf
import pytest

from bitsmith.engine.config import GGUFType, QuantizeConfig
from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.quant.gguf.llama_quantize import LLAMA_FTYPES
from tests.engine.gguf_export_helpers import export, load_llama
from tests.fixtures.tiny_families import bundled_tokenizer_dir


def test_every_type_has_a_writer_and_a_size():
    import llama_cpp

    for t in GGUFType:
        assert t.nominal_bits > 0
        if t.by_llama_cpp:
            # The enum value is llama.cpp's own: LLAMA_FTYPE_MOSTLY_<name>.
            assert LLAMA_FTYPES[t] == getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{t.value}"), t


@pytest.mark.parametrize("gguf_type", [t for t in GGUFType if t.needs_imatrix])
def test_types_needing_an_imatrix_refuse_without_one(gguf_type, tmp_path):
    with pytest.raises(InvalidInput, match="importance matrix"):
        QuantizeConfig(source=tmp_path, out=tmp_path / "x.gguf", method="gguf", gguf_type=gguf_type, imatrix=False)
    # Left to its default, the importance matrix is on for them.
    assert QuantizeConfig(source=tmp_path, out=tmp_path / "x.gguf", method="gguf", gguf_type=gguf_type).use_imatrix


@pytest.fixture(scope="module")
def wide_llama(tmp_path_factory):
    """One layer 256 wide: the width of one K-quant/IQ block, so those types apply to its matrices
    (the tiny families' 64-wide rows all fall back to 32-wide legacy blocks)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("wide") / "wide-llama"
    folder.mkdir()
    for item in bundled_tokenizer_dir().iterdir():
        shutil.copy(item, folder / item.name)
    config = AutoConfig.for_model("llama", hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
                                  max_position_embeddings=256, tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


# One of each kind: an I-quant that needs the importance matrix, ternary, MXFP4, a K-quant mix.
@pytest.mark.parametrize("gguf_type,block_type", [("IQ2_XXS", "IQ2_XXS"), ("TQ1_0", "TQ1_0"),
                                                  ("IQ4_NL", "IQ4_NL"), ("Q3_K_L", "Q3_K")])
def test_llama_cpp_types_load(gguf_type, block_type, wide_llama, tmp_path):
    result = export(wide_llama, tmp_path / "m.gguf", gguf_type, samples=2, seq_len=32)
    assert result.type_counts.get(block_type, 0) >= 1  # the type's own blocks, not only fallbacks
    reader = gguf.GGUFReader(result.out)
    assert reader.get_field("general.file_type").contents() == LLAMA_FTYPES[GGUFType(gguf_type)]
    llm = load_llama(result.out, n_ctx=64)
    llm.eval([1, 2, 3])
    assert llm.scores[2].max() > llm.scores[2].min()  # it computed something, not a constant
