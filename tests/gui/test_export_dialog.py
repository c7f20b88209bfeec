"""The Export dialog: a Modelfile preview, then an export to Ollama's files or the model card alone."""

from __future__ import annotations

from bitsmith.gui.export_dialog import ExportDialog
from tests.engine.test_export import LLAMA3_LIKE
from tests.fixtures.tiny_gguf import write_tiny_gguf


def test_export_to_ollama_from_the_dialog(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-ollama-here"))
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=LLAMA3_LIKE)
    dialog = ExportDialog(gguf)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.preview.toPlainText().startswith("# Made by Bitsmith"), timeout=20000)
    assert "TEMPLATE" in dialog.preview.toPlainText() and dialog.ollama.isChecked()
    dialog.out.setText(str(tmp_path / "ollama"))
    dialog.name.setText("tiny")
    dialog.export()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    assert (tmp_path / "ollama" / "Modelfile").is_file() and (tmp_path / "ollama" / "README.md").is_file()
    assert "ollama create tiny -f" in dialog.message.text()


def test_a_folder_output_can_only_get_a_card(qtbot, tmp_path, tiny_llama_dir):
    dialog = ExportDialog(tiny_llama_dir)
    qtbot.addWidget(dialog)
    assert dialog.card.isChecked() and not dialog.ollama.isEnabled() and not dialog.lmstudio.isEnabled()
    dialog.out.setText(str(tmp_path / "card"))
    dialog.export()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=30000)
    assert "Bitsmith has no report card" in (tmp_path / "card" / "README.md").read_text()
