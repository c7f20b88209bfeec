"""Evaluation and calibration speed and figures on the bundled SmolLM2-135M-Instruct.

Run by hand (whole-file runs take a while on a small CPU; run them in the background):

    .venv/bin/python bench/bench_evaluation.py --part transformers  # fp16 import, computed in float32 on the CPU
    .venv/bin/python bench/bench_evaluation.py --part llama-cpp     # the original Q4_1 GGUF through llama.cpp
    .venv/bin/python bench/bench_evaluation.py --part kl --windows 40   # GGUF against its import
    .venv/bin/python bench/bench_evaluation.py --part calib --calib-windows 16  # model-generated calibration

Perplexity follows ../shared/data/README.md: WikiText-2 test, whole file tokenized once,
non-overlapping 512-token windows, every token but each window's first scored. The bundled GGUF is
imported once to bench/out/ as float16 (transformers runs it in float32 on the CPU). Each part
appends one JSON line to bench/out/bench_evaluation.jsonl, with the load average before and after,
since this machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bitsmith.engine import api  # noqa: E402
from bitsmith.engine.calibration import GenerationSettings, build_calibration  # noqa: E402
from bitsmith.engine.config import ImportConfig  # noqa: E402
from bitsmith.engine.events import Log, Progress, run_job  # noqa: E402

OUT = ROOT / "bench" / "out"
WIKITEXT = ROOT.parent / "shared" / "data" / "wikitext-2-raw-test.txt"
IMPORTED = OUT / "SmolLM2-135M-Instruct-f16"


def imported_model() -> Path:
    if not (IMPORTED / "config.json").is_file():
        print(f"importing the bundled GGUF to {IMPORTED}", flush=True)
        run_job(api.import_gguf(ImportConfig(api.bundled_model(), IMPORTED, dtype="float16", overwrite=True)))
    return IMPORTED


def printer(event) -> None:
    # A line every 10 evaluation windows is enough in a log file.
    if isinstance(event, Progress) and (event.stage != "evaluating" or event.step % 10 == 0 or event.step == event.total):
        print(f"  {event.stage} {event.step}/{event.total} eta {event.eta_s or 0:.0f}s {event.detail}", flush=True)
    elif isinstance(event, Log):
        print(f"  {event.message}", flush=True)


def evaluation(model: Path, source: Path | None, windows: int | None, ctx: int, threads: int | None) -> dict:
    settings = api.EvalSettings(model, WIKITEXT, source, ctx=ctx, windows=windows, threads=threads)
    result = run_job(api.evaluate(settings), on_event=printer)
    return result.to_dict()


def calibration(model: Path, n: int, seq_len: int, full_n: int, threads: int | None) -> dict:
    started = time.monotonic()
    job = build_calibration("model", model, n, seq_len, seed=0, generation=GenerationSettings(threads=threads))
    result = run_job(job, on_event=printer)
    seconds = time.monotonic() - started
    # One window decoded, to see what the model wrote.
    from bitsmith.engine.text_tokens import load_tokenizer

    (OUT / "calibration_window0.txt").write_text(load_tokenizer(model).decode(result.windows[0].tolist()), encoding="utf-8")
    return {
        "windows": result.n, "seq_len": result.seq_len, "seconds": seconds, "total_tokens": result.total_tokens,
        "source": result.source, "sha256": result.sha256,
        "extrapolated_seconds_for": {"windows": full_n, "seconds": seconds * full_n / n},
        "note": "extrapolated linearly from the measured count" if n != full_n else "measured",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["transformers", "llama-cpp", "kl", "calib"], required=True)
    p.add_argument("--windows", type=int, help="evaluate only the first N windows (default: whole file)")
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--calib-windows", type=int, default=128)
    p.add_argument("--calib-seq-len", type=int, default=512)
    p.add_argument("--threads", type=int, help="CPU threads for torch and llama.cpp (default: every core)")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    hf = imported_model()
    gguf = api.bundled_model()
    load_before = os.getloadavg()
    if args.part == "transformers":
        figures = evaluation(hf, None, args.windows, args.ctx, args.threads)
    elif args.part == "llama-cpp":
        figures = evaluation(gguf, None, args.windows, args.ctx, args.threads)
    elif args.part == "kl":
        figures = evaluation(gguf, hf, args.windows, args.ctx, args.threads)
    else:
        figures = calibration(hf, args.calib_windows, args.calib_seq_len, 128, args.threads)
    record = {"part": args.part, "cpu_count": os.cpu_count(), "threads": args.threads, "load_before": load_before,
              "load_after": os.getloadavg(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}
    with open(OUT / "bench_evaluation.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
