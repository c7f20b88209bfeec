"""How long the catalog takes to scan 100 models, cold (headers read) and warm (from the cache).

    .venv/bin/python bench/bench_catalog.py [--models 100]

Uses 80 small GGUF files and 20 Hugging Face folders written to a temporary folder, plus the
bundled model, with BITSMITH_HOME pointed at a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bitsmith-bench-catalog-"))
    os.environ["BITSMITH_HOME"] = str(root / "home")
    os.environ["HF_HUB_CACHE"] = str(root / "empty-hub")
    from bitsmith.engine.catalog import scan, user_paths
    from tests.fixtures.tiny_gguf import write_tiny_gguf
    from tests.fixtures.tiny_model import build_tiny_llama

    models = root / "models"
    models.mkdir()
    n_hf = args.models // 5
    template = build_tiny_llama(root / "template")
    for i in range(n_hf):
        shutil.copytree(template, models / f"hf-{i:03d}")
    for i in range(args.models - n_hf):
        write_tiny_gguf(models / f"m-{i:03d}.gguf", name=f"m{i}")
    user_paths.add(models)

    t0 = time.perf_counter()
    found = scan()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        again = scan()
        warm.append(time.perf_counter() - t0)
    assert len(again) == len(found) == args.models + 1
    print(f"models: {len(found)} ({args.models - n_hf} GGUF, {n_hf} HF folders, 1 bundled)")
    print(f"cold scan: {cold:.2f} s; warm rescan: median {statistics.median(warm) * 1000:.0f} ms "
          f"(min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f})")
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
