"""`bitsmith info MODEL`: everything the catalog knows about one model."""

from __future__ import annotations

import json

from .. import api
from ..api import detail_lines


def register(sub) -> None:
    p = sub.add_parser("info", help="show what a model is and what it needs")
    p.add_argument("model", help="a GGUF file or a Hugging Face model folder ('bundled' for the bundled model)")
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.set_defaults(func=run)


def resolve_model_arg(text: str):
    """'bundled' names the model that ships with the app; anything else is a path."""
    return api.bundled_model() if text == "bundled" else text


def run(args) -> int:
    info = api.inspect(resolve_model_arg(args.model))
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    from ..api import family

    children = [(p.label, p.name) for p in family(info, api.scan()) if p.generation == 1]
    lines = detail_lines(info, children)  # report card figures and lineage are among the lines
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0
