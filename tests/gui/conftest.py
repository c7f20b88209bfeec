from __future__ import annotations

import pytest


@pytest.fixture
def app_settings(qapp):
    """QSettings pointed into the test's BITSMITH_HOME, as the real app does at start-up."""
    from bitsmith.gui.app import create_app

    create_app([])
    return qapp
