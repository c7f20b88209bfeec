"""The benchmark suite: one command that runs every benchmark on this machine and writes bench/RESULTS.md.

    .venv/bin/python bench/run_all.py --quick                  # a subset, small windows: under 10 minutes
    .venv/bin/python bench/run_all.py                          # the full run (long on a small CPU)
    .venv/bin/python bench/run_all.py --quick --device cuda    # adds a CUDA section to the existing file

Parts, each with a reference measured in the same run:
1. GGUF conversion per type (time, size, bits/weight, perplexity and KL against the F16 GGUF), against
   llama.cpp's own quantizer (`llama_model_quantize`, called directly on the same F16 GGUF).
2. Weight-only GPTQ / AWQ (4-bit, group 64) against RTN, the floor, and Bitsmith INT8; time, peak RSS,
   size, perplexity and KL against the float16 import.
3. Chat: tokens/s, time to first token and peak memory per backend; Bitsmith's chat session against
   bare llama-cpp-python and bare transformers `generate` (float16 and float32, and the GPTQ output).
4. Evaluation throughput, perplexity and KL of the bundled Q4_1 GGUF (llama.cpp) against the float16
   import (transformers, the figures of part 2's reference), and model-generated calibration time.
5. GUI responsiveness: bench/bench_gui_stall.py (offscreen Qt) in its own process; the full run adds GPTQ.
6. engine.api.plan's estimates (seconds, peak memory, size) against what parts 1 and 2 measured.

The bundled SmolLM2-135M-Instruct (Q4_1 GGUF) is imported to a float16 Hugging Face folder, and that
folder is the source of every conversion. Evaluation follows ../shared/data/README.md: WikiText-2 test
tokenized once (the model's Hugging Face tokenizer, shared by every model so all see the same ids),
the first N non-overlapping 512-token windows, every token but each window's first scored. Each part
runs in its own child process (so its peak memory is its own and a failure is reported, not fatal);
outputs go to bench/out/suite/<device>/. Figures from a shared machine: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import CALIBRATION, DATA, OUT, ROOT, WIKITEXT, loadavg, machine_info, peak_rss_bytes, versions  # noqa: E402
from suite_report import PROMPT, render, write_results  # noqa: E402

SUITE = OUT / "suite"

#: Settings per mode. Types: (GGUF type, imatrix). llama.cpp is the reference for every type it quantizes.
MODES = {
    "quick": {
        "ctx": 512, "eval_windows": 1,
        "gguf_runs": [("Q8_0", False), ("Q4_K_M", True)],
        "imatrix_samples": 4, "imatrix_seq_len": 256,
        "weight_only": ["rtn", "gptq", "awq"], "calib_samples": 4, "calib_seq_len": 256,
        "chat_tokens": 32, "chat_rounds": 2, "hf_chat_tokens": 16, "hf_chat_rounds": 1,
        "gen_calib_windows": 2, "gen_calib_seq_len": 512, "gui_gptq": False,
    },
    "full": {
        "ctx": 512, "eval_windows": 20,
        "gguf_runs": [("Q8_0", False), ("Q6_K", False), ("Q5_K_M", False), ("Q4_K_M", False), ("Q4_K_M", True),
                      ("Q4_0", False), ("Q2_K", False), ("Q2_K", True)],
        "imatrix_samples": 128, "imatrix_seq_len": 512,
        "weight_only": ["rtn", "gptq", "gptq-act", "awq", "int8"], "calib_samples": 128, "calib_seq_len": 512,
        "chat_tokens": 128, "chat_rounds": 3, "hf_chat_tokens": 64, "hf_chat_rounds": 3,
        "gen_calib_windows": 128, "gen_calib_seq_len": 512, "gui_gptq": True,
    },
    "tiny": {  # only to check the suite's plumbing (hidden --tiny); its figures mean nothing
        "ctx": 128, "eval_windows": 1, "gguf_runs": [("Q8_0", False), ("Q4_K_M", True)],
        "imatrix_samples": 2, "imatrix_seq_len": 64,
        "weight_only": ["rtn", "gptq", "awq", "int8"], "calib_samples": 2, "calib_seq_len": 64,
        "chat_tokens": 8, "chat_rounds": 1, "hf_chat_tokens": 4, "hf_chat_rounds": 1,
        "gen_calib_windows": 1, "gen_calib_seq_len": 64, "gui_gptq": False,
    },
}


# ================================================================================================
# Child sections: each runs in its own process and writes <out>/<name>.json
# ================================================================================================

class Ctx:
    """What a section needs: mode settings, device, threads and where things go."""

    def __init__(self, args):
        self.mode = mode_name(args)
        self.s = MODES[self.mode]
        self.device = args.device
        self.threads = args.threads
        self.out = SUITE / args.device
        self.hf = self.out / "smol-f16"  # the float16 import of the bundled GGUF: every conversion's source
        self.f16_gguf = self.out / "gguf" / "smol-F16.gguf"
        self.ids_file = self.out / "eval_ids.json"


def mode_name(args) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def _run(job):
    from bitsmith.engine.events import run_job

    return run_job(job)


def _setup_torch(ctx: Ctx) -> None:
    import torch

    torch.set_num_threads(ctx.threads)
    torch.manual_seed(0)


def section_prepare(ctx: Ctx) -> dict:
    """Import the bundled GGUF (float16), export it as F16 GGUF, tokenize the evaluation text once."""
    _setup_torch(ctx)
    from bitsmith.engine import api
    from bitsmith.engine.config import ImportConfig, QuantizeConfig
    from bitsmith.engine.text_tokens import HFTokenizer

    t0 = time.monotonic()
    _run(api.import_gguf(ImportConfig(api.bundled_model(), ctx.hf, dtype="float16", overwrite=True)))
    import_s = time.monotonic() - t0
    ctx.f16_gguf.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    f16 = _run(api.convert(QuantizeConfig(source=ctx.hf, out=ctx.f16_gguf, method="gguf", gguf_type="F16",
                                          device=ctx.device, extra={"overwrite": True})))
    f16_s = time.monotonic() - t0
    t0 = time.monotonic()
    ids = HFTokenizer.load(ctx.hf).encode(WIKITEXT.read_text(encoding="utf-8"))
    tok_s = time.monotonic() - t0
    c, n = ctx.s["ctx"], ctx.s["eval_windows"]
    windows = [ids[w * c:(w + 1) * c] for w in range(min(n, len(ids) // c))]
    ctx.ids_file.write_text(json.dumps({"ctx": c, "tokens_in_text": len(ids), "windows_available": len(ids) // c,
                                        "windows": windows}))
    return {"bundled": str(api.bundled_model()), "bundled_bytes": api.bundled_model().stat().st_size,
            "import_s": import_s, "hf_bytes": sum(p.stat().st_size for p in ctx.hf.iterdir() if p.is_file()),
            "f16_export_s": f16_s, "f16_job_s": f16.seconds, "f16_bytes": f16.size, "f16_bpw": f16.bits_per_weight,
            "tokenize_s": tok_s, "tokens_in_text": len(ids), "windows_available": len(ids) // c,
            "windows": len(windows), "ctx": c}


def _windows(ctx: Ctx) -> dict:
    return json.loads(ctx.ids_file.read_text())


def _score(provider, windows, refs=None, keep: bool = False) -> dict:
    """Perplexity (and KL / top-1 against `refs`, float16 logits per window) with standard errors,
    through engine.evaluation's per-window figures. keep: also return this model's logits (float16)."""
    import math

    from bitsmith.engine.evaluation.metrics import RunningMean, window_figures

    nll, kl, agree = RunningMean(), RunningMean(), RunningMean()
    kept = []
    t0 = time.monotonic()
    for i, w in enumerate(windows):
        logits = provider.logits(w)
        a, b, c = window_figures(logits, w, refs[i].float() if refs is not None else None)
        nll.add(a)
        if b is not None:
            kl.add(b)
            agree.add(c)
        if keep:
            kept.append(logits.half())
    seconds = time.monotonic() - t0
    ppl = math.exp(nll.mean)
    out = {"perplexity": ppl, "perplexity_se": ppl * nll.stderr if nll.stderr is not None else None,
           "kl": kl.mean if kl.count else None, "kl_se": kl.stderr if kl.count else None,
           "top1": agree.mean if agree.count else None, "top1_se": agree.stderr if agree.count else None,
           "tokens": nll.count, "windows": len(windows), "eval_s": seconds,
           "eval_tok_s": sum(len(w) for w in windows) / seconds if seconds > 0 else None}
    return (out, kept) if keep else out


def _provider(path: Path, ctx: Ctx):
    from bitsmith.engine.evaluation.provider import open_provider

    return open_provider(path, _windows(ctx)["ctx"], ctx.device, ctx.threads)


def _reference(ctx: Ctx, path: Path) -> tuple[dict, dict, list]:
    """The evaluation windows, and the reference model's figures and float16 logits on them (what
    every other model in the part is compared with)."""
    ev = _windows(ctx)
    src = _provider(path, ctx)
    figures, refs = _score(src, ev["windows"], keep=True)
    figures["backend"] = src.backend
    src.close()
    return ev, figures, refs


def _gguf_tensor_compare(a: Path, b: Path) -> dict:
    """Tensors with the same name, type and bytes in both files (metadata is not compared)."""
    import numpy as np
    from gguf import GGUFReader

    ta = {t.name: t for t in GGUFReader(str(a)).tensors}
    tb = {t.name: t for t in GGUFReader(str(b)).tensors}
    same = sum(1 for n, t in ta.items() if n in tb and t.tensor_type == tb[n].tensor_type
               and np.array_equal(np.asarray(t.data), np.asarray(tb[n].data)))
    types_differ = sorted({f"{n}: {t.tensor_type.name} vs {tb[n].tensor_type.name}" for n, t in ta.items()
                           if n in tb and t.tensor_type != tb[n].tensor_type})
    return {"identical": same, "tensors": len(ta), "names_match": set(ta) == set(tb), "type_differences": types_differ[:6],
            "n_type_differences": len(types_differ)}


def llama_cpp_quantize(src: Path, dst: Path, gguf_type: str, threads: int, imatrix_file: Path | None = None) -> float:
    """llama.cpp's own quantizer on `src`, outside Bitsmith's pipeline; returns seconds of the C call.
    With an importance matrix, Bitsmith's saved one is handed over in llama.cpp's in-memory form."""
    import ctypes

    import llama_cpp

    from bitsmith.engine.config import GGUFType
    from bitsmith.engine.quant.gguf.llama_quantize import LLAMA_FTYPES  # the llama_ftype enum values

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[GGUFType(gguf_type)]
    params.nthread = threads
    keep = None
    if imatrix_file is not None:
        from bitsmith.engine.quant.gguf.imatrix_file import load_imatrix
        from bitsmith.engine.quant.gguf.llama_quantize import imatrix_array

        array, keep = imatrix_array(load_imatrix(imatrix_file).means())
        params.imatrix = ctypes.cast(array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    llama_cpp.llama_backend_init()
    dst.unlink(missing_ok=True)
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    seconds = time.perf_counter() - t0
    del keep
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc} for {gguf_type}")
    return seconds


def section_gguf(ctx: Ctx) -> dict:
    _setup_torch(ctx)
    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.quant.gguf.llama_quantize import LLAMA_FTYPES

    from bitsmith.engine.config import GGUFType

    ev, f16_fig, refs = _reference(ctx, ctx.f16_gguf)
    windows = ev["windows"]
    rows = [{"type": "F16", "imatrix": False, "size": ctx.f16_gguf.stat().st_size, **f16_fig}]
    for gguf_type, imatrix in ctx.s["gguf_runs"]:
        tag = f"{gguf_type}{'-imat' if imatrix else ''}"
        print(f"== gguf {tag}", flush=True)
        out = ctx.out / "gguf" / f"smol-{tag}.gguf"
        cfg = QuantizeConfig(source=ctx.hf, out=out, method="gguf", gguf_type=gguf_type, imatrix=imatrix,
                             calibration=str(CALIBRATION), samples=ctx.s["imatrix_samples"],
                             seq_len=ctx.s["imatrix_seq_len"], seed=0, device=ctx.device, extra={"overwrite": True})
        plan = api.plan(cfg)
        t0 = time.monotonic()
        res = _run(api.convert(cfg))
        row = {"type": gguf_type, "imatrix": res.imatrix is not None, "wall_s": time.monotonic() - t0,
               "job_s": res.seconds, "size": res.size, "bpw": res.bits_per_weight, "type_counts": res.type_counts,
               "plan_seconds": getattr(plan, "seconds", None), "plan_bytes": getattr(plan, "output_bytes", None),
               "plan_peak_bytes": getattr(plan, "peak_memory_bytes", None)}
        card = json.loads(Path(str(out) + ".report.json").read_text())
        row["peak_rss"] = card.get("peak_rss_bytes")
        row["quantizer"] = card.get("quantizer")
        p = _provider(out, ctx)
        row.update(_score(p, windows, refs))
        p.close()
        if GGUFType(gguf_type) in LLAMA_FTYPES:
            ref_out = ctx.out / "gguf" / f"llamacpp-{tag}.gguf"
            imat_file = res.imatrix if imatrix else None
            ref = {"seconds": llama_cpp_quantize(ctx.f16_gguf, ref_out, gguf_type, os.cpu_count() or 1, imat_file),
                   "size": ref_out.stat().st_size, **_gguf_tensor_compare(out, ref_out)}
            if ref["identical"] != ref["tensors"]:  # otherwise its figures are Bitsmith's by construction
                p = _provider(ref_out, ctx)
                ref.update(_score(p, windows, refs))
                p.close()
            row["llama_cpp"] = ref
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "type_counts"}, default=str), flush=True)
    return {"rows": rows, "ctx": ev["ctx"], "windows": len(windows), "windows_available": ev["windows_available"]}


def section_wo_convert(ctx: Ctx, name: str) -> dict:
    """One weight-only conversion, alone in this process (its peak RSS is its own). name: a method,
    or "gptq-act" (GPTQ with desc_act)."""
    _setup_torch(ctx)
    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig

    method, desc_act = name.removesuffix("-act"), name.endswith("-act")
    out = ctx.out / "weight_only" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    # RTN and INT8 need no calibration ("builtin" keeps the job from calibrating only to report errors).
    calib = str(CALIBRATION) if method in ("gptq", "awq") else "builtin"
    cfg = QuantizeConfig(source=ctx.hf, out=out, method=method, bits=8 if method == "int8" else 4,
                         group_size=None if method == "int8" else 64, desc_act=desc_act, calibration=calib,
                         samples=ctx.s["calib_samples"], seq_len=ctx.s["calib_seq_len"], seed=0, device=ctx.device,
                         extra={"overwrite": True})
    plan = api.plan(cfg)  # in this process, with the same torch threads, right before the conversion
    t0 = time.monotonic()
    res = _run(api.convert(cfg))
    wall = time.monotonic() - t0
    card = json.loads((out / "bitsmith-report.json").read_text())
    return {"method": method, "desc_act": desc_act, "out": str(out), "wall_s": wall, "job_s": getattr(res, "seconds", card.get("seconds")),
            "size": res.size, "peak_rss_job": card.get("peak_rss_bytes"), "peak_rss_process": peak_rss_bytes(),
            "calibration": None if calib == "builtin" else
            {"windows": ctx.s["calib_samples"], "seq_len": ctx.s["calib_seq_len"], "file": CALIBRATION.name},
            "error_summary": card.get("error_summary"), "plan_seconds": plan.seconds, "plan_bytes": plan.output_bytes,
            "plan_peak_bytes": plan.peak_memory_bytes}


def section_wo_eval(ctx: Ctx) -> dict:
    _setup_torch(ctx)
    ev, fp16, refs = _reference(ctx, ctx.hf)
    windows = ev["windows"]
    rows = {"fp16": fp16}
    for method in ctx.s["weight_only"]:
        path = ctx.out / "weight_only" / method
        if not (path / "bitsmith-report.json").is_file():
            continue
        p = _provider(path, ctx)
        rows[method] = _score(p, windows, refs)
        rows[method]["backend"] = p.backend
        p.close()
    # Issue 3's evaluation: the bundled Q4_1 GGUF through llama.cpp on the same windows, KL against the
    # import (the import's own figures and throughput are the fp16 row above: not measured twice).
    from bitsmith.engine import api

    p = _provider(api.bundled_model(), ctx)
    rows["bundled-gguf"] = _score(p, windows, refs)
    rows["bundled-gguf"]["backend"] = p.backend
    p.close()
    return {"rows": rows, "ctx": ev["ctx"], "windows": len(windows)}


def section_calibration(ctx: Ctx) -> dict:
    """Model-generated calibration (engine.api.build_calibration("model", ...)) from the float16 import,
    timed by bench_evaluation's own function (its decoded first window goes to this suite's folder)."""
    _setup_torch(ctx)
    import bench_evaluation

    bench_evaluation.OUT = ctx.out  # where it writes calibration_window0.txt
    n, seq_len = ctx.s["gen_calib_windows"], ctx.s["gen_calib_seq_len"]
    r = bench_evaluation.calibration(ctx.hf, n, seq_len, MODES["full"]["gen_calib_windows"], ctx.threads)
    r["tok_s"] = r["total_tokens"] / r["seconds"] if r["seconds"] > 0 else None
    return r


def section_gui_stall(ctx: Ctx) -> dict:
    """bench/bench_gui_stall.py in its own process (offscreen Qt); its temporary Bitsmith home goes
    under this suite's folder."""
    tmp = ctx.out / "gui-stall-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    result = ctx.out / "gui-stall-figures.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "bench_gui_stall.py"), "--json", str(result)]
    if ctx.s["gui_gptq"]:
        cmd.append("--gptq")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(tmp)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    print(proc.stdout + proc.stderr, flush=True)
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(f"bench_gui_stall.py exited {proc.returncode}")
    import resource

    figures = {**json.loads(result.read_text()), "run_s": time.monotonic() - t0,
               # the largest of the GUI process and the conversion processes it started (ru_maxrss is in KiB)
               "peak_rss_gui": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
               "table": [line for line in proc.stdout.splitlines() if line.startswith("|")]}
    shutil.rmtree(tmp, ignore_errors=True)  # its conversions' outputs
    return figures


