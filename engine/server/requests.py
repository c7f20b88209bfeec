"""OpenAI request bodies turned into what the engine takes (messages or a prompt, and
SamplingSettings), with OpenAI-style errors for anything it cannot honour. Validation of the
sampling values themselves stays in SamplingSettings."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SamplingSettings
from ..errors import InvalidInput

#: Bitsmith's answer length when the client names none (OpenAI's "as long as the context allows"
#: would let one request hold the only slot for minutes).
DEFAULT_MAX_TOKENS = SamplingSettings().max_new_tokens
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """An error the client gets as OpenAI's `{"error": {...}}` body with this HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class GenerationRequest:
    settings: SamplingSettings
    stream: bool
    include_usage: bool
    max_tokens_given: bool
    messages: list[dict] | None = None  # chat
    prompt: str | None = None  # completions


def _number(body: dict, name: str, kind, default):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise bad(f"'{name}' must be {'an integer' if kind is int else 'a number'}, not {value!r}", name)
    return kind(value)


def _unsupported(body: dict, names: tuple[str, ...]) -> None:
    for name in names:
        value = body.get(name)
        if value not in (None, False, 0, [], {}):
            raise bad(f"'{name}' is not supported by this server", name, "unsupported_parameter")


def _settings(body: dict) -> tuple[SamplingSettings, bool]:
    d = SamplingSettings()
    if _number(body, "n", int, 1) != 1:
        raise bad("'n' must be 1: this server writes one answer per request", "n", "unsupported_parameter")
    max_tokens = _number(body, "max_completion_tokens", int, None)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", int, None)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise bad("'stop' must be a string or a list of strings", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad(f"'seed' must be an integer, not {seed!r}", "seed")
    # repetition_penalty is not OpenAI's, but llama.cpp's server and vLLM take it; without it the
    # model's usual Bitsmith default applies, so the server answers as the chat pane does.
    penalty = _number(body, "repetition_penalty", float, None)
    if penalty is None:
        penalty = _number(body, "repeat_penalty", float, d.repetition_penalty)
    try:
        settings = SamplingSettings(
            temperature=_number(body, "temperature", float, d.temperature),
            top_p=_number(body, "top_p", float, d.top_p), top_k=_number(body, "top_k", int, d.top_k),
            repetition_penalty=penalty, max_new_tokens=max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS,
            seed=seed, stop=stops)
    except InvalidInput as exc:
        raise bad(str(exc)) from None
    return settings, max_tokens is not None


def _stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("'stream_options' must be an object", "stream_options")
    return stream, bool(options.get("include_usage"))


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text ones can be answered
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"messages[{i}]: only text content parts are supported", f"messages[{i}].content")
            texts.append(part["text"])
        return "".join(texts)
    if content is None and message.get("role") == "assistant":
        return ""
    raise bad(f"messages[{i}]: 'content' must be a string or a list of text parts", f"messages[{i}].content")


def _check_body(body) -> dict:
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model")
    return body


def chat_request(body) -> GenerationRequest:
    body = _check_body(body)
    _unsupported(body, ("tools", "functions", "logprobs", "top_logprobs", "logit_bias", "frequency_penalty",
                        "presence_penalty"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list", "messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise bad(f"messages[{i}]: 'role' must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        turns.append({"role": ROLES[m["role"]], "content": _content(m, i)})
    settings, given = _settings(body)
    stream, usage = _stream_flags(body)
    return GenerationRequest(settings, stream, usage, given, messages=turns)


def completion_request(body) -> GenerationRequest:
    body = _check_body(body)
    _unsupported(body, ("suffix", "echo", "logprobs", "best_of", "logit_bias", "frequency_penalty",
                        "presence_penalty"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise bad("'prompt' must be a non-empty string", "prompt")
    settings, given = _settings(body)
    stream, usage = _stream_flags(body)
    return GenerationRequest(settings, stream, usage, given, prompt=prompt)
