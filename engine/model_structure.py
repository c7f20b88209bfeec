"""What every path needs to know about a model, derived from its own module tree and config rather
than from a list of families: the decoder blocks, the linear layers to quantize (and those to keep),
the experts of a mixture-of-experts block, and the expert counts.

Experts: transformers 5 keeps a MoE block's experts as fused 3-D parameters (`gate_up_proj`
[E, 2I, H], `down_proj` [E, H, I]) while checkpoints on disk hold one 2-D weight per expert
(`mlp.experts.N.gate_proj.weight`). `unfuse_experts` swaps each fused container for `ExpertList`,
a ModuleList of per-expert MLPs with nn.Linear layers that computes the same function and whose
parameter names are the checkpoint's. Quantizers then see each expert as ordinary linears fed only
the tokens the router sends to it, and the quantized runtimes swap those linears like any other.
"""

from __future__ import annotations

import torch
from torch import nn

from .architectures import expert_counts
from .errors import UnsupportedModel


class ExpertMLP(nn.Module):
    """One expert: down(act(gate(x)) * up(x))."""

    def __init__(self, hidden: int, inner: int, act_fn: nn.Module):
        super().__init__()
        with torch.device("meta"):
            self.gate_proj = nn.Linear(hidden, inner, bias=False)
            self.up_proj = nn.Linear(hidden, inner, bias=False)
            self.down_proj = nn.Linear(inner, hidden, bias=False)
        self.act_fn = act_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class ExpertList(nn.ModuleList):
    """Per-expert MLPs called like transformers' fused experts: (hidden [T, H], top-k expert index
    [T, k], top-k weight [T, k]) -> [T, H]. Experts the router picks for no token are not run."""

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor):
        out = torch.zeros_like(hidden_states)
        for e, expert in enumerate(self):
            token, slot = torch.where(top_k_index == e)
            if token.numel() == 0:
                continue
            y = expert(hidden_states[token]) * top_k_weights[token, slot, None]
            out.index_add_(0, token, y.to(out.dtype))
        return out


def _is_fused_experts(module: nn.Module) -> bool:
    params = dict(module.named_parameters(recurse=False))
    return "gate_up_proj" in params and "down_proj" in params and params["gate_up_proj"].dim() == 3


def unfuse_experts(model: nn.Module) -> int:
    """Replace every fused-experts module with an ExpertList (meta parameters); returns how many.

    Only the layout transformers calls standard is accepted (gate and up concatenated, not
    transposed, no biases); another one is refused in one line rather than misread."""
    count = 0
    for name, module in list(model.named_modules()):
        if not _is_fused_experts(module):
            continue
        odd = [flag for flag, standard in (("has_bias", False), ("is_transposed", False),
                                           ("is_concatenated", True), ("has_gate", True),
                                           ("has_post_expert_norm", False))
               if getattr(module, flag, standard) != standard]
        n_exp, two_inner, hidden = module.gate_up_proj.shape
        if odd or tuple(module.down_proj.shape) != (n_exp, hidden, two_inner // 2):
            raise UnsupportedModel(f"{name}: experts stored in a layout Bitsmith does not read "
                                   f"({', '.join(odd) or 'unexpected shapes'})")
        experts = ExpertList(ExpertMLP(hidden, two_inner // 2, module.act_fn) for _ in range(n_exp))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, experts)
        count += 1
    return count


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(prefix such as "model.layers.", the ModuleList) of the decoder blocks: the longest
    ModuleList whose children are all of one class (the blocks of every causal LM we know)."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and not isinstance(module, ExpertList) and len(module):
            if len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise UnsupportedModel(f"{type(model).__name__}: no decoder blocks (a list of identical layers) found")
    return f"{best[0]}.", best[1]


def router_like(block: nn.Module) -> set[str]:
    """Linears of a MoE block that route rather than transform: an output width equal to the
    expert count or 1 (routers, shared-expert gates). They stay in high precision."""
    counts = {len(m) for m in block.modules() if isinstance(m, ExpertList)}
    if not counts:
        return set()
    return {n for n, m in block.named_modules()
            if isinstance(m, nn.Linear) and (m.out_features in counts or m.out_features == 1)}


def quantizable_linears(model: nn.Module) -> list[str]:
    """Full names of the Linear layers inside the decoder blocks that quantizers convert: every
    nn.Linear there except routers. Embeddings and the output layer are outside the blocks."""
    prefix, blocks = decoder_blocks(model)
    names = []
    for i, block in enumerate(blocks):
        kept = router_like(block)
        names += [f"{prefix}{i}.{n}" for n, m in block.named_modules() if isinstance(m, nn.Linear) and n not in kept]
    return names


def kept_modules(model: nn.Module) -> list[str]:
    """Linear-like modules left in full precision: embeddings, the output layer, routers."""
    output = model.get_output_embeddings()
    kept = [name for name, m in model.named_modules() if m is output or isinstance(m, nn.Embedding)]
    prefix, blocks = decoder_blocks(model)
    for i, block in enumerate(blocks):
        kept += [f"{prefix}{i}.{n}" for n in sorted(router_like(block))]
        kept += [f"{prefix}{i}.{n}" for n, m in block.named_modules() if type(m).__name__.endswith("Router")]
    return kept