class _TimingStreamer:
    """A transformers streamer that only notes when the first generated token and the end arrive."""

    def __init__(self):
        self.calls, self.first, self.n = 0, None, 0

    def put(self, value):
        self.calls += 1
        if self.calls == 1:
            return  # the prompt
        self.n += int(value.numel())
        if self.first is None:
            self.first = time.perf_counter()

    def end(self):
        pass


def section_chat_llama(ctx: Ctx) -> dict:
    from bench_chat import compare

    from bitsmith.engine import api
    from bitsmith.engine.runtime import load

    t0 = time.monotonic()
    backend = load(api.bundled_model(), ctx.device, n_ctx=1024, n_threads=ctx.threads)
    load_s = time.monotonic() - t0
    r = compare(backend, ctx.s["chat_tokens"], ctx.s["chat_rounds"], PROMPT)
    return {"backend": "llama.cpp", "model": api.bundled_model().name, "load_s": load_s, **r,
            "memory_after": backend.memory_bytes(), "peak_rss_process": peak_rss_bytes()}


def section_chat_hf(ctx: Ctx, which: str) -> dict:
    """Bitsmith's chat session on the transformers backend against bare model.generate on the same
    loaded model, alternating, greedy; the bare run generates as many tokens as the session did."""
    import statistics

    _setup_torch(ctx)
    import torch

    from bitsmith.engine.chat.session import ChatSession
    from bitsmith.engine.config import SamplingSettings
    from bitsmith.engine.events import Done
    from bitsmith.engine.runtime import load

    path = ctx.hf if which in ("float16", "float32") else ctx.out / "weight_only" / which
    dtype = which if which in ("float16", "float32") else None
    t0 = time.monotonic()
    backend = load(path, ctx.device, dtype=dtype)
    load_s = time.monotonic() - t0
    n_tokens, rounds = ctx.s["hf_chat_tokens"], ctx.s["hf_chat_rounds"]
    settings = SamplingSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=n_tokens)
    prompt_ids = backend.tokenize(backend.render([{"role": "user", "content": PROMPT}]))
    model = backend.model

    def session():
        s = ChatSession(backend, settings=settings)
        st = next(ev.result for ev in s.send(PROMPT) if isinstance(ev, Done)).stats
        return st.time_to_first_token_s, st.generation_tokens_per_s, st.completion_tokens, st.peak_rss_bytes, st.peak_gpu_bytes

    def bare(n):
        streamer = _TimingStreamer()
        ids = torch.tensor([prompt_ids], device=backend.device)
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=streamer,
                           temperature=None, top_p=None, top_k=None,
                           pad_token_id=backend.tokenizer.pad_token_id or backend.tokenizer.eos_token_id)
        end = time.perf_counter()
        return streamer.first - t, (streamer.n - 1) / (end - streamer.first), streamer.n

    with torch.inference_mode():  # warm-up (and a kernel choice for quantized layers)
        model.generate(input_ids=torch.tensor([prompt_ids], device=backend.device), max_new_tokens=2, do_sample=False,
                       pad_token_id=backend.tokenizer.pad_token_id or backend.tokenizer.eos_token_id)
    runs = {"bare_ttft": [], "bare_rate": [], "s_ttft": [], "s_rate": [], "peak": [], "gpu": [], "n": []}
    for _ in range(rounds):
        t, r, n, peak, gpu = session()
        runs["s_ttft"].append(t)
        runs["s_rate"].append(r)
        runs["peak"].append(peak)
        runs["gpu"].append(gpu)
        runs["n"].append(n)
        t, r, _n = bare(max(n, 2))
        runs["bare_ttft"].append(t)
        runs["bare_rate"].append(r)
    med = statistics.median
    kernels = None
    if which not in ("float16", "float32"):
        from bitsmith.engine.runtime.quantized_hf import kernel_summary

        kernels = kernel_summary(model)
    return {"backend": f"transformers ({which})", "model": str(path.name), "load_s": load_s, "tokens": runs["n"],
            "rounds": rounds, "prompt_tokens": len(prompt_ids), "session_tok_s": med(runs["s_rate"]),
            "session_ttft_s": med(runs["s_ttft"]), "bare_tok_s": med(runs["bare_rate"]),
            "bare_ttft_s": med(runs["bare_ttft"]), "session_peak_rss_bytes": max(runs["peak"]),
            "peak_gpu_bytes": max((g for g in runs["gpu"] if g), default=None), "kernels": kernels,
            "peak_rss_process": peak_rss_bytes()}


