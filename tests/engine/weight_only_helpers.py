"""Shared pieces of the GPTQ/AWQ/RTN tests: driving generators, calibration ids, tiny jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import run_job


def drive(gen):
    """Run a generator of events to its end and return its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def random_windows(n: int = 8, seq_len: int = 32, vocab: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seq_len), generator=torch.Generator().manual_seed(seed))


def text_windows(folder: Path, n: int, seq_len: int) -> torch.Tensor:
    """Real text (the shared wikitext file, else the built-in calibration text) cut into windows."""
    from transformers import AutoTokenizer

    from bitsmith.engine.calibration.resources import builtin_text_path
    from tests.conftest import SHARED_DATA

    source = SHARED_DATA / "wikitext-2-raw-test.txt"
    text = source.read_text(encoding="utf-8")[:200_000] if source.is_file() else builtin_text_path().read_text()
    ids = AutoTokenizer.from_pretrained(str(folder))(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids[: n * seq_len]).reshape(n, seq_len)


def quantize_tiny(source: Path, out: Path, method: str, windows=None, **kw):
    from bitsmith.engine.quant.weight_only.job import quantize_weight_only

    cfg = QuantizeConfig(source=source, out=out, method=method, **kw)
    return run_job(quantize_weight_only(cfg, windows))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny matrices gain nothing from intra-op threads, and on a busy 2-core machine the threads'
    synchronization made these tests several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
