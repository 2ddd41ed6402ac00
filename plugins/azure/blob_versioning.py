"""The ``azure-blob`` versioning adapter: run bytes in an Azure Blob container, metadata in any
SQLAlchemy database.

Keys map to ``https://{account}.blob.core.windows.net/{container}/{prefix}/{key}``. Guarantees,
per :class:`lamina.hookspecs.VersioningSpec`:

* **Atomic**: a block blob appears whole or not at all. Small blobs are one ``Put Blob``; large
  ones are staged as blocks (``max_concurrency`` in parallel) and made visible by one ``Put Block
  List``, so a reader never sees a partial blob and a crashed task leaves only uncommitted blocks
  (invisible, garbage-collected by the service after a week).
* **No clobbering** with ``overwrite=False``: the write that makes the blob visible carries
  ``If-None-Match: *`` (``Put Blob`` or the block-list commit alike), which the service refuses
  with 409/412 when the blob exists, so concurrent writers never overwrite each other.
* **Consistent reads**: a download in several ranges pins the first range's ETag; if a writer
  replaces the blob meanwhile, the read starts again rather than mixing two versions.
* **Throttling** (429, 5xx) is retried by the SDK's own policy, then declared transient
  (``AzureThrottled``) with dropped connections, so the layer facade retries with backoff too.

Credentials never live in the profile: a connection string from the environment variable named
by ``connection_string_env`` (``AZURE_STORAGE_CONNECTION_STRING`` by default; how ``lamina
emulate`` points the adapter at Azurite), else azure-identity's ``DefaultAzureCredential`` (the
CLI login, a managed identity, workload identity, environment variables) for ``account_url``.

``versioning_local_path`` is always ``None``: artifacts are fetched to a local cache by the core.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lamina.adapter import ping_database, replacing, round_trip
from lamina.errors import LaminaError, StoreError, TransientError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult
from pydantic import Field, field_validator

ADAPTER_NAME = "azure-blob"
_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_MiB = 1024 * 1024
_READ_ATTEMPTS = 5
"""How often a read starts again when the blob was replaced while being downloaded."""

CREDENTIALS_FIX = (
    "give Lamina Azure credentials the standard way: `az login`, a managed or workload identity, or "
    "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, with `account_url` set in the profile "
    "(AZURE_STORAGE_ACCOUNT_URL for the built-in azure-ml profile); or export a connection string in "
    "AZURE_STORAGE_CONNECTION_STRING. To try it without an Azure account, run under `lamina emulate`."
)


class AzureThrottled(TransientError):
    """Azure Storage asked us to slow down (429) or was briefly unavailable (5xx); retried."""


class AzureBlobVersioningSettings(AdapterSettings):
    """Settings of the ``azure-blob`` versioning adapter (the ``[versioning]`` table of a profile)."""

    container: str = Field(description="the Blob container that holds code packages, artifacts, logs and records")
    prefix: str = Field(default="lamina", description="blob name prefix inside the container ('' for the root)")
    account_url: str | None = Field(
        default=None,
        description="the storage account's Blob endpoint, https://ACCOUNT.blob.core.windows.net "
        "(used with DefaultAzureCredential when no connection string is in the environment)",
    )
    connection_string_env: str = Field(
        default="AZURE_STORAGE_CONNECTION_STRING",
        description="name of the environment variable that may hold a connection string (never the string itself)",
    )
    metadata_url: str = Field(
        default="sqlite:///.lamina/metadata.db",
        description="SQLAlchemy URL of the metadata database; relative SQLite paths are under the project",
    )
    single_put_mb: int = Field(default=64, ge=1, le=5000, description="blobs larger than this are uploaded as blocks")
    block_size_mb: int = Field(default=8, ge=1, le=4000, description="size of each staged block")
    max_concurrency: int = Field(default=8, ge=1, le=64, description="parallel requests per transfer")

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not _CONTAINER.match(value):
            raise ValueError(
                f"{value!r} is not a valid Blob container name (3-63 characters: lower-case letters, digits "
                "and single '-', starting and ending with a letter or digit)"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("connection_string_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(
                f"connection_string_env must name an environment variable (e.g. AZURE_STORAGE_CONNECTION_STRING), "
                f"not hold a value: got {value[:12]!r}..."
                if len(value) > 12
                else f"connection_string_env must name an environment variable, got {value!r}"
            )
        return value

    @field_validator("metadata_url")
    @classmethod
    def _no_password(cls, url: str) -> str:
        # checked without SQLAlchemy: `lamina stack list` validates every profile and must stay fast
        from lamina.redaction import url_has_password

        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            raise ValueError(f"not a SQLAlchemy URL (dialect://...): {url!r}")
        if url_has_password(url):
            raise ValueError(
                "metadata_url must not contain a password: profiles hold no secrets; let the driver "
                "find it (PGPASSWORD or ~/.pgpass for PostgreSQL, Entra ID auth for Azure Database)"
            )
        return url


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ValueError(
            f"invalid blob key {key!r}: keys are relative, '/'-separated, without empty or '..' parts"
        )
    return key


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn throttling and brownouts (429, 5xx) into :class:`AzureThrottled`, which is retried."""
    from azure.core.exceptions import HttpResponseError

    try:
        yield
    except HttpResponseError as exc:
        status = getattr(exc, "status_code", None) or 0
        if status == 429 or status >= 500:
            raise AzureThrottled(f"{what}: Azure Storage answered {status} ({_reason(exc)}); retrying") from exc
        raise


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    message = str(getattr(exc, "reason", None) or exc).splitlines()[0]
    return f"{code}: {message}" if code else message


