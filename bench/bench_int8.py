"""INT8 and bitsandbytes on the CPU: conversion time, generation speed, peak memory, perplexity.

Run by hand:  .venv/bin/python bench/bench_int8.py [--threads 1] [--windows 40] [--skip-ppl]

The bundled SmolLM2-135M-Instruct GGUF is imported once as a float16 Hugging Face folder under
bench/out/int8/ and converted with each method. Every generation run happens in its own child
process, so its peak RSS is its own (the figure includes Python, torch and transformers; the RSS
after those imports, before the model loads, is shown beside it). Generation: one chat prompt,
greedy, exactly 64 new tokens (end of turn suppressed), best of 3 timed runs after a warm-up.
Perplexity: the first N non-overlapping 512-token windows of wikitext-2-raw-test, every variant
scored against the float16 folder (computed in float32) in lockstep: perplexity, KL divergence
and top-1 agreement. Results go to bench/out/int8/results.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "int8"
TEXT = ROOT.parent / "shared" / "data" / "wikitext-2-raw-test.txt"
PROMPT = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
NEW_TOKENS = 64

# name -> (how to load, folder under OUT, extra)
VARIANTS = {
    "fp32 HF": ("hf", "f16", {"dtype": "float32"}),
    "fp16 HF": ("hf", "f16", {"dtype": "float16"}),
    "INT8 reference": ("int8", "int8", {"kernel": "reference"}),
    "INT8 fast (W8A8)": ("int8", "int8", {"kernel": "fast"}),
    "bnb LLM.int8": ("bnb", "bnb-int8", {}),
    "bnb NF4": ("bnb", "bnb-nf4", {}),
}
CONVERSIONS = {"int8": ("int8", {}), "bnb-int8": ("bnb-int8", {"threshold": 6.0}), "bnb-nf4": ("bnb-nf4", {})}


def _rss() -> int:
    """This process's peak RSS. VmHWM, not getrusage: ru_maxrss survives fork and exec on Linux,
    so a child would report its parent's peak when that is higher."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _current_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def load(kind: str, folder: Path, extra: dict):
    import torch

    if kind == "hf":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, extra["dtype"])).eval()
        return model, AutoTokenizer.from_pretrained(folder)
    if kind == "int8":
        from bitsmith.engine.runtime.int8_loader import load_int8_model

        return load_int8_model(folder, "cpu", kernel=extra.get("kernel"))
    from bitsmith.engine.runtime.bnb_loader import load_bnb_model

    return load_bnb_model(folder, "cpu")


def child_generate(name: str, threads: int) -> dict:
    """One variant's generation figures (runs in a child process)."""
    import torch

    torch.set_num_threads(threads)
    kind, sub, extra = VARIANTS[name]
    import transformers  # noqa: F401 - counted in the baseline RSS, as the app always has it

    if kind == "bnb":
        from bitsmith.engine.runtime.bnb_support import import_bitsandbytes

        import_bitsandbytes()
    base_rss = _current_rss()
    t0 = time.perf_counter()
    model, tok = load(kind, OUT / sub, extra)
    load_s = time.perf_counter() - t0
    prompt = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = prompt["input_ids"]
    kw = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.eos_token_id)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up: kernels, caches
        best = None
        for _ in range(3):
            t = time.perf_counter()
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, **kw)
            elapsed = time.perf_counter() - t
            best = elapsed if best is None else min(best, elapsed)
        t = time.perf_counter()
        model(ids)
        prefill = time.perf_counter() - t
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return {"variant": name, "load_s": round(load_s, 2), "prompt_tokens": int(ids.shape[1]),
            "gen_s": round(best, 3), "tokens_per_s": round(NEW_TOKENS / best, 2), "prefill_s": round(prefill, 3),
            "peak_rss_mib": round(_rss() / 2**20), "base_rss_mib": round(base_rss / 2**20),
            "kernel": getattr(getattr(model, "int8_kernel", None), "name", None), "text": text[:120]}


