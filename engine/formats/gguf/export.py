"""Write a Hugging Face folder as a GGUF v3 file with gguf's GGUFWriter.

The header, metadata and tensor table are written first (every tensor's type and size is known
from the plan); tensor data then follows one tensor at a time, read lazily from the safetensors
files and quantized by Bitsmith's kernels, so memory holds one tensor, never the model.
The caller decides where the file goes (a staged temporary name) and cleans up on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from ...cancel import NEVER, CancelToken
from ...errors import InvalidInput
from ...events import EtaClock, Event, Log
from .arch import require_export_arch
from .export_hparams import add_general, add_hparams, read_hparams
from .export_tensors import KERNEL_TYPES, encode, load_tensor, plan_tensors
from .export_vocab import VocabInfo, add_tokenizer
from ..hf_folder import HFFolder

#: `general.file_type` of a file written directly in one type.
FILE_TYPES = {
    QT.F32: gguf.LlamaFileType.ALL_F32, QT.F16: gguf.LlamaFileType.MOSTLY_F16,
    QT.BF16: gguf.LlamaFileType.MOSTLY_BF16, QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
    QT.Q5_1: gguf.LlamaFileType.MOSTLY_Q5_1, QT.Q5_0: gguf.LlamaFileType.MOSTLY_Q5_0,
    QT.Q4_1: gguf.LlamaFileType.MOSTLY_Q4_1, QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
}


@dataclass(frozen=True)
class ExportSummary:
    n_tensors: int
    n_params: int
    vocab: VocabInfo
    tensor_types: dict[str, str]  # GGUF name -> type name, as planned
    warnings: list[str] = field(default_factory=list)


def export_gguf(src: HFFolder, path: Path, qtype: QT, cancel: CancelToken = NEVER,
                extra_kv: dict[str, str | int] | None = None,
                name: str | None = None) -> Generator[Event, None, ExportSummary]:
    """Write `src` to `path` with 2-D weights in `qtype`; yields Progress per tensor, returns a summary."""
    if qtype not in KERNEL_TYPES:
        raise InvalidInput(f"{qtype.name} cannot be written directly; choose one of {', '.join(t.name for t in KERNEL_TYPES)}")
    arch = require_export_arch(src.family, str(src.path))
    hp = read_hparams(src)
    plans = plan_tensors(src, hp, qtype, arch)
    n_params = sum(np.prod(p.shape) for p in plans if p.hf_names)  # not the computed rope tensors
    writer = gguf.GGUFWriter(path, arch)
    try:
        for p in plans:
            writer.add_tensor_info(p.gguf_name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.qtype)
        # After the tensor table: the size label counts experts as llama.cpp does ("4x6.3M").
        add_general(writer, name or src.path.name, int(FILE_TYPES[qtype]), writer.get_total_parameter_count())
        warnings = add_hparams(writer, hp, arch)
        vocab = add_tokenizer(writer, src.path, hp.vocab_size)
        for key, value in (extra_kv or {}).items():
            writer.add_uint32(key, value) if isinstance(value, int) else writer.add_string(key, str(value))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for message in warnings:
            yield Log(message, "warning")
        clock = EtaClock(len(plans), "convert")
        yield clock.progress(0)
        for i, p in enumerate(plans, 1):
            cancel.check()
            writer.write_tensor_data(encode(load_tensor(src, hp, p), p.qtype))
            yield clock.progress(i, p.gguf_name)
    finally:
        writer.close()
    return ExportSummary(len(plans), int(n_params), vocab, {p.gguf_name: p.qtype.name for p in plans}, warnings)
