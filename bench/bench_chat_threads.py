"""Chat speed with llama.cpp's thread count fixed at 1, fixed at every core, and chosen per answer
from the free cores (engine/threads.py), on a quiet machine and with one core kept busy by another
program (a spinning Python process). The bundled SmolLM2-135M Q4_1, greedy, the same prompt each time.

    .venv/bin/python bench/bench_chat_threads.py --rounds 6 --tokens 64
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time


PROMPT = "Write a short story about a lighthouse keeper and a storm."


def answer_speed(backend, tokens: int) -> float:
    from bitsmith.engine.api import ChatSession, SamplingSettings, run_job

    session = ChatSession(backend, settings=SamplingSettings(max_new_tokens=tokens, temperature=0.0))
    return run_job(session.send(PROMPT)).stats.generation_tokens_per_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=1, help="answers per setting per round")
    p.add_argument("--tokens", type=int, default=96)
    p.add_argument("--rounds", type=int, default=6, help="rounds per condition; each round answers with every "
                                                           "setting in turn, each round in another order")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy (one core kept busy) or both")
    args = p.parse_args()
    os.environ.pop("BITSMITH_THREADS", None)  # a fixed count from the environment would make "auto" fixed
    cores = os.cpu_count() or 1
    settings = [("1 thread", 1), (f"{cores} threads", cores), ("auto", None)]
    for condition in args.conditions.split(","):
        hog = None
        if condition == "busy":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        results: dict[str, list[float]] = {label: [] for label, _n in settings}
        used: dict[str, set] = {label: set() for label, _n in settings}
        loads = []
        from bitsmith.engine import api

        # One process, the three settings loaded side by side and their answers interleaved, so that a
        # change in the machine's load falls on all alike.
        backends = {label: api.load_model(api.bundled_model(), n_threads=n) for label, n in settings}
        try:
            orders = list(itertools.permutations(settings))
            for r in range(args.rounds):
                # Every order in turn: an answer right after the all-cores one starts while that one's
                # threads still spin down, so no setting may always come after it (a rotation kept
                # "auto" there in every round and cost it 10-15 %).
                order = orders[r % len(orders)]
                for _ in range(args.answers):
                    for label, _n in order:
                        results[label].append(answer_speed(backends[label], args.tokens))
                        used[label].add(backends[label].threads)
                        time.sleep(0.5)  # a pause between answers, as a person reading
                loads.append(os.getloadavg()[0])
                print(f"{condition:5} round {r + 1}: " + "; ".join(
                    f"{label} {statistics.median(results[label][-args.answers:]):.1f}" for label, _n in settings)
                    + f" tok/s; load average {loads[-1]:.2f}", flush=True)
        finally:
            for backend in backends.values():
                backend.close()
            if hog is not None:
                hog.kill()
                hog.wait()
        name = "one core busy" if condition == "busy" else "quiet"
        print(f"== {name}: {args.rounds} rounds x {args.answers} answers x {args.tokens} tokens, "
              f"load average {min(loads):.2f}-{max(loads):.2f}")
        best_fixed = max(statistics.median(results[label]) for label, n in settings if n is not None)
        for label, _n in settings:
            med = statistics.median(results[label])
            print(f"   {label:10} median {med:5.1f} tok/s (min {min(results[label]):.1f}, max "
                  f"{max(results[label]):.1f}); threads used {sorted(used[label])}"
                  + (f"; auto / best fixed = {med / best_fixed:.2f}" if label == "auto" else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
