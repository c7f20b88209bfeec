"""The system libraries Qt's X11 (xcb) platform plugin needs, and the one command that installs them.

Without them Qt aborts the process with a core dump and a hint most users cannot act on. The window
checks before it starts Qt, and scripts/setup.sh runs this module (`python -m bitsmith.gui.qt_libraries`)
so a new machine hears about them at set-up. Standard library only: it runs before Qt is imported."""

from __future__ import annotations

import ctypes.util
import os
import sys

#: library name for ctypes.util.find_library -> the Debian/Ubuntu package that provides it
QT_XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0", "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1", "xcb-image": "libxcb-image0", "xcb-render-util": "libxcb-render-util0",
    "xcb-xinerama": "libxcb-xinerama0", "xcb-randr": "libxcb-randr0", "xcb-shape": "libxcb-shape0",
    "xcb-xkb": "libxcb-xkb1", "EGL": "libegl1", "GL": "libgl1", "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
}


def missing_packages(find=ctypes.util.find_library) -> list[str]:
    """The packages whose library is not found (Linux only; elsewhere Qt brings its own)."""
    if not sys.platform.startswith("linux"):
        return []
    return [pkg for lib, pkg in QT_XCB_LIBRARIES.items() if find(lib) is None]


def install_command(packages: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def uses_xcb(env=None, argv: list[str] | None = None) -> bool:
    """Whether Qt will use its X11 plugin: on Linux unless another platform is asked for (or Wayland runs)."""
    env = os.environ if env is None else env
    argv = argv or []
    if not sys.platform.startswith("linux"):
        return False
    if "-platform" in argv:
        i = argv.index("-platform")
        return i + 1 < len(argv) and argv[i + 1].startswith("xcb")
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.startswith("xcb")
    return not env.get("WAYLAND_DISPLAY")


def problem(env=None, argv: list[str] | None = None, find=ctypes.util.find_library) -> str | None:
    """One line saying what is missing and how to install it, or None when the window can start."""
    if not uses_xcb(env, argv):
        return None
    missing = missing_packages(find)
    if not missing:
        return None
    return (f"the window needs Qt's X11 system libraries, and {len(missing)} are missing; install them with: "
            f"{install_command(missing)}")


def main() -> int:
    """For scripts/setup.sh: say what to install (exit 0 either way: the command line works without them)."""
    missing = missing_packages()
    if missing:
        print(f"note: the Bitsmith window needs Qt's X11 libraries; {len(missing)} are missing. Install them with:\n"
              f"  {install_command(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
