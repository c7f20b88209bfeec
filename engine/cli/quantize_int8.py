"""The INT8 and bitsandbytes branch of `bitsmith quantize`: --method int8 | bnb-int8 | bnb-nf4.

The lead wires it into cmd_quantize: `add_int8_arguments(parser)` adds --threshold and --quant-type,
and `run_quantize_int8(args)` runs the job. It reads args.source (or args.model), args.out,
args.method, and, when present, args.threshold, args.quant_type, args.overwrite, args.device,
args.quiet.
"""

from __future__ import annotations

import argparse

from ..config import Method, QuantizeConfig
from ..errors import InvalidInput
from ..events import run_job
from ..units import human_bytes
from .progress import ProgressPrinter

METHODS = (Method.INT8, Method.BNB_INT8, Method.BNB_NF4)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=6.0,
                        help="bnb-int8: activation outlier threshold of LLM.int8 (default: 6.0; 0 turns it off)")
    parser.add_argument("--quant-type", dest="quant_type", choices=("nf4", "fp4"), default="nf4",
                        help="bnb-nf4: 4-bit data type (default: nf4)")


def config_from_args(args: argparse.Namespace) -> QuantizeConfig:
    source = getattr(args, "source", None) or getattr(args, "model", None)
    if not source:
        raise InvalidInput("no model folder given to quantize")
    cfg = QuantizeConfig(
        source=source, out=args.out, method=args.method, device=getattr(args, "device", "auto") or "auto",
        extra={"overwrite": bool(getattr(args, "overwrite", False)),
               "threshold": getattr(args, "threshold", 6.0),
               "quant_type": getattr(args, "quant_type", None) or "nf4"},
    )
    if cfg.method not in METHODS:
        raise InvalidInput(f"run_quantize_int8 handles {', '.join(m.value for m in METHODS)}, not {cfg.method.value}")
    return cfg


def run_quantize_int8(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if cfg.method is Method.INT8:
        from ..quant.int8 import quantize_int8 as job  # deferred: jobs import torch and transformers
    else:
        from ..quant.bnb import quantize_bnb as job
    result = run_job(job(cfg), on_event=ProgressPrinter(quiet=bool(getattr(args, "quiet", False))))
    print(f"{result.out}  {human_bytes(result.size)}  {result.bits_per_weight:.2f} bits/weight  "
          f"({cfg.method.value}; report: {result.report.name})")
    return 0
