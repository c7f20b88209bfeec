"""Which linears of a decoder block belong together, read from the block itself rather than from a
list of layer names per family.

One forward of the first calibration batch with hooks on every module records, for each linear,
the very tensor it was fed and which module produced that tensor. From that:
- input groups: linears fed the same tensor (q/k/v after the input norm, Phi-3's fused qkv alone,
  gate/up after the post-attention norm, each expert's gate/up), in the order they run;
- GPTQ's true-sequential order: the input groups in call order, with the experts of one MoE
  container merged per role (every expert's gate/up, then every expert's down: they never feed
  each other, so one capture pass serves them all);
- AWQ's scale groups: an input group whose input a norm produced exactly (the norm's weight can
  absorb the scales), plus linear -> linear pairs whose product is linear in the first one's output
  (`up -> down`, `v -> o`), the one piece of naming knowledge kept here (CHAINS).
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

from ...model_structure import ExpertList

#: (producer, consumer) leaf names of sibling linears where the consumer's input is the producer's
#: output times something independent of it (SwiGLU's up -> down; attention's v -> o, per head).
CHAINS = (("up_proj", "down_proj"), ("v_proj", "o_proj"))


@dataclass
class BlockGroups:
    sequential: list[list[str]]  # GPTQ order
    norm_groups: list[tuple[str, list[str]]] = field(default_factory=list)  # (norm, linears) for AWQ
    chains: list[tuple[str, list[str]]] = field(default_factory=list)  # (linear, [linear]) for AWQ
    unused: list[str] = field(default_factory=list)  # linears the first batch never reached
    experts: set[str] = field(default_factory=set)  # linears of routed experts
    narrow_chains: list[tuple[str, str]] = field(default_factory=list)  # widths differ (grouped-query v -> o)
    shared_input: dict[str, str] = field(default_factory=dict)  # linear -> the first linear fed its very input


def _expert_role(name: str, containers: list[str]) -> tuple[str, str] | None:
    for c in containers:
        if name.startswith(c + "."):
            return c, name.rsplit(".", 1)[1]
    return None


@torch.no_grad()
def trace_groups(block: nn.Module, linears: dict[str, nn.Linear], run_first_batch) -> BlockGroups:
    """`run_first_batch(hooks)` runs the block on one calibration batch with forward hooks by name."""
    modules = dict(block.named_modules())
    produced: dict[int, str] = {}
    fed: dict[str, int] = {}
    order: list[str] = []
    keep: list[torch.Tensor] = []  # holding every traced tensor keeps its id unique during the pass

    def producer(name):
        def hook(_m, _inputs, output):
            if isinstance(output, torch.Tensor):
                produced.setdefault(id(output), name)
                keep.append(output)
        return hook

    def consumer(name):
        def hook(_m, inputs, _output):
            if name not in fed:
                fed[name] = id(inputs[0])
                order.append(name)
                keep.append(inputs[0])
        return hook

    hooks = {n: producer(n) for n, m in modules.items() if n and n not in linears and not list(m.children())}
    for n in linears:
        hooks[n] = consumer(n)
    run_first_batch(hooks)

    by_input: dict[int, list[str]] = {}
    for n in order:
        by_input.setdefault(fed[n], []).append(n)
    groups = list(by_input.values())  # first-call order

    containers = [n for n, m in modules.items() if isinstance(m, ExpertList)]
    sequential: list[list[str]] = []
    role_slot: dict[tuple[str, str], list[str]] = {}
    for g in groups:
        role = _expert_role(g[0], containers)
        if role is None:
            sequential.append(list(g))
            continue
        key = (role[0], "+".join(sorted(n.rsplit(".", 1)[1] for n in g)))
        if key not in role_slot:
            role_slot[key] = []
            sequential.append(role_slot[key])
        role_slot[key].extend(g)
    unused = [n for n in linears if n not in fed]
    for n in unused:  # experts the batch did not reach join their siblings' stage
        role = _expert_role(n, containers)
        slot = next((v for k, v in role_slot.items() if role and k[0] == role[0] and role[1] in k[1].split("+")), None)
        if slot is not None:
            slot.append(n)
        else:
            sequential.append([n])

    norm_groups = []
    for g in groups:
        prev = produced.get(fed[g[0]])
        if prev is not None and _is_norm(modules[prev], linears[g[0]].in_features):
            norm_groups.append((prev, list(g)))
    chains, narrow = [], []
    for n, layer in linears.items():
        parent, _, leaf = n.rpartition(".")
        for first, second in CHAINS:
            if leaf == first:
                other = f"{parent}.{second}" if parent else second
                if other in linears and linears[other].in_features == layer.out_features:
                    chains.append((n, [other]))
                elif other in linears:
                    narrow.append((n, other))
    experts = {n for n in linears if _expert_role(n, containers)}
    shared = {n: g[0] for g in groups for n in g[1:]}
    return BlockGroups(sequential, norm_groups, chains, unused, experts, narrow, shared)


def _is_norm(module: nn.Module, width: int) -> bool:
    """A normalisation with a per-channel weight of the consumer's input width (RMSNorm, LayerNorm)."""
    weight = getattr(module, "weight", None)
    return (not isinstance(module, nn.Linear) and isinstance(weight, torch.Tensor) and weight.dim() == 1
            and weight.shape[0] == width and "norm" in type(module).__name__.lower())


@torch.no_grad()
def norm_offset(norm: nn.Module) -> float:
    """1.0 for norms computing (1 + w) * x_hat (Gemma), 0.0 for w * x_hat: found by running the norm
    with w = 0 on a probe input, so no family list is needed."""
    saved = norm.weight.detach().clone()
    try:
        norm.weight.zero_()
        probe = torch.ones(1, saved.shape[0], device=saved.device, dtype=saved.dtype)
        return 1.0 if float(norm(probe).abs().max()) > 0.5 else 0.0
    finally:
        norm.weight.copy_(saved)


#: runner -> {block layout: groups}: the blocks of a dense model are alike, so one trace serves all.
_TRACED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def block_groups(step) -> BlockGroups:
    """The groups of a BlockStep's block (engine.layers), traced on its first calibration batch.

    A block whose module tree (names and types) matches an earlier block's of the same run reuses
    that trace, saving a forward pass of one batch per block, unless the trace involved routed
    experts (which experts a batch reaches differs from block to block)."""
    layout = tuple((n, type(m).__name__) for n, m in step.block.named_modules())
    seen = _TRACED.setdefault(step.runner, {})
    if layout in seen:
        return copy.deepcopy(seen[layout])
    traced = trace_groups(step.block, step.linears(), lambda hooks: step.forward(hooks=hooks, batches=1))
    if not traced.experts and not traced.unused:
        seen[layout] = copy.deepcopy(traced)
    return traced
