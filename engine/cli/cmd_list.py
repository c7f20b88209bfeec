"""`bitsmith list`: every model the catalog finds."""

from __future__ import annotations

import json

from .. import api
from ..api import human_bytes, human_count


def register(sub) -> None:
    p = sub.add_parser("list", help="list the models found on this machine")
    p.add_argument("--add", metavar="PATH", help="remember a file or folder of models first")
    p.add_argument("--json", action="store_true", help="one JSON array for scripts")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.add:
        api.add_model_path(args.add)
    models = api.scan()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    header = f"{'NAME':<44} {'FORMAT':<13} {'ARCH':<18} {'PARAMS':>7} {'TYPE':<12} {'BPW':>5} {'SIZE':>9}  FOUND IN"
    print(header)
    for m in models:
        if m.error:
            print(f"{m.name[:44]:<44} {'-':<13} {'unusable: ' + m.error}")
            continue
        bpw = f"{m.bits_per_weight:.2f}" if m.bits_per_weight else "?"
        print(f"{m.name[:44]:<44} {m.format.value:<13} {(m.architecture or '?')[:18]:<18} "
              f"{human_count(m.parameters):>7} {(m.dtype or '?')[:12]:<12} {bpw:>5} "
              f"{human_bytes(m.size_bytes):>9}  {m.origin.value}")
    return 0
