"""Opening a bitsandbytes folder (transformers' serialization: LLM.int8, NF4 or FP4) for chat."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import compute_dtype, read_config_json
from ..errors import InvalidInput, UnsupportedModel
from .bnb_support import import_bitsandbytes, require_bnb


def bnb_bits(config: dict, where: Path) -> int:
    """8 or 4, from a config.json's quantization_config; a one-line error for anything else."""
    qcfg = config.get("quantization_config") or {}
    if qcfg.get("quant_method") != "bitsandbytes":
        raise InvalidInput(f"{where}: not a bitsandbytes model (quant_method is {qcfg.get('quant_method')!r})")
    if qcfg.get("load_in_4bit"):
        return 4
    if qcfg.get("load_in_8bit"):
        return 8
    raise InvalidInput(f"{where}: bitsandbytes config sets neither load_in_8bit nor load_in_4bit")


def load_bnb_model(path: Path | str, device: str = "cpu", *, dtype=None):
    """(model in eval mode on `device`, tokenizer). Layers bitsandbytes leaves in floating point
    (embeddings, norms, lm_head) are computed in float32 on the CPU, float16 on a GPU, unless `dtype`.
    Raises UnsupportedModel when bitsandbytes (or accelerate) is missing or cannot run on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    config_file = path / "config.json"
    config = read_config_json(path)
    bits = bnb_bits(config, config_file)
    require_bnb(device, bits, str(path))
    import_bitsandbytes()  # installs the log filters before transformers imports it
    dtype = dtype or compute_dtype(device)  # the one rule (engine.checkpoint)
    kwargs = {"dtype": dtype}
    if device != "cpu":
        kwargs["device_map"] = {"": device}  # bitsandbytes weights cannot be moved with .to() after loading
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise UnsupportedModel(f"{path}: transformers cannot load this bitsandbytes model "
                               f"({lines[0] if lines else type(exc).__name__})") from exc
    return model.eval(), tokenizer
