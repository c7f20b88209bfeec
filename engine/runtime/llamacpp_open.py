"""Constructing llama_cpp.Llama for a GGUF file: the one place that decides its model parameters.

llama.cpp puts weights in "extra" CPU buffer types where the CPU has them (AMX tiles on Intel Xeon
Sapphire Rapids and later; repacked, interleaved layouts elsewhere). With the llama.cpp that
llama-cpp-python 0.3.36 builds natively on a CPU with AMX, those buffers crash the process
(SIGSEGV): seen on a 2-core AMX Xeon, in the first decode of the tests' tiny models (Q8_0, Q4_K_M,
dense and mixture-of-experts), and with the bundled SmolLM2 (Q4_1) on a 141-token prompt and when
it is freed after answering; all of it gone with the extra buffer types off, and none of it on AMD CPUs (no AMX). A crash takes the
whole window down, so on an AMX CPU the extra buffers stay off: llama.cpp's plain CPU kernels,
slower than AMX's but correct.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..device import cpu_has_amx

_PARAMS_LOCK = threading.Lock()


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
