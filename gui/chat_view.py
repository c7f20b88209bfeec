"""The conversation as a rendered document: Markdown and code blocks, the answer streaming in,
and each answer's statistics under it. Re-rendering is throttled to 10 Hz while text streams."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QTextBrowser


@dataclass
class Turn:
    role: str
    text: str
    stats: dict | None = None
    note: str = ""
    html: str | None = None  # the text already marked up (Compare's coloured tokens): shown instead


def stats_line(stats: dict | None, tr=lambda s: s) -> str:
    """The figures under an answer; tok/s is the same figure the speed graph draws as its level."""
    if not stats:
        return ""
    line = tr("%1 tokens · %2 tok/s · first token after %3 s").replace(
        "%1", str(stats["completion_tokens"])).replace(
        "%2", f"{stats['generation_tokens_per_s']:.1f}").replace(
        "%3", f"{stats['time_to_first_token_s']:.2f}")
    if stats.get("threads"):
        n = stats["threads"]
        line += (tr(" · 1 CPU thread") if n == 1 else tr(" · %1 CPU threads").replace("%1", str(n)))
    return line


class ChatView(QTextBrowser):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.turns: list[Turn] = []
        self._timer = QTimer(self, interval=100, singleShot=True)
        self._timer.timeout.connect(self._render)

    def set_turns(self, turns: list[Turn]) -> None:
        self.turns = list(turns)
        self._render()

    def add_turn(self, turn: Turn) -> None:
        self.turns.append(turn)
        self._render()

    def append_to_last(self, piece: str) -> None:
        self.turns[-1].text += piece
        if not self._timer.isActive():
            self._timer.start()

    def finish_last(self, text: str, stats: dict | None, note: str = "") -> None:
        last = self.turns[-1]
        last.text, last.stats, last.note = text, stats, note
        self._timer.stop()
        self._render()

    def _render(self) -> None:
        # Markdown shows the model's formatting; a turn whose text carries its own markup (per-token
        # colours, which Markdown cannot hold) switches the view to HTML with the same layout.
        if any(t.html is not None for t in self.turns):
            import html

            def body(t: Turn) -> str:
                return t.html if t.html is not None else html.escape(t.text or "…").replace("\n", "<br/>")

            self.setHtml("".join(self._layout(lambda who: f"<p><b>{who}</b></p>", lambda t: f"<p>{body(t)}</p>",
                                              lambda foot: f"<p><i>{html.escape(foot)}</i></p>", "<hr/>")))
        else:
            self.setMarkdown("\n".join(self._layout(lambda who: f"**{who}**\n", lambda t: f"{t.text or '…'}\n",
                                                    lambda foot: f"*{foot}*\n", "\n---\n")))
        self._to_end()

    def _layout(self, head, body, foot, rule: str) -> list[str]:
        """Each turn as speaker, text, its statistics line and a rule, in the markup the callers give."""
        parts = []
        for t in self.turns:
            parts += [head(self.tr("You") if t.role == "user" else self.tr("Assistant")), body(t)]
            footer = " · ".join(x for x in (stats_line(t.stats, self.tr), t.note) if x)
            if footer:
                parts.append(foot(footer))
            parts.append(rule)
        return parts

    def _to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
