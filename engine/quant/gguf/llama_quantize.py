"""llama.cpp's own quantizer (`llama_model_quantize`, bundled in llama-cpp-python) for the K-quant
file types, with an optional importance matrix.

The importance matrix goes in as `llama_model_quantize_params.imatrix`: a pointer to a C array of
`llama_model_imatrix_data {name, data, size}`, one entry per weight, ended by an entry whose name
is NULL (llama.cpp walks the array until it meets that sentinel; llama-quantize builds it the
same way). `name` is the GGUF tensor name ("blk.0.attn_q.weight"), `data` the per-input-channel
mean of squared activations, `size` the weight's row width (times the expert count for 3-D
weights). A weight without an entry is quantized without one.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Generator, Mapping

import numpy as np

from ...cancel import NEVER, CancelToken
from ...config import GGUFType
from ...errors import EngineError
from ...events import EtaClock, Event, Log
from ...threads import cpu_threads

#: llama_ftype of each file type llama.cpp quantizes for Bitsmith (values of enum llama_ftype).
LLAMA_FTYPES = {
    GGUFType.Q8_0: 7, GGUFType.Q4_0: 2, GGUFType.Q4_1: 3, GGUFType.Q5_0: 8, GGUFType.Q5_1: 9,
    GGUFType.Q2_K: 10, GGUFType.Q3_K_M: 12, GGUFType.Q4_K_S: 14, GGUFType.Q4_K_M: 15,
    GGUFType.Q5_K_M: 17, GGUFType.Q6_K: 18,
    GGUFType.F16: 1, GGUFType.BF16: 32, GGUFType.Q3_K_S: 11, GGUFType.Q3_K_L: 13, GGUFType.Q5_K_S: 16,
    GGUFType.IQ2_XXS: 19, GGUFType.IQ2_XS: 20, GGUFType.Q2_K_S: 21, GGUFType.IQ3_XS: 22, GGUFType.IQ3_XXS: 23,
    GGUFType.IQ1_S: 24, GGUFType.IQ4_NL: 25, GGUFType.IQ3_S: 26, GGUFType.IQ3_M: 27, GGUFType.IQ2_S: 28,
    GGUFType.IQ2_M: 29, GGUFType.IQ4_XS: 30, GGUFType.IQ1_M: 31, GGUFType.TQ1_0: 36, GGUFType.TQ2_0: 37,
    GGUFType.MXFP4_MOE: 38,
}
_POLL_S = 0.5


def imatrix_array(entries: Mapping[str, np.ndarray]):
    """A NULL-terminated C array of llama_model_imatrix_data, and the buffers it points into
    (keep both alive until llama.cpp returns)."""
    import llama_cpp

    Entry = llama_cpp.llama_model_imatrix_data
    array = (Entry * (len(entries) + 1))()  # zero-filled: the last entry is the NULL sentinel
    keep = []
    for slot, (name, values) in zip(array, sorted(entries.items())):
        buf = np.ascontiguousarray(values, dtype=np.float32)
        if not np.all(np.isfinite(buf)):
            raise EngineError(f"importance matrix entry {name} holds non-finite values")
        encoded = name.encode("utf-8")
        keep += [buf, encoded]
        slot.name = encoded
        slot.data = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        slot.size = buf.size
    return array, keep


def quantize_params(gguf_type: GGUFType, imatrix: Mapping[str, np.ndarray] | None, nthread: int | None = None):
    """llama_model_quantize_params for `gguf_type`; returns (params, objects to keep alive)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[gguf_type]
    params.nthread = cpu_threads(nthread)
    keep: list = []
    if imatrix:
        array, keep = imatrix_array(imatrix)
        keep.append(array)
        params.imatrix = ctypes.cast(array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    return params, keep


def run_llama_quantize(source: Path, target: Path, gguf_type: GGUFType, imatrix: Mapping[str, np.ndarray] | None,
                       expected_bytes: int, cancel: CancelToken = NEVER) -> Generator[Event, None, None]:
    """Quantize the GGUF `source` into `target`, yielding progress from the output's growth.

    The C call cannot be interrupted: a cancel during it takes effect when it returns.
    """
    import llama_cpp

    params, keep = quantize_params(gguf_type, imatrix)
    outcome: dict = {}
    log: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level, text, user_data):  # llama.cpp narrates every tensor; keep it for errors
        log.append(text.decode("utf-8", errors="replace"))

    def work():
        try:
            outcome["rc"] = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread below
            outcome["error"] = exc

    clock = EtaClock(100, "quantize")
    yield clock.progress(0, gguf_type.value)
    cancel.check()
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    thread = threading.Thread(target=work, name="llama-quantize", daemon=True)
    try:
        thread.start()
        told = False
        while thread.is_alive():
            thread.join(_POLL_S)
            if cancel.cancelled and not told:
                told = True
                yield Log("stopping once llama.cpp finishes the current step", "warning")
            done = target.stat().st_size if target.exists() else 0
            yield clock.progress(min(99, int(100 * done / max(expected_bytes, 1))), gguf_type.value)
    finally:
        thread.join()  # `params`, `keep` and `collect` must outlive the C call
        _restore_default_log()
    if "error" in outcome:
        raise outcome["error"]
    cancel.check()
    if outcome.get("rc") != 0:
        why = next((line.strip() for line in reversed(log) if "failed to quantize" in line), f"return code {outcome.get('rc')}")
        raise EngineError(f"{source}: llama.cpp could not quantize it to {gguf_type.value} ({why})")
    yield clock.progress(100, gguf_type.value)


def _restore_default_log() -> None:
    """Hand llama.cpp's log back to llama-cpp-python's handler (which honours `verbose`)."""
    import llama_cpp
    from llama_cpp import _logger

    llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
