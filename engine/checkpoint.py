"""The one checkpoint reader every path uses: which safetensors shard holds each tensor, the dtype
rule for computing, the meta-device skeleton of a model, and filling it from disk.

- `tensor_files(folder)`: tensor name -> shard, from the index or the shards' headers.
- `compute_dtype(device, n_params)`: float32 on the CPU (bfloat16 when float32 would not fit in half
  the free RAM), float16 on CUDA (bfloat16 where the caller asks for range over kernel support).
- `skeleton(folder, dtype)`: the transformers model for config.json with every parameter on the
  meta device (no memory, no initialiser run) and buffers real (rotary tables, embedding scales are
  computed in __init__ and absent from checkpoints); fused experts split per expert
  (model_structure.unfuse_experts), so module names match the checkpoint's.
- `read_state(...)` / `fill(...)`: tensors read once, cast once, renamed from checkpoint to module
  names (architectures.Family.module_name), assigned without a copy; tied embeddings tied.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from .errors import InvalidInput, UnsupportedModel

#: Share of the available RAM float32 weights may take before computing in bfloat16 on the CPU.
FLOAT32_RAM_SHARE = 0.5
TORCH_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}


def tensor_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> the .safetensors file holding it. Refuses pickle-only folders in one line."""
    from safetensors import safe_open

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInput(f"{index}: unreadable safetensors index ({exc})") from None
        files = {name: folder / file for name, file in weight_map.items()}
        missing = sorted({f for f in files.values() if not f.is_file()})
        if missing:
            raise InvalidInput(f"{missing[0]}: shard listed in {index.name} is missing")
        return files
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise UnsupportedModel(f"{folder}: holds only pickle weights (.bin), which Bitsmith does not load",
                                   suggestion="use a safetensors copy of the model")
        raise InvalidInput(f"{folder}: no .safetensors weights")
    files: dict[str, Path] = {}
    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                files[name] = shard
    return files


def compute_dtype(device: str, n_params: int | None = None, cuda: torch.dtype = torch.float16) -> torch.dtype:
    """The dtype weights that stay in floating point are computed in (one rule for every loader)."""
    if device != "cpu":
        if cuda is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return torch.float16
        return cuda
    try:
        from .telemetry import available_memory

        available = available_memory()
    except Exception:  # noqa: BLE001 - a guess is enough here; float32 is the safe default
        return torch.float32
    if n_params and n_params * 4 > FLOAT32_RAM_SHARE * available:
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def _parameters_on_meta():
    """While active, parameters registered by this thread go to the meta device as they are created
    (so no initialiser touches real memory); buffers stay real. Other threads are unaffected."""
    original = nn.Module.register_parameter
    owner = threading.get_ident()

    def register(module: nn.Module, name: str, param):
        original(module, name, param)
        # Only plain Parameters: subclasses (quantized ones) have constructors of their own.
        if type(param) is nn.Parameter and threading.get_ident() == owner and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def read_config_json(folder: Path) -> dict:
    """config.json of a model folder as plain JSON (what Bitsmith reads before any transformers
    class: family, quantization_config). A missing or broken file is one line naming it."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        raise InvalidInput(f"{folder}: not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{config_file}: unreadable ({exc})") from None
    if not isinstance(config, dict):
        raise InvalidInput(f"{config_file}: unreadable (not a JSON object)")
    return config


def load_config(folder: Path):
    """The transformers config of a folder, without its quantization_config (the quantized layers
    are Bitsmith's to build; transformers' quantizers stay out). Refusals are one line."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as exc:
        lines = str(exc).strip().splitlines()
        raise UnsupportedModel(f"{folder}: transformers cannot read its config ({lines[0] if lines else exc})") from None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.use_cache = False
    return config


def skeleton(config, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A causal LM for `config` (a transformers config or a folder) with meta parameters, real
    buffers and per-expert linears, in eval mode."""
    from transformers import AutoModelForCausalLM

    from .model_structure import unfuse_experts

    if isinstance(config, (str, Path)):
        config = load_config(Path(config))
    try:
        with _parameters_on_meta():
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModel(f"transformers cannot build a '{getattr(config, 'model_type', '?')}' model "
                               f"({str(exc).splitlines()[0]})") from None
    unfuse_experts(model)
    return model.eval()


def read_state(files: dict[str, Path], rename: Callable[[str], str], cast: Callable[[str, torch.Tensor], torch.Tensor],
               names: Iterable[str] | None = None, device: str = "cpu") -> dict[str, torch.Tensor]:
    """{module name: tensor} for the checkpoint `names` (all by default), each read once from its
    shard and passed through `cast(name, tensor)`."""
    from safetensors import safe_open

    wanted = list(files) if names is None else list(names)
    by_file: dict[Path, list[str]] = {}
    for n in wanted:
        by_file.setdefault(files[n], []).append(n)
    state = {}
    for file, group in sorted(by_file.items()):
        with safe_open(str(file), framework="pt", device=device) as f:
            for n in group:
                state[rename(n)] = cast(n, f.get_tensor(n))
    return state


def float_cast(dtype: torch.dtype, keep: tuple[str, ...] = ()) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """Floating tensors to `dtype`, except names ending in `keep` (quantization scales); integer
    tensors (packed codes) as stored."""
    def cast(name: str, t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() and not name.endswith(keep) else t
    return cast


def fill(model: nn.Module, state: dict[str, torch.Tensor], where: Path | str, device: str = "cpu") -> nn.Module:
    """Assign `state` to the skeleton, tie embeddings as the config says, refuse leftovers and
    gaps in one line, and move the real buffers to `device`."""
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys:
        raise InvalidInput(f"{where}: {len(result.unexpected_keys)} tensors do not belong to the model "
                           f"(first: {result.unexpected_keys[0]})")
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    still_meta = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.device.type == "meta"]
    if still_meta:
        raise InvalidInput(f"{where}: {len(still_meta)} weights are missing from the safetensors (first: {still_meta[0]})")
    return model.to(device)
