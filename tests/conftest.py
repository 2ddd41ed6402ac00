"""Fixtures shared by the tests at the top of ``tests/``.

Sections (add yours as a new section, and keep each self-contained):

* packaging: wheels of this checkout and of contrib/lamina-sqlite, and one clean virtual
  environment with them installed, as a user's ``pip install`` leaves it (built by
  tests/packaging_helpers.py, which says how).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lamina.testing.aws import aws_emulator, aws_env  # noqa: F401 - one emulated AWS stack per session, for every folder
from packaging_helpers import (
    COPY_IGNORE,
    REPO,
    SQLITE_CONTRIB,
    CleanVenv,
    Wheels,
    build_wheel,
    create_clean_venv,
)

# -- packaging: wheels and a clean virtual environment ---------------------------------------


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree as it is now, to build from and to compare wheels with."""
    dest = tmp_path_factory.mktemp("source") / "lamina"
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def wheels(source_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    dest = tmp_path_factory.mktemp("wheels")
    return Wheels(
        lamina=build_wheel(source_copy, dest), sqlite=build_wheel(source_copy / SQLITE_CONTRIB, dest)
    )


@pytest.fixture(scope="session")
def clean_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> CleanVenv:
    """One environment for the whole session: tests run its commands, never install into it."""
    return create_clean_venv(tmp_path_factory.mktemp("clean-venv"), wheels)
