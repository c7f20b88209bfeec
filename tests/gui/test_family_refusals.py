"""Early refusal where the user picks the source: a model whose family a path cannot take carries a
badge in the browser's table and details, and the wizard's method page shows that path disabled with
the engine's one-line reason, before any plan or job (real widgets, a real tiny model)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon

from bitsmith.engine import api
from bitsmith.engine.config import Method
from bitsmith.gui.catalog_model import CatalogModel
from bitsmith.gui.conversion_queue import ConversionQueue
from bitsmith.gui.model_details import ModelDetails
from bitsmith.gui.wizard import ConvertWizard

OPT_REASON = "llama.cpp has no architecture 'opt'"


@pytest.fixture(scope="module")
def opt_dir(tmp_path_factory):
    """OPT: a causal LM transformers builds and llama.cpp has no architecture for (GGUF refused)."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                       max_position_embeddings=32, word_embed_proj_dim=16)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("opt") / "tiny-opt"
    OPTForCausalLM(config).save_pretrained(folder)
    return folder


def test_the_browser_table_and_details_badge_a_refused_family(qtbot, opt_dir, tiny_llama_dir):
    opt, llama = api.inspect(opt_dir), api.inspect(tiny_llama_dir)
    assert set(opt.unavailable) == {"gguf-export"} and llama.unavailable == {}
    model = CatalogModel()
    model.set_models([opt, llama])
    badge = model.index(0, 0).data(Qt.DecorationRole)
    assert isinstance(badge, QIcon) and not badge.isNull()
    assert f"gguf-export: {OPT_REASON}" in model.index(0, 3).data(Qt.ToolTipRole)
    assert model.index(1, 0).data(Qt.DecorationRole) is None  # a family every path takes: no badge
    assert "Not available" not in model.index(1, 0).data(Qt.ToolTipRole)

    details = ModelDetails()
    qtbot.addWidget(details)
    details.show_model(opt, [opt, llama])
    assert details.badge is not None and details.badge.value.startswith(f"gguf-export: {OPT_REASON}")
    details.show_model(llama, [opt, llama])
    assert details.badge is None


def test_the_wizard_disables_the_methods_the_family_cannot_take(qtbot, app_settings, opt_dir, tiny_llama_dir):
    opt = api.inspect(opt_dir)
    w = ConvertWizard(ConversionQueue(), [opt], opt)
    qtbot.addWidget(w)
    w.show()
    w.next()
    page = w.page_method
    assert w.currentPage() is page
    buttons = {Method(b.property("method")): b for b in page.group.buttons()}
    gguf = buttons[Method.GGUF]
    assert not gguf.isEnabled() and OPT_REASON in gguf.toolTip()
    assert page.explanations["gguf"].text() == f"Not available for opt: {OPT_REASON}"
    assert all(b.isEnabled() for m, b in buttons.items() if m is not Method.GGUF)
    # GGUF was the default choice: another one is picked, the page can go on, and selecting GGUF
    # again (the test's or a script's way in) does nothing.
    assert page.isComplete() and page.selected_method() is not Method.GGUF
    page.select(Method.GGUF, "Q8_0")
    assert page.selected_method() is not Method.GGUF

    llama = api.inspect(tiny_llama_dir)  # a family every method takes: nothing disabled
    w2 = ConvertWizard(ConversionQueue(), [llama], llama)
    qtbot.addWidget(w2)
    w2.show()
    w2.next()
    assert all(b.isEnabled() and not b.toolTip() for b in w2.page_method.group.buttons())
    assert w2.page_method.selected_method() is Method.GGUF
