"""The best GGUF under a size: the allocation is optimal on small cases (checked against every
combination), and a real run writes one llama.cpp-loadable file of mixed types that fits."""

from __future__ import annotations

import itertools
import json
import random

import gguf
import numpy as np
import pytest

from bitsmith.engine.config import GGUFType, Method, QuantizeConfig
from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.quant.gguf.budget import Option, allocate, weighted_error
from tests.engine.gguf_export_helpers import export, generates


def _options(rng: random.Random) -> list[Option]:
    """Encodings of one tensor: more bytes, less error, with diminishing returns (a convex curve,
    which is what quantization error against bits looks like)."""
    base = rng.randint(50, 100)
    sizes = sorted(rng.sample(range(base, base * 4), 4))
    scale = rng.uniform(0.5, 5)
    return [Option(i, n, scale * 2.0 ** (-n / base * 2), GGUFType.Q8_0) for i, n in enumerate(sizes)]


def test_allocation_is_optimal_on_convex_choices():
    rng = random.Random(0)
    for _ in range(30):
        options = {f"t{i}": _options(rng) for i in range(4)}
        smallest = sum(min(o.nbytes for o in opts) for opts in options.values())
        largest = sum(max(o.nbytes for o in opts) for opts in options.values())
        budget = rng.randint(smallest, largest)
        chosen = allocate(options, budget)
        assert sum(o.nbytes for o in chosen.values()) <= budget
        best = min(sum(o.error for o in combo) for combo in itertools.product(*options.values())
                   if sum(o.nbytes for o in combo) <= budget)
        # Greedy on convex hulls is optimal up to the one upgrade that did not fit (knapsack's
        # integrality gap): within that upgrade's gain of the exact optimum.
        gap = max(o.error for opts in options.values() for o in opts)
        assert sum(o.error for o in chosen.values()) <= best + gap


def test_a_budget_below_the_smallest_encoding_is_refused():
    options = {"a": [Option(0, 100, 1.0, GGUFType.Q2_K)], "b": [Option(0, 100, 1.0, GGUFType.Q2_K)]}
    with pytest.raises(InvalidInput, match="choose a larger size"):
        allocate(options, 150)


def test_weighted_error_counts_channels_by_their_importance():
    ref = np.zeros((2, 3), np.float32)
    approx = np.array([[1, 0, 0], [0, 2, 0]], np.float32)
    assert weighted_error(ref, approx, np.array([10, 1, 100], np.float32)) == pytest.approx(10 + 4)


def test_a_target_bpw_gives_one_mixed_file_that_fits_and_runs(tiny_llama_dir, tmp_path):
    result = export(tiny_llama_dir, tmp_path / "mix.gguf", "Q4_K_M", target_bpw=7.5)
    reader = gguf.GGUFReader(result.out)
    n_params = sum(int(np.prod(t.shape)) for t in reader.tensors)
    assert result.out.stat().st_size * 8 / n_params <= 7.5
    types = {t.tensor_type.name for t in reader.tensors if len(t.shape) == 2}
    assert len(types) >= 2  # a mix, not one uniform type
    generates(result.out)
    card = json.loads(result.report.read_text())
    assert card["type"] == "mix-7.5bpw" and card["budget"]["target_bpw"] == 7.5 and card["imatrix"]["used"]


def test_targets_are_validated():
    with pytest.raises(InvalidInput, match="available for gguf and gptq"):
        QuantizeConfig("x", "y", Method.AWQ, target_bpw=4.5)
    with pytest.raises(InvalidInput, match="not both"):
        QuantizeConfig("x", "y", Method.GGUF, target_bpw=4.5, target_bytes=10)
    with pytest.raises(InvalidInput, match="outside"):
        QuantizeConfig("x", "y", Method.GGUF, target_bpw=1.0)


def test_the_cli_takes_a_size_and_the_plan_says_what_will_run(tiny_llama_dir, tmp_path, capsys):
    from bitsmith.engine.cli import run as cli
    from bitsmith.engine.plan import plan

    p = plan(QuantizeConfig(tiny_llama_dir, tmp_path / "o.gguf", Method.GGUF, target_bytes=120_000))
    assert p.output_bytes == 120_000 and any("best mix that fits" in s for s in p.steps)
    out = tmp_path / "sized.gguf"
    assert cli(["quantize", str(tiny_llama_dir), "--method", "gguf", "--target-size", "120KB", "--out", str(out),
                "--samples", "2", "--seq-len", "32", "--quiet"]) == 0
    assert out.stat().st_size <= 120_000
    assert cli(["quantize", str(tiny_llama_dir), "--target-size", "lots", "--out", str(tmp_path / "x.gguf")]) == 2
    assert "'lots' is not a size" in capsys.readouterr().err
