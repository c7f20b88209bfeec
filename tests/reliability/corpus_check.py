"""Run in a child process by the corpus test: inspect every path given on stdin (one per line) and
scan the corpus folder as a user folder, then print one JSON object with each outcome and the
child's memory growth. A hang or a crash cannot take the test process with it."""

from __future__ import annotations

import json
import os
import resource
import sys


def main(folder: str) -> None:
    from bitsmith.engine import api
    from bitsmith.engine.errors import EngineError

    api.scan()  # imports and the first scan's work, before the baseline
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {}
    for line in sys.stdin.buffer.read().split(b"\n"):
        if not line:
            continue
        name, raw_path = line.split(b"\t", 1)
        path = os.fsdecode(raw_path)
        if os.environ.get("CORPUS_TRACE"):
            print(name.decode(), file=sys.stderr, flush=True)
        try:
            api.inspect(path)
            outcomes[name.decode()] = {"ok": True}
        except EngineError as exc:
            outcomes[name.decode()] = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        except BaseException as exc:  # what the test exists to catch
            outcomes[name.decode()] = {"ok": False, "type": "CRASH " + type(exc).__name__, "message": str(exc)[:300]}
    api.add_model_path(folder)
    scanned = {}
    try:
        for info in api.scan():
            scanned[info.path] = info.error
        scan_error = None
    except BaseException as exc:
        scan_error = f"{type(exc).__name__}: {exc}"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kib
    print(json.dumps({"outcomes": outcomes, "scanned": scanned, "scan_error": scan_error, "grown_kib": grown}))


if __name__ == "__main__":
    main(sys.argv[1])
