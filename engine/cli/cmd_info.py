"""`bitsmith info MODEL`: everything the catalog knows about one model."""

from __future__ import annotations

import json

from .. import api
from ..catalog.describe import detail_lines


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
    width = max(len(k) for k, _ in detail_lines(info))  # report card figures are among the lines
    for key, value in detail_lines(info):
        print(f"{key:<{width}}  {value}")
    return 0
