"""Render resources/icons/bitsmith.svg to a PNG with Qt (no extra tools): render_icon.py OUT.png [SIZE]."""

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SVG = str(Path(__file__).resolve().parents[1] / "resources" / "icons" / "bitsmith.svg")


def main(out: str, size: int = 256) -> int:
    app = QGuiApplication(["render_icon", "-platform", "offscreen"])  # noqa: F841 (Qt needs one)
    renderer = QSvgRenderer(SVG)
    if not renderer.isValid():
        print(f"render_icon: cannot read {SVG}", file=sys.stderr)
        return 1
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return 0 if image.save(out) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 256))
