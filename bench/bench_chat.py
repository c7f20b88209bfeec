"""Chat speed of the bundled GGUF through Bitsmith's chat session against bare llama-cpp-python,
same model, prompt, settings and threads, in one process, alternating runs.

    .venv/bin/python bench/bench_chat.py [--tokens 128] [--rounds 3] [--threads N]

Bare: Llama.create_completion(stream=True) on the same rendered prompt. Session: ChatSession.send
(template rendering, context fitting, statistics, memory sampling, streaming events). Greedy, a
fixed number of new tokens (end-of-turn ignored), so both generate exactly the same tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def compare(backend, tokens: int, rounds: int, prompt: str = PROMPT) -> dict:
    """Bare llama-cpp-python against Bitsmith's chat session on one loaded LlamaCppBackend: one
    warm-up, then `rounds` alternating runs of exactly `tokens` greedy tokens; medians."""
    from bitsmith.engine.chat.session import ChatSession
    from bitsmith.engine.config import SamplingSettings
    from bitsmith.engine.events import Done

    llm = backend.llm
    settings = SamplingSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=tokens)
    prompt_ids = backend.tokenize(backend.render([{"role": "user", "content": prompt}]))
    eos = llm.token_eos()

    def bare() -> tuple[float, float, int]:
        llm.reset()
        t0 = time.perf_counter()
        first, n = None, 0
        # logit_bias keeps end-of-turn away so every run generates exactly `tokens` tokens
        for chunk in llm.create_completion(prompt_ids, max_tokens=tokens, temperature=0.0, top_k=40, top_p=0.95,
                                           min_p=0.0, repeat_penalty=1.0, stream=True, logit_bias={eos: -1e9, 2: -1e9}):
            n += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        return first - t0, (tokens - 1) / (end - first), n

    def session() -> tuple[float, float, int, int]:
        llm.reset()
        s = ChatSession(backend, settings=settings)
        original = llm.create_completion

        def biased(*a, **k):
            k["logit_bias"] = {eos: -1e9, 2: -1e9}
            return original(*a, **k)

        llm.create_completion = biased
        try:
            answer = next(ev.result for ev in s.send(prompt) if isinstance(ev, Done))
        finally:
            llm.create_completion = original
        st = answer.stats
        return st.time_to_first_token_s, st.generation_tokens_per_s, st.completion_tokens, st.peak_rss_bytes

    bare()  # warm-up
    b_rates, s_rates, b_ttft, s_ttft, peaks = [], [], [], [], []
    for _ in range(rounds):
        t, r, _n = bare()
        b_ttft.append(t)
        b_rates.append(r)
        t, r, n, peak = session()
        assert n == tokens, f"session generated {n} tokens"
        s_ttft.append(t)
        s_rates.append(r)
        peaks.append(peak)
    return {"tokens": tokens, "rounds": rounds, "prompt_tokens": len(prompt_ids),
            "bare_tok_s": statistics.median(b_rates), "session_tok_s": statistics.median(s_rates),
            "bare_ttft_s": statistics.median(b_ttft), "session_ttft_s": statistics.median(s_ttft),
            "session_peak_rss_bytes": max(peaks), "bare_runs_tok_s": b_rates, "session_runs_tok_s": s_rates}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    from bitsmith.engine import api
    from bitsmith.engine.runtime import load

    backend = load(api.bundled_model(), "cpu", n_ctx=1024, n_threads=args.threads)
    r = compare(backend, args.tokens, args.rounds)
    bm, sm = r["bare_tok_s"], r["session_tok_s"]
    print(f"bundled SmolLM2-135M-Instruct Q4_1, {args.tokens} new tokens, greedy, {args.threads} threads, "
          f"{args.rounds} alternating rounds (median)")
    print("| path | generation tok/s | time to first token (s) | peak RSS (MB) |")
    print("| --- | --- | --- | --- |")
    print(f"| bare llama-cpp-python | {bm:.1f} | {r['bare_ttft_s']:.3f} | - |")
    print(f"| Bitsmith chat session | {sm:.1f} | {r['session_ttft_s']:.3f} | {r['session_peak_rss_bytes'] / 1e6:.0f} |")
    print(f"session / bare generation speed: {sm / bm:.3f} (overhead {100 * (1 - sm / bm):+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
