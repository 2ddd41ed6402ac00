"""Fixtures of the azure tests: Azurite, started once per session.

``azurite`` runs the emulator the ``azure-blob`` versioning adapter is tested against (installing
Azurite into the user's cache first if needed; `.ci/run` does that beforehand); ``azurite_env``
points one test's environment at it.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator

import pytest

if importlib.util.find_spec("azure") is None or importlib.util.find_spec("azure.storage.blob") is None:
    pytest.skip("the azure tests need azure-storage-blob: pip install 'lamina[azure-blob]'", allow_module_level=True)
if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip("the azure tests need Node.js and npm on PATH (Azurite is a Node program)", allow_module_level=True)

from lamina.plugins.azure.emulator import AzureServices  # noqa: E402


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzureServices]:
    services = AzureServices(["azure-blob"])
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
def azurite_env(azurite: AzureServices, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in azurite.env.items():
        monkeypatch.setenv(key, value)
    return dict(azurite.env)
