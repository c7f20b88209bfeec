#!/usr/bin/env bash
# Build the one-folder Bitsmith bundle for this platform into dist/bitsmith, smoke-test it with
# --self-test, and (on Linux) add the menu entry and icon and pack dist/bitsmith-<version>-linux-<arch>.tar.gz.
# Usage: bash packaging/build.sh   (from anywhere; on a fresh machine it sets up .venv first)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    bash scripts/setup.sh  # the README's set-up; does nothing when .venv is already current
fi
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || { echo "build.sh: $PY not found" >&2; exit 2; }
start=$(date +%s)

# A CPU bundle: a CUDA build of torch would drag in gigabytes of CUDA libraries.
"$PY" -c "import sys, torch; sys.exit(torch.version.cuda is not None)" ||
    { echo "build.sh: this .venv has a CUDA build of torch; build the bundle from the CPU build" >&2; exit 2; }

# PyInstaller is a build tool only: pinned here, never a dependency of the app.
"$PY" -m pip install --quiet -r packaging/requirements-build.txt

# PYTHONWARNINGS: torch's hook imports every torch module, and each deprecated one would warn.
PYTHONWARNINGS=ignore::DeprecationWarning "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/bitsmith.spec
bundle=dist/bitsmith
built=$(date +%s)

if [ "$(uname -s)" = Linux ]; then
    cp packaging/linux/bitsmith.desktop packaging/linux/install.sh resources/icons/bitsmith.svg "$bundle/"
    QT_QPA_PLATFORM=offscreen "$PY" packaging/render_icon.py "$bundle/bitsmith.png" 256
fi

# The bundle must work headless and offline: no display, no network, a throwaway home.
echo "--- self-test of $bundle/bitsmith"
if ! env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 \
        "$bundle/bitsmith" --self-test; then
    echo "build.sh: the bundle's self-test failed; not packing it" >&2
    exit 1
fi
tested=$(date +%s)

if [ "$(uname -s)" = Linux ]; then
    version=$("$PY" -c "from bitsmith.engine import __version__; print(__version__)")
    tarball="dist/bitsmith-$version-linux-$(uname -m).tar.gz"
    tar -C dist -czf "$tarball" bitsmith
fi

echo "--- summary"
echo "PyInstaller: $((built - start)) s; self-test: $((tested - built)) s; total: $(( $(date +%s) - start )) s"
echo "bundle: $(du -sh "$bundle" | cut -f1) in $bundle"
if [ -n "${tarball:-}" ]; then echo "tarball: $(du -h "$tarball" | cut -f1) $tarball"; fi
# awk, not head, takes the first lines: head would close the pipe early, and pipefail would turn
# sort's SIGPIPE into a failed build.
echo "largest folders:"
du -sm "$bundle"/_internal/*/ | sort -rn | awk 'NR <= 8 { printf "  %6d MiB  %s\n", $1, $2 }'
echo "largest files:"
find "$bundle" -type f -printf '%s %p\n' | sort -rn | awk 'NR <= 8 { printf "  %6.0f MiB  %s\n", $1 / 2^20, $2 }'
