"""GPTQ / AWQ / RTN on the bundled SmolLM2-135M-Instruct (imported to float16): quantization time and
peak memory, perplexity and KL divergence against float16 on wikitext-2, and CPU generation speed.

Run by hand:  .venv/bin/python bench/bench_weight_only.py [--samples 128 --seq-len 512 --windows 20]

Each quantization runs in its own process, so its peak RSS is its own. Evaluation windows are the
first N non-overlapping 512-token windows of the test text; the float16 model's logits are kept
(as float16) so each quantized model is compared with the same reference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "weight_only"
RUNS = {  # name -> (method, bits, extra CLI flags); the table first, extras last
    "rtn-4bit-g64": ("rtn", 4, []), "gptq-4bit-g64": ("gptq", 4, []), "awq-4bit-g64": ("awq", 4, []),
    "gptq-4bit-g64-act": ("gptq", 4, ["--desc-act"]), "rtn-3bit-g64": ("rtn", 3, []),
    "gptq-3bit-g64": ("gptq", 3, []), "gptq-3bit-g64-act": ("gptq", 3, ["--desc-act"]),
}


def source_folder() -> Path:
    folder = ROOT / "bench" / "out" / "SmolLM2-135M-Instruct-f16"
    if not (folder / "config.json").is_file():
        from bitsmith.engine.api import bundled_model, import_gguf
        from bitsmith.engine.config import ImportConfig
        from bitsmith.engine.events import run_job

        run_job(import_gguf(ImportConfig(bundled_model(), folder, dtype="float16")))
    return folder


def quantize_one(name: str, source: Path, args) -> dict:
    """In a child process: one job (calibration included); returns its figures and peak RSS."""
    method, bits, flags = RUNS[name]
    out = OUT / (name + args.suffix)
    code = (
        f"import torch; torch.set_num_threads({args.threads})\n"
        "from bitsmith.engine.config import QuantizeConfig\nfrom bitsmith.engine.events import run_job\n"
        "from bitsmith.engine.quant.weight_only.job import quantize_with_calibration\n"
        f"cfg = QuantizeConfig(source={str(source)!r}, out={str(out)!r}, method={method!r}, bits={bits}, "
        f"group_size=64, desc_act={'--desc-act' in flags}, calibration={args.calib!r}, samples={args.samples}, "
        f"seq_len={args.seq_len}, device='cpu', extra={{'overwrite': True}})\n"
        f"run_job(quantize_with_calibration(cfg, calibrate_rtn={args.rtn_errors}))\n"
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    card = json.loads((out / "bitsmith-report.json").read_text())
    # The job's own sampled peak: a child's ru_maxrss starts at its parent's (Linux carries the
    # high-water mark across fork and exec), and this parent holds the reference logits.
    peak = card["peak_rss_bytes"]
    return {"seconds": round(time.monotonic() - t0, 1), "job_seconds": card["seconds"], "peak_rss": peak,
            "size": card["size_bytes"], "mean_layer_error": (card["error_summary"] or {}).get("mean"),
            "last_block_error": (card.get("block_output_errors") or [None])[-1]}


def eval_windows(source: Path, n: int, ctx: int) -> list[list[int]]:
    from bitsmith.engine.text_tokens import HFTokenizer

    ids = HFTokenizer.load(source).encode((DATA / "wikitext-2-raw-test.txt").read_text(encoding="utf-8"))
    return [ids[w * ctx:(w + 1) * ctx] for w in range(min(n, len(ids) // ctx))]


def logits_of(model, windows) -> list:
    import torch

    with torch.inference_mode():
        return [model(input_ids=torch.tensor([w]), use_cache=False).logits[0].float() for w in windows]


def figures(logits, windows, reference) -> dict:
    import math

    from bitsmith.engine.evaluation.metrics import RunningMean, window_figures

    nll, kl, agree = RunningMean(), RunningMean(), RunningMean()
    for lg, w, ref in zip(logits, windows, reference or [None] * len(windows)):
        a, b, c = window_figures(lg, w, ref.float() if ref is not None else None)
        nll.add(a)
        if b is not None:
            kl.add(b)
            agree.add(c)
    return {"perplexity": math.exp(nll.mean), "kl": kl.mean if kl.count else None,
            "top1": agree.mean if agree.count else None}


def tokens_per_second(model, tokenizer, new_tokens: int = 64) -> float:
    import torch

    ids = tokenizer("The history of the printing press", return_tensors="pt").input_ids
    with torch.inference_mode():
        model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)  # warm-up (and kernel choice)
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        dt = time.perf_counter() - t0
    return (out.shape[1] - ids.shape[1]) / dt


def table(results: dict) -> str:
    """Markdown table of a results.json; peak RSS read back from each output's report card."""
    lines = ["| run | perplexity | KL vs fp16 | top-1 | quantize s | peak RSS MiB | size MiB |", "|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        card = OUT / name / "bitsmith-report.json"
        peak = json.loads(card.read_text())["peak_rss_bytes"] if card.is_file() else None
        kl = f"{r['kl']:.4f}" if r.get("kl") is not None else "-"
        lines.append(f"| {name} | {r['perplexity']:.3f} | {kl} | {r.get('top1', 1.0):.3f} | {r.get('job_seconds', '-')} "
                     f"| {peak / 2**20:.0f} | {r['size'] / 2**20:.1f} |" if peak else
                     f"| {name} | {r['perplexity']:.3f} | {kl} | {r.get('top1', 1.0):.3f} | - | - | "
                     f"{results['source_bytes'] / 2**20:.1f} |")
    return "\n".join(lines)


def speed(source: Path, rounds: int = 3) -> dict:
    """Decode tokens/s of float16 (computed in float32 on the CPU) and of the GPTQ 4-bit output with
    each CPU kernel, measured in turns so a busy machine slows them alike; the median of `rounds`."""
    import statistics

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bitsmith.engine.runtime.quantized_hf import load_quantized_model

    tok = AutoTokenizer.from_pretrained(str(source))
    models = {"fp16 (fp32 compute)": AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).eval(),
              "gptq-4bit torch-cached": load_quantized_model(OUT / "gptq-4bit-g64", "cpu")[0],
              "gptq-4bit torch-dequant": load_quantized_model(OUT / "gptq-4bit-g64", "cpu", kernel="torch-dequant")[0]}
    runs = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            runs[name].append(tokens_per_second(model, tok, 32))
    return {name: round(statistics.median(v), 2) for name, v in runs.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--windows", type=int, default=20, help="evaluation windows of 512 tokens")
    p.add_argument("--calib", default=str(DATA / "calibration-groups-merged.txt"))
    p.add_argument("--runs", default=",".join(RUNS))
    p.add_argument("--threads", type=int, default=1, help="torch threads (the dev machine is shared)")
    p.add_argument("--suffix", default="", help="appended to run names and output folders (e.g. -c32)")
    p.add_argument("--keep", action="store_true", help="add to the last results.json instead of replacing it")
    p.add_argument("--rtn-errors", action="store_true",
                   help="calibrate RTN runs too, only to report their layer errors (RTN itself uses no data)")
    p.add_argument("--table", action="store_true", help="only print the table of the last results.json")
    p.add_argument("--speed", action="store_true", help="only measure generation speed (needs the GPTQ output)")
    args = p.parse_args()
    if args.speed:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(speed(source_folder()), indent=2))
        return
    if args.table:
        print(table(json.loads((OUT / "results.json").read_text())))
        return
    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bitsmith.engine.runtime.quantized_hf import kernel_summary, load_quantized_model

    torch.manual_seed(0)
    source = source_folder()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"settings": vars(args), "source_bytes": (source / "model.safetensors").stat().st_size, "runs": {}}
    if args.keep and (OUT / "results.json").is_file():  # add these runs to the last results
        results["runs"] = json.loads((OUT / "results.json").read_text())["runs"]
    windows = eval_windows(source, args.windows, 512)
    fp = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(source))
    reference = [lg.half() for lg in logits_of(fp, windows)]
    results["runs"]["fp16"] = {**figures([r.float() for r in reference], windows, None), "kl": 0.0, "top1": 1.0,
                               "tok_s": tokens_per_second(fp, tok)}
    del fp
    for name in args.runs.split(","):
        print(f"== {name}", flush=True)
        row = quantize_one(name, source, args)
        model, qtok = load_quantized_model(OUT / (name + args.suffix), "cpu")
        row.update(figures(logits_of(model, windows), windows, reference))
        if name == "gptq-4bit-g64" and not args.suffix:
            row["tok_s"] = tokens_per_second(model, qtok)
            row["kernels"] = kernel_summary(model)
            ref_model, _ = load_quantized_model(OUT / name, "cpu", kernel="torch-dequant")
            row["tok_s_reference_kernel"] = tokens_per_second(ref_model, qtok)
        results["runs"][name + args.suffix] = row
        print(json.dumps(row), flush=True)
        (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
