"""Generation speed through `bitsmith serve` (the official openai client, streaming) against the
in-process chat session, on the same model, prompt and settings, alternating runs.

    .venv/bin/python bench/bench_server.py [--model bundled] [--tokens 128] [--rounds 4] [--threads 1]

In-process: ChatSession.send on a backend loaded in this process; its AnswerStats give the rate.
Server: `bitsmith serve MODEL --port 0` in a child process (as a user runs it), and in this process
the openai client streaming a chat completion with stream_options.include_usage; the rate is
(completion tokens - 1) / (time of the last content chunk - time of the first), the formula
AnswerStats uses, so both count the decode phase only. Greedy, repetition penalty 1, the same
user message; both paths generate the same tokens (checked: same completion token count), and
each keeps llama.cpp's prompt cache between rounds in the same way. Medians; writes
bench/out/bench_server.json. Takes about a minute on the bundled model.

On a loaded machine single runs vary by 20% or more, more than the overhead being measured, so
the script also times the server's own cost per token: the same streamed request against a
backend that produces its tokens instantly (in this process, on a background thread), so
everything measured is HTTP, JSON, server-sent events, the queue and the client. With that cost
c (s/token) and the model's in-process rate r, the expected ratio is 1 / (1 + c * r).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT, machine_info  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def in_process(backend, tokens: int):
    from bitsmith.engine.api import ChatSession, Done, SamplingSettings

    session = ChatSession(backend, settings=SamplingSettings(temperature=0.0, repetition_penalty=1.0,
                                                             max_new_tokens=tokens))
    answer = next(ev.result for ev in session.send(PROMPT) if isinstance(ev, Done))
    s = answer.stats
    return s.generation_tokens_per_s, s.time_to_first_token_s, s.completion_tokens


def via_server(client, tokens: int):
    t0 = time.perf_counter()
    first = last = None
    usage = None
    for chunk in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": PROMPT}], temperature=0, max_tokens=tokens, stream=True,
            stream_options={"include_usage": True}, extra_body={"repetition_penalty": 1.0}):
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.usage:
            usage = chunk.usage
    n = usage.completion_tokens
    return (n - 1) / (last - first), first - t0, n


def pipeline_cost(tokens: int = 2000, rounds: int = 3) -> float:
    """Seconds per token that the server and the client add, against an instant backend."""
    import openai

    from bitsmith.engine.api import ServerSettings, serve
    from bitsmith.engine.runtime.base import Backend

    class Instant(Backend):
        kind, device, context_length, chat_template, path = "instant", "cpu", 10**6, "x", "instant"

        def render(self, messages, add_generation_prompt=True):
            return "x"

        def tokenize(self, text):
            return [0]

        def stream(self, prompt_ids, settings, cancel, counts):
            for _ in range(settings.max_new_tokens):
                yield " w"
            counts.prompt_tokens, counts.completion_tokens, counts.finish_reason = 1, settings.max_new_tokens, "length"

    costs = []
    with serve(Instant(), ServerSettings(port=0)).start() as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        for _ in range(rounds):
            t0 = time.perf_counter()
            n = sum(1 for c in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                                max_tokens=tokens, stream=True)
                    if c.choices and c.choices[0].delta.content)
            costs.append((time.perf_counter() - t0) / n)
    return statistics.median(costs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads, the same on both sides")
    args = ap.parse_args()
    import openai

    from bitsmith.engine import api

    model = api.bundled_model() if args.model == "bundled" else Path(args.model)
    backend = api.load_model(model, "cpu", n_ctx=1024, n_threads=args.threads)
    server = subprocess.Popen([sys.executable, "-m", "bitsmith.main", "serve", str(model), "--port", "0", "--ctx", "1024",
                               "--threads", str(args.threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
        in_process(backend, args.tokens)  # warm-up of both (page cache, prompt cache)
        via_server(client, args.tokens)
        runs = {"in_process": [], "server": []}
        for _ in range(args.rounds):
            runs["in_process"].append(in_process(backend, args.tokens))
            runs["server"].append(via_server(client, args.tokens))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    cost = pipeline_cost()
    counts = {k: {r[2] for r in v} for k, v in runs.items()}
    med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    ttft = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    ratio = med["server"] / med["in_process"]
    result = {"model": str(model), "tokens": args.tokens, "rounds": args.rounds, "threads": args.threads,
              "completion_tokens": {k: sorted(v) for k, v in counts.items()}, "tok_s": med, "ttft_s": ttft,
              "server_over_in_process": ratio, "server_cost_s_per_token": cost,
              "expected_ratio_from_cost": 1 / (1 + cost * med["in_process"]), "runs": runs, "machine": machine_info()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_server.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"{Path(model).name}, up to {args.tokens} new tokens, greedy, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds (median); completion tokens {counts}")
    print("| path | generation tok/s | time to first token (s) |")
    print("| --- | --- | --- |")
    print(f"| in-process chat session | {med['in_process']:.1f} | {ttft['in_process']:.3f} |")
    print(f"| bitsmith serve + openai client (streaming) | {med['server']:.1f} | {ttft['server']:.3f} |")
    print(f"server / in-process: {ratio:.3f} (goal >= 0.95)")
    print(f"server and client cost per token (instant backend): {cost * 1e3:.2f} ms, so at "
          f"{med['in_process']:.1f} tok/s the expected ratio is {result['expected_ratio_from_cost']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
