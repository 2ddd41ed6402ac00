from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv("COUNTS_DIR", str(folder))
    return folder
