"""The same prompt, with the same sampling settings and seed, answered by several models in turn:
the Compare view's side-by-side answers. Models are loaded one at a time and closed before the next
loads, so comparing two variants of a large model needs the memory of one, not two."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..events import Done, Job, Log, TextPiece
from .session import Answer, ChatSession
from ..config import SamplingSettings


@dataclass(frozen=True)
class SidePiece:
    """A piece of model number `side`'s answer, as it decodes."""

    side: int
    text: str


@dataclass(frozen=True)
class SideAnswer:
    """Model number `side` has finished its answer."""

    side: int
    answer: Answer
    prompt_text: str = ""  # the prompt as the model read it (chat template applied): Compare re-reads it


def side_by_side(paths: list[str | Path], prompt: str, settings: SamplingSettings, system_prompt: str = "",
                 cancel: CancelToken = NEVER, device: str = "auto") -> Job:
    """Yields Log, SidePiece and SideAnswer events; Done(list of Answers, in the order of `paths`)."""
    from ..runtime import load

    answers = []
    for side, path in enumerate(paths):
        cancel.check()
        yield Log(f"loading {Path(path).name}")
        backend = load(path, device)
        try:
            session = ChatSession(backend, system_prompt, settings)  # no store: nothing is saved
            for ev in session.send(prompt, cancel):
                if isinstance(ev, TextPiece):
                    yield SidePiece(side, ev.text)
                elif isinstance(ev, Done):
                    answers.append(ev.result)
                    # The text the model read, for Compare's token-by-token re-reading (same package:
                    # the session's own rule for the system message, not a copy of it).
                    read = backend.render(session._conversation([{"role": "user", "content": prompt}]))
                    yield SideAnswer(side, ev.result, read)
                else:
                    yield ev
        finally:
            backend.close()
    yield Done(answers)