def run_section(args) -> int:
    ctx = Ctx(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    name = args.section
    t0 = time.monotonic()
    if name == "prepare":
        result = section_prepare(ctx)
    elif name == "gguf":
        result = section_gguf(ctx)
    elif name.startswith("wo-convert-"):
        result = section_wo_convert(ctx, name.removeprefix("wo-convert-"))
    elif name == "wo-eval":
        result = section_wo_eval(ctx)
    elif name == "calibration":
        result = section_calibration(ctx)
    elif name == "gui-stall":
        result = section_gui_stall(ctx)
    elif name == "chat-llama":
        result = section_chat_llama(ctx)
    elif name.startswith("chat-hf-"):
        result = section_chat_hf(ctx, name.removeprefix("chat-hf-"))
    else:
        raise SystemExit(f"unknown section {name}")
    result["section_s"] = time.monotonic() - t0
    result["peak_rss_section"] = peak_rss_bytes()
    (ctx.out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


# ================================================================================================
# The orchestrator
# ================================================================================================

def sections(mode: dict) -> list[str]:
    names = ["prepare", "gguf"]
    names += [f"wo-convert-{m}" for m in mode["weight_only"]] + ["wo-eval"]
    names += ["chat-llama", "chat-hf-float32", "chat-hf-float16"]
    if "gptq" in mode["weight_only"]:
        names.append("chat-hf-gptq")
    names += ["calibration", "gui-stall"]
    return names


def auto_threads() -> tuple[int, str]:
    """The cores left idle by the load at the start: on an oversubscribed machine, llama.cpp's and
    OpenMP's spinning threads collapse (one thread then beats two by a wide margin)."""
    cores = os.cpu_count() or 1
    load = (loadavg() or (0.0,))[0]
    n = max(1, min(cores, round(cores - load)))
    return n, f"auto: {cores} cores, 1-minute load {load:.1f} at the start"


def run_child(name: str, args, out: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__)), "--section", name, "--device", args.device, "--threads", str(args.threads)]
    if args.quick:
        cmd.append("--quick")
    if args.tiny:
        cmd.append("--tiny")
    log = out / f"{name}.log"
    result_file = out / f"{name}.json"
    result_file.unlink(missing_ok=True)
    t0 = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", end=" ", flush=True)
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    if rc == 0 and result_file.is_file():
        print(f"{wall:.0f} s", flush=True)
        return {**json.loads(result_file.read_text()), "wall_s_child": wall}
    tail = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    why = tail[-1] if tail else f"exit status {rc}"
    print(f"FAILED after {wall:.0f} s: {why}", flush=True)
    return {"error": why, "log": str(log), "wall_s_child": wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a subset with small windows (under 10 minutes on 2 cores)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and llama.cpp (default: the cores the load average leaves idle, at least 1)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # plumbing check only
    p.add_argument("--section", help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the results file from the last run's bench/out/suite/<device>/results.json")
    args = p.parse_args(argv)
    if not WIKITEXT.is_file() or not CALIBRATION.is_file():
        print(f"error: the shared data folder {DATA} (wikitext-2-raw-test.txt, calibration-groups-merged.txt) "
              "is missing; the suite needs it", file=sys.stderr)
        return 2
    if args.section:
        return run_section(args)
    if args.render_only:
        saved = json.loads((SUITE / args.device / "results.json").read_text())
        write_results(args.out, render(saved["meta"], saved["results"]), cuda=args.device == "cuda")
        print(f"wrote {args.out}")
        return 0
    threads_note = "given"
    if args.threads is None:
        args.threads, threads_note = auto_threads()
    if args.device == "cuda":
        from bitsmith.engine.device import cuda_status

        ok, why = cuda_status()
        if not ok:
            print(f"error: --device cuda, but {why}", file=sys.stderr)
            return 2
    mode = MODES[mode_name(args)]
    out = SUITE / args.device
    out.mkdir(parents=True, exist_ok=True)
    started, t0, load_start = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic(), loadavg()
    command = " ".join([".venv/bin/python", "bench/run_all.py"] + [shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])])
    results = {}
    for name in sections(mode):
        results[name] = run_child(name, args, out)
    meta = {"command": command, "mode": mode_name(args), "device": args.device,
            "threads": args.threads, "threads_note": threads_note, "started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "wall_s": time.monotonic() - t0, "load_start": load_start, "load_end": loadavg(),
            "machine": machine_info(), "versions": versions(), "gpu": _gpu_info_safe(), "settings": mode}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    body = render(meta, results)
    write_results(args.out, body, cuda=args.device == "cuda")
    print(f"wrote {args.out} ({meta['wall_s'] / 60:.1f} min)")
    return 1 if any("error" in r for r in results.values()) else 0


def _gpu_info_safe() -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", "import json,sys; sys.path.insert(0, %r); from common import gpu_info; "
                              "print(json.dumps(gpu_info()))" % str(HERE)], capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - a missing figure must not fail the report
        return {"error": str(exc)}


if __name__ == "__main__":
    sys.exit(main())
