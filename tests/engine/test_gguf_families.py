"""GGUF export of every family, on the tiny random models of tests/fixtures/tiny_families.py.

- F16 equals llama.cpp's own converter (convert_hf_to_gguf.py, set up from the llama-cpp-python
  sdist) tensor for tensor (names, types, bytes), and carries every metadata key it writes with
  the same value, for every family in every run;
- Q4_K_M (through the importance matrix and llama.cpp's quantizer) loads in llama.cpp and predicts
  what the F16 file predicts.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from tests.engine.gguf_export_helpers import export, llama_logits, token_ids, top1_agreement
from tests.fixtures.gguf_compare import f16_differences
from tests.fixtures.llama_cpp_converter import convert_all, converter_missing
from tests.fixtures.tiny_families import FAMILY_CONFIGS, build_tiny, families_under_test

FAMILIES = families_under_test()  # Q4_K_M and imports: every family with BITSMITH_ALL_FAMILIES=1
#: F16 equality runs for every family in every suite run: measured +57 s over the core families
#: alone at load ~2 on 2 cores (107 s against 50 s, with the info test), mostly our export and the
#: converter, 2-4 s per family; at load 6-7 the same selection took 527 s.
F16_FAMILIES = list(FAMILY_CONFIGS)


@pytest.fixture(scope="module")
def family_dirs(tiny):
    return {fam: tiny(fam) for fam in F16_FAMILIES}  # the session's builds, shared with test_families.py


@pytest.fixture(scope="module")
def llama_cpp_f16(family_dirs, tmp_path_factory):
    """llama.cpp's converter's F16 of every family, converted in one process."""
    why = converter_missing()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("llama-cpp-f16")
    jobs = [(folder, out / f"{fam}.gguf") for fam, folder in family_dirs.items()]
    refused = convert_all(jobs)
    return {fam: (path, refused.get(path)) for fam, (_, path) in zip(family_dirs, jobs)}


@pytest.fixture(scope="module")
def our_f16(family_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("bitsmith-f16")
    return {fam: export(folder, out / f"{fam}.gguf", "F16").out for fam, folder in family_dirs.items()}


@pytest.mark.parametrize("family", F16_FAMILIES)
def test_f16_equals_llama_cpp_converter(family, llama_cpp_f16, our_f16):
    ref_path, refused = llama_cpp_f16[family]
    assert refused is None, f"llama.cpp's converter refused the tiny {family}: {refused}"
    # Names, types, shapes and bytes of every tensor, every key it writes with the same value.
    assert f16_differences(our_f16[family], ref_path) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_q4_k_m_loads_in_llama_cpp(family, family_dirs, our_f16, tmp_path):
    result = export(family_dirs[family], tmp_path / f"{family}.gguf", "Q4_K_M", samples=2, seq_len=32)
    assert result.imatrix is not None and result.imatrix.is_file()
    ids = token_ids(family_dirs[family], 32)
    f16, q4 = llama_logits(our_f16[family], ids), llama_logits(result.out, ids)
    assert np.isfinite(q4).all()
    # The tiny models' 64-wide rows take Q5_0/Q8_0 (K-quant blocks need 256), about 3% relative
    # error per weight; on these random models that moves the top token at 0-30% of positions
    # (measured: 0.73-0.98 agreement). A misplaced tensor or a wrong layout gives chance level
    # (1 in 49152), so half the positions separates the two by far.
    assert top1_agreement(f16, q4) >= 0.5


def test_family_llama_cpp_lacks_is_refused_at_once(tmp_path):
    """OPT: transformers builds it, llama.cpp has no architecture for it. The export stops before
    any work, in one line naming the family and the paths that do work for it."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    from bitsmith.engine.errors import UnsupportedModel

    config = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                       max_position_embeddings=32, word_embed_proj_dim=16)
    torch.manual_seed(0)
    OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    with pytest.raises(UnsupportedModel) as err:
        export(tmp_path / "opt", tmp_path / "out.gguf", "Q4_K_M")
    message = str(err.value)
    assert "opt" in message and "gguf-export" in message and "gptq" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opt"]  # nothing written, not even a calibration


