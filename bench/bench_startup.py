"""Start-up time to the first painted window, and the idle CPU of the Chat view.

Each run is a fresh process (`python -m bitsmith.main` as a user starts it, with a hook that reports
when the window has been painted once), timed from the process's creation time as the OS records it.
Idle CPU: the window shows the Chat area with the bundled model loaded, then psutil measures the
process's CPU time over 10 s of nobody touching it.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python bench/bench_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent("""
    import sys, time, psutil
    from PySide6.QtCore import QObject, QEvent, QTimer
    from PySide6.QtWidgets import QApplication
    born = psutil.Process().create_time()

    class FirstPaint(QObject):
        def eventFilter(self, obj, ev):
            from bitsmith.gui.main_window import MainWindow
            if ev.type() == QEvent.Paint and isinstance(obj, MainWindow) and not hasattr(self, "t"):
                self.t = time.time() - born
                QTimer.singleShot(0, after_paint)
            return False

    def after_paint():
        out = {"first_window_s": hook.t}
        if IDLE_S:
            w = next(x for x in QApplication.topLevelWidgets() if type(x).__name__ == "MainWindow")
            w.show_area("chat")
            def measure():
                p = psutil.Process()
                c0 = sum(p.cpu_times()[:2]); t0 = time.monotonic()
                def done():
                    out["idle_cpu_percent"] = 100 * (sum(p.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
                    out["model_loaded"] = w.chat_page.backend is not None
                    print("RESULT " + __import__("json").dumps(out), flush=True)
                    QApplication.instance().exit(0)
                QTimer.singleShot(int(IDLE_S * 1000), done)
            QTimer.singleShot(int(SETTLE_S * 1000), measure)  # the model loads, then nothing happens
        else:
            print("RESULT " + __import__("json").dumps(out), flush=True)
            QApplication.instance().exit(0)

    hook = FirstPaint()
    import bitsmith.gui.app as app_mod
    create = app_mod.create_app
    def create_and_hook(argv=None):
        app = create(argv)
        app.installEventFilter(hook)
        return app
    app_mod.create_app = create_and_hook
    from bitsmith.main import main
    sys.exit(main([]))
""")


def run_once(idle_s: float, settle_s: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    code = f"IDLE_S = {idle_s}\nSETTLE_S = {settle_s}\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement (0: skip)")
    p.add_argument("--settle", type=float, default=8.0, help="seconds for the chat model to load first")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("BITSMITH_HOME", home)  # a first start: no settings, no catalog cache
        times = []
        for i in range(args.runs):
            r = run_once(0, 0)
            times.append(r["first_window_s"])
            print(f"run {i + 1}: first window after {r['first_window_s']:.2f} s", flush=True)
        print(f"first window: median {statistics.median(times):.2f} s, min {min(times):.2f}, max {max(times):.2f} "
              f"({args.runs} runs, load average {os.getloadavg()[0]:.2f})")
        if args.idle:
            r = run_once(args.idle, args.settle)
            print(f"idle Chat view: {r['idle_cpu_percent']:.2f} % of one core over {args.idle:.0f} s "
                  f"(model loaded: {r['model_loaded']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
