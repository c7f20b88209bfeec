"""Which tensors a GGUF export writes, under which names, in which layout and type.

Names come from gguf's own HF -> GGUF table. Types follow llama.cpp's conventions:
- 1-D tensors, norms and anything that is not a `.weight` stay F32 (llama.cpp computes with them
  in F32 and its quantizer never touches them);
- every other weight takes the requested type, except that the output projection (or the token
  embeddings when they double as it) is kept at Q8_0 for the 4- and 5-bit legacy types, where
  llama.cpp's quantizer would use Q6_K (which our kernels do not have) and itself falls back to
  Q8_0 whenever the rows do not fit Q6_K's 256-wide blocks;
- a row that is not a whole number of blocks falls back to F16, as llama.cpp's converter does;
- expert routers stay F32, as llama.cpp's converter and quantizer keep them.

Mixture-of-experts checkpoints store one matrix per expert (`...experts.3.up_proj.weight`);
llama.cpp wants one 3-D tensor per kind (`blk.N.ffn_up_exps.weight`), the experts stacked in
order, so a plan may name several checkpoint tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import prod

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as QT

from ...errors import UnsupportedModel
from .arch import traits
from .export_hparams import HParams, llama3_rope_factors, longrope_factors
from ..hf_folder import HFFolder

#: Types written by Bitsmith's kernels.
KERNEL_TYPES = (QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q5_1, QT.Q5_0, QT.Q4_1, QT.Q4_0)
_LOW_BIT_LEGACY = (QT.Q5_1, QT.Q5_0, QT.Q4_1, QT.Q4_0)
#: Checkpoint entries that are buffers, not weights, and that llama.cpp recomputes itself.
_SKIPPED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
_BLOCK = re.compile(r"^blk\.(\d+)\.")
_EXPERT = re.compile(r"^(.*\.experts)\.(\d+)\.(.*)$")
#: Tensors llama.cpp keeps in F32 whatever the file type (the experts' routers).
_ALWAYS_F32 = re.compile(r"\.ffn_gate_inp(_shexp)?\.weight$")

OUTPUT = "output.weight"
TOKEN_EMBD = "token_embd.weight"
ROPE_FREQS = "rope_freqs.weight"
ROPE_LONG = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight"
ROPE_SHORT = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight"


def computed_tensors(hp: HParams) -> dict[str, np.ndarray]:
    """Tensors llama.cpp wants that no checkpoint holds, computed from config.json: Llama 3's
    `rope_freqs`, Phi-3 longrope's `rope_factors_long`/`_short` (always F32)."""
    out = {}
    freqs = llama3_rope_factors(hp)
    if freqs is not None:
        out[ROPE_FREQS] = freqs
    factors = longrope_factors(hp)
    if factors:
        out[ROPE_LONG], out[ROPE_SHORT] = factors["long"], factors["short"]
    return out


@dataclass(frozen=True)
class TensorPlan:
    gguf_name: str
    hf_names: tuple[str, ...]  # () for tensors Bitsmith computes (computed_tensors); several: stacked experts
    shape: tuple[int, ...]  # row-major, as torch and numpy see it
    qtype: QT
    rope_heads: int | None = None  # heads of the Q/K rotary permutation, None when stored as is
    shift: float = 0.0  # added to every value (Gemma's norms)

    @property
    def nbytes(self) -> int:
        return prod(gguf.quant_shape_to_byte_shape(self.shape, self.qtype))


def gguf_arch_enum(arch: str) -> gguf.MODEL_ARCH:
    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return enum
    raise UnsupportedModel(f"gguf does not know the architecture '{arch}'")


