"""A source that is itself quantized: the plan warns before any work that the output cannot beat it
(and says when it would not even be smaller), and sizes are compared with the file the user chose,
never with Bitsmith's internal fp16 import."""

from __future__ import annotations

import json

from bitsmith.engine import api
from bitsmith.engine.config import Method, QuantizeConfig
from bitsmith.engine.plan import plan
from bitsmith.engine.reportcard import report_card_path
from tests.engine.gguf_export_helpers import export


def test_plan_warns_about_a_quantized_gguf_source(tiny_llama_dir, tmp_path):
    q8 = export(tiny_llama_dir, tmp_path / "tiny-Q8_0.gguf", "Q8_0").out
    again = plan(QuantizeConfig(q8, tmp_path / "out", Method.GGUF, gguf_type="F16"))
    warning = next(w for w in again.warnings if "already quantized" in w)
    assert warning.startswith("tiny-Q8_0.gguf is already quantized (GGUF Q8_0")
    assert "cannot be better than this file" in warning and "would not be smaller" in warning
    assert again.source_bytes == q8.stat().st_size
    smaller = plan(QuantizeConfig(q8, tmp_path / "out", Method.GGUF, gguf_type="Q4_0"))
    warning = next(w for w in smaller.warnings if "already quantized" in w)
    assert "would not be smaller" not in warning  # Q4_0 from Q8_0 does shrink: only the quality caveat
    full = plan(QuantizeConfig(tiny_llama_dir, tmp_path / "out", Method.RTN, bits=4))
    assert not any("already quantized" in w for w in full.warnings)


def test_the_card_compares_with_the_file_the_user_chose(tiny_llama_dir, tmp_path):
    q8 = export(tiny_llama_dir, tmp_path / "tiny-Q8_0.gguf", "Q8_0").out
    cfg = QuantizeConfig(q8, tmp_path / "tiny-rtn", Method.RTN, bits=4, calibration="builtin")
    result = api.run_job(api.convert(cfg))
    card = json.loads(report_card_path(result.out).read_text())
    assert card["source"] == str(q8) and card["source_size_bytes"] == q8.stat().st_size
    assert card["imported_via"] != str(q8)  # the fp16 import it was computed from is named, not sized
