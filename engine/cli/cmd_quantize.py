"""`bitsmith quantize MODEL --method ... --out PATH`: every conversion, from a Hugging Face folder or
a GGUF file (imported first). The plan (output size, memory, disk, time) is printed before the run.
"""

from __future__ import annotations

import argparse
import sys

from .. import api
from ..api import AWQ_ROUNDINGS, GGUFType, Method, QuantizeConfig, WeightOnlySettings, human_bytes, run_job
from .cmd_info import resolve_model_arg
from .progress import ProgressPrinter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quantize", help="convert a model to GGUF, GPTQ, AWQ, RTN, INT8 or bitsandbytes",
        description="Convert a Hugging Face model folder (or a GGUF file, imported first) to a quantized model.",
    )
    p.add_argument("model", metavar="MODEL", help="a Hugging Face model folder, a GGUF file, or 'bundled'")
    p.add_argument("--method", default=Method.GGUF.value, choices=[m.value for m in Method],
                   help="quantization method (default: gguf)")
    p.add_argument("--type", dest="gguf_type", default=GGUFType.Q4_K_M.value, metavar="TYPE",
                   help="GGUF file type: " + ", ".join(t.value for t in GGUFType) + " (default: Q4_K_M)")
    p.add_argument("--target-bpw", type=float, metavar="BPW", default=None,
                   help="GGUF: the best file at this many bits per weight (whole file), with each tensor's type "
                        "chosen by its measured sensitivity; instead of --type. GPTQ: bits per weight of the "
                        "quantized layers as written (codes, scales, zeros, g_idx), each layer's bits and group "
                        "size chosen by its sensitivity; instead of --bits/--group-size")
    p.add_argument("--target-size", metavar="SIZE", default=None,
                   help="GGUF or GPTQ: the best output that fits SIZE (e.g. 3.5GB, 800MB, 2GiB; a GPTQ folder "
                        "counted whole); instead of --type or --bits/--group-size")
    p.add_argument("--out", required=True, metavar="PATH", help="output file or folder (for GGUF: or an existing folder to put it in)")
    p.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    p.add_argument("--restart", action="store_true",
                   help="GPTQ/AWQ/RTN: start at block 1 even if an interrupted run of the same conversion left a "
                        "checkpoint (by default the same command continues from its last finished block)")
    p.add_argument("--imatrix", choices=("on", "off"), default=None,
                   help="GGUF importance matrix (default: on for types of 4 bits and fewer)")
    p.add_argument("--calib", metavar="SRC", default=None,
                   help="calibration text: a file (text or JSONL), 'builtin', or 'model' (written by the model) "
                        "(default: builtin)")
    p.add_argument("--samples", type=int, default=128, help="calibration windows (default: 128)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per calibration window (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing calibration windows (default: 0)")
    p.add_argument("--bits", type=int, default=4, help="GPTQ/RTN bits: 2, 3, 4 or 8 (default: 4)")
    p.add_argument("--group-size", type=int, default=None,
                   help="GPTQ/AWQ/RTN group size: -1, 32, 64 or 128 (default: the largest of 128/64/32 that fits)")
    p.add_argument("--desc-act", action=argparse.BooleanOptionalAction, default=True,
                   help="GPTQ: quantize columns by decreasing activation, with static groups (default: on)")
    p.add_argument("--sym", action="store_true", help="GPTQ/RTN: symmetric quantization")
    p.add_argument("--threshold", type=float, default=6.0,
                   help="bnb-int8: LLM.int8 activation outlier threshold (default: 6.0)")
    p.add_argument("--awq-rounding", choices=AWQ_ROUNDINGS, default=WeightOnlySettings.awq_rounding,
                   help="awq: round the scaled weights with GPTQ's error feedback (gptq, the default) or to "
                        "nearest after a clipping search (nearest, the AWQ paper's own); the file is the same format")
    p.add_argument("--quant-type", choices=("nf4", "fp4"), default="nf4", help="bnb-nf4: 4-bit data type")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default: auto)")
    p.add_argument("--evaluate", metavar="TEXT", default=None,
                   help="then evaluate the output against the source on this held-out text file ('builtin': "
                        "Bitsmith's held-out sample) and save the figures in its report card")
    p.add_argument("--quiet", action="store_true", help="no plan or progress output")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> QuantizeConfig:
    imatrix = {"on": True, "off": False, None: None}[args.imatrix]
    return QuantizeConfig(
        source=resolve_model_arg(args.model), out=args.out, method=args.method, gguf_type=args.gguf_type,
        bits=args.bits, group_size=args.group_size, sym=args.sym, desc_act=args.desc_act, imatrix=imatrix,
        calibration=args.calib or "builtin", samples=args.samples, seq_len=args.seq_len, device=args.device,
        seed=args.seed, extra={"overwrite": args.overwrite, "threshold": args.threshold,
                               "quant_type": args.quant_type, "awq_rounding": args.awq_rounding},
        target_bpw=args.target_bpw, target_bytes=parse_size(args.target_size) if args.target_size else None,
        restart=args.restart,
    )


