"""`bitsmith eval MODEL --text FILE [--source SRC]`: perplexity, and against a source the figures of
llama.cpp's `llama-perplexity --kl-divergence` (PPL ratio, KLD and Δp percentiles, RMS Δp, same top
p) from the source's stored distributions, with a verdict in words, bits per weight and size."""

from __future__ import annotations

import json
import math

from .. import api
from ..api import distribution_lines, heldout_text, human_bytes, run_job
from .cmd_info import resolve_model_arg
from .progress import ProgressPrinter


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure a model's quality on held-out text, against its source")
    p.add_argument("model", help="a GGUF file or a model folder ('bundled' for the bundled model)")
    p.add_argument("--text", required=True, help="held-out text: a UTF-8 file, JSONL with a 'text' field, or 'builtin' (Bitsmith's sample)")
    p.add_argument("--source", help="the model it was converted from; without it only perplexity is measured")
    p.add_argument("--ctx", type=int, default=512, help="window length in tokens (default 512)")
    p.add_argument("--windows", type=int, help="evaluate only the first N windows, for a quick estimate")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto, for transformers models (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    p.add_argument("--save", action="store_true", help="merge the figures into the model's report card")
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = api.EvalSettings(
        model=resolve_model_arg(args.model), text=heldout_text(args.text),
        source=resolve_model_arg(args.source) if args.source else None,
        ctx=args.ctx, windows=args.windows, device=args.device, save=args.save,
        threads=args.threads,
    )
    result = run_job(api.evaluate(settings), on_event=ProgressPrinter())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    lines = _lines(result)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _pm(value: float | None, stderr: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    text = format(value, fmt)
    return f"{text} ± {format(stderr, fmt)}" if stderr is not None else text


def _lines(r) -> list[tuple[str, str]]:
    lines = [
        ("Model", f"{r.model} [{r.backend}]"),
        ("Source", f"{r.source} [{r.source_backend}]" if r.source else "none (perplexity only)"),
        ("Text", f"{r.text} ({r.tokens_in_text} tokens)"),
        ("Windows", f"{r.windows} of {r.windows_available}, {r.ctx} tokens each; {r.tokens_evaluated} tokens scored"),
        ("Perplexity", _pm(r.perplexity, r.perplexity_stderr, ".4f")),
    ]
    if r.source:
        top1 = None if r.top1_agreement is None else 100 * r.top1_agreement
        top1_se = None if r.top1_agreement_stderr is None else 100 * r.top1_agreement_stderr
        lines += [("KL divergence", _pm(r.kl_divergence, r.kl_divergence_stderr, ".5f")),
                  ("Top-1 agreement", _pm(top1, top1_se, ".2f") + " %")]
        if r.verdict:
            lines.append(("Verdict", r.verdict))
        if r.distribution:
            lines += distribution_lines(r.distribution)
    bpw = "-" if r.bits_per_weight is None or math.isnan(r.bits_per_weight) else f"{r.bits_per_weight:.3f}"
    lines += [("Bits per weight", bpw), ("Size on disk", human_bytes(r.size_bytes)),
              ("Time", f"{r.seconds:.1f} s ({r.tokens_per_second:.0f} tokens/s)")]
    return lines
