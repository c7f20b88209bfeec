"""The sampling options `chat` and `export` share (export writes them into an Ollama Modelfile), so
both commands spell them, default them and read them back the same way."""

from __future__ import annotations

from ..api import SamplingSettings


def add_sampling_args(p) -> None:
    d = SamplingSettings()
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty)
    p.add_argument("--max-tokens", type=int, default=d.max_new_tokens, help="most tokens in one answer")


def sampling_from_args(args, **more) -> SamplingSettings:
    """The settings the options above give (`more`: seed, stop, where the command has them)."""
    return SamplingSettings(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_tokens, **more)
