"""The browser's Hub tab against the fake hub: search, files with their fit, download; offline, one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel

from bitsmith.gui.hub_tab import HubTab
from tests.engine.test_hub import BIG, CHUNK, REPOS
from tests.fixtures.fake_hub import FakeHub


@pytest.fixture()
def hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    with FakeHub(REPOS) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _select(table, row):
    table.selectionModel().select(table.model().index(row, 0),
                                  QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)


def test_search_list_files_and_download(qtbot, hub):
    tab = HubTab()
    qtbot.addWidget(tab)
    tab.query.setText("tiny")
    tab.search()
    qtbot.waitUntil(lambda: tab.models.rowCount() == 2 and not tab._busy(), timeout=20000)
    assert [tab.models.item(r, 0).text() for r in range(2)] == ["acme/Tiny-GGUF", "acme/tiny-gptq"]
    _select(tab.models, 0)
    qtbot.waitUntil(lambda: tab.files.rowCount() == 3 and not tab._busy(), timeout=20000)
    rows = {tab.files.item(r, 0).text(): [tab.files.item(r, c).text() for c in range(5)] for r in range(3)}
    assert rows["tiny.Q4_K_M.gguf"][2:4] == ["gguf", "Q4_K_M"]
    assert rows["tiny.Q4_K_M.gguf"][4].startswith("fits in memory")
    _select(tab.files, [r for r in range(3) if tab.files.item(r, 0).text() == "tiny.Q4_K_M.gguf"][0])
    with qtbot.waitSignal(tab.downloaded, timeout=30000) as done:
        tab.download()
    folder = Path(done.args[0])
    assert (folder / "tiny.Q4_K_M.gguf").read_bytes() == BIG
    assert "Downloaded into" in tab.status.text()


def test_offline_says_so_in_one_line(qtbot):
    tab = HubTab()  # the test suite runs with HF_HUB_OFFLINE=1
    qtbot.addWidget(tab)
    assert "offline" in tab.status.text()
    tab.query.setText("tiny")
    tab.search()
    qtbot.waitUntil(lambda: not tab._busy() and "offline mode is on" in tab.status.text(), timeout=20000)
    assert "\n" not in tab.status.text() and tab.models.rowCount() == 0
