"""The Azure adapters of the ``azure-ml`` stack; so far the ``azure-blob`` versioning backend.

Importing this package imports no SDK: the adapter modules import azure-storage-blob and
azure-identity inside their methods. ``AdapterInfo.requires`` names what each adapter needs, so
a missing SDK is reported as ``pip install 'lamina[azure-blob]'`` when a stack uses it.
"""

from __future__ import annotations

from lamina.hookspecs import EmulatorInfo
from lamina.models import AdapterInfo

from .blob_versioning import ADAPTER as BLOB_VERSIONING

ADAPTERS: list[AdapterInfo] = [BLOB_VERSIONING]

EMULATORS: list[EmulatorInfo] = [
    EmulatorInfo(
        name="azure-blob",
        serves=(("versioning", "azure-blob"),),
        factory="lamina.plugins.azure.emulator:AzureServices",
        extra="azure-emulator",
        requires=("azure.storage.blob",),
        description="Azurite (Node, installed into the user's cache on first use) serving Blob Storage",
    ),
]

__all__ = ["ADAPTERS", "EMULATORS"]
