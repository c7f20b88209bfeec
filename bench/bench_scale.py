"""Scale: time and peak memory of every calibrated path against one plain forward pass, at two
depths of one width, with projections to 8B and 70B shapes.

    .venv/bin/python bench/bench_scale.py                       # 1B shape at 4 and 16 layers
    .venv/bin/python bench/bench_scale.py --layers 4 32 --stages imatrix,gguf,gptq,awq,rtn,int8 \
        --samples 2 --seq-len 64                                 # memory against depth only
    .venv/bin/python bench/bench_scale.py --shape 8b --layers 2 4 --stages imatrix,gptq

Models are random bf16 safetensors folders of real widths written by bench/scale_models.py under
--work (kept between runs; --clean removes them). Each stage runs in its own child process (this
parent imports no torch, and a child's high-water mark would start at its parent's): the child
reports its wall time and the peak resident memory sampled every 0.2 s (engine/telemetry.PeakMemory)
and by the kernel (ru_maxrss). Stages:

  forward   the whole model in float32 (transformers), one forward over the calibration windows in
            batches of 4: the baseline of the issue's ratios (model loading timed apart)
  stream    the same forward through the block runner (one block resident), no statistics
  imatrix   the importance matrix (engine/quant/gguf/imatrix.py)
  gguf      GGUF Q4_K_M with the importance matrix, end to end (imatrix, F16 intermediate, llama.cpp)
  gptq, awq, rtn, int8   the weight-only jobs at their default settings, end to end

Calibration: --samples windows of --seq-len tokens from /work/shared/data/calibration-groups-merged.txt
(the built-in text when absent); every stage gets the same windows. Results: bench/out/scale/*.json and
a markdown table on stdout (paste into bench/SCALE.md with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import CALIBRATION, machine_info  # noqa: E402

OUT = ROOT / "bench" / "out" / "scale"
STAGES = ("forward", "stream", "imatrix", "gguf", "gptq", "awq")
ALL_STAGES = STAGES + ("rtn", "int8")

#: Parameters per decoder block and outside the blocks (embedding + head), for projections.
SHAPE_PARAMS = {
    "1b": dict(layer=2048 * (2048 + 512 + 512 + 2048) + 3 * 2048 * 8192, outside=2 * 49152 * 2048, layers=16),
    "8b": dict(layer=4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336, outside=2 * 128256 * 4096, layers=32),
    "70b": dict(layer=8192 * (8192 + 1024 + 1024 + 8192) + 3 * 8192 * 28672, outside=2 * 128256 * 8192, layers=80),
}

CHILD = r'''
import json, os, resource, sys, time
import torch
from pathlib import Path
from bitsmith.engine.telemetry import PeakMemory
stage, model, out, samples, seq_len, calib = sys.argv[1:7]
samples, seq_len = int(samples), int(seq_len)
from bitsmith.engine.calibration import build_calibration
from bitsmith.engine.events import run_job
windows = run_job(build_calibration(calib, model, samples, seq_len, 0)).windows
extra = {}
progress = open(os.environ["SCALE_PROGRESS"], "a", buffering=1) if os.environ.get("SCALE_PROGRESS") else None
last = {}
def note(event):
    """Stage changes and every block/window step, timestamped: how far a long run got."""
    if progress is None or not hasattr(event, "stage"):
        if progress is not None and hasattr(event, "message"):
            progress.write(f"{time.strftime('%H:%M:%S')} log {event.message}\n")
        return
    key = (event.stage, event.step)
    if last.get("key") != key:
        last["key"] = key
        progress.write(f"{time.strftime('%H:%M:%S')} {event.stage} {event.step}/{event.total} {event.detail} "
                       f"rss {mem.peak / 1024**3:.2f} GiB\n")
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
with PeakMemory() as mem:
    t0, c0 = time.monotonic(), cpu()
    if stage == "forward":
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        extra["load_s"] = time.monotonic() - t0
        t0, c0 = time.monotonic(), cpu()
        with torch.inference_mode():
            for batch in torch.split(windows, 4):
                m(input_ids=batch, use_cache=False)
    elif stage == "stream":
        from bitsmith.engine.formats.hf_folder import open_hf_folder
        from bitsmith.engine.layers import BlockRunner
        r = BlockRunner(open_hf_folder(model), "cpu", torch.float32, batch_size=4)
        for _ in r.capture(windows):
            pass
        with torch.inference_mode():
            for i in range(r.n_blocks):
                b = r.load_block(i)
                r._hidden = r.forward_block(i, b, keep=True)
                r.release(b)
            r.head_inputs(lambda x: None)
    elif stage == "imatrix":
        from bitsmith.engine.formats.hf_folder import open_hf_folder
        from bitsmith.engine.quant.gguf.imatrix import compute_imatrix
        gen = compute_imatrix(open_hf_folder(model), windows, "bench", tied=False)
        try:
            while True:
                note(next(gen))
        except StopIteration as stop:
            extra["entries"] = len(stop.value.sums)
    else:
        from bitsmith.engine.config import QuantizeConfig
        from bitsmith.engine.quant import quantize
        from bitsmith.engine.plan import plan
        kw = dict(gguf_type="Q4_K_M", imatrix=True) if stage == "gguf" else {}
        target = Path(out) / (stage + (".gguf" if stage == "gguf" else ""))
        cfg = QuantizeConfig(source=model, out=target, method=stage, calibration=calib, samples=samples,
                             seq_len=seq_len, device="cpu", extra={"overwrite": True}, **kw)
        p = plan(cfg)  # what the user is told before the run (the probe runs outside the timing)
        extra.update(plan_s=p.seconds, plan_peak=p.peak_memory_bytes)
        t0, c0 = time.monotonic(), cpu()
        run_job(quantize(cfg), note)
    seconds, cpu_s = time.monotonic() - t0, cpu() - c0
print("RESULT " + json.dumps({"seconds": seconds, "cpu_s": cpu_s, "peak_rss": mem.peak,
      "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "threads": torch.get_num_threads(), **extra}))
'''


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ")[0]
    except OSError:
        return "?"


def run_stage(stage: str, model: Path, args) -> dict:
    out = Path(args.work) / "outputs" / f"{model.name}-{stage}"  # runs of one model may overlap
    out.mkdir(parents=True, exist_ok=True)
    calib = str(CALIBRATION) if CALIBRATION.is_file() else "builtin"
    load_before = loadavg()
    cmd = ["nice", "-n", str(args.nice), sys.executable, "-c", CHILD, stage, str(model), str(out),
           str(args.samples), str(args.seq_len), calib]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1", "THP_MEM_ALLOC_ENABLE": "1"})  # as main() sets it
    wall = time.monotonic() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        return {"stage": stage, "error": proc.stderr[-2000:], "wall_s": wall}
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"stage": stage, **json.loads(line[7:]), "wall_s": wall, "load_before": load_before, "load_after": loadavg()}


def make_model(shape: str, layers: int, args) -> Path:
    folder = Path(args.work) / f"{shape}-{layers}L"
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); from scale_models import write_model; " \
           f"write_model({shape!r}, {layers}, {str(folder)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return folder


def projections(rows: dict[int, dict[str, dict]], shape: str) -> dict[str, dict[str, float]]:
    """Wall seconds per stage at 8B and 70B on an idle 2-core machine (CPU seconds / 2) from a fixed
    part and a per-block part fitted to two depths,
    each scaled by parameters (the per-token work of every stage is matmuls over the weights; GPTQ's
    Hessian inversions grow as width³ instead, so its projection is a lower bound)."""
    (la, a), (lb, b) = sorted(rows.items())[:2]
    base = SHAPE_PARAMS[shape]
    out = {}
    for stage in a:
        if "cpu_s" not in a[stage] or "cpu_s" not in b.get(stage, {}):
            continue
        per_block = (b[stage]["cpu_s"] - a[stage]["cpu_s"]) / (lb - la) / 2  # CPU s on 2 cores -> wall
        fixed = max(a[stage]["cpu_s"] / 2 - la * per_block, 0.0)
        out[stage] = {name: fixed * p["outside"] / base["outside"] + per_block * p["layer"] / base["layer"] * p["layers"]
                      for name, p in SHAPE_PARAMS.items() if name in ("8b", "70b")}
    return out


def table(rows: dict[int, dict[str, dict]], shape: str) -> str:
    """Wall seconds and CPU seconds (user + system, all threads): on a shared machine the CPU
    seconds are the steadier measure of work, so the ratios to the plain forward use them."""
    lines = [f"| {shape} layers | stage | wall s | CPU s | CPU × forward | CPU × stream | peak RSS (GiB) | load avg |",
             "|---|---|---|---|---|---|---|---|"]
    for layers, stages in sorted(rows.items()):
        fwd = stages.get("forward", {}).get("cpu_s")
        stream = stages.get("stream", {}).get("cpu_s")
        for stage, r in stages.items():
            if "seconds" not in r:
                lines.append(f"| {layers} | {stage} | failed: {r.get('error', '')[-120:]!r} | | | | | |")
                continue
            ratio = f"{r['cpu_s'] / fwd:.2f}" if fwd else ""
            sratio = f"{r['cpu_s'] / stream:.2f}" if stream else ""
            lines.append(f"| {layers} | {stage} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {ratio} | {sratio} | "
                         f"{max(r['peak_rss'], r['ru_maxrss']) / 1024**3:.2f} | {r['load_before']}–{r['load_after']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="1b", choices=("1b", "8b", "moe"))
    ap.add_argument("--layers", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {','.join(ALL_STAGES)}")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--work", default="/tmp/scale")
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--clean", action="store_true", help="remove the model folders afterwards")
    ap.add_argument("--keep", action="store_true", help="keep each stage's output (to load it afterwards)")
    ap.add_argument("--report", nargs="+", help="only print the table of these result files (merged)")
    args = ap.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(ALL_STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s): {', '.join(sorted(unknown))}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report([Path(f) for f in args.report], Path(args.work))
    rows: dict[int, dict[str, dict]] = {}
    name = f"{args.shape}-{'-'.join(map(str, args.layers))}-{args.samples}x{args.seq_len}-{'-'.join(stages)}.json"
    for layers in args.layers:
        model = make_model(args.shape, layers, args)
        rows[layers] = {}
        for stage in stages:
            r = run_stage(stage, model, args)
            rows[layers][stage] = r
            plan = f", plan {r['plan_s']:.0f} s / {r['plan_peak'] / 1024**3:.2f} GiB" if "plan_s" in r else ""
            print(f"{args.shape} {layers}L {stage}: " + (f"{r['seconds']:.1f} s ({r['cpu_s']:.0f} CPU s), peak "
                                                        f"{max(r['peak_rss'], r['ru_maxrss']) / 1024**3:.2f} GiB{plan}"
                                                        if "seconds" in r else "FAILED\n" + r["error"]), flush=True)
            result = {"shape": args.shape, "samples": args.samples, "seq_len": args.seq_len, "machine": machine_info(),
                      "rows": rows}
            (OUT / name).write_text(json.dumps(result, indent=1))  # after every stage: a long run killed keeps its rows
        if args.clean:
            shutil.rmtree(model, ignore_errors=True)
    report([OUT / name])


def replan(rows: dict[int, dict[str, dict]], results: list[dict], work: Path) -> None:
    """The current plan() for every measured job (the model folders must still be under --work),
    against the measured peak and against the CPU seconds / 2: the plan is for 2 idle cores."""
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.plan import plan

    calib = str(CALIBRATION) if CALIBRATION.is_file() else "builtin"
    print("\n| layers | stage | plan s | CPU s / 2 | plan / measured time | plan GiB | peak GiB | plan / peak |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for layers, stages in r["rows"].items():
            for stage, m in stages.items():
                if stage not in ("gguf", "gptq", "awq", "rtn", "int8") or "cpu_s" not in m:
                    continue
                kw = dict(gguf_type="Q4_K_M", imatrix=True) if stage == "gguf" else {}
                cfg = QuantizeConfig(work / f"{r['shape']}-{layers}L", work / "plan-only", stage, calibration=calib,
                                     samples=r["samples"], seq_len=r["seq_len"], **kw)
                p = plan(cfg)
                peak = max(m["peak_rss"], m["ru_maxrss"])
                print(f"| {layers} | {stage} | {p.seconds:.0f} | {m['cpu_s'] / 2:.0f} | {p.seconds / (m['cpu_s'] / 2):.2f} | "
                      f"{p.peak_memory_bytes / 1024**3:.2f} | {peak / 1024**3:.2f} | {p.peak_memory_bytes / peak:.2f} |")


def report(files: list[Path], work: Path | None = None) -> None:
    """One table (and the projections) from the rows of one or more result files of one shape."""
    results = [json.loads(f.read_text()) for f in files]
    shape = results[0]["shape"]
    rows: dict[int, dict[str, dict]] = {}
    for r in results:
        for layers, stages in r["rows"].items():
            rows.setdefault(int(layers), {}).update(stages)
    print(table(rows, shape))
    if work is not None:
        replan(rows, results, work)
    if len(rows) >= 2 and shape in SHAPE_PARAMS:
        for stage, proj in projections(rows, shape).items():
            print(f"projection {stage}: " + ", ".join(f"{k} {v / 60:.0f} min" for k, v in proj.items()))


if __name__ == "__main__":
    main()
