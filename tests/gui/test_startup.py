"""Start-up: the first window is painted without the heavy engine (torch, transformers, llama.cpp,
numpy, pyqtgraph) and the catalog scan starts only after that first paint, as run_app does it.
(The time itself is measured by bench/bench_startup.py, not asserted here.)"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "llama_cpp", "numpy", "pyqtgraph", "safetensors", "gguf")

CHILD = """
import os, sys
from PySide6.QtCore import QEvent, QObject, QTimer
import bitsmith.gui.status_bar as status_bar
status_bar.DEVICE_CHECK_DELAY_MS = 10 ** 7  # the GPU check (torch) is not part of the window
from bitsmith.gui.app import after_first_paint, create_app
from bitsmith.gui.main_window import MainWindow
app = create_app([])
w = MainWindow(scan=False)
seen = {}
class Paint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Paint and obj is w and "paint" not in seen:
            seen["paint"] = sorted(m for m in %r if m in sys.modules)
            seen["scanning"] = w.browser.is_scanning()
        return False
hook = Paint()
w.installEventFilter(hook)
w.show()
def after():
    w.browser.refresh()
    seen["after"] = w.browser.is_scanning()
    print("RESULT", seen, flush=True)
    os._exit(0)  # all this process had to say is said; the scan (seconds under load) need not finish
after_first_paint(w, after)
app.exec()
"""


def test_the_first_window_paints_without_the_heavy_engine(tmp_path):
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "BITSMITH_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CHILD % (HEAVY,)], capture_output=True, text=True, timeout=300,
                         env=env)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, out.stderr[-2000:]
    seen = eval(line[7:])  # a dict literal this test printed itself
    assert seen["paint"] == []  # none of the heavy modules before the first paint
    assert seen["scanning"] is False and seen["after"] is True  # the scan waits for the paint
