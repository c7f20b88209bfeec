"""A model's Jinja chat template turned into Ollama's Go-template syntax, derived from the template
itself rather than from a table of families.

The Jinja template is rendered for a few conversations whose contents are unique marker words; the
text between the markers is what the template writes around each message (role headers,
end-of-turn tokens, a default system prompt, the generation prompt). The Go template then emits
those pieces around `.Content` for each message in `.Messages`. The result is checked by rendering
a longer conversation both ways; a template whose output depends on more than the role order
(dates, tool lists, message positions) fails that check and is reported as not translatable."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedModel

S, U1, A1, U2, A2, U3 = ("SYSMARKxq", "USERONExq", "ASSTONExq", "USERTWOxq", "ASSTTWOxq", "USERTHREExq")


def render_jinja(template: str, messages: list[dict], add_generation_prompt: bool, bos: str = "", eos: str = "") -> str:
    """Render as transformers and llama-cpp-python do: sandboxed, trim_blocks and lstrip_blocks,
    loop controls, and raise_exception for templates that refuse a conversation."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos, eos_token=eos)


def _split(text: str, markers: list[str]) -> list[str]:
    """The text before, between and after the markers, which must appear once each and in order."""
    parts, rest = [], text
    for m in markers:
        head, found, rest = rest.partition(m)
        if not found or m in rest:
            raise ValueError(f"marker {m} not found once")
        parts.append(head)
    return parts + [rest]


@dataclass(frozen=True)
class TurnPieces:
    """What the template writes before each message, by what came before it, and after the last."""

    system_first: str  # before a leading system message
    user_first: str  # before the first user message when there is no system message (may hold a default system prompt)
    user_after_system: str
    user_after_assistant: str
    assistant: str  # before an assistant message (after a user message)
    generation: str  # after the last user message: the generation prompt
    end_after_assistant: str  # after a final assistant message

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """What the Go template produces for `messages` (the same rules, in Python)."""
        out, prev = [], ""
        for m in messages:
            if m["role"] == "system":
                out.append(self.system_first)
            elif m["role"] == "user":
                out.append({"": self.user_first, "system": self.user_after_system}.get(prev, self.user_after_assistant))
            else:
                out.append(self.assistant)
            out.append(m["content"])
            prev = m["role"]
        if prev == "user" and add_generation_prompt:
            out.append(self.generation)
        elif prev == "assistant":
            out.append(self.end_after_assistant)
        return "".join(out)


def probe(template: str, bos: str = "", eos: str = "", strip_bos: bool = False) -> TurnPieces:
    def msgs(*pairs):
        return [{"role": r, "content": c} for r, c in pairs]

    try:
        with_sys = _split(render_jinja(template, msgs(("system", S), ("user", U1), ("assistant", A1), ("user", U2)),
                                       True, bos, eos), [S, U1, A1, U2])
        no_sys = _split(render_jinja(template, msgs(("user", U1), ("assistant", A1), ("user", U2)), True, bos, eos),
                        [U1, A1, U2])
        ended = _split(render_jinja(template, msgs(("user", U1), ("assistant", A1)), False, bos, eos), [U1, A1])
    except Exception as exc:  # noqa: BLE001 - template errors come in every type; say which model and why
        raise UnsupportedModel(f"the chat template cannot be translated for Ollama ({str(exc).splitlines()[0]})") from None

    def no_bos(text: str) -> str:
        # Ollama adds BOS itself when the model asks for it; a template that writes it would double it.
        return text[len(bos):] if strip_bos and bos and text.startswith(bos) else text

    pieces = TurnPieces(system_first=no_bos(with_sys[0]), user_first=no_bos(no_sys[0]), user_after_system=with_sys[1],
                        user_after_assistant=with_sys[3], assistant=with_sys[2], generation=with_sys[4],
                        end_after_assistant=ended[2])
    check = msgs(("system", S), ("user", U1), ("assistant", A1), ("user", U2), ("assistant", A2), ("user", U3))
    for conversation in (check, check[1:]):
        want = no_bos(render_jinja(template, conversation, True, bos, eos))
        if pieces.render(conversation) != want:
            raise UnsupportedModel("the chat template depends on more than the order of roles (dates, tools or "
                                   "message positions), so it cannot be translated for Ollama")
    return pieces


def go_literal(text: str) -> str:
    """Text placed in a Go template as is; `{{` cannot appear literally, so it is printed from a string."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(p: TurnPieces) -> str:
    """Ollama's TEMPLATE: one pass over .Messages, tracking the previous role in $prev; the generation
    prompt after the last message when it is the user's."""
    L = go_literal
    return (
        '{{- $prev := "" }}\n'
        "{{- range $i, $m := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        '{{- if eq $m.Role "system" }}' + L(p.system_first) + "{{ $m.Content }}\n"
        '{{- else if eq $m.Role "user" }}'
        '{{- if eq $prev "" }}' + L(p.user_first) + '{{ else if eq $prev "system" }}' + L(p.user_after_system)
        + "{{ else }}" + L(p.user_after_assistant) + "{{ end }}{{ $m.Content }}"
        "{{ if $last }}" + L(p.generation) + "{{ end }}\n"
        "{{- else }}" + L(p.assistant) + "{{ $m.Content }}{{ if $last }}" + L(p.end_after_assistant) + "{{ end }}\n"
        "{{- end }}\n"
        "{{- $prev = $m.Role }}\n"
        "{{- end }}"
    )
