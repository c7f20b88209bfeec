"""Compare's token colouring: every token of a variant's answer shaded by its KL against the source,
with a tooltip naming the KL and the source's own top token, and a legend; real widgets."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QTextFormat

from bitsmith.engine.api import TokenDivergence
from bitsmith.gui.chat_view import ChatView, Turn
from bitsmith.gui.compare_tokens import KL_FULL, KLLegend, coloured_html, heat, kl_colour


def shown_tokens(view: ChatView) -> list[tuple[str, QColor, str, bool]]:
    """(text, background, tooltip, underlined) of every shaded fragment, in document order."""
    out = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            fmt = frag.charFormat()
            if fmt.hasProperty(QTextFormat.BackgroundBrush):  # the labels and the question have no shade
                out.append((frag.text(), fmt.background().color(), fmt.toolTip(), fmt.fontUnderline()))
            it += 1
        block = block.next()
    return out


def darkness(c: QColor) -> int:
    """How far a shade is from white: the colour map runs white -> amber -> red, each step darker."""
    return 765 - (c.red() + c.green() + c.blue())


def test_each_token_is_shaded_by_its_kl_with_a_tooltip(qtbot):
    div = TokenDivergence(pieces=("The", " cat", " sat", " down", "."),
                          kld=(0.0004, 0.02, 3.0, 0.3, 0.005),
                          flips=(False, False, True, False, False),
                          source_top=("The", " cat", " lay", " down", "."))
    view = ChatView()
    qtbot.addWidget(view)
    view.set_turns([Turn("user", "A cat?"), Turn("assistant", "".join(div.pieces), html=coloured_html(div))])
    tokens = shown_tokens(view)
    assert [t[0] for t in tokens] == list(div.pieces)  # one shaded fragment per token, the answer spelled
    # The shade darkens with the KL: sorted by KL, the fragments are sorted by darkness, strictly.
    by_kl = sorted(range(len(div.kld)), key=lambda i: div.kld[i])
    shades = [darkness(tokens[i][1]) for i in by_kl]
    assert shades == sorted(shades) and len(set(shades)) == len(shades)
    assert tokens[0][1] == QColor("white")  # below 0.001 nats: no shade at all
    assert tokens[2][1] == kl_colour(KL_FULL)  # 1 nat and more: full red
    # The tooltip: the KL, and what the source would have written instead where it differs.
    assert "KL 3.0000 nats" in tokens[2][2] and "“␣lay”" in tokens[2][2] and "would have written" in tokens[2][2]
    assert "KL 0.0200 nats" in tokens[1][2] and "top token too" in tokens[1][2]
    assert [t[3] for t in tokens] == list(div.flips)  # a flipped token is underlined


def test_the_shade_scale_is_logarithmic_and_bounded():
    assert heat(0.0) == heat(1e-3) == 0.0 and heat(float("nan")) == 0.0
    assert heat(0.03) == pytest.approx(0.5, abs=0.03)  # half way on the log scale from 0.001 to 1
    assert heat(1.0) == heat(50.0) == 1.0
    # darkness grows with the KL over the whole range (the map never turns back toward white)
    kls = [10 ** (e / 10) for e in range(-40, 11)]
    shades = [darkness(kl_colour(kl)) for kl in kls]
    assert shades == sorted(shades)


def test_the_legend_shows_the_same_shades(qtbot):
    legend = KLLegend()
    qtbot.addWidget(legend)
    for kl, swatch in legend.swatches:
        assert kl_colour(kl).name() in swatch.styleSheet()


def test_markdown_in_a_coloured_answer_is_rendered_not_shown_as_markers(qtbot):
    # The plain chat view renders Markdown; the coloured one must not show "**" or "#" instead.
    # The markers fall in tokens of their own and inside tokens ("**Paris", "`x`"), as models write.
    div = TokenDivergence(pieces=("# Answer", "\n", "It is", " **", "Paris", "**", ", see", " `x", "**y`", "."),
                          kld=(0.0,) * 10, flips=(False,) * 10, source_top=("",) * 10)
    view = ChatView()
    qtbot.addWidget(view)
    view.set_turns([Turn("assistant", "".join(div.pieces), html=coloured_html(div))])
    shown = view.toPlainText()
    assert "Answer" in shown and "It is Paris, see x**y." in shown  # ** inside code stays text
    assert "#" not in shown and "`" not in shown and "**P" not in shown

    def fmt_of(word: str):
        cursor = view.document().find(word)
        assert not cursor.isNull(), word
        return cursor.charFormat()

    assert fmt_of("Paris").fontWeight() > 400 and fmt_of("Answer").fontWeight() > 400
    assert fmt_of("It is").fontWeight() <= 400
    assert "monospace" in (fmt_of("x**y").fontFamilies() or [fmt_of("x**y").fontFamily()])[0].lower() \
        or fmt_of("x**y").fontFixedPitch()
