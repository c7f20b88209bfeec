"""The longest event-loop stall the user would feel while Bitsmith works in the background.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_gui_stall.py [--gptq] [--json PATH]

A 1 ms QTimer on the GUI thread records the gap between its ticks while (1) a GGUF Q8_0 conversion
of the bundled model runs in the conversion queue, (2) optionally a GPTQ conversion, and (3) the
chat pane streams a 128-token answer from the bundled model with the live graphs drawing. The
window is the real MainWindow, set up as at start-up before anything is measured. The goal is a
longest stall under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class StallMeter:
    def __init__(self):
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer(interval=1)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self):
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        g = sorted(self.gaps)
        return {"ticks": len(g), "max_ms": g[-1] * 1000, "p99_ms": g[int(len(g) * 0.99)] * 1000}


def wait(app, cond, timeout=3600):
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.0005)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gptq", action="store_true", help="also measure during a GPTQ conversion")
    ap.add_argument("--no-freeze", action="store_true", help="leave the garbage collector as it is (for comparison)")
    ap.add_argument("--json", type=Path, help="also write the figures per activity to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["BITSMITH_HOME"] = tempfile.mkdtemp(prefix="bitsmith-stall-")
    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.gui.app import create_app
    from bitsmith.gui.main_window import MainWindow

    app = create_app([])
    # The real window, as a user has it: its areas (and the modules they import) exist before any
    # conversion starts, and its timers (graphs, status bar) run throughout.
    window = MainWindow()
    window.show()
    wait(app, lambda: not window.browser.is_scanning())
    if not args.no_freeze:
        from bitsmith.gui.app import settle_heap

        settle_heap()  # as gui.app.run_app does once the window is up
    meter = StallMeter()
    out = Path(os.environ["BITSMITH_HOME"])
    bundled = api.bundled_model()
    results = {}
    queue = window.queue
    jobs = [("GGUF Q8_0 conversion", QuantizeConfig(bundled, out / "b-Q8_0.gguf", "gguf", gguf_type="Q8_0"))]
    if args.gptq:
        jobs.append(("GPTQ 4-bit conversion", QuantizeConfig(bundled, out / "b-gptq", "gptq", calibration="builtin",
                                                             samples=16, seq_len=256)))
    for label, cfg in jobs:
        meter.start()
        entry = queue.add(cfg, label)
        wait(app, lambda: entry.finished)
        results[label] = meter.stop() | {"status": entry.status}
    window.show_area("chat")
    pane = window.chat_page
    pane.choose_model(str(bundled))
    wait(app, lambda: not pane.is_busy())
    pane.max_tokens.setValue(128)
    pane.temperature.setValue(0.0)
    pane.input.setPlainText("Write a short story about a lighthouse keeper.")
    meter.start()
    pane.send()
    wait(app, lambda: not pane.is_busy())
    results["chat answer (128 tokens, graphs live)"] = meter.stop() | {"status": "done"}
    print("| activity | status | ticks | longest stall (ms) | 99th percentile gap (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for label, r in results.items():
        print(f"| {label} | {r['status']} | {r['ticks']} | {r['max_ms']:.1f} | {r['p99_ms']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"goal_ms": 50, "gptq": args.gptq, "freeze": not args.no_freeze,
                                         "activities": [{"activity": k, **v} for k, v in results.items()]}, indent=1))
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
