"""llama.cpp's importance-matrix file (the GGUF-based format of current llama-imatrix), so a
matrix computed by Bitsmith can be reused with `llama-quantize --imatrix FILE`.

Layout: `general.type = "imatrix"`, `imatrix.datasets` (string array), `imatrix.chunk_count` and
`imatrix.chunk_size` (uint32); per weight NAME, the F32 tensors `NAME.in_sum2` (sum of squared
inputs per channel, shape [1, n_in], or [n_expert, n_in] for merged experts), `NAME.in_sum` (sum of
inputs) and `NAME.counts` ([1, 1], or [n_expert, 1]: rows summed, per expert). Readers divide
in_sum2 by counts. No general.architecture: the file is not a model.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from ...config import IMATRIX_SUFFIX
from ...errors import InvalidInput
from .imatrix import ImatrixStats

SUFFIX = IMATRIX_SUFFIX


def imatrix_path_for(model_path: Path) -> Path:
    """model.gguf -> model.imatrix.gguf, beside it."""
    model_path = Path(model_path)
    stem = model_path.name[:-5] if model_path.name.endswith(".gguf") else model_path.name
    return model_path.with_name(stem + SUFFIX)


def save_imatrix(stats: ImatrixStats, path: Path) -> None:
    writer = gguf.GGUFWriter(path, arch="")  # an empty arch writes no general.architecture key
    try:
        writer.add_type(gguf.GGUFType.IMATRIX)
        writer.add_array(gguf.Keys.IMatrix.DATASETS, stats.datasets or ["unknown"])
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, stats.n_chunks)
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, stats.chunk_size)
        for name in sorted(stats.sums):
            # numpy [n_mat, n_in] is ne {n_in, n_mat}: one row per expert, as llama-imatrix writes
            n_mat = stats.sums[name].shape[0] if stats.sums[name].ndim == 2 else 1
            writer.add_tensor(f"{name}.in_sum2", stats.sums[name].astype(np.float32).reshape(n_mat, -1))
            writer.add_tensor(f"{name}.in_sum", stats.act_sums[name].astype(np.float32).reshape(n_mat, -1))
            writer.add_tensor(f"{name}.counts", np.asarray(stats.counts[name], dtype=np.float32).reshape(n_mat, 1))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def load_imatrix(path: Path) -> ImatrixStats:
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not a readable imatrix file ({exc})") from None
    kind = reader.get_field(gguf.Keys.General.TYPE)
    if kind is None or kind.contents() != gguf.GGUFType.IMATRIX:
        raise InvalidInput(f"{path}: not an importance-matrix GGUF (general.type is not 'imatrix')")
    stats = ImatrixStats()
    for field_name, attr in ((gguf.Keys.IMatrix.CHUNK_COUNT, "n_chunks"), (gguf.Keys.IMatrix.CHUNK_SIZE, "chunk_size")):
        f = reader.get_field(field_name)
        setattr(stats, attr, int(f.contents()) if f is not None else 0)
    datasets = reader.get_field(gguf.Keys.IMatrix.DATASETS)
    stats.datasets = list(datasets.contents()) if datasets is not None else []
    for t in reader.tensors:
        base, _, kind = t.name.rpartition(".")
        n_mat = int(t.shape[1]) if len(t.shape) > 1 else 1  # ne {n_in, n_mat}
        values = np.asarray(t.data, dtype=np.float64).reshape(n_mat, -1)
        if kind == "counts":
            stats.counts[base] = int(values[0, 0]) if n_mat == 1 else values[:, 0].astype(np.int64)
        elif kind in ("in_sum2", "in_sum"):
            target = stats.sums if kind == "in_sum2" else stats.act_sums
            target[base] = values.reshape(-1) if n_mat == 1 else values
    return stats
