"""Constructing llama_cpp.Llama for a GGUF file: the one place that decides its model parameters.

llama.cpp puts weights in "extra" CPU buffer types where the CPU has them (AMX tiles on Intel Xeon
Sapphire Rapids and later; repacked, interleaved layouts elsewhere). With the llama.cpp that
llama-cpp-python 0.3.36 builds natively on a CPU with AMX, those buffers crash the process
(SIGSEGV): seen on a 2-core AMX Xeon, in the first decode of the tests' tiny models (Q8_0, Q4_K_M,
dense and mixture-of-experts) and when the bundled SmolLM2 (Q4_1) is freed after answering; all of
it gone with the extra buffer types off, and none of it on AMD CPUs (no AMX). A crash takes the
whole window down, so on an AMX CPU the extra buffers stay off: llama.cpp's plain CPU kernels,
slower than AMX's but correct.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

_PARAMS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether the CPU advertises AMX tiles (Linux /proc/cpuinfo; elsewhere: no such CPUs in use)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_tile" in line.split() for line in text.splitlines())


def open_llama(path: Path | str, **kwargs):
    """llama_cpp.Llama(model_path=path, **kwargs), with the extra CPU buffer types off where they
    crash (above). llama-cpp-python has no argument for them: its constructor starts from
    llama_model_default_params(), so that function is wrapped for the duration of this one load."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    if not cpu_has_amx():
        return llama_cpp.Llama(model_path=str(path), **kwargs)
    with _PARAMS_LOCK:
        real = low.llama_model_default_params

        def without_extra_buffers():
            params = real()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(model_path=str(path), **kwargs)
        finally:
            low.llama_model_default_params = real
