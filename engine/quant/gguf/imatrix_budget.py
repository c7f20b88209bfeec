"""How many calibration windows the importance matrix reads by default: all of them for small
models, fewer for large ones, so that a default GGUF conversion of an 8B model stays near an hour on
a 2-core machine. One rule for the job and the plan.

The importance matrix costs one forward pass: about 2 x parameters x tokens floating-point
operations. This machine sustains about 60 GFLOP/s in float32 on 2 cores (bench/SCALE.md); 8192
tokens through an 8B model are then ~35 minutes, leaving the F16 intermediate and llama.cpp's
quantizer (~15 minutes together at that size) inside the hour. The budget below is that product
(8B x 8192 tokens). Windows of 512 tokens: 16 for 8B, 100 for 1.2B (so the default 128 stays
whole below ~1B), never fewer than MIN_WINDOWS.
"""

from __future__ import annotations

from ...config import QuantizeConfig

#: parameters x calibration tokens the default importance matrix may cost (8B x 8192 tokens)
PARAM_TOKENS = 8.0e9 * 8192
MIN_WINDOWS = 16
#: QuantizeConfig's default sample count: the budget applies only when the user kept it.
DEFAULT_SAMPLES = QuantizeConfig.__dataclass_fields__["samples"].default


def imatrix_windows(samples: int, seq_len: int, n_params: int) -> int:
    """Windows the importance matrix reads: `samples`, or fewer when the user kept the default and
    the model is large (see the module docstring)."""
    if samples != DEFAULT_SAMPLES or n_params <= 0:
        return samples
    fit = int(PARAM_TOKENS // (n_params * seq_len))
    return max(min(samples, fit), min(MIN_WINDOWS, samples))
