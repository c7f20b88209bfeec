"""What GPTQ, AWQ and RTN share: resolved settings, the default group size, the checks against the
model's shapes made before any work starts, and the per-layer result handed to the writers."""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import torch

from ...config import AWQ_ROUNDINGS, Method, QuantizeConfig, WeightOnlySettings
from ...errors import InvalidInput
from ...formats.hf_folder import HFFolder
from ...model_shape import default_group_size  # one rule for the plan and the job



@dataclass
class LayerResult:
    """One quantized linear layer: codes and grids in the neutral form, and how far it moved."""

    quant: "GroupQuant"  # noqa: F821 - kernels.woq_quantize.GroupQuant
    rel_error: float | None  # ||(Wq - W) X||^2 / ||W X||^2 on the calibration inputs, if any
    bias: torch.Tensor | None = None


def block_linear_shapes(src: HFFolder) -> dict[str, tuple[int, int]]:
    """Full weight name -> (out, in) of every linear the quantizers convert (derived from the
    model's module tree: block linears and per-expert weights, not routers)."""
    return {name: tuple(src.shapes[name]) for name in src.structure.quantizable}


def _pack_multiple(bits: int) -> int:
    """Values whose count must divide a packed dim at `bits` (32 for 3-bit: 3 whole words)."""
    return 32 // gcd(bits, 32) if bits == 3 else 32 // bits


def layout_fits(out: int, inp: int, bits: int, group_size: int) -> bool:
    """Whether the GPTQ layout holds a layer of this shape at these settings (check_shapes' rule)."""
    pack = _pack_multiple(bits)
    return (group_size == -1 or inp % group_size == 0) and inp % pack == 0 and out % pack == 0


def resolve_settings(cfg: QuantizeConfig, src: HFFolder) -> tuple[WeightOnlySettings, str | None]:
    """Settings for this model, checked against every layer's shape before any work.

    Returns the settings and, when the group size was chosen here, a sentence saying why."""
    shapes = block_linear_shapes(src)
    if not shapes:
        raise InvalidInput(f"{src.path}: no linear layers found in its decoder blocks")
    note = None
    group = cfg.group_size
    if group is None:
        group = default_group_size([i for _, i in shapes.values()])
        widths = sorted({i for _, i in shapes.values()})
        note = f"group size {group}: the largest of 128/64/32 dividing every input width {widths}"
    extra = cfg.extra or {}
    s = WeightOnlySettings(
        method=cfg.method, bits=cfg.bits, group_size=group, sym=cfg.sym,
        desc_act=cfg.desc_act if cfg.method is Method.GPTQ else False,
        static_groups=bool(extra.get("static_groups", True)), damp=float(extra.get("damp", 0.01)),
        mse_grid=int(extra.get("mse_grid", WeightOnlySettings.mse_grid)),
        true_sequential=bool(extra.get("true_sequential", True)),
        awq_grid=int(extra.get("awq_grid", 20)), awq_clip=bool(extra.get("awq_clip", True)),
        awq_rounding=str(extra.get("awq_rounding", WeightOnlySettings.awq_rounding)),
        overrides=tuple(tuple(o) for o in extra.get("layer_overrides", ())),  # a size budget's (quant/gptq/budget.py)
    )
    if s.overrides and cfg.method is not Method.GPTQ:
        raise InvalidInput(f"per-layer bits and group sizes are a GPTQ setting, not {cfg.method.value}'s")
    if cfg.method is Method.AWQ and cfg.sym:
        raise InvalidInput("awq keeps a zero point (asymmetric); --sym is not available for it")
    if s.awq_rounding not in AWQ_ROUNDINGS:
        raise InvalidInput(f"AWQ rounding must be one of {', '.join(AWQ_ROUNDINGS)}, not {s.awq_rounding!r}")
    if not 0 < s.damp < 1:
        raise InvalidInput(f"dampening must be between 0 and 1, not {s.damp}")
    check_shapes(shapes, s, lambda name: src.module_name(name)[:-len(".weight")])
    return s, note


def check_shapes(shapes: dict[str, tuple[int, int]], s: WeightOnlySettings, module=None) -> None:
    """Refuse, in one line naming the first layer that does not fit, settings the layout cannot hold.
    `module`: weight name -> module name, to look up per-layer settings (s.overrides)."""
    for name, (out, inp) in shapes.items():
        bits, group = s.layer_setting(module(name)) if module and s.overrides else (s.bits, s.group_size)
        pack = _pack_multiple(bits)
        if group != -1 and inp % group:
            raise InvalidInput(f"{name}: group size {group} does not divide its input width {inp}",
                               suggestion=f"use group size {default_group_size([i for _, i in shapes.values()])}")
        if s.method is Method.AWQ:
            if out % 8:
                raise InvalidInput(f"{name}: AWQ packs 8 outputs a word; its output width {out} is not a multiple of 8")
        elif inp % pack or out % pack:
            raise InvalidInput(f"{name}: {bits}-bit GPTQ packing needs widths that are multiples of {pack}, "
                               f"not {inp} x {out}")
