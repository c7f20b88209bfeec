"""Enums and frozen, validated configurations. Validation lives here and only here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..errors import InvalidInput


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class ModelFormat(str, Enum):
    HF = "hf"  # full-precision Hugging Face folder (safetensors)
    GGUF = "gguf"
    GPTQ = "gptq"
    AWQ = "awq"
    BNB = "bitsandbytes"
    INT8 = "bitsmith-int8"  # Bitsmith's own weight-only int8 layout
    PICKLE = "pickle"  # a pytorch_model.bin-only folder: listed, never loaded without consent


class Method(str, Enum):
    GGUF = "gguf"
    GPTQ = "gptq"
    AWQ = "awq"
    RTN = "rtn"
    INT8 = "int8"
    BNB_INT8 = "bnb-int8"
    BNB_NF4 = "bnb-nf4"


class GGUFType(str, Enum):
    """Output file types; the legacy ones are quantized by our kernels, K-quants by llama.cpp."""

    F32 = "F32"
    F16 = "F16"
    BF16 = "BF16"
    Q8_0 = "Q8_0"
    Q5_1 = "Q5_1"
    Q5_0 = "Q5_0"
    Q4_1 = "Q4_1"
    Q4_0 = "Q4_0"
    Q6_K = "Q6_K"
    Q5_K_M = "Q5_K_M"
    Q4_K_M = "Q4_K_M"
    Q4_K_S = "Q4_K_S"
    Q3_K_M = "Q3_K_M"
    Q2_K = "Q2_K"
    # Every other file type the linked llama.cpp quantizes (issue 15): written by its quantizer.
    Q5_K_S = "Q5_K_S"
    Q3_K_L = "Q3_K_L"
    Q3_K_S = "Q3_K_S"
    Q2_K_S = "Q2_K_S"
    IQ4_NL = "IQ4_NL"
    IQ4_XS = "IQ4_XS"
    IQ3_M = "IQ3_M"
    IQ3_S = "IQ3_S"
    IQ3_XS = "IQ3_XS"
    IQ3_XXS = "IQ3_XXS"
    IQ2_M = "IQ2_M"
    IQ2_S = "IQ2_S"
    IQ2_XS = "IQ2_XS"
    IQ2_XXS = "IQ2_XXS"
    IQ1_M = "IQ1_M"
    IQ1_S = "IQ1_S"
    TQ2_0 = "TQ2_0"
    TQ1_0 = "TQ1_0"
    MXFP4_MOE = "MXFP4_MOE"

    @property
    def is_k_quant(self) -> bool:
        return "_K" in self.value

    @property
    def by_llama_cpp(self) -> bool:
        """Written by llama.cpp's quantizer from an F16/BF16 intermediate (Bitsmith's kernels
        write the float types, Q8_0 and the legacy 4/5-bit types directly)."""
        return self not in _KERNEL_WRITTEN

    @property
    def needs_imatrix(self) -> bool:
        """llama.cpp refuses these without an importance matrix (its IQ1/IQ2/IQ3_XXS tensors and
        Q2_K_S's Q2_K ones), so they are offered only with one."""
        return self in _NEED_IMATRIX

    @property
    def nominal_bits(self) -> float:
        return _GGUF_BITS[self]


# Bits per weight as llama.cpp reports them for each block layout (K-quant mixes are nominal).
_GGUF_BITS = {
    GGUFType.F32: 32.0, GGUFType.F16: 16.0, GGUFType.BF16: 16.0, GGUFType.Q8_0: 8.5,
    GGUFType.Q5_1: 6.0, GGUFType.Q5_0: 5.5, GGUFType.Q4_1: 5.0, GGUFType.Q4_0: 4.5,
    GGUFType.Q6_K: 6.5625, GGUFType.Q5_K_M: 5.69, GGUFType.Q4_K_M: 4.89, GGUFType.Q4_K_S: 4.58,
    GGUFType.Q3_K_M: 3.91, GGUFType.Q2_K: 3.0,
    # Block layouts (bits of one block / its weights) for the single-type files, and the usual
    # mix for the K-quant S/L variants, from llama.cpp's tables.
    GGUFType.Q5_K_S: 5.54, GGUFType.Q3_K_L: 4.27, GGUFType.Q3_K_S: 3.5, GGUFType.Q2_K_S: 2.75,
    GGUFType.IQ4_NL: 4.5, GGUFType.IQ4_XS: 4.25, GGUFType.IQ3_M: 3.66, GGUFType.IQ3_S: 3.44,
    GGUFType.IQ3_XS: 3.3, GGUFType.IQ3_XXS: 3.06, GGUFType.IQ2_M: 2.7, GGUFType.IQ2_S: 2.5,
    GGUFType.IQ2_XS: 2.31, GGUFType.IQ2_XXS: 2.06, GGUFType.IQ1_M: 1.75, GGUFType.IQ1_S: 1.56,
    GGUFType.TQ2_0: 2.06, GGUFType.TQ1_0: 1.69, GGUFType.MXFP4_MOE: 4.25,
}
_KERNEL_WRITTEN = frozenset({GGUFType.F32, GGUFType.F16, GGUFType.BF16, GGUFType.Q8_0, GGUFType.Q5_1,
                             GGUFType.Q5_0, GGUFType.Q4_1, GGUFType.Q4_0})
_NEED_IMATRIX = frozenset({GGUFType.IQ1_S, GGUFType.IQ1_M, GGUFType.IQ2_XXS, GGUFType.IQ2_XS, GGUFType.IQ2_S,
                           GGUFType.IQ2_M, GGUFType.IQ3_XXS, GGUFType.IQ3_XS, GGUFType.Q2_K_S})


#: The file types whose encodings a size-budget GGUF chooses from per tensor, smallest first
#: (engine/quant/gguf/budget.py); the plan counts them too.
BUDGET_CANDIDATES = (GGUFType.Q2_K, GGUFType.Q3_K_M, GGUFType.Q4_K_S, GGUFType.Q5_K_M, GGUFType.Q6_K, GGUFType.Q8_0)

#: Methods that can fit the best output to a size or bits-per-weight target (the GUI enables its
#: size control from this, through engine.methods.MethodInfo.size_budget).
BUDGET_METHODS = frozenset({Method.GGUF, Method.GPTQ})

#: The importance matrix written beside a GGUF output (model.gguf -> model.imatrix.gguf); the
#: catalog skips these files, which are GGUF containers but not models.
IMATRIX_SUFFIX = ".imatrix.gguf"


def parse_enum(enum: type[Enum], value, what: str):
    """Turn user text into an enum member, or raise a one-line error listing the choices."""
    if isinstance(value, enum):
        return value
    text = str(value).strip()
    for member in enum:
        if member.value.lower() == text.lower() or member.name.lower() == text.lower():
            return member
    choices = ", ".join(m.value for m in enum)
    raise InvalidInput(f"unknown {what} '{value}'; choose one of: {choices}")


@dataclass(frozen=True)
class ImportConfig:
    """GGUF -> Hugging Face folder."""

    source: Path
    out_dir: Path
    dtype: str = "float16"
    overwrite: bool = False

    def __post_init__(self):
        object.__setattr__(self, "source", Path(self.source).absolute())  # lineage in the card
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.dtype not in ("float16", "float32", "bfloat16"):
            raise InvalidInput(f"dtype '{self.dtype}' is not one of float16, float32, bfloat16")


@dataclass(frozen=True)
class QuantizeConfig:
    """One conversion. Method-specific fields are ignored by methods that do not use them."""

    source: Path
    out: Path
    method: Method
    gguf_type: GGUFType = GGUFType.Q4_K_M
    bits: int = 4
    group_size: int | None = None  # None: the largest of 128/64/32 dividing every input width
    sym: bool = False
    desc_act: bool = True  # GPTQ's act-order (with static groups: g_idx stays sequential for every loader)
    imatrix: bool | None = None  # None: on for GGUF types of 4 bits and fewer
    calibration: str = "model"  # "model", "builtin", or a file path
    samples: int = 128
    seq_len: int = 512
    device: Device = Device.AUTO
    seed: int = 0
    extra: dict = field(default_factory=dict)
    # GGUF and GPTQ (BUDGET_METHODS): the best output that fits, with per-tensor types (GGUF,
    # engine/quant/gguf/budget.py) or per-layer bits and group sizes (GPTQ, quant/gptq/budget.py)
    # chosen by measured sensitivity. GGUF's bits per weight count the whole file, as llama.cpp
    # reports it; GPTQ's count its quantized layers as written (codes, scales, zeros, g_idx), as
    # GPTQ bit widths are quoted; a target size counts the whole output either way.
    target_bpw: float | None = None
    target_bytes: int | None = None
    # GPTQ, AWQ and RTN keep a checkpoint after each finished block (engine/quant/resume.py), and
    # the same conversion run again continues from it; `restart` removes it and starts at block 1.
    restart: bool = False

    def __post_init__(self):
        # Absolute, so the report card's lineage still names the source when read from elsewhere.
        object.__setattr__(self, "source", Path(self.source).absolute())
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "method", parse_enum(Method, self.method, "method"))
        object.__setattr__(self, "gguf_type", parse_enum(GGUFType, self.gguf_type, "GGUF type"))
        object.__setattr__(self, "device", parse_enum(Device, self.device, "device"))
        if self.method in (Method.GPTQ, Method.RTN) and self.bits not in (2, 3, 4, 8):
            raise InvalidInput(f"{self.method.value} supports 2, 3, 4 or 8 bits, not {self.bits}")
        if self.method is Method.AWQ and self.bits != 4:
            raise InvalidInput(f"awq supports 4 bits, not {self.bits}")
        if self.group_size is not None and self.group_size not in (-1, 32, 64, 128):
            raise InvalidInput(f"group size must be -1, 32, 64 or 128, not {self.group_size}")
        if self.samples < 1 or self.seq_len < 8:
            raise InvalidInput("calibration needs at least 1 sample of at least 8 tokens")
        if self.method is Method.GGUF and self.gguf_type.needs_imatrix and self.imatrix is False:
            raise InvalidInput(f"GGUF type {self.gguf_type.value} needs an importance matrix",
                               suggestion="turn the importance matrix on (--imatrix on) or choose a K-quant type")
        if self.target_bpw is not None or self.target_bytes is not None:
            if self.method not in BUDGET_METHODS:
                raise InvalidInput(f"a size or bits-per-weight target is available for "
                                   f"{' and '.join(sorted(m.value for m in BUDGET_METHODS))}, not {self.method.value}",
                                   suggestion="for other methods choose the bits and group size")
            if self.target_bpw is not None and self.target_bytes is not None:
                raise InvalidInput("give either a target size or a target bits per weight, not both")
            if self.method is Method.GPTQ and self.group_size is not None:
                raise InvalidInput("with a size or bits-per-weight target each GPTQ layer's group size is chosen "
                                   "to fit; leave the group size out")
            if self.target_bpw is not None and not 2.0 <= self.target_bpw <= 8.5:
                raise InvalidInput(f"a target of {self.target_bpw} bits per weight is outside what the candidate "
                                   "types span (2 to 8.5)")
            if self.target_bytes is not None and self.target_bytes <= 0:
                raise InvalidInput(f"a target size must be positive, not {self.target_bytes} bytes")

    @property
    def budget(self) -> bool:
        """An output (GGUF or GPTQ) sized to a target rather than of one type or bit width."""
        return self.target_bpw is not None or self.target_bytes is not None

    @property
    def type_label(self) -> str:
        """What the output is called after: its GGUF type, or the target it was fitted to."""
        if self.target_bpw is not None:
            return f"mix-{self.target_bpw:g}bpw"
        if self.target_bytes is not None:
            return f"mix-{self.target_bytes / 1e9:.3g}GB"
        return self.gguf_type.value

    @property
    def rtn_measures_errors(self) -> bool:
        """RTN needs no text; given a calibration file it also measures each layer's output error
        (one pass per block holding every layer's input Hessian)."""
        return self.method is Method.RTN and self.calibration not in ("builtin", "model")

    @property
    def use_imatrix(self) -> bool:
        if self.method is not Method.GGUF:
            return False
        if self.imatrix is not None:
            return self.imatrix
        if self.budget:
            return True  # the sensitivity that picks the types is measured with it
        return self.gguf_type.nominal_bits <= 5.0
