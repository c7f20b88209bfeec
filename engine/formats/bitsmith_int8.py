"""The Bitsmith INT8 folder layout, shared by the writer (engine.quant.int8) and the loader
(engine.runtime.int8_loader). Documented for users in docs/formats.md, "Bitsmith INT8".

A Hugging Face folder whose config.json carries
  "quantization_config": {"quant_method": "bitsmith-int8", "bits": 8,
                          "scheme": "per-channel-symmetric", "modules_not_converted": [...]}
and whose safetensors hold, for every converted Linear `<m>`: `<m>.weight` int8 [out, in] and
`<m>.weight_scale` float32 [out]; every other tensor is copied unchanged in its source dtype.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput

QUANT_METHOD = "bitsmith-int8"
SCHEME = "per-channel-symmetric"
BITS = 8
SCALE_SUFFIX = "_scale"  # "<m>.weight" -> "<m>.weight_scale"
FORMAT_VERSION = 1


def scale_name(weight_name: str) -> str:
    return weight_name + SCALE_SUFFIX


def quantization_config(modules_not_converted: list[str]) -> dict:
    return {"quant_method": QUANT_METHOD, "bits": BITS, "scheme": SCHEME, "format_version": FORMAT_VERSION,
            "rounding": "half-to-even", "scale_dtype": "float32",
            "modules_not_converted": sorted(modules_not_converted)}


def check_quantization_config(config: dict, where: Path) -> dict:
    """The folder's quantization_config, or a one-line error if it is not a layout this build reads."""
    qcfg = config.get("quantization_config") or {}
    if qcfg.get("quant_method") != QUANT_METHOD:
        raise InvalidInput(f"{where}: not a Bitsmith INT8 model (quant_method is {qcfg.get('quant_method')!r})")
    if qcfg.get("bits") != BITS or qcfg.get("scheme") != SCHEME:
        raise InvalidInput(f"{where}: Bitsmith INT8 with bits={qcfg.get('bits')!r}, scheme={qcfg.get('scheme')!r} "
                           f"is not supported (expected {BITS}, {SCHEME!r})")
    if int(qcfg.get("format_version", 1)) > FORMAT_VERSION:
        raise InvalidInput(f"{where}: written by a newer Bitsmith (INT8 format version {qcfg['format_version']})",
                           suggestion="update Bitsmith")
    return qcfg
