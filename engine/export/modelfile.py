"""An Ollama Modelfile for a GGUF: FROM the file, TEMPLATE translated from the model's own chat
template, its end-of-turn tokens as stop parameters, and Bitsmith's sampling settings under
Ollama's parameter names. Syntax as Ollama's Modelfile documentation gives it: one command per line,
arguments with newlines or quotes in triple quotes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import SamplingSettings
from ..errors import InvalidInput, UnsupportedModel
from ..formats.gguf.header import check_gguf_header
from ..runtime.base import FALLBACK_STOPS, FALLBACK_TEMPLATE
from .template_probe import go_template, probe

#: Context Bitsmith's llama.cpp runtime opens a GGUF with (engine/runtime/llamacpp_backend.py).
CHAT_CONTEXT = 4096


@dataclass(frozen=True)
class GGUFChatInfo:
    path: Path
    name: str
    template: str | None
    bos: str
    eos: str
    stop_tokens: tuple[str, ...]
    add_bos: bool
    context_length: int | None


def read_chat_info(path: Path) -> GGUFChatInfo:
    """The chat template and special tokens, through llama.cpp with only the vocabulary loaded (well
    under a second; gguf's reader takes many seconds on a 50k-token vocabulary), after the bounded
    header walk that refuses damaged files in one line."""
    from llama_cpp import Llama

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    check_gguf_header(path)
    try:
        with _quiet():
            llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except ValueError:  # a file llama.cpp cannot open (no vocabulary, say): gguf's reader says why, or reads it
        return _read_with_gguf(path)
    try:
        meta, vocab = llm.metadata, llm._model

        def token_text(key: str) -> str:
            idx = meta.get(key)
            return vocab.token_get_text(int(idx)) if idx is not None and 0 <= int(idx) < llm.n_vocab() else ""

        arch = meta.get("general.architecture", "llama")
        eos = token_text("tokenizer.ggml.eos_token_id")
        stops = [t for t in (eos, token_text("tokenizer.ggml.eot_token_id"), token_text("tokenizer.ggml.eom_token_id")) if t]
        ctx = meta.get(f"{arch}.context_length")
        return GGUFChatInfo(path, meta.get("general.name") or path.stem, meta.get("tokenizer.chat_template"),
                            token_text("tokenizer.ggml.bos_token_id"), eos, tuple(dict.fromkeys(stops)),
                            meta.get("tokenizer.ggml.add_bos_token", "true") != "false", int(ctx) if ctx else None)
    finally:
        llm.close()


def _read_with_gguf(path: Path) -> GGUFChatInfo:
    from ..formats.gguf.source import field_value, open_gguf

    reader = open_gguf(path)
    tokens = reader.get_field("tokenizer.ggml.tokens")

    def token_text(key: str) -> str:
        idx = field_value(reader, key)
        return str(tokens.contents(int(idx))) if tokens is not None and idx is not None and 0 <= int(idx) < len(tokens.data) else ""

    arch = field_value(reader, "general.architecture", "llama")
    eos = token_text("tokenizer.ggml.eos_token_id")
    stops = [t for t in (eos, token_text("tokenizer.ggml.eot_token_id")) if t]
    return GGUFChatInfo(path, str(field_value(reader, "general.name") or path.stem),
                        field_value(reader, "tokenizer.chat_template"), token_text("tokenizer.ggml.bos_token_id"), eos,
                        tuple(dict.fromkeys(stops)), bool(field_value(reader, "tokenizer.ggml.add_bos_token", True)),
                        field_value(reader, f"{arch}.context_length"))


def _quiet():
    """llama.cpp prints context warnings on stderr even when asked not to; a vocabulary-only load has
    nothing worth showing."""
    try:
        from llama_cpp._utils import suppress_stdout_stderr

        return suppress_stdout_stderr(disable=False)
    except ImportError:  # a llama-cpp-python without the helper: the warning line shows, nothing worse
        from contextlib import nullcontext

        return nullcontext()


def quote(value: str) -> str:
    """A Modelfile argument: bare when it is one plain word, else in quotes; triple quotes when it
    holds a newline or a quote (Ollama's parser reads up to the matching closing quotes)."""
    if '"""' in value:
        raise InvalidInput('a Modelfile argument cannot contain three double quotes in a row (""")')
    if value and not any(c in value for c in ' \t\n\r"#') and value == value.strip():
        return value
    if "\n" in value or '"' in value or "\r" in value:
        return f'"""{value}"""'
    return f'"{value}"'


@dataclass
class Modelfile:
    source: Path
    template: str | None
    stops: list[str] = field(default_factory=list)
    parameters: list[tuple[str, str]] = field(default_factory=list)
    system: str | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"# Made by Bitsmith from {self.source.name}", f"FROM {quote(str(self.source))}"]
        if self.template is not None:
            lines.append(f'TEMPLATE """{self.template}"""')
        if self.system:
            lines.append(f"SYSTEM {quote(self.system)}")
        lines += [f"PARAMETER stop {quote(s)}" for s in self.stops]
        lines += [f"PARAMETER {k} {v}" for k, v in self.parameters]
        return "\n".join(lines) + "\n"


def build_modelfile(gguf_path: Path, settings: SamplingSettings | None = None, system: str | None = None) -> Modelfile:
    info = read_chat_info(gguf_path)
    s = settings or SamplingSettings()
    notes, template_text = [], info.template
    stops = list(info.stop_tokens)
    if template_text is None:
        template_text = FALLBACK_TEMPLATE
        stops += list(FALLBACK_STOPS)
        notes.append("the model has no chat template; using Bitsmith's plain User/Assistant format")
    try:
        template = go_template(probe(template_text, info.bos, info.eos, strip_bos=info.add_bos))
    except UnsupportedModel as exc:
        template = None  # Ollama then picks a template for the model itself
        notes.append(f"{exc}; TEMPLATE left out, so Ollama chooses one")
    ctx = min(info.context_length or CHAT_CONTEXT, CHAT_CONTEXT)
    params = [("temperature", f"{s.temperature:g}"), ("top_p", f"{s.top_p:g}"), ("top_k", str(s.top_k)),
              ("repeat_penalty", f"{s.repetition_penalty:g}"), ("num_predict", str(s.max_new_tokens)),
              ("num_ctx", str(ctx))]
    if s.seed is not None:
        params.append(("seed", str(s.seed)))
    stops += [x for x in s.stop if x not in stops]
    return Modelfile(Path(gguf_path).resolve(), template, stops, params, system, notes)
