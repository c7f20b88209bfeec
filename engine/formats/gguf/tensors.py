"""GGUF tensors -> Hugging Face tensors: names, dequantization and llama.cpp's rotary permute.

Names come from gguf's own table (`gguf.TensorNameMap`, which maps many checkpoint spellings to
one GGUF name). We ask it for the GGUF name of every parameter the transformers class expects,
which gives the reverse map without a hand-written list.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from ...errors import UnsupportedModel

OUTPUT_WEIGHT = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight"
#: Tensors llama.cpp derives from hyperparameters (rope scaling); transformers recomputes them.
#: Phi-3 longrope's factors, read into config.json's rope settings (hparams.py).
ROPE_FACTORS = {which: gguf.TENSOR_NAMES[t] + ".weight" for which, t in (
    ("long", gguf.MODEL_TENSOR.ROPE_FACTORS_LONG), ("short", gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT))}
DERIVED = {gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", *ROPE_FACTORS.values()}
_ARCH_BY_NAME = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}


def gguf_to_hf_names(
    gguf_names: list[str], hf_names: list[str], arch: str, n_blocks: int, path: Path
) -> dict[str, str]:
    """{GGUF name: HF name} for every tensor to import; raises if the two sets do not match."""
    name_map = gguf.get_tensor_name_map(_ARCH_BY_NAME[arch], n_blocks)
    wanted = {hf: name_map.get_name(hf, try_suffixes=(".weight", ".bias")) for hf in hf_names}
    present = set(gguf_names)
    unknown = sorted(present - set(wanted.values()) - DERIVED)
    if unknown:
        raise UnsupportedModel(f"{path}: tensors with no Hugging Face counterpart: {_few(unknown)}")
    # The output projection may be absent on purpose: the model then ties it to the embedding
    # (Gemma's architectures have no output tensor in gguf's table at all).
    missing = sorted(hf for hf, g in wanted.items()
                     if g not in present and g != OUTPUT_WEIGHT and hf != "lm_head.weight")
    if missing:
        raise UnsupportedModel(f"{path}: the GGUF has no tensor for {_few(missing)}")
    return {g: hf for hf, g in wanted.items() if g in present}


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def rope_heads(gguf_name: str, n_head: int, n_head_kv: int) -> int | None:
    """How many heads llama.cpp's converter permuted this tensor with, or None if it did not."""
    if gguf_name.endswith(".attn_q.weight"):
        return n_head
    if gguf_name.endswith(".attn_k.weight"):
        return n_head_kv
    return None


def unpermute_rope(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of rotary halves in a Q or K projection.

    The converter maps rows as reshape(heads, 2, half, ...).swapaxes(1, 2); swapping the same
    two axes of the (heads, half, 2, ...) view puts every row back.
    """
    rows = weight.shape[0]
    view = weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:])
    return view.swapaxes(1, 2).reshape(weight.shape)


def dequantize(tensor, path: Path) -> np.ndarray:
    """The tensor's values as float32 in Hugging Face's (out, in) order."""
    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError as exc:
        raise UnsupportedModel(
            f"{path}: tensor {tensor.name} uses {tensor.tensor_type.name}, which Bitsmith cannot dequantize"
        ) from exc
    values = np.asarray(values, dtype=np.float32)
    # Plain F32 tensors come back as read-only views of the mapped file; torch wants its own copy.
    return values if values.flags.writeable else values.copy()
