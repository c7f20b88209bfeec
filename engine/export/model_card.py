"""A model card (README.md) for an output: where it came from, how it was made (method, settings,
calibration), the quality figures its evaluation measured, and how to load it in llama.cpp,
transformers and vLLM. Built from the report card; a figure that was not measured is said to be
missing rather than left out silently."""

from __future__ import annotations

import json
from pathlib import Path

from ..catalog import inspect
from ..config import ModelFormat
from ..errors import InvalidInput
from ..fsutil import replace_text
from ..reportcard import read_report_card

MARKER = "<!-- written by Bitsmith: replaced when the card is rewritten -->"


def card_path(model: Path, out_dir: Path | None = None) -> Path:
    """README.md in the output folder; for a GGUF file, in `out_dir` when given, else
    `<file>.README.md` beside it (a GGUF often shares its folder with other models)."""
    model = Path(model)
    if out_dir is not None:
        return Path(out_dir) / "README.md"
    return model / "README.md" if model.is_dir() else model.with_name(model.name + ".README.md")


def _figure(value, fmt: str = "{:.4g}") -> str:
    return "not measured" if value is None else fmt.format(value)


def _settings_lines(card: dict) -> list[str]:
    rows = []
    for key in ("type", "quantizer", "format", "dtype", "device"):
        if card.get(key) is not None:
            rows.append(f"| {key} | {card[key]} |")
    for key, value in (card.get("settings") or {}).items():
        if value is not None and not isinstance(value, (dict, list)):
            rows.append(f"| {key} | {value} |")
    return (["| setting | value |", "| --- | --- |", *rows] if rows else ["No settings recorded."])


def _calibration_lines(card: dict) -> list[str]:
    calib = card.get("calibration")
    imatrix = card.get("imatrix")
    if isinstance(calib, dict):
        return [f"- {k}: {v}" for k, v in calib.items() if not isinstance(v, (dict, list))]
    if imatrix:
        return [f"- importance matrix: {imatrix.get('file')} ({imatrix.get('windows')} windows of "
                f"{imatrix.get('window_tokens')} tokens from {imatrix.get('calibration_source')})"]
    if isinstance(calib, str):
        return [f"- {calib}"]
    if not card.get("method"):
        return ["- not recorded"]
    return ["- none: this method uses no calibration data"]


def _quality_lines(card: dict) -> list[str]:
    ev = card.get("evaluation")
    if not ev:
        return ["Not evaluated yet: `bitsmith eval MODEL --against SOURCE` measures perplexity, KL divergence "
                "and top-1 agreement and adds them here when the card is written again."]
    return ["| figure | value |", "| --- | --- |",
            f"| perplexity | {_figure(ev.get('perplexity'))} |",
            f"| KL divergence against the source | {_figure(ev.get('kl_divergence'))} |",
            f"| top-1 agreement with the source | {_figure(ev.get('top1_agreement'), '{:.2%}')} |",
            f"| tokens evaluated | {_figure(ev.get('tokens_evaluated'), '{}')} (context {ev.get('ctx')}) |",
            f"| held-out text | {ev.get('text')} |"]


def _usage_lines(model: Path, fmt: ModelFormat) -> list[str]:
    name = model.name
    if fmt is ModelFormat.GGUF:
        return ["llama.cpp:", "```bash", f"llama-cli -m {name} -cnv", f"llama-server -m {name} --port 8080", "```",
                "transformers (dequantizes the GGUF to full precision on load):", "```python",
                "from transformers import AutoModelForCausalLM, AutoTokenizer",
                f'tok = AutoTokenizer.from_pretrained(".", gguf_file="{name}")',
                f'model = AutoModelForCausalLM.from_pretrained(".", gguf_file="{name}")', "```",
                "vLLM (GGUF support is experimental there; give it the original tokenizer):", "```bash",
                f"vllm serve ./{name} --tokenizer <source model folder or repo>", "```",
                "Bitsmith:", "```bash", f"bitsmith chat {name}", f"bitsmith serve {name}", "```"]
    loader = {ModelFormat.GPTQ: "GPTQ (transformers needs `gptqmodel` or `optimum` installed)",
              ModelFormat.AWQ: "AWQ (transformers needs `autoawq` installed)",
              ModelFormat.BNB: "bitsandbytes (needs `bitsandbytes`)",
              ModelFormat.INT8: "Bitsmith INT8: a Bitsmith layout, loaded by Bitsmith only",
              ModelFormat.HF: "full precision"}.get(fmt, fmt.value)
    lines = [f"Format: {loader}.", "", "transformers:", "```python",
             "from transformers import AutoModelForCausalLM, AutoTokenizer",
             f'tok = AutoTokenizer.from_pretrained("{name}")',
             f'model = AutoModelForCausalLM.from_pretrained("{name}", device_map="auto")', "```"]
    if fmt in (ModelFormat.GPTQ, ModelFormat.AWQ, ModelFormat.HF, ModelFormat.BNB):
        quant = {ModelFormat.GPTQ: " --quantization gptq", ModelFormat.AWQ: " --quantization awq",
                 ModelFormat.BNB: " --quantization bitsandbytes"}.get(fmt, "")
        lines += ["vLLM:", "```bash", f"vllm serve ./{name}{quant}", "```"]
    lines += ["llama.cpp: convert to GGUF first (`bitsmith quantize --method gguf`), then `llama-cli -m FILE.gguf`.",
              "", "Bitsmith:", "```bash", f"bitsmith chat {name}", f"bitsmith serve {name}", "```"]
    return lines


def model_format(model: Path) -> ModelFormat:
    """GGUF from the file's magic (the catalog's full read of a GGUF's vocabulary takes seconds);
    anything else from the catalog."""
    if model.is_file():
        with open(model, "rb") as fh:
            if fh.read(4) == b"GGUF":
                return ModelFormat.GGUF
    return inspect(model).format


def model_card_text(model: Path) -> str:
    model = Path(model)
    fmt = model_format(model)
    card = read_report_card(model) or {}
    origin = (f"Made by Bitsmith ({card.get('kind', 'conversion')}) from `{card.get('source', '?')}`"
              + (f" with {card['method']}." if card.get("method") else ".")) if card.get("source") else (
        "Bitsmith has no report card for this model: it was not converted here, so its source, method, "
        "settings and calibration are not recorded.")
    lines = [MARKER, f"# {model.name}", "", origin, "",
             "## Source and method", "", f"- source: `{card.get('source', 'not recorded')}`",
             f"- method: {card.get('method', 'not recorded')}", f"- format: {fmt.value}",
             f"- size: {card.get('size_bytes', 'not recorded')} bytes"
             + (f", {card['bits_per_weight']} bits per weight" if card.get("bits_per_weight") else ""),
             f"- made: {card.get('created', 'not recorded')} in {card.get('seconds', '?')} s", "",
             "## Settings", "", *_settings_lines(card), "", "## Calibration", "", *_calibration_lines(card), "",
             "## Quality", "", *_quality_lines(card), "", "## How to load it", "", *_usage_lines(model, fmt), "",
             "## Tool versions", "", "```json", json.dumps(card.get("tool_versions") or {}, indent=1), "```", ""]
    return "\n".join(lines)


def write_model_card(model: Path, out_dir: Path | None = None) -> Path:
    path = card_path(model, out_dir)
    if path.exists() and MARKER not in path.read_text(encoding="utf-8", errors="replace")[:200]:
        raise InvalidInput(f"{path} exists and was not written by Bitsmith; not replacing it",
                           suggestion="move it aside, or give another --out folder")
    text = model_card_text(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    return replace_text(path, text, "the model card")
