"""`bitsmith export --to ollama|lmstudio|card MODEL`: hand a GGUF to Ollama (a Modelfile with the
chat template translated, stop tokens and settings; `ollama create` when Ollama is installed) or to
LM Studio (the file placed in its models folder), each with a model card; `card` writes only the
card (README.md) for any output."""

from __future__ import annotations

import json

from .. import api
from ..api import CancelToken, ExportSettings, LinkMode, run_job
from .cmd_info import resolve_model_arg
from .progress import ProgressPrinter
from .sampling_args import add_sampling_args, sampling_from_args


def register(sub) -> None:
    p = sub.add_parser("export", help="register a GGUF with Ollama or LM Studio, or write a model card")
    p.add_argument("model", help="a GGUF file (any output for --to card; 'bundled' for the bundled model)")
    p.add_argument("--to", required=True, choices=["ollama", "lmstudio", "card"])
    p.add_argument("--out", default=None,
                   help="ollama: folder for the Modelfile and card; lmstudio: LM Studio's models folder "
                        "(default: its own); card: folder for README.md")
    p.add_argument("--name", default=None, help="model name in Ollama / folder in LM Studio (default: from the file)")
    p.add_argument("--link", default="auto", choices=[m.value for m in LinkMode],
                   help="lmstudio: hard link (no extra space) else copy (auto), or one of them")
    p.add_argument("--no-create", action="store_true", help="ollama: write the Modelfile only; do not run ollama create")
    add_sampling_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = ExportSettings(resolve_model_arg(args.model), args.to, out=args.out, name=args.name, link=args.link,
                              run_tool=not args.no_create)
    sampling = sampling_from_args(args)
    r = run_job(api.export_model(settings, sampling, CancelToken()), ProgressPrinter(quiet=args.json))
    if args.json:
        print(json.dumps({"target": r.target, "model": str(r.model), "out_dir": str(r.out_dir), "card": str(r.card),
                          "modelfile": str(r.modelfile) if r.modelfile else None,
                          "placed": str(r.placed) if r.placed else None, "command": r.command,
                          "created": r.created, "notes": r.notes}, indent=2))
        return 0
    if r.modelfile:
        print(f"Modelfile: {r.modelfile}")
    if r.placed:
        print(f"LM Studio: {r.placed}")
    print(f"model card: {r.card}")
    if r.command:
        print(f"next: {r.command}")
    return 0