def plan_tensors(src: HFFolder, hp: HParams, default: QT, arch: str) -> list[TensorPlan]:
    """Every tensor of the output of llama.cpp architecture `arch`, in llama.cpp's customary
    order, each with its type."""
    names = gguf.get_tensor_name_map(gguf_arch_enum(arch), hp.n_layer)
    shift = traits(arch).norm_shift
    plans: list[TensorPlan] = []
    for name, values in computed_tensors(hp).items():
        plans.append(TensorPlan(name, (), tuple(values.shape), QT.F32))
    groups = _group_experts(src)
    has_output = any(names.get_name(n, try_suffixes=(".weight",)) == OUTPUT for n in groups)
    tied = hp.tied_embeddings or not has_output
    for hf_name, members in groups.items():
        if _SKIPPED.search(hf_name):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UnsupportedModel(f"{src.path}: tensor '{hf_name}' has no GGUF name for {arch}")
        if gguf_name == OUTPUT and hp.tied_embeddings:
            continue  # a saved copy of the tied embeddings; llama.cpp reuses token_embd instead
        shape = src.shapes[members[0]]
        if len(members) > 1:
            shape = (len(members), *shape)
        plans.append(TensorPlan(gguf_name, members, shape, tensor_type(gguf_name, shape, default, tied),
                                _rope_heads(src, hp, gguf_name),
                                shift if hf_name.endswith("norm.weight") else 0.0))
    plans.sort(key=_order)
    return plans


def _group_experts(src: HFFolder) -> dict[str, tuple[str, ...]]:
    """{name to map: checkpoint tensors}; per-expert matrices are grouped under their name with
    the expert index left out, ordered by that index (gguf's table knows the grouped names)."""
    groups: dict[str, dict[int, str]] = {}
    for name in src.shapes:
        m = _EXPERT.match(name)
        if m:
            groups.setdefault(f"{m.group(1)}.{m.group(3)}", {})[int(m.group(2))] = name
        else:
            groups[name] = {0: name}
    out = {}
    for key, members in groups.items():
        if sorted(members) != list(range(len(members))):
            raise UnsupportedModel(f"{src.path}: experts of '{key}' are not numbered 0..{len(members) - 1}")
        out[key] = tuple(members[i] for i in range(len(members)))
    return out


def tensor_type(gguf_name: str, shape: tuple[int, ...], default: QT, tied: bool) -> QT:
    if (len(shape) < 2 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight")
            or _ALWAYS_F32.search(gguf_name)):
        return QT.F32
    qtype = default
    is_output = gguf_name == OUTPUT or (tied and gguf_name == TOKEN_EMBD)
    if is_output and default in _LOW_BIT_LEGACY:
        qtype = QT.Q8_0
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block:
        qtype = QT.F16
    return qtype


def _rope_heads(src: HFFolder, hp: HParams, gguf_name: str) -> int | None:
    """Llama-style checkpoints keep each head's rotary halves apart; llama.cpp wants them interleaved."""
    if not src.family.rope_permute:
        return None
    if gguf_name.endswith("attn_q.weight") or gguf_name.endswith("attn_q.bias"):
        return hp.n_head
    if gguf_name.endswith("attn_k.weight") or gguf_name.endswith("attn_k.bias"):
        return hp.n_head_kv
    return None


def _order(p: TensorPlan):
    m = _BLOCK.match(p.gguf_name)
    if m:
        return (1, int(m.group(1)), p.gguf_name)
    first = p.gguf_name in (ROPE_FREQS, TOKEN_EMBD)
    return (0 if first else 2, 0, p.gguf_name)


def permute_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Per head, [x0..x(d/2-1), y0..y(d/2-1)] rows -> [x0, y0, x1, y1, ...], the layout llama.cpp's
    rotary embedding expects. Works on weights (rows, cols) and on biases (rows,)."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_tensor(src: HFFolder, hp: HParams, plan: TensorPlan) -> torch.Tensor:
    """The float32 values of one output tensor, in llama.cpp's layout."""
    if not plan.hf_names:
        return torch.from_numpy(computed_tensors(hp)[plan.gguf_name])
    if len(plan.hf_names) == 1:
        t = src.tensor(plan.hf_names[0]).to(torch.float32)
    else:
        t = torch.stack([src.tensor(name).to(torch.float32) for name in plan.hf_names])
    if plan.rope_heads:
        t = permute_rope(t, plan.rope_heads)
    if plan.shift:
        t = t + plan.shift
    return t.contiguous()


def encode(tensor: torch.Tensor, qtype: QT) -> np.ndarray:
    """The bytes GGUFWriter stores for `tensor` in `qtype`: the one place Bitsmith's kernels are called."""
    from bitsmith.kernels import gguf_quantize

    return gguf_quantize(tensor, qtype)
