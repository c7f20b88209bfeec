"""Throughput of our GGUF kernels against gguf.quants (numpy), on the same float32 matrices.

Run by hand:  .venv/bin/python bench/bench_gguf_kernels.py [--device cuda] [--threads 1]
Every timed output is first checked byte for byte against gguf.quants. Times are the best of
--repeat runs, so a busy machine shows as noise, not as a slower kernel. MB/s counts the float32
input (4 bytes per parameter).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from gguf.quants import quantize as gguf_numpy_quantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bitsmith.kernels import ggml_reference, gguf_quantize, select  # noqa: E402

COLUMNS = [("type", 6), ("shape", 10), ("gguf numpy MB/s", 16), ("ours MB/s", 10), ("ours Mparam/s", 14),
           ("speed-up", 9)]


def best_seconds(fn, repeat: int, device: str) -> float:
    fn()  # warm-up: first-call allocations and imports are not what we measure
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--types", default="Q8_0,Q4_0,Q4_1,Q5_0,Q5_1,BF16,F16")
    parser.add_argument("--shapes", default="576x1536,2048x8192", help="comma-separated ROWSxCOLS")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--with-reference", action="store_true", help="also time our readable reference")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    choice = select("gguf_quantize", args.device, qtype=QT.Q8_0, dtype=torch.float32)
    print(f"kernel: {choice.name} on {choice.device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads (numpy: 1); skipped: {list(choice.skipped) or 'none'}")
    columns = COLUMNS + ([("reference MB/s", 15)] if args.with_reference else [])
    header = " ".join(f"{name:>{width}}" for name, width in columns)
    print(header + "\n" + "-" * len(header))

    generator = torch.Generator().manual_seed(0)
    for shape_text in args.shapes.split(","):
        rows, cols = (int(v) for v in shape_text.lower().split("x"))
        x = torch.randn(rows, cols, generator=generator)
        x_np, megabytes = x.numpy(), x.numel() * 4 / 1e6
        for name in args.types.split(","):
            qtype = QT[name]
            expected = gguf_numpy_quantize(x_np, qtype)
            ours = gguf_quantize(x, qtype, args.device)
            if ours.dtype != expected.dtype or not np.array_equal(ours.view(np.uint8), expected.view(np.uint8)):
                raise SystemExit(f"{name} {shape_text}: output differs from gguf.quants")
            t_numpy = best_seconds(lambda: gguf_numpy_quantize(x_np, qtype), args.repeat, "cpu")
            t_ours = best_seconds(lambda: gguf_quantize(x, qtype, args.device), args.repeat, choice.device)
            cells = [name, shape_text, f"{megabytes / t_numpy:.0f}", f"{megabytes / t_ours:.0f}",
                     f"{x.numel() / t_ours / 1e6:.0f}", f"{t_numpy / t_ours:.1f}x"]
            if args.with_reference:
                t_ref = best_seconds(lambda: ggml_reference.quantize(x, qtype, "cpu"), args.repeat, "cpu")
                cells.append(f"{megabytes / t_ref:.0f}")
            print(" ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, columns)), flush=True)


if __name__ == "__main__":
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow notes on huge values
    main()
