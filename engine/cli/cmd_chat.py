"""`bitsmith chat MODEL`: stream answers in the terminal, with statistics after each answer.

Ctrl-C while an answer streams stops that answer, not the program; Ctrl-C or Ctrl-D at the prompt
leaves. `--prompt TEXT` answers once and exits; `--json` prints the answer and its statistics as
one JSON object."""

from __future__ import annotations

import json
import signal
import sys

from ..api import (Answer, CancelToken, ChatSession, Done, HistoryStore, Log, TextPiece,
                   human_bytes)
from ..api import load_model as load
from .cmd_info import resolve_model_arg
from .sampling_args import add_sampling_args, sampling_from_args


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal")
    p.add_argument("model", help="a GGUF file or a Hugging Face folder ('bundled' for the bundled model)")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--prompt", help="answer this one message and exit")
    p.add_argument("--json", action="store_true", help="with --prompt: one JSON object with the answer and statistics")
    add_sampling_args(p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--ctx", type=int, default=None, help="context length (GGUF)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (GGUF)")
    p.add_argument("--gpu-layers", type=int, default=None, help="layers to offload to the GPU (GGUF)")
    p.add_argument("--no-history", action="store_true", help="do not save this conversation")
    p.set_defaults(func=run)


def _stats_line(a: Answer) -> str:
    s = a.stats
    return (f"[{s.completion_tokens} tokens, {s.generation_tokens_per_s:.1f} tok/s, first token after "
            f"{s.time_to_first_token_s:.2f} s, prompt {s.prompt_tokens} tokens at {s.prompt_tokens_per_s:.0f} tok/s, "
            f"peak memory {human_bytes(s.peak_rss_bytes)}{', stopped' if a.finish_reason == 'cancelled' else ''}]")


def _stream(job, quiet: bool) -> Answer:
    """Print pieces as they come; Ctrl-C sets the job's cancel token (see `_answer`)."""
    answer = None
    for ev in job:
        if isinstance(ev, TextPiece) and not quiet:
            sys.stdout.write(ev.text)
            sys.stdout.flush()
        elif isinstance(ev, Log) and not quiet:
            print(f"({ev.message})", file=sys.stderr)
        elif isinstance(ev, Done):
            answer = ev.result
    return answer


def _answer(session: ChatSession, text: str, quiet: bool = False) -> Answer:
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        return _stream(session.send(text, cancel), quiet)
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args) -> int:
    settings = sampling_from_args(args, seed=args.seed, stop=tuple(args.stop))
    backend = load(resolve_model_arg(args.model), args.device, n_ctx=args.ctx, n_threads=args.threads,
                   n_gpu_layers=args.gpu_layers)
    store = None if args.no_history else HistoryStore()
    session = ChatSession(backend, args.system, settings, store)
    if args.prompt is not None:
        answer = _answer(session, args.prompt, quiet=args.json)
        if args.json:
            print(json.dumps({"answer": answer.text, "finish_reason": answer.finish_reason,
                              "stats": answer.stats.to_dict(), "model": backend.describe(),
                              "conversation_id": session.conversation_id}, indent=2))
        else:
            print()
            print(_stats_line(answer), file=sys.stderr)
        return 0
    print(f"Chatting with {backend.path} ({backend.kind}, {backend.device}). Ctrl-C stops an answer; "
          "Ctrl-D or /exit leaves.", file=sys.stderr)
    while True:
        try:
            text = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if text.strip() in ("/exit", "/quit"):
            return 0
        if not text.strip():
            continue
        answer = _answer(session, text)
        print()
        print(_stats_line(answer), file=sys.stderr)
