"""What the user has chosen so far in the wizard: plain data the pages share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bitsmith.engine.api import Device, EngineError, GGUFType, Method, ModelInfo, QuantizeConfig


@dataclass
class WizardState:
    source: ModelInfo | None = None
    method: Method = Method.GGUF
    gguf_type: GGUFType = GGUFType.Q4_K_M
    out: str = ""
    bits: int = 4
    group_size: int | None = None
    sym: bool = False
    desc_act: bool = True  # GPTQ's act-order with static groups, the engine's default
    imatrix: bool | None = None
    awq_rounding: str = "gptq"  # engine default (WeightOnlySettings.awq_rounding)
    calibration: str = "builtin"  # text the model writes itself takes hours on a CPU; the plan says so
    samples: int = 128
    seq_len: int = 512
    device: Device = Device.AUTO
    evaluate: bool = True  # a quick evaluation against the source once the output is written
    out_dir: str = ""  # the folder outputs go to by default (the settings page fills it in)
    # A size to fit instead of one type or bit width (methods whose MethodInfo.size_budget is true):
    # at most one of the two is set.
    target_bpw: float | None = None
    target_bytes: int | None = None

    def default_out(self) -> str:
        if self.source is None:
            return ""
        src = Path(self.source.path)
        stem = src.stem if src.is_file() else src.name
        stem = stem.split(".")[0] if src.is_file() else stem
        folder = Path(self.out_dir) if self.out_dir else src.parent
        if self.target_bpw is not None or self.target_bytes is not None:
            try:
                label = self.to_config(out=folder).type_label  # the engine's name for the fitted mix
            except EngineError:  # a target out of range: the settings page says why
                label = "mix"
            return str(folder / (f"{stem}-{label}.gguf" if self.method is Method.GGUF else f"{stem}-GPTQ-{label}"))
        if self.method is Method.GGUF:
            return str(folder / f"{stem}-{self.gguf_type.value}.gguf")
        suffix = {Method.GPTQ: f"GPTQ-{self.bits}bit", Method.AWQ: "AWQ-4bit", Method.RTN: f"RTN-{self.bits}bit",
                  Method.INT8: "INT8", Method.BNB_INT8: "bnb-int8", Method.BNB_NF4: "bnb-nf4"}[self.method]
        return str(folder / f"{stem}-{suffix}")

    def to_config(self, out: Path | None = None) -> QuantizeConfig:
        """Raises engine.errors.InvalidInput with a one-line reason when a setting is wrong."""
        return QuantizeConfig(
            source=Path(self.source.path), out=out or Path(self.out or self.default_out()), method=self.method,
            gguf_type=self.gguf_type, bits=self.bits, group_size=self.group_size, sym=self.sym,
            desc_act=self.desc_act, imatrix=self.imatrix, calibration=self.calibration, samples=self.samples,
            seq_len=self.seq_len, device=self.device, target_bpw=self.target_bpw, target_bytes=self.target_bytes,
            extra={"awq_rounding": self.awq_rounding} if self.method is Method.AWQ else {},
        )
