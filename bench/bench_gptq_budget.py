"""The size-budget GPTQ (per-layer bits and group sizes) against uniform GPTQ of the same size.

The bundled SmolLM2-135M-Instruct is imported to float16 (the source). Uniform GPTQ at the given
bits/group is written first; then the budget GPTQ with `--target-size` set to the uniform folder's
size (equal or smaller), and optionally at the uniform layers' bits per weight. The budget's
sensitivity is each layer's RTN error weighted by the diagonal Fisher of the logits' KL
(engine/quant/gptq/fisher.py). An output folder already in <work> is reused, not converted again
(its convert time then reads near zero). Each output is
scored against the source's stored distributions (`bitsmith eval`'s figures) on the first N windows
of WikiText-2's test file. Calibration: `calibration-groups-merged.txt` (else the built-in text).

    .venv/bin/python bench/bench_gptq_budget.py [--windows 4] [--ctx 512] [--samples 32] [--seq-len 256]
        [--uniform 4:64,3:64] [--bpw-twin] [--skip-size] [--work /tmp/budget/bench]

Prints a markdown table and writes <work>/gptq-budget.json. On 2 shared cores a run of one uniform
setting and its budget twin takes about 15 minutes, most of it the two GPTQ passes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CALIBRATION, WIKITEXT, machine_info  # noqa: E402


def uniform_bpw(source: Path, bits: int, group: int) -> float:
    """Bits per weight of the quantized layers of a uniform GPTQ, as written (codes, scales, zeros, g_idx)."""
    from bitsmith.engine.formats.gptq_layout import layer_bytes
    from bitsmith.engine.formats.hf_folder import open_hf_folder

    src = open_hf_folder(source)
    shapes = [tuple(int(d) for d in src.shapes[n]) for n in src.structure.quantizable]
    return 8 * sum(layer_bytes(o, i, bits, group, False) for o, i in shapes) / sum(o * i for o, i in shapes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--samples", type=int, default=32, help="calibration windows")
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per calibration window")
    ap.add_argument("--threads", type=int, default=1, help="threads for the evaluations")
    ap.add_argument("--uniform", default="4:64", help="uniform GPTQ settings bits:group, comma-separated")
    ap.add_argument("--bpw-twin", action="store_true", help="also a budget at the uniform layers' bits per weight")
    ap.add_argument("--skip-size", action="store_true", help="no budget at the uniform folder's size")
    ap.add_argument("--work", default="/tmp/budget/bench")
    args = ap.parse_args(argv)
    from bitsmith.engine import api
    from bitsmith.engine.formats.quantized_folder import folder_bytes

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    source = work / "bundled-f16"
    if not (source / "config.json").exists():
        api.run_job(api.import_gguf(api.ImportConfig(api.bundled_model(), source, "float16")))
    calib = str(CALIBRATION) if CALIBRATION.exists() else "builtin"
    text = WIKITEXT if WIKITEXT.exists() else api.heldout_text("builtin")
    common = dict(calibration=calib, samples=args.samples, seq_len=args.seq_len)
    outputs: list[tuple[str, Path, float, dict]] = []

    def convert(label: str, cfg) -> Path:
        out = Path(cfg.out)
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        if not out.exists():
            api.run_job(api.convert(cfg))
        card = json.loads((out / "bitsmith-report.json").read_text())
        outputs.append((label, out, round(time.monotonic() - t0, 1), {"load_at_start": load0,
                                                                     "budget": card.get("budget")}))
        return out

    for setting in args.uniform.split(","):
        bits, group = (int(v) for v in setting.split(":"))
        uniform = convert(f"GPTQ {bits}-bit g{group} (uniform)",
                          api.QuantizeConfig(source, work / f"gptq-{bits}b-g{group}", "gptq", bits=bits,
                                             group_size=group, **common))
        outputs[-1][3]["linear_bpw"] = bpw = uniform_bpw(source, bits, group)
        if not args.skip_size:
            size = folder_bytes(uniform)
            convert(f"GPTQ budget at its size ({size / 1e6:.2f} MB)",
                    api.QuantizeConfig(source, work / f"gptq-budget-{bits}b-g{group}-size", "gptq", target_bytes=size,
                                       **common))
        if args.bpw_twin:
            convert(f"GPTQ budget at {math.floor(bpw * 1000) / 1000:.3f} bits/weight",
                    api.QuantizeConfig(source, work / f"gptq-budget-{bits}b-g{group}-bpw", "gptq",
                                       target_bpw=math.floor(bpw * 1000) / 1000, **common))  # never above

    rows = []
    for label, path, seconds, extra in outputs:
        settings = api.EvalSettings(path, text, source, ctx=args.ctx, windows=args.windows, threads=args.threads)
        r = api.run_job(api.evaluate(settings))
        d = r.distribution
        rows.append({"label": label, "path": str(path), "size_bytes": folder_bytes(path), "convert_seconds": seconds,
                     "ppl": r.perplexity, "ppl_ratio": d["ppl_ratio"], "ppl_ratio_stderr": d["ppl_ratio_stderr"],
                     "kld_mean": d["kld"]["mean"], "kld_stderr": d["kld"]["stderr"], "kld_99": d["kld"]["99%"],
                     "rms_dp": d["rms_delta_p"], "same_top_p": d["same_top_p"], **extra,
                     "load_after_eval": os.getloadavg()[0]})
        print(f"{label}: {r.verdict}", flush=True)
    report = {"machine": machine_info(), "windows": args.windows, "ctx": args.ctx, "text": str(text),
              "calibration": calib, "samples": args.samples, "seq_len": args.seq_len, "rows": rows}
    (work / "gptq-budget.json").write_text(json.dumps(report, indent=2))
    print("| output | MB | quantized layers bpw | PPL ratio | KLD mean | KLD 99 % | RMS Δp | same top p |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        bpw = r["budget"]["linear_bits_per_weight"] if r.get("budget") else r.get("linear_bpw")
        print(f"| {r['label']} | {r['size_bytes'] / 1e6:.2f} | {bpw:.3f} | {r['ppl_ratio']:.4f} ± "
              f"{r['ppl_ratio_stderr']:.4f} | {r['kld_mean']:.5f} ± {r['kld_stderr']:.5f} | {r['kld_99']:.4f} | "
              f"{100 * r['rms_dp']:.2f} % | {100 * r['same_top_p']:.2f} % |")
        if r.get("budget"):
            print(f"|   mix: {r['budget']['mix']} | | | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
