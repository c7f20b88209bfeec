"""Chat speed with llama.cpp's thread count fixed at 1, fixed at every core, and chosen per answer
from the free cores (engine/threads.py), on a quiet machine and with one core kept busy by another
program (a spinning Python process). The bundled SmolLM2-135M Q4_1, greedy, the same prompt each time.

    .venv/bin/python bench/bench_chat_threads.py --answers 5 --tokens 96
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def speeds(n_threads: int | None, answers: int, tokens: int) -> tuple[list[float], list[int]]:
    from bitsmith.engine import api
    from bitsmith.engine.api import ChatSession, SamplingSettings, run_job

    backend = api.load_model(api.bundled_model(), n_threads=n_threads)
    try:
        out, used = [], []
        for _ in range(answers):
            session = ChatSession(backend, settings=SamplingSettings(max_new_tokens=tokens, temperature=0.0))
            answer = run_job(session.send("Write a short story about a lighthouse keeper and a storm."))
            out.append(answer.stats.generation_tokens_per_s)
            used.append(backend.threads)
            time.sleep(0.5)  # a pause between answers, as a person reading
        return out, used
    finally:
        backend.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=5)
    p.add_argument("--tokens", type=int, default=96)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    for condition in ("quiet", "one core busy"):
        hog = None
        if condition != "quiet":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for label, n in (("1 thread", 1), (f"{cores} threads", cores), ("auto", None)):
                s, used = speeds(n, args.answers, args.tokens)
                rows.append((condition, label, statistics.median(s), min(s), max(s), sorted(set(used)),
                             os.getloadavg()[0]))
                print(f"{condition:14} {label:10} median {rows[-1][2]:5.1f} tok/s (min {min(s):.1f}, max {max(s):.1f}); "
                      f"threads used {rows[-1][5]}; load average {rows[-1][6]:.2f}", flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
