"""The packaging sources, checked without building: the spec parses and names what the bundle
must carry, and the Linux menu entry and icon are well formed."""

from __future__ import annotations

import ast
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

from bitsmith.engine.paths import BUNDLED_FILE

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def test_the_spec_parses_and_names_what_the_bundle_needs():
    source = (PACKAGING / "bitsmith.spec").read_text(encoding="utf-8")
    ast.parse(source)
    assert f'"{BUNDLED_FILE}"' in source  # the same file engine.paths looks for
    for must in ('"models"', '"resources"', '"llama_cpp/lib"', '"libllama.so"', '"pytest"', "^torch/test/"):
        assert must in source, must
    hook = (PACKAGING / "hooks" / "hook-bitsandbytes.py").read_text(encoding="utf-8")
    assert "libbitsandbytes_cpu." in hook  # a CPU build carries no CUDA kernels


def test_build_pins_pyinstaller():
    pins = (PACKAGING / "requirements-build.txt").read_text(encoding="utf-8")
    assert any(line.startswith("pyinstaller==") for line in pins.splitlines())


def test_the_desktop_entry_and_icon_are_well_formed():
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(PACKAGING / "linux" / "bitsmith.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Icon"] == "bitsmith"
    assert desktop["Exec"] == '"@BUNDLE@/bitsmith"'  # install.sh fills in the real folder
    icon = ET.parse(PACKAGING.parent / "resources" / "icons" / "bitsmith.svg").getroot()
    assert icon.tag.endswith("svg") and icon.get("viewBox") == "0 0 256 256"
