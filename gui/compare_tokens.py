"""Compare's token colouring: each token of a variant's answer shaded by how far the variant's
next-token distribution was from the source's where it wrote that token (KL divergence, from
`api.answer_divergence`), with a tooltip per token and a legend.

KL per token spans orders of magnitude (0.001 nats where the two agree, several nats where they
part), so the shade follows log10(KL): white below 0.001 nats, amber around 0.03, red from 1 nat up.
A token the source would not have written (a greedy flip) is also underlined."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from bitsmith.engine.api import Done, EngineError, Log, SideAnswer, SidePiece

if TYPE_CHECKING:
    from bitsmith.engine.api import TokenDivergence

#: The KL (nats) at which the shade starts and where it is full red.
KL_FLOOR, KL_FULL = 1e-3, 1.0
_STOPS = ((0.0, (255, 255, 255)), (0.5, (255, 213, 79)), (1.0, (229, 57, 53)))  # white, amber, red
#: The legend's swatches (nats).
LEGEND = (0.001, 0.01, 0.1, 1.0)


def _tr(text: str) -> str:
    return QCoreApplication.translate("CompareTokens", text)


def heat(kl: float) -> float:
    """0 (the source would say the same) to 1 (1 nat or more apart), on a log scale."""
    if not kl > KL_FLOOR:  # also NaN
        return 0.0
    return min(1.0, math.log10(kl / KL_FLOOR) / math.log10(KL_FULL / KL_FLOOR))


def kl_colour(kl: float) -> QColor:
    t = heat(kl)
    for (t0, c0), (t1, c1) in zip(_STOPS, _STOPS[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return QColor(*(round(a + (b - a) * f) for a, b in zip(c0, c1)))
    return QColor(*_STOPS[-1][1])


def _visible(token: str) -> str:
    """A token as a tooltip shows it: spaces and line breaks made visible (most tokens start with one)."""
    return token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")


def token_tooltip(div: TokenDivergence, i: int) -> str:
    tip = _tr("KL %1 nats").replace("%1", f"{div.kld[i]:.4f}")
    if div.source_top:
        top = _visible(div.source_top[i])
        tip += "\n" + (_tr("the source would have written “%1” here").replace("%1", top) if div.flips[i]
                       else _tr("the source's top token too: “%1”").replace("%1", top))
    return tip


#: Inline Markdown the coloured answer renders (the plain chat view renders all of it): the
#: markers are dropped and the text between them styled, whichever tokens the markers fell in.
_INLINE = {"**": "font-weight:bold;", "`": "font-family:monospace;"}


def _marked_chars(text: str) -> list[tuple[int, str]]:
    """(index, style) of each character to show: `**bold**` and `code` lose their markers, and a
    heading line ("# ...") loses its hashes and is shown bold. Inside code, ** is text."""
    shown, open_ = [], dict.fromkeys(_INLINE, False)
    i, heading = 0, False
    while i < len(text):
        if i == 0 or text[i - 1] == "\n":
            hashes = len(text[i:]) - len(text[i:].lstrip("#"))
            heading = 0 < hashes <= 6 and text[i + hashes:i + hashes + 1] == " "
            if heading:
                i += hashes + 1
                continue
        marker = "`" if text.startswith("`", i) else "**" if text.startswith("**", i) and not open_["`"] else None
        if marker is not None:
            open_[marker] = not open_[marker]
            i += len(marker)
            continue
        bold = heading or open_["**"]
        shown.append((i, ("font-weight:bold;" if bold else "") + (_INLINE["`"] if open_["`"] else "")))
        i += 1
    return shown


def coloured_html(div: TokenDivergence) -> str:
    """The answer as HTML, one span per run of a token's characters that share a style, with the
    token's shade and tooltip (Qt shows `title`)."""
    text = "".join(div.pieces)
    owner = [i for i, piece in enumerate(div.pieces) for _ in piece]  # the token of each character
    runs: list[tuple[int, str, str]] = []  # (token, style, characters)
    for c, style in _marked_chars(text):
        if runs and runs[-1][0] == owner[c] and runs[-1][1] == style:
            runs[-1] = (owner[c], style, runs[-1][2] + text[c])
        else:
            runs.append((owner[c], style, text[c]))
    spans = []
    for i, style, chars in runs:
        css = f"background-color:{kl_colour(div.kld[i]).name()};" + style
        if div.flips[i]:
            css += "text-decoration:underline;"
        body = html.escape(chars).replace("\n", "<br/>")
        spans.append(f'<span style="{css}" title="{html.escape(token_tooltip(div, i), quote=True)}">{body}</span>')
    return "".join(spans)


def summary(div: TokenDivergence) -> str:
    return _tr("mean KL %1 nats · the source would have chosen another token at %2 of %3 tokens").replace(
        "%1", f"{div.mean_kld:.3f}").replace("%2", str(sum(div.flips))).replace("%3", str(len(div.flips)))


class KLLegend(QWidget):
    """A row of swatches: what each shade means."""

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        title = QLabel(_tr("Token colour: KL against the source"))
        title.setToolTip(_tr("How far the variant's next-token probabilities were from the source's where it "
                             "wrote each token, in nats. Underlined: the source's most likely token was another."))
        row.addWidget(title)
        self.swatches = []
        for kl in LEGEND:
            swatch = QLabel(("≥ " if kl == LEGEND[-1] else "") + f"{kl:g}")
            swatch.setStyleSheet(f"background-color:{kl_colour(kl).name()}; border:1px solid #bbb; padding:0 4px;")
            row.addWidget(swatch)
            self.swatches.append((kl, swatch))
        row.addWidget(QLabel(_tr("nats")))
        row.addStretch(1)


def answers_then_colours(paths: list[str], prompt: str, settings, source: str | None, cancel):
    """Compare's one job: the side-by-side answers (their events passed on), then each answer not
    written by the source re-read by its model and by the source, token by token. Yields what
    side_by_side yields and a (side, TokenDivergence) pair per coloured answer; ends in
    Done(answers). A variant the source cannot be compared with (another tokenizer, a format
    without logits) is said in a Log line and left uncoloured: the answers stand on their own."""
    from bitsmith.engine.api import answer_divergence, side_by_side  # in the worker: torch, llama.cpp

    raw, read, answers = ["", ""], ["", ""], None
    for ev in side_by_side(paths, prompt, settings, cancel=cancel):
        if isinstance(ev, Done):
            answers = ev.result
            continue
        if isinstance(ev, SidePiece):
            raw[ev.side] += ev.text  # what the model wrote, unstripped: the tokens it really produced
        elif isinstance(ev, SideAnswer):
            read[ev.side] = ev.prompt_text
        yield ev
    for side, path in enumerate(paths):
        if source is None or path == source or not raw[side].strip():
            continue
        yield Log(_tr("Colouring %1's tokens by KL against the source…").replace("%1", "AB"[side]))
        try:
            for ev in answer_divergence(path, source, read[side], raw[side], cancel=cancel):
                if isinstance(ev, Done):
                    yield side, ev.result
        except EngineError as exc:
            yield Log(_tr("%1's tokens are not coloured: %2").replace("%1", "AB"[side]).replace("%2", str(exc)),
                      "warning")
    yield Done(answers)
