"""What a per-block checkpoint costs (engine/quant/resume.py): the seconds to save one block (its
GPTQ 4-bit g128 output tensors plus the next block's activations, written, flushed and digested)
and to verify it again on resume, and its bytes, for the 1B-, 8B- and 70B-shaped blocks of issue 14.

Run by hand:  .venv/bin/python bench/bench_resume.py [--blocks 3] [--tokens 2048] [--dir /tmp/x]

The tensors are random with the exact shapes and dtypes the GPTQ writer produces (qweight, qzeros,
scales, g_idx per linear; the two norms in float16); the activations are float32 [8, 256, hidden]
by default (8 x 256 calibration tokens). Set against the minutes a GPTQ block takes at these
widths, the save is the overhead of being resumable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {  # name -> (hidden, intermediate, kv width)
    "1B": (2048, 8192, 512),
    "8B": (4096, 14336, 1024),
    "70B": (8192, 28672, 1024),
}


def block_tensors(hidden: int, inter: int, kv: int, group: int = 128) -> dict[str, torch.Tensor]:
    linears = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden),
               "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, hidden),
               "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    t = {}
    for name, (out, inp) in linears.items():
        t[f"{name}.qweight"] = torch.randint(-2**31, 2**31 - 1, (inp // 8, out), dtype=torch.int32)
        t[f"{name}.qzeros"] = torch.randint(-2**31, 2**31 - 1, (inp // group, out // 8), dtype=torch.int32)
        t[f"{name}.scales"] = torch.rand(inp // group, out).half()
        t[f"{name}.g_idx"] = (torch.arange(inp) // group).int()
    t["input_layernorm.weight"] = torch.ones(hidden).half()
    t["post_attention_layernorm.weight"] = torch.ones(hidden).half()
    return t


def main() -> int:
    from bitsmith.engine.quant.resume import BlockCheckpoint

    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=8 * 256)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average {' '.join(load)}; torch threads {torch.get_num_threads()}")
    print("| shape | block tensors | activations | save s/block | verify s/block |")
    print("| --- | --- | --- | --- | --- |")
    for name, (hidden, inter, kv) in SHAPES.items():
        work = Path(tempfile.mkdtemp(prefix="bench-resume-", dir=args.dir))
        try:
            tensors = block_tensors(hidden, inter, kv)
            acts = [torch.randn(4, 256, hidden) for _ in range(args.tokens // 1024)]  # batches of 4 windows
            ckpt = BlockCheckpoint(work / "out", {"bench": name}, args.blocks)
            saves = []
            for i in range(args.blocks):
                t0 = time.perf_counter()
                ckpt.save(i, tensors, acts if i + 1 < args.blocks else None, {})
                saves.append(time.perf_counter() - t0)
            os.sync()
            t0 = time.perf_counter()
            point, lines = BlockCheckpoint(work / "out", {"bench": name}, args.blocks).open()
            verify = (time.perf_counter() - t0) / args.blocks
            assert point is not None and point.done == args.blocks, lines
            tb = sum(t.numel() * t.element_size() for t in tensors.values())
            ab = sum(a.numel() * 4 for a in acts)
            save = sorted(saves[:-1])[len(saves[:-1]) // 2]  # median of the saves that write activations
            print(f"| {name} | {tb / 2**20:.0f} MiB | {ab / 2**20:.0f} MiB | {save:.2f} | {verify:.2f} |")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
