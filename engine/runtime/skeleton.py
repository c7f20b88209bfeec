"""A transformers model built from its config with every parameter on the meta device: the
structure (module names and types, Linear shapes) at no memory cost, ready to be filled with
`load_state_dict(..., assign=True)`.

Buffers are left real on purpose: non-persistent ones such as rotary `inv_freq` are computed in
`__init__` and are not in the checkpoint, so a fully-meta model would have nothing to load them from.
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn

from ..errors import UnsupportedModel


@contextlib.contextmanager
def _parameters_on_meta():
    """While active, parameters registered by this thread are moved to meta as they are created
    (so no initialiser touches real memory). Other threads are unaffected."""
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


def empty_causal_lm(config, dtype: torch.dtype = torch.float32) -> nn.Module:
    """An AutoModelForCausalLM for `config` (a transformers PretrainedConfig) with meta parameters."""
    from transformers import AutoModelForCausalLM

    try:
        with _parameters_on_meta():
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModel(f"transformers cannot build a '{getattr(config, 'model_type', '?')}' model "
                               f"({str(exc).splitlines()[0]})") from None
    return model.eval()


def linear_module_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """(Linear modules to quantize, modules left alone): the output projection and the embeddings stay."""
    output = model.get_output_embeddings()
    kept = [name for name, m in model.named_modules() if m is output or isinstance(m, nn.Embedding)]
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m is not output]
    return linears, kept
