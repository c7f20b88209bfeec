"""Registering a GGUF with Ollama: the Modelfile is written to the output folder, and `ollama create`
runs when Ollama is installed; otherwise the command to run is returned for the user."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

from ..errors import InvalidInput
from .modelfile import Modelfile

CREATE_TIMEOUT_S = 1800  # ollama create copies the GGUF into its store: minutes for a large model


def ollama_name(stem: str) -> str:
    """A model name Ollama accepts: lower case, letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return name or "bitsmith-model"


def write_modelfile(modelfile: Modelfile, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "Modelfile"
    temp = out_dir / f".Modelfile.{uuid.uuid4().hex[:8]}.tmp"
    try:
        temp.write_text(modelfile.text(), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InvalidInput(f"{path}: cannot write the Modelfile ({exc.strerror or exc})") from None
    return path


def create_command(name: str, modelfile_path: Path) -> list[str]:
    return ["ollama", "create", name, "-f", str(modelfile_path)]


def run_create(name: str, modelfile_path: Path) -> tuple[bool, str]:
    """(created, message). Not installed is not an error: the message says what to run."""
    cmd = create_command(name, modelfile_path)
    exe = shutil.which("ollama")
    if exe is None:
        return False, f"Ollama is not installed here; once it is, run: {shlex.join(cmd)}"
    try:
        done = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=CREATE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidInput(f"ollama create {name} did not finish ({type(exc).__name__})",
                           suggestion=f"run it yourself: {shlex.join(cmd)}") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        raise InvalidInput(f"ollama create {name} failed: {last[0]}", suggestion="is the Ollama server running (ollama serve)?")
    return True, f"created the Ollama model '{name}': ollama run {name}"
