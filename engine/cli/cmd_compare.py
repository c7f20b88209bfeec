"""`bitsmith compare MODEL`: a source model and every variant converted from it, with the figures
from their report cards (the desktop's Compare view as a table)."""

from __future__ import annotations

import json
from dataclasses import asdict

from .. import api
from ..api import family, root_of
from .cmd_info import resolve_model_arg


def register(sub) -> None:
    p = sub.add_parser("compare", help="a model's family of variants: size, perplexity, KL divergence",
                       description="List the source of MODEL and every listed model converted from it, with the "
                                   "evaluation figures in their report cards (see `bitsmith eval --save`).")
    p.add_argument("model", help="the source or any of its variants ('bundled' for the bundled model)")
    p.add_argument("--json", action="store_true", help="one JSON array for scripts")
    p.set_defaults(func=run)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run(args) -> int:
    models = api.scan()
    target = api.inspect(resolve_model_arg(args.model))
    points = family(root_of(target, models + [target]), models + [target])
    if args.json:
        print(json.dumps([asdict(p) for p in points], indent=2))
        return 0
    print(f"{'VARIANT':<26} {'SIZE MB':>9} {'BPW':>6} {'PPL':>9} {'KL':>8} {'TOP-1':>6} {'TOK/S':>6}  NAME")
    for p in points:
        kl = 0.0 if p.generation == 0 and p.perplexity is not None else p.kl_divergence
        size = p.size_bytes / 1e6 if p.size_bytes else None
        print(f"{('  ' * p.generation + p.label)[:26]:<26} {_fmt(size, '.1f'):>9} {_fmt(p.bits_per_weight, '.2f'):>6} "
              f"{_fmt(p.perplexity, '.3f'):>9} {_fmt(kl, '.4f'):>8} {_fmt(p.top1_agreement, '.3f'):>6} "
              f"{_fmt(p.tokens_per_second, '.0f'):>6}  {p.name}")
    if any(p.perplexity is None for p in points):
        print("('-': not evaluated yet; `bitsmith eval MODEL --source SRC --text FILE --save` adds the figures)")
    return 0
