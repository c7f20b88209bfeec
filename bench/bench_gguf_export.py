"""GGUF export: size, bits per weight, conversion time and WikiText-2 perplexity per file type.

    .venv/bin/python bench/bench_gguf_export.py --windows 20          # quick
    .venv/bin/python bench/bench_gguf_export.py                       # every window (slow on 2 cores)
    .venv/bin/python bench/bench_gguf_export.py --model PATH --types F16,Q4_K_M

The model defaults to the bundled SmolLM2-135M-Instruct imported to an fp16 Hugging Face folder in
bench/out/. Perplexity follows ../shared/data/README.md: the whole WikiText-2 test file tokenized
once, non-overlapping 512-token windows, every token but each window's first scored, through
llama-cpp-python's logits. Importance matrices are computed from random windows (fixed seed) of
../shared/data/calibration-groups-merged.txt. Prints a markdown table and appends a JSON line per
run to bench/out/bench_gguf_export.jsonl (with the load average, as this machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bitsmith.engine import api  # noqa: E402
from bitsmith.engine.config import ImportConfig, QuantizeConfig  # noqa: E402
from bitsmith.engine.events import run_job  # noqa: E402
from bitsmith.engine.quant import quantize  # noqa: E402

OUT = ROOT / "bench" / "out"
DATA = ROOT.parent / "shared" / "data"
WIKITEXT = DATA / "wikitext-2-raw-test.txt"
CALIBRATION = DATA / "calibration-groups-merged.txt"
IMPORTED = OUT / "SmolLM2-135M-Instruct-f16"
#: (type, imatrix) rows of the table; None lets the job decide (on for K-quants of <= 5 bits).
RUNS = [("F16", None), ("Q8_0", None), ("Q6_K", None), ("Q5_K_M", None), ("Q4_K_M", False), ("Q4_K_M", True),
        ("Q4_0", None), ("Q2_K", False), ("Q2_K", True)]


def imported_model() -> Path:
    if not (IMPORTED / "config.json").is_file():
        print(f"importing the bundled GGUF to {IMPORTED}", flush=True)
        run_job(api.import_gguf(ImportConfig(api.bundled_model(), IMPORTED, dtype="float16", overwrite=True)))
    return IMPORTED


def convert(model: Path, gguf_type: str, imatrix: bool | None, samples: int, seq_len: int) -> object:
    tag = {None: "", True: "-imat", False: "-noimat"}[imatrix]
    cfg = QuantizeConfig(source=model, out=OUT / f"{model.name}-{gguf_type}{tag}.gguf", method="gguf",
                         gguf_type=gguf_type, imatrix=imatrix, calibration=str(CALIBRATION), samples=samples,
                         seq_len=seq_len, seed=0, extra={"overwrite": True})
    return run_job(quantize(cfg))


def tokenize(model: Path, text: str) -> list[int]:
    """The whole file, once, with the model's Hugging Face tokenizer (the tests check that llama.cpp
    tokenizes exactly the same; its own tokenizer takes minutes on 1.3 MB with SmolLM2's regex)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model)).encode(text, add_special_tokens=False)


def perplexity(path: Path, ids: list[int], ctx: int, windows: int | None, threads: int) -> tuple[float, int]:
    from bitsmith.engine.runtime.llamacpp_open import open_llama

    llm = open_llama(path, n_ctx=ctx, n_batch=ctx, logits_all=True, n_threads=threads, verbose=False)
    n = len(ids) // ctx if windows is None else min(windows, len(ids) // ctx)
    nll, count = 0.0, 0
    for w in range(n):
        window = ids[w * ctx:(w + 1) * ctx]
        llm.reset()
        llm.eval(window)
        logits = np.asarray(llm.scores[: ctx - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll -= float(logp[np.arange(ctx - 1), window[1:]].sum())
        count += ctx - 1
    llm.close()
    return math.exp(nll / count), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="HF folder (default: the bundled model, imported)")
    parser.add_argument("--windows", type=int, default=None, help="perplexity windows (default: the whole file)")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--calib-samples", type=int, default=128, help="importance-matrix windows")
    parser.add_argument("--calib-seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--types", default=None, help="comma-separated subset of the types, e.g. F16,Q4_K_M")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    model = args.model or imported_model()
    runs = [r for r in RUNS if args.types is None or r[0] in args.types.split(",")]
    load_before = os.getloadavg()[0]
    ids = None
    rows = []
    for gguf_type, imatrix in runs:
        print(f"{gguf_type} (imatrix {imatrix}) ...", flush=True)
        result = convert(model, gguf_type, imatrix, args.calib_samples, args.calib_seq_len)
        if ids is None:
            ids = tokenize(model, WIKITEXT.read_text(encoding="utf-8"))
        started = time.monotonic()
        ppl, n = perplexity(result.out, ids, args.ctx, args.windows, args.threads)
        rows.append({"type": gguf_type, "imatrix": result.imatrix is not None, "size_bytes": result.size,
                     "bpw": result.bits_per_weight, "convert_s": result.seconds, "ppl": ppl, "windows": n,
                     "eval_s": time.monotonic() - started, "type_counts": result.type_counts})
        print(f"  {result.size / 2**20:.1f} MiB, {result.bits_per_weight:.2f} bpw, {result.seconds:.1f} s, "
              f"PPL {ppl:.3f} over {n} windows", flush=True)
    base = next((r["ppl"] for r in rows if r["type"] == "F16"), None)
    print()
    print(f"Model: {model.name}; perplexity: WikiText-2 test, {rows[0]['windows'] if rows else 0} windows of {args.ctx} tokens; "
          f"imatrix: {args.calib_samples} x {args.calib_seq_len} tokens of {CALIBRATION.name}")
    print()
    print("| type | imatrix | size (MiB) | bits/weight | convert (s) | perplexity | vs F16 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        delta = f"{(r['ppl'] / base - 1) * 100:+.2f}%" if base else "-"
        print(f"| {r['type']} | {'yes' if r['imatrix'] else 'no'} | {r['size_bytes'] / 2**20:.1f} | {r['bpw']:.2f} | "
              f"{r['convert_s']:.1f} | {r['ppl']:.3f} | {delta} |")
    with open(OUT / "bench_gguf_export.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"model": str(model), "windows": args.windows, "ctx": args.ctx,
                            "calib_samples": args.calib_samples, "load_before": load_before,
                            "load_after": os.getloadavg()[0], "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