_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'3.5GB', '800 MB', '2GiB' -> bytes; one line naming the text when it is not a size."""
    import re

    from ..api import InvalidInput

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?I?B?)\s*", text.upper())
    if not m or m.group(2) not in _UNITS:
        raise InvalidInput(f"'{text}' is not a size; write it like 3.5GB, 800MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def print_plan(plan, stream=None) -> None:
    from ..api import machine_gflops

    stream = stream or sys.stderr
    print("Plan:", file=stream)
    for i, step in enumerate(plan.steps, 1):
        print(f"  {i}. {step}", file=stream)
    print(f"  output about {human_bytes(plan.output_bytes)}; peak memory about {human_bytes(plan.peak_memory_bytes)} "
          f"({human_bytes(plan.memory_available_bytes)} available); disk {human_bytes(plan.disk_needed_bytes)} "
          f"({human_bytes(plan.disk_free_bytes)} free); time about {plan.seconds:.0f} s "
          f"(at {machine_gflops():.0f} GFLOP/s measured)", file=stream)
    for note in plan.notes:
        print(f"  note: {note}", file=stream)
    for warning in plan.warnings:
        print(f"  warning: {warning}", file=stream)


def refuse_existing_output(cfg: QuantizeConfig) -> None:
    """Say so before planning, so that the refusal is the only thing printed."""
    from pathlib import Path

    from ..api import InvalidInput, output_path

    out = output_path(cfg)
    if out.exists() and not cfg.extra.get("overwrite"):
        raise InvalidInput(f"{out} already exists", suggestion="choose another name or allow overwriting (--overwrite)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    refuse_existing_output(cfg)
    evaluate_on = None
    if args.evaluate:
        from ..api import heldout_text

        evaluate_on = heldout_text(args.evaluate)
    if not args.quiet:
        print_plan(api.plan(cfg, evaluate_on))
    try:
        result = run_job(api.convert(cfg, evaluate_on=evaluate_on), on_event=ProgressPrinter(quiet=args.quiet))
    except KeyboardInterrupt:  # Ctrl-C: a cancel says what is kept itself; an interrupt cannot
        note = api.checkpoint_note(cfg)
        if note:
            print(f"bitsmith: {note}", file=sys.stderr)
        raise
    bpw = getattr(result, "bits_per_weight", None)
    parts = [str(result.out), human_bytes(result.size)]
    if bpw:
        parts.append(f"{bpw:.2f} bits/weight")
    if getattr(result, "type_counts", None):
        parts.append("(" + ", ".join(f"{n} {t}" for t, n in result.type_counts.items()) + ")")
    if getattr(result, "summary", None) and result.summary.get("mean") is not None:
        parts.append(f"mean layer error {result.summary['mean']:.3g}")
    parts.append(f"{result.seconds:.0f} s")
    print("  ".join(parts))
    if evaluate_on is not None:
        from ..api import read_report_card, report_card_lines

        for key, value in report_card_lines({"evaluation": (read_report_card(result.out) or {}).get("evaluation")}):
            print(f"  {key}: {value}")
    return 0
