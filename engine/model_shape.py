"""The sizes that decide what a conversion costs, read from headers (safetensors or GGUF)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod
from pathlib import Path

from .architectures import Family, expert_counts
from .formats.gguf.header import MAGIC as GGUF_MAGIC, read_gguf_header
from .errors import InvalidInput
from .gguf_size import is_head_tensor

# Weights outside the decoder blocks, which weight-only methods leave at the source precision.
_OUTSIDE_BLOCKS = ("embed_tokens", "lm_head", "token_embd", "output.weight")


GROUP_CANDIDATES = (128, 64, 32)


def default_group_size(in_features) -> int:
    """128, or the largest of 128/64/32 that divides every quantized layer's input width (SmolLM2's
    576 takes 64); -1 (one group per row) when none does. One rule for the plan and the job."""
    for g in GROUP_CANDIDATES:
        if all(n % g == 0 for n in in_features):
            return g
    return -1


@dataclass(frozen=True)
class ModelShape:
    path: Path
    is_gguf: bool
    n_params: int
    block_linear_params: int  # 2-D weights inside decoder blocks: what GPTQ/AWQ/INT8 quantize
    layers: int
    hidden: int
    in_features: tuple[int, ...]  # distinct input widths of the block linears
    largest_block_params: int
    bytes_on_disk: int
    matrices: tuple[tuple[int, int, bool], ...] = ()  # (values, row width, is the head) per 2-D tensor
    family: Family | None = None  # a Hugging Face folder's family (None for GGUF files)
    moe: bool = False  # routed experts (a Hugging Face folder's config says so)
    # (rows, input width) of every 2-D weight in the largest decoder block: GPTQ's solve costs
    # input width² per row and input width³ per layer, which the parameter count does not tell
    block_linears: tuple[tuple[int, int], ...] = ()
    # which of them are routed experts' weights, and the share of the tokens each expert sees
    # (experts used per token / experts): an expert's statistics, replayed outputs and GPTQ solve
    # follow its own tokens, and one left with fewer tokens than its input width is rounded to
    # nearest (quant/gptq/layer.py), so the block's cost is not its parameter count's
    block_linear_routed: tuple[bool, ...] = ()
    expert_share: float = 1.0

    @property
    def other_params(self) -> int:
        return self.n_params - self.block_linear_params

    @property
    def block_expert_linears(self) -> tuple[tuple[int, int], ...]:
        return tuple(w for w, routed in zip(self.block_linears, self.block_linear_routed) if routed)

    @property
    def active_params(self) -> int:
        """Parameters one token's forward pass multiplies by: all of a dense model's; a MoE model's
        without the experts its router does not pick."""
        experts = self.layers * sum(rows * n for rows, n in self.block_expert_linears)
        return int(self.n_params - experts * (1 - self.expert_share))

    def block_linear_tokens(self, tokens: int) -> list[tuple[int, int, float]]:
        """(rows, input width, tokens it sees) for each weight of the largest block, given the
        calibration tokens: a routed expert sees its share of them (on average: a trained router
        balances its experts)."""
        routed = self.block_linear_routed or (False,) * len(self.block_linears)
        return [(rows, n, tokens * self.expert_share if r else float(tokens))
                for (rows, n), r in zip(self.block_linears, routed)]


def _block_index(name: str) -> int | None:
    for marker in ("layers.", "blk."):
        if marker in name:
            rest = name.split(marker, 1)[1]
            head = rest.split(".", 1)[0]
            if head.isdigit():
                return int(head)
    return None


def _summarize(path: Path, is_gguf: bool, shapes: dict[str, tuple[int, ...]], in_dim: int, size: int) -> ModelShape:
    """`in_dim` is the axis holding a linear's input width (HF stores [out, in]; GGUF ne is [in, out])."""
    linear = 0
    ins: set[int] = set()
    per_block: dict[int, int] = {}
    linears: dict[int, list[tuple[int, int]]] = {}
    routed: dict[int, list[bool]] = {}
    hidden = 0
    for name, shape in shapes.items():
        n = prod(shape)
        idx = _block_index(name)
        if idx is not None:
            per_block[idx] = per_block.get(idx, 0) + n
            if len(shape) == 2 and not any(k in name for k in _OUTSIDE_BLOCKS):
                linear += n
                ins.add(int(shape[in_dim]))
                linears.setdefault(idx, []).append((int(shape[1 - in_dim]), int(shape[in_dim])))
                # one matrix per routed expert; a shared expert (`shared_expert.`) sees every token
                routed.setdefault(idx, []).append(".experts." in name)
        elif len(shape) == 2 and ("embed" in name or "token_embd" in name):
            hidden = int(shape[1] if not is_gguf else shape[0])
    tied = not any(name in ("lm_head.weight", "output.weight") for name in shapes)
    matrices = tuple((prod(s), int(s[in_dim]), is_head_tensor(name, tied)) for name, s in shapes.items() if len(s) == 2)
    largest = max(per_block, key=per_block.get, default=None)
    return ModelShape(path, is_gguf, sum(prod(s) for s in shapes.values()), linear, len(per_block), hidden,
                      tuple(sorted(ins)), max(per_block.values(), default=0), size, matrices,
                      block_linears=tuple(linears.get(largest, ())), block_linear_routed=tuple(routed.get(largest, ())))


def model_shape(path: Path | str) -> ModelShape:
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder")
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise InvalidInput(f"{path}: not a GGUF file or model folder")
        header = read_gguf_header(path)  # tensor infos only: the vocabulary is not built
        shapes = {t.name: t.shape for t in header.tensors}
        return _summarize(path, True, shapes, 0, path.stat().st_size)
    from .formats.hf_folder import open_hf_folder

    src = open_hf_folder(path)
    size = sum(f.stat().st_size for f in set(src.files.values()))
    shape = _summarize(path, False, src.shapes, 1, size)
    counts = expert_counts(src.config)
    return replace(shape, family=src.family, moe=counts is not None,
                   expert_share=counts[1] / counts[0] if counts else 1.0,
                   block_linear_routed=shape.block_linear_routed if counts else ())