def child_convert(method: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.events import run_job
    from bitsmith.engine.quant.bnb import quantize_bnb
    from bitsmith.engine.quant.int8 import quantize_int8

    m, extra = CONVERSIONS[method]
    job = quantize_int8 if m == "int8" else quantize_bnb
    cfg = QuantizeConfig(OUT / "f16", OUT / method, m, device="cpu", extra={**extra, "overwrite": True})
    t = time.perf_counter()
    result = run_job(job(cfg))
    wall = time.perf_counter() - t
    card = json.loads(result.report.read_text())
    return {"method": method, "wall_s": round(wall, 2), "job_s": card["seconds"],
            "peak_rss_mib": round(card["peak_rss_bytes"] / 2**20), "size_mb": round(result.size / 1e6, 1),
            "bits_per_weight": result.bits_per_weight}


def ensure_f16() -> None:
    if (OUT / "f16" / "config.json").is_file():
        return
    from bitsmith.engine.api import import_gguf
    from bitsmith.engine.config import ImportConfig
    from bitsmith.engine.events import run_job
    from bitsmith.engine.paths import bundled_model_path

    OUT.mkdir(parents=True, exist_ok=True)
    run_job(import_gguf(ImportConfig(bundled_model_path(), OUT / "f16", dtype="float16")))


def perplexity(names: list[str], windows: int, ctx: int, threads: int) -> list[dict]:
    import math

    import torch

    from bitsmith.engine.evaluation.metrics import RunningMean, window_figures

    torch.set_num_threads(threads)
    source, tok = load("hf", OUT / "f16", {"dtype": "float32"})
    models = {n: load(VARIANTS[n][0], OUT / VARIANTS[n][1], VARIANTS[n][2])[0] for n in names}
    ids = tok(TEXT.read_text(encoding="utf-8"))["input_ids"]
    n = min(windows, len(ids) // ctx)
    stats = {name: (RunningMean(), RunningMean(), RunningMean()) for name in ["fp16 source", *names]}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for w in range(n):
            window = ids[w * ctx:(w + 1) * ctx]
            x = torch.tensor([window])
            src_logits = source(x, use_cache=False).logits[0].float()
            nll, _, _ = window_figures(src_logits, window)
            stats["fp16 source"][0].add(nll)
            for name, model in models.items():
                nll, kl, agree = window_figures(model(x, use_cache=False).logits[0].float(), window, src_logits)
                for acc, v in zip(stats[name], (nll, kl, agree)):
                    acc.add(v)
            print(f"  window {w + 1}/{n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows = []
    for name, (nll, kl, agree) in stats.items():
        ppl = math.exp(nll.mean)
        rows.append({"variant": name, "windows": n, "ctx": ctx, "tokens": nll.count, "perplexity": round(ppl, 4),
                     "ppl_stderr": round(ppl * nll.stderr, 4),
                     "kl": round(kl.mean, 5) if kl.count else None,
                     "top1": round(agree.mean, 4) if agree.count else None})
    return rows


def _child(kind: str, name: str, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--child", kind, name, "--threads", str(threads)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"variant": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--skip-convert", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "NAME"))
    args = ap.parse_args()
    if args.child:
        kind, name = args.child
        result = child_generate(name, args.threads) if kind == "gen" else child_convert(name, args.threads)
        print(json.dumps(result))
        return

    ensure_f16()
    load_avg = os.getloadavg()
    results = {"threads": args.threads, "load_average_at_start": [round(x, 2) for x in load_avg],
               "cpu": _cpu_name(), "convert": [], "generate": [], "perplexity": []}
    if not args.skip_convert:
        for method in CONVERSIONS:
            print(f"converting: {method}", file=sys.stderr, flush=True)
            results["convert"].append(_child("convert", method, args.threads))
    for name in VARIANTS:
        print(f"generating: {name}", file=sys.stderr, flush=True)
        results["generate"].append(_child("gen", name, args.threads))
    if not args.skip_ppl:
        print("perplexity", file=sys.stderr, flush=True)
        results["perplexity"] = perplexity([n for n in VARIANTS if n not in ("fp32 HF", "fp16 HF")],
                                           args.windows, args.ctx, args.threads)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    previous = OUT / "results.json"
    if previous.is_file():  # a skipped section keeps the figures of the last run that measured it
        old = json.loads(previous.read_text())
        carried = [k for k in ("convert", "perplexity") if not results[k] and old.get(k)]
        results.update({k: old[k] for k in carried}, carried_over=carried)
    previous.write_text(json.dumps(results, indent=2))
    _print_tables(results)


def _cpu_name() -> str:
    from bitsmith.engine.device import _cpu_name as name

    return name()


def _print_tables(r: dict) -> None:
    print(f"\nCPU: {r['cpu']}, torch threads: {r['threads']}, load average {r['load_average_at_start']} -> "
          f"{r['load_average_at_end']}\n")
    if r["convert"]:
        print("| conversion | seconds (job) | peak RSS MiB | size MB | bits/weight |\n|---|---|---|---|---|")
        for c in r["convert"]:
            if "error" in c:
                print(f"| {c.get('method', c.get('variant'))} | error: {c['error']} | | | |")
            else:
                print(f"| {c['method']} | {c['job_s']} | {c['peak_rss_mib']} | {c['size_mb']} | {c['bits_per_weight']} |")
    print("\n| variant | tokens/s (64 new) | prefill s | load s | peak RSS MiB (after imports) | kernel |\n"
          "|---|---|---|---|---|---|")
    for g in r["generate"]:
        if "error" in g:
            print(f"| {g['variant']} | error: {g['error']} | | | | |")
        else:
            print(f"| {g['variant']} | {g['tokens_per_s']} | {g['prefill_s']} | {g['load_s']} | "
                  f"{g['peak_rss_mib']} ({g['base_rss_mib']}) | {g['kernel'] or ''} |")
    if r["perplexity"]:
        p0 = r["perplexity"][0]
        print(f"\nPerplexity: first {p0['windows']} windows of {p0['ctx']} tokens of wikitext-2-raw-test "
              f"({p0['tokens']} scored tokens), against the fp16 folder computed in float32\n")
        print("| variant | perplexity (± s.e.) | KL vs fp16 | top-1 vs fp16 |\n|---|---|---|---|")
        for p in r["perplexity"]:
            print(f"| {p['variant']} | {p['perplexity']} ± {p['ppl_stderr']} | {p['kl'] if p['kl'] is not None else '-'} "
                  f"| {p['top1'] if p['top1'] is not None else '-'} |")


if __name__ == "__main__":
    main()