# The families whose import needs more than the common keys and names: experts unstacked per
# expert (Mixtral also renamed to its checkpoint names, Qwen3-MoE's renormalised routing), Gemma's
# norms and window settings, Phi-3's fused projections and window (and longrope's factors, kept by
# llama.cpp as tensors), Granite's multipliers (a family outside the table has its own test below). The
# others go through the same code as the Llama import tests (each import re-reads a 49152-token
# vocabulary, seconds apiece, so not every family is repeated here).
IMPORT_FAMILIES = [f for f in ("mixtral", "qwen3_moe", "gemma2", "gemma3_text", "phi3", "phi3-longrope", "granite")
                   if f in FAMILIES]


@pytest.mark.parametrize("family", IMPORT_FAMILIES)
def test_f16_imports_back_to_the_source(family, family_dirs, our_f16, tmp_path):
    from bitsmith.engine.config import ImportConfig
    from bitsmith.engine.events import run_job
    from bitsmith.engine.formats.gguf.import_hf import import_gguf
    from tests.engine.gguf_export_helpers import hf_logits

    out = run_job(import_gguf(ImportConfig(our_f16[family], tmp_path / family, dtype="float32"))).out_dir
    ids = token_ids(family_dirs[family], 32)
    source, imported = hf_logits(family_dirs[family], ids), hf_logits(out, ids)
    # The only change on the way is float16 rounding of the weights (relative 2^-11): measured
    # largest logit change 0.01-0.03 on logits spread over several units, so every position keeps
    # its top token; a wrong setting (window, soft-cap, norm shift, expert order) moves logits by
    # whole units.
    assert top1_agreement(source, imported) == 1.0
    assert float(np.abs(source - imported).max()) < 0.25


def _imports_back(src, gguf_path, out):
    from bitsmith.engine.config import ImportConfig
    from bitsmith.engine.events import run_job
    from bitsmith.engine.formats.gguf.import_hf import import_gguf
    from tests.engine.gguf_export_helpers import hf_logits

    result = run_job(import_gguf(ImportConfig(gguf_path, out, dtype="float32")))
    ids = token_ids(src, 32)
    return result, hf_logits(src, ids), hf_logits(result.out_dir, ids)


def test_a_family_outside_the_table_imports_back(tmp_path):
    """StarCoder 2: no line of Bitsmith names it. Its GGUF (llama.cpp's architecture of the same
    name) imports as transformers' model of that name, its config derived from the common keys
    (LayerNorm epsilon under the name its config class uses)."""
    src = build_tiny("starcoder2", tmp_path / "tiny-starcoder2")
    f16 = export(src, tmp_path / "starcoder2.gguf", "F16").out
    result, source, imported = _imports_back(src, f16, tmp_path / "back")
    assert result.architecture == "starcoder2"
    # As for the families above: float16 rounding only, so every top token is kept; a wrong
    # setting (a missing bias, another norm epsilon or activation) moves logits by whole units.
    assert top1_agreement(source, imported) == 1.0
    assert float(np.abs(source - imported).max()) < 0.25


def test_an_architecture_transformers_lacks_is_refused_in_one_line(tmp_path):
    """A GGUF of a llama.cpp architecture neither in the table nor a transformers model type
    ("command-r"; transformers calls it "cohere"): one line naming it, and nothing written."""
    from bitsmith.engine.config import ImportConfig
    from bitsmith.engine.errors import UnsupportedModel
    from bitsmith.engine.events import run_job
    from bitsmith.engine.formats.gguf.import_hf import import_gguf

    path = tmp_path / "command-r.gguf"
    writer = gguf.GGUFWriter(path, "command-r")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModel) as err:
        run_job(import_gguf(ImportConfig(path, tmp_path / "out", dtype="float32")))
    message = str(err.value)
    assert "'command-r' is neither in Bitsmith's family table nor a causal LM transformers knows" in message
    assert "\n" not in message and not (tmp_path / "out").exists()
    # Where the user picks the source: every conversion (each imports the GGUF first) says why not.
    from bitsmith.engine.catalog import inspect

    info = inspect(path)
    assert info.ok and info.family == "command-r"
    assert set(info.unavailable) == {"gguf-export", "gptq", "awq", "rtn", "int8", "bnb"}
    assert all("'command-r' is neither" in why for why in info.unavailable.values())
