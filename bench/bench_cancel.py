"""How long a cancel takes to stop each conversion method, from the moment Cancel is pressed to the
moment the job's caller gets `Cancelled` (partial output already removed).

    .venv/bin/python bench/bench_cancel.py [--runs 20] [--process] [--json PATH]

Each method converts the tiny random Llama (the tests' fixture, built in a temporary folder) once
uncancelled to learn its length here, then `--runs` times cancelled at moments drawn uniformly over
the first 60% of that length (seeded). `--process` runs the jobs in a child process, as the window
does. Prints the median and worst latency per method; the issue's goal is under 2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = {
    "gguf F16": dict(method="gguf", gguf_type="F16"),
    "gguf Q4_K_M": dict(method="gguf", gguf_type="Q4_K_M", samples=4, seq_len=32),
    "gptq": dict(method="gptq", samples=4, seq_len=32),
    "awq": dict(method="awq", samples=4, seq_len=32),
    "int8": dict(method="int8"),
}


def cancel_once(cfg, delay: float, in_process: bool) -> float | None:
    from bitsmith.engine import api
    from bitsmith.engine.cancel import CancelToken

    token, ended = CancelToken(), {}

    def work():
        try:
            api.run_job(api.convert(cfg, token, in_process=in_process))
            ended["how"] = "done"
        except api.Cancelled:
            ended["how"] = "cancelled"
        ended["at"] = time.monotonic()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(delay)
    pressed = time.monotonic()
    token.cancel()
    thread.join()
    return ended["at"] - pressed if ended["how"] == "cancelled" else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--process", action="store_true", help="run each job in a child process (the window's path)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.tiny_model import build_tiny_llama

    rng = random.Random(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = build_tiny_llama(tmp / "tiny")
        for label, opts in METHODS.items():
            def cfg(i):
                return QuantizeConfig(source=tiny, out=tmp / f"{label.replace(' ', '-')}-{i}", calibration="builtin", **opts)

            started = time.monotonic()
            api.run_job(api.convert(cfg("reference"), in_process=args.process))
            length = time.monotonic() - started
            latencies = [cancel_once(cfg(i), rng.uniform(0, 0.6 * length), args.process) for i in range(args.runs)]
            hit = [x for x in latencies if x is not None]
            results[label] = {"run_s": round(length, 2), "cancels": len(hit), "finished_first": len(latencies) - len(hit),
                              "median_s": round(statistics.median(hit), 3) if hit else None,
                              "worst_s": round(max(hit), 3) if hit else None}
            print(f"{label:12} run {length:5.2f} s  cancels {len(hit):2d}  median {results[label]['median_s']} s  "
                  f"worst {results[label]['worst_s']} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"process": args.process, "methods": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