class AzureBlobVersioning:
    """Versioning-layer plugin over one container and prefix; see the module docstring."""

    def __init__(self, settings: AzureBlobVersioningSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self.base = f"{settings.prefix}/" if settings.prefix else ""
        self._container: Any = None
        self._account = ""

    # ------------------------------------------------------------------------------ helpers

    @property
    def container(self) -> Any:
        """The SDK's ContainerClient, made on first use (credentials are looked up then)."""
        if self._container is None:
            from azure.storage.blob import BlobServiceClient, ExponentialRetry

            options: dict[str, Any] = {
                "max_single_put_size": self.settings.single_put_mb * _MiB,
                "max_block_size": self.settings.block_size_mb * _MiB,
                # the SDK's default waits 15 s before its first retry; the facade retries again on top
                "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=4),
                "connection_timeout": 20,
            }
            connection_string = os.environ.get(self.settings.connection_string_env, "").strip()
            if connection_string:
                service = BlobServiceClient.from_connection_string(connection_string, **options)
            elif self.settings.account_url:
                from azure.identity import DefaultAzureCredential

                service = BlobServiceClient(
                    self.settings.account_url, credential=DefaultAzureCredential(), **options
                )
            else:
                raise StoreError(
                    f"the azure-blob versioning adapter has no account: ${self.settings.connection_string_env} "
                    "is not set and the profile's [versioning] table has no `account_url`. Set `account_url` "
                    "(AZURE_STORAGE_ACCOUNT_URL for the built-in azure-ml profile) to use DefaultAzureCredential, "
                    f"or export a connection string in {self.settings.connection_string_env}."
                )
            self._account = service.account_name or ""
            self._container = service.get_container_client(self.settings.container)
        return self._container

    def blob_name(self, key: str) -> str:
        return self.base + _check_key(key)

    def uri(self, key: str = "") -> str:
        account = self._account or "(no account)"
        return f"azure://{account}/{self.settings.container}/{self.base}{key}"

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        from azure.core.exceptions import ClientAuthenticationError

        code = getattr(exc, "error_code", None) or ""
        status = getattr(exc, "status_code", None)
        hint = ""
        if code == "ContainerNotFound":
            hint = (
                f" The container {self.settings.container!r} does not exist: create it (`az storage container "
                f"create -n {self.settings.container}`), or set `container` in the profile's [versioning] "
                "table (LAMINA_AZURE_CONTAINER for the built-in azure-ml profile)."
            )
        elif isinstance(exc, ClientAuthenticationError) and status is None:
            hint = f" {CREDENTIALS_FIX}"
        elif status == 403 or code.startswith("Authorization"):
            hint = (
                " Give the identity the 'Storage Blob Data Contributor' role on the container, "
                "or check the connection string's key or SAS."
            )
        return StoreError(f"{what} {self.uri()}: {type(exc).__name__}: {_reason(exc).rstrip('.')}.{hint}")

    def _exists(self, key: str) -> bool:
        from azure.core.exceptions import HttpResponseError

        try:
            with _translated(f"checking {self.uri(key)}"):
                return bool(self.container.get_blob_client(self.blob_name(key)).exists())
        except HttpResponseError as exc:
            raise self._fail(f"checking {key} in", exc) from exc

    def _download(self, key: str, write: Any) -> None:
        """Download ``key`` through ``write(downloader)``, again if it was replaced meanwhile."""
        from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError

        for attempt in range(_READ_ATTEMPTS):
            try:
                with _translated(f"reading {self.uri(key)}"):
                    downloader = self.container.download_blob(
                        self.blob_name(key), max_concurrency=self.settings.max_concurrency
                    )
                    write(downloader)
                return
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) == "ContainerNotFound":
                    raise self._fail(f"reading {key} from", exc) from exc
                raise KeyError(key) from None
            except ResourceModifiedError:
                if attempt == _READ_ATTEMPTS - 1:
                    raise StoreError(
                        f"reading {self.uri(key)}: the blob kept changing while it was read "
                        f"({_READ_ATTEMPTS} attempts); something overwrites it continually"
                    ) from None
            except HttpResponseError as exc:
                raise self._fail(f"reading {key} from", exc) from exc

    # -------------------------------------------------------------------------------- hooks

    @hookimpl
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        """Store ``data`` or the file ``path`` under ``key``; see the module docstring."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        if (data is None) == (path is None):
            raise ValueError(f"versioning_put({key!r}): pass exactly one of data= or path=")
        name = self.blob_name(key)
        # overwrite=False makes the SDK send If-None-Match: * on the request that commits the blob
        conditions: dict[str, Any] = {} if overwrite else {"if_none_match": "*"}
        try:
            with _translated(f"writing {self.uri(key)}"):
                if data is not None:
                    self.container.upload_blob(
                        name,
                        bytes(data),
                        overwrite=overwrite,
                        max_concurrency=self.settings.max_concurrency,
                        **conditions,
                    )
                else:
                    with open(path, "rb") as source:  # type: ignore[arg-type]
                        self.container.upload_blob(
                            name,
                            source,
                            length=os.fstat(source.fileno()).st_size,
                            overwrite=overwrite,
                            max_concurrency=self.settings.max_concurrency,
                            **conditions,
                        )
        except ResourceExistsError as exc:
            if not overwrite and getattr(exc, "error_code", None) != "ContainerBeingDeleted":
                return False  # someone else stored this key first
            raise self._fail(f"writing {key} to", exc) from exc
        except HttpResponseError as exc:
            if not overwrite and getattr(exc, "status_code", None) == 412:
                return False  # the precondition failed: the blob exists
            raise self._fail(f"writing {key} to", exc) from exc
        return True

    @hookimpl
    def versioning_get(self, key: str) -> bytes:
        """The bytes under ``key``. :raises KeyError: no such key."""
        out: list[bytes] = []
        self._download(key, lambda downloader: out.append(bytes(downloader.readall())))
        return out[-1]

    @hookimpl
    def versioning_local_path(self, key: str) -> str | None:
        """Always ``None``: blobs are not on the local filesystem."""
        return None

    @hookimpl
    def versioning_fetch(self, key: str, path: str) -> None:
        """Download ``key`` to ``path`` (ranges in parallel when large), atomically.

        :raises KeyError: no such key; ``path`` is left untouched.
        """
        with replacing(path) as tmp:

            def write(downloader: Any) -> None:
                with open(tmp, "wb") as target:
                    downloader.readinto(target)

            self._download(key, write)

    @hookimpl
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        """Whether each key exists: ``HEAD`` requests, ``max_concurrency`` at a time."""
        if len(keys) <= 1:
            return [self._exists(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(len(keys), self.settings.max_concurrency)) as pool:
            return list(pool.map(self._exists, keys))

    @hookimpl
    def versioning_list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a plain string prefix), sorted."""
        from azure.core.exceptions import HttpResponseError

        try:
            with _translated(f"listing {self.uri(prefix)}"):
                names = list(self.container.list_blob_names(name_starts_with=self.base + prefix))
        except HttpResponseError as exc:
            raise self._fail(f"listing {prefix!r} in", exc) from exc
        return sorted(name[len(self.base) :] for name in names)

    @hookimpl
    def versioning_delete(self, keys: list[str]) -> None:
        """Remove keys, ``max_concurrency`` at a time; missing keys are ignored."""
        if not keys:
            return
        names = [self.blob_name(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(len(names), self.settings.max_concurrency)) as pool:
            list(pool.map(self._delete_one, names))

    def _delete_one(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            with _translated(f"deleting {self.uri(name[len(self.base):])}"):
                self.container.delete_blob(name)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise self._fail("deleting keys from", exc) from exc
        except HttpResponseError as exc:
            raise self._fail("deleting keys from", exc) from exc

    @hookimpl
    def versioning_metadata_url(self) -> str:
        """The metadata database URL; a relative SQLite path is made absolute under the project."""
        from sqlalchemy.engine import make_url

        url = make_url(self.settings.metadata_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            db = Path(url.database).expanduser()
            if not db.is_absolute():
                db = Path(self.context.project_dir) / db
                db.parent.mkdir(parents=True, exist_ok=True)
                return url.set(database=str(db)).render_as_string(hide_password=False)
        return self.settings.metadata_url

    @hookimpl
    def versioning_check(self) -> CheckResult:
        """Credentials and the container (its properties), a write-read-delete probe, then the database."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="versioning", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

        container = self.settings.container
        try:
            with _translated(f"checking the container {container}"):
                self.container.get_container_properties()
        except ResourceNotFoundError:
            return verdict(
                False,
                f"the container {container!r} does not exist in {self.uri()}",
                f"create it (`az storage container create -n {container}`), or point the profile's [versioning] "
                "`container` at an existing one (LAMINA_AZURE_CONTAINER for the built-in azure-ml profile)",
            )
        except ClientAuthenticationError as exc:
            return verdict(False, f"cannot authenticate to {self.uri()}: {_reason(exc)}", CREDENTIALS_FIX)
        except (AzureError, LaminaError) as exc:
            status = getattr(exc, "status_code", None)
            if status == 403:
                return verdict(
                    False,
                    f"the credentials may not use the container {container!r} (403 Forbidden)",
                    "give the identity the 'Storage Blob Data Contributor' role on the container",
                )
            return verdict(False, f"cannot reach {self.uri()}: {_reason(exc)}", CREDENTIALS_FIX)
        try:
            round_trip(self)
        except (LaminaError, AzureError, KeyError) as exc:
            return verdict(
                False,
                f"cannot write, read and delete a probe under {self.uri()}: {exc}",
                "give the identity the 'Storage Blob Data Contributor' role on the container",
            )
        url = self.versioning_metadata_url()
        shown = _shown_url(url)
        try:
            ping_database(url)
        except Exception as exc:
            return verdict(
                False,
                f"cannot reach the metadata database {shown}: {type(exc).__name__}: {exc}",
                "check `metadata_url` in the profile's [versioning] table (LAMINA_METADATA_URL) and that the "
                "database server runs and accepts these credentials",
            )
        return verdict(True, f"blobs in {self.uri()}; metadata at {shown}")

    @hookimpl
    def versioning_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Throttling (429/5xx, translated to ``AzureThrottled``) and dropped connections."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        return (AzureThrottled, ServiceRequestError, ServiceResponseError)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


ADAPTER = AdapterInfo(
    layer="versioning",
    name=ADAPTER_NAME,
    settings=AzureBlobVersioningSettings,
    factory=AzureBlobVersioning,
    extra="azure-blob",
    requires=("azure.storage.blob", "azure.identity", "sqlalchemy"),
    description="blobs in an Azure Blob container (parallel block uploads, create-only commits); "
    "metadata in any SQLAlchemy database",
)
