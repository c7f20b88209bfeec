"""The model families Bitsmith understands: one small table of what cannot be derived from a model's
own module tree and config, and a generic entry for any other decoder-only causal LM transformers
can build.

Everything else a path needs (decoder blocks, linear layers, which layers share an input, norms,
experts, rotary settings, soft-capping, sliding windows, tied embeddings) is derived from the
meta-device model and its config (engine/model_structure.py). What stays here:
- `hf_model_types`, `hf_class`, `name`: how config.json names the family and how we show it;
- `gguf_arch`: llama.cpp's `general.architecture` ("" for a family outside the table: its GGUF export
  then writes llama.cpp's architecture of the same name by the common rules, `gguf_export_arch`);
- `rope_permute`: Q/K weights llama.cpp expects in the interleaved rotary layout;
- `checkpoint_renames`: checkpoint-name fragments that differ from the module names transformers
  builds (Mixtral keeps `block_sparse_moe.experts.N.w1` on disk, `mlp.experts` in memory);
- `refused`: a path that truly cannot handle the family, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UnsupportedModel

#: The conversion and use paths a family can be refused on (names the user sees).
PATHS = ("info", "gguf-export", "gguf-import", "gptq", "awq", "rtn", "int8", "bnb", "evaluate", "chat")
#: The paths that make a new model (a GGUF source takes them through gguf-import first).
CONVERSION_PATHS = ("gguf-export", "gptq", "awq", "rtn", "int8", "bnb")
#: Conversion methods (config.Method values) whose path has another name; the others are their own.
_METHOD_PATHS = {"gguf": "gguf-export", "bnb-int8": "bnb", "bnb-nf4": "bnb"}


def path_of_method(method: str) -> str:
    """The path a conversion method takes ("gguf" -> "gguf-export", "bnb-nf4" -> "bnb")."""
    return _METHOD_PATHS.get(method, method)


def llama_cpp_architectures() -> frozenset[str]:
    """Every `general.architecture` llama.cpp knows (gguf-py's table, the one our writer uses)."""
    import gguf

    return frozenset(gguf.MODEL_ARCH_NAMES.values())

_MIXTRAL_RENAMES = ((".block_sparse_moe.", ".mlp."), (".w1.", ".gate_proj."), (".w3.", ".up_proj."),
                    (".w2.", ".down_proj."))


@dataclass(frozen=True)
class Family:
    name: str
    hf_model_types: tuple[str, ...]
    hf_class: str
    gguf_arch: str
    rope_permute: bool
    checkpoint_renames: tuple[tuple[str, str], ...] = ()
    refused: dict = field(default_factory=dict, hash=False, compare=False)  # path -> reason
    listed: bool = True  # False for the generic entry made for a model type the table lacks

    def refusal(self, path: str, moe: bool = False) -> str | None:
        """Why `path` cannot handle this family (`moe`: this model has routed experts), or None."""
        if path in self.refused:
            return self.refused[path]
        if path == "bnb" and moe:
            return ("transformers' bitsandbytes integration converts nn.Linear only, so the experts, kept as "
                    "3-D parameters, would stay in full precision")
        if path == "gguf-export" and self.gguf_export_arch is None:
            return f"llama.cpp has no architecture '{self.hf_model_types[0]}'"
        if path == "gguf-import" and not self.gguf_arch:
            return "Bitsmith has no llama.cpp architecture mapping for it"
        return None

    @property
    def gguf_export_arch(self) -> str | None:
        """The llama.cpp architecture the GGUF writer writes: the table's, or, for a model type
        the table does not list, llama.cpp's architecture of the same name (starcoder2, stablelm,
        ...) written by the common rules alone, as llama.cpp's converter writes the families it has
        no special code for. None when llama.cpp has no such architecture (the export refuses)."""
        if self.gguf_arch:
            return self.gguf_arch
        known = llama_cpp_architectures()
        return next((t for t in self.hf_model_types if t in known), None)

    def working_paths(self, moe: bool = False) -> list[str]:
        return [p for p in PATHS if self.refusal(p, moe) is None]

    def check(self, path: str, where: str = "", moe: bool = False) -> None:
        """Raise UnsupportedModel at once, naming the family and the paths that do work."""
        reason = self.refusal(path, moe)
        if reason is not None:
            what = f"{self.name} mixture-of-experts" if moe else self.name
            raise UnsupportedModel(f"{where + ': ' if where else ''}{what} models cannot go through {path} "
                                   f"({reason}); what works for them: {', '.join(self.working_paths(moe))}")

    def check_method(self, method: str, where: str = "", moe: bool = False) -> None:
        """`check` for a conversion method's value ("gptq", "int8", "gguf", "bnb-nf4", ...)."""
        self.check(path_of_method(method), where, moe)

    def module_name(self, checkpoint_name: str) -> str:
        """A checkpoint tensor name as transformers' modules name it (identity for most families)."""
        name = "." + checkpoint_name
        for disk, memory in self.checkpoint_renames:
            name = name.replace(disk, memory)
        return name[1:]

    def checkpoint_name(self, module_name: str) -> str:
        name = "." + module_name
        for disk, memory in self.checkpoint_renames:
            name = name.replace(memory, disk)
        return name[1:]


FAMILIES: tuple[Family, ...] = (
    Family("Llama", ("llama",), "LlamaForCausalLM", "llama", True),
    Family("Mistral", ("mistral",), "MistralForCausalLM", "llama", True),
    Family("Mixtral", ("mixtral",), "MixtralForCausalLM", "llama", True, _MIXTRAL_RENAMES),
    Family("Qwen2", ("qwen2",), "Qwen2ForCausalLM", "qwen2", False),
    Family("Qwen2-MoE", ("qwen2_moe",), "Qwen2MoeForCausalLM", "qwen2moe", False),
    Family("Qwen3", ("qwen3",), "Qwen3ForCausalLM", "qwen3", False),
    Family("Qwen3-MoE", ("qwen3_moe",), "Qwen3MoeForCausalLM", "qwen3moe", False),
    Family("Gemma 2", ("gemma2",), "Gemma2ForCausalLM", "gemma2", False),
    Family("Gemma 3", ("gemma3_text",), "Gemma3ForCausalLM", "gemma3", False),
    Family("Phi-3", ("phi3",), "Phi3ForCausalLM", "phi3", False),
    Family("Granite", ("granite",), "GraniteForCausalLM", "granite", True),
    Family("OLMo 2", ("olmo2",), "Olmo2ForCausalLM", "olmo2", False),
    Family("SmolLM3", ("smollm3",), "SmolLM3ForCausalLM", "smollm3", True),
)


def _generic_family(model_type: str, where: str) -> Family:
    """Any other model type transformers builds as a causal LM, with nothing known beyond its tree."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES = {}
    hf_class = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if not hf_class:
        known = ", ".join(t for f in FAMILIES for t in f.hf_model_types)
        raise UnsupportedModel(f"{where}: unknown architecture '{model_type}': not a causal language model "
                               f"transformers can build (Bitsmith handles decoder-only causal LMs such as {known})")
    if isinstance(hf_class, (list, tuple)):
        hf_class = hf_class[0]
    return Family(model_type, (model_type,), hf_class, "", False, listed=False)


def family_for_model_type(model_type: str, where: str = "config.json") -> Family:
    for fam in FAMILIES:
        if model_type in fam.hf_model_types:
            return fam
    return _generic_family(model_type, where)


def family_for_config(config: dict, where: str = "config.json") -> Family:
    """The family of a config.json; multimodal configs (a vision tower beside the text model) are
    refused in one line: Bitsmith converts decoder-only text models."""
    model_type = str(config.get("model_type"))
    if config.get("vision_config") or config.get("audio_config"):
        raise UnsupportedModel(f"{where}: '{model_type}' is a multimodal model; Bitsmith converts text-only "
                               "decoder models", suggestion="use the text-only checkpoint of this model")
    return family_for_model_type(model_type, where)


def family_for_gguf_arch(arch: str, where: str = "GGUF file") -> Family:
    """The family of a GGUF's `general.architecture`: the table's, or, for an architecture the table
    lacks, the transformers model type of the same name (llama.cpp names most of them so:
    starcoder2, stablelm, ...), its config then derived from llama.cpp's common keys."""
    for fam in FAMILIES:
        if fam.gguf_arch == arch:
            return fam
    try:
        generic = _generic_family(arch, where)
    except UnsupportedModel:
        raise UnsupportedModel(f"{where}: llama.cpp architecture '{arch}' is neither in Bitsmith's family table "
                               "nor a causal LM transformers knows by that name, so it cannot be imported") from None
    return Family(generic.name, generic.hf_model_types, generic.hf_class, arch, False, listed=False)


def is_known_model_type(model_type: str | None) -> bool:
    """True for the table's families and for any model type transformers builds as a causal LM."""
    if not model_type:
        return False
    try:
        family_for_model_type(model_type)
    except UnsupportedModel:
        return False
    return True


def expert_counts(config: dict) -> tuple[int, int] | None:
    """(routed experts per MoE layer, experts each token uses) from config.json, None when dense."""
    cfg = config.get("text_config") or config
    total = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    used = cfg.get("num_experts_per_tok") or cfg.get("moe_top_k")
    if not total or not used or int(total) <= 1:
        return None
    return int(total), int(used)
