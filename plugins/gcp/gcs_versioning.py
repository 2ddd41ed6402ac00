"""The ``gcs`` versioning adapter: run bytes in a Google Cloud Storage bucket, metadata in any
SQLAlchemy database.

Keys map to ``gs://{bucket}/{prefix}/{key}``. Guarantees, per :class:`lamina.hookspecs.VersioningSpec`:

* **Atomic**: a GCS object appears whole or not at all, whether written in one request or as a
  resumable upload, so a reader never sees a partial blob; a crashed task leaves at most an
  unfinished resumable session, which GCS expires after a week and which no read or list sees.
* **No clobbering** with ``overwrite=False``: every create-only write carries
  ``if_generation_match=0``, which GCS refuses with 412 when the object exists, so concurrent
  writers never overwrite each other. Large blobs (over ``resumable_threshold_mb``) are also
  checked with a metadata read before the upload, so an existing blob is not sent again (and so
  stand-ins that enforce preconditions on single-request uploads only still refuse a second
  create; the race that leaves open there is harmless for the content-addressed keys that use
  ``overwrite=False``: both writers store the same bytes).
* **Large and many blobs**: blobs over the threshold go through resumable uploads in
  ``chunk_mb`` chunks; ``exists`` and ``delete`` work on ``max_concurrency`` keys at a time.
* **Throttling** (429) and server errors (5xx) are retried by the client (writes too: a put
  stores whole bytes, so repeating it is safe) and declared transient, with dropped connections,
  so the layer facade retries them with backoff on top.

The client honours ``STORAGE_EMULATOR_HOST`` (``lamina emulate`` sets it); under it, or with
``endpoint``, the adapter uses anonymous credentials, as the stand-in expects.
``versioning_local_path`` is always ``None``: artifacts are fetched to a local cache by the core.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lamina.adapter import ping_database, replacing, round_trip
from lamina.errors import LaminaError, StoreError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult
from pydantic import Field, field_validator

ADAPTER_NAME = "gcs"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_MiB = 1024 * 1024
_CREDENTIALS_FIX = (
    "run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a "
    "service-account key file; on GCP the attached service account is used"
)


class GcsVersioningSettings(AdapterSettings):
    """Settings of the ``gcs`` versioning adapter (the ``[versioning]`` table of a profile)."""

    bucket: str = Field(description="the GCS bucket that holds code packages, artifacts, logs and records")
    prefix: str = Field(
        default="lamina", description="object name prefix inside the bucket ('' for the root)"
    )
    project: str | None = Field(default=None, description="the GCP project; default: the credentials'")
    endpoint: str | None = Field(
        default=None, description="a GCS-compatible endpoint; default: STORAGE_EMULATOR_HOST, else Google"
    )
    metadata_url: str = Field(
        default="sqlite:///.lamina/metadata.db",
        description="SQLAlchemy URL of the metadata database; relative SQLite paths are under the project",
    )
    resumable_threshold_mb: int = Field(
        default=8,
        ge=1,
        le=8,
        description="blobs larger than this use resumable uploads (the client's single-request limit is 8)",
    )
    chunk_mb: int = Field(default=16, ge=1, description="size of each resumable upload chunk")
    max_concurrency: int = Field(default=16, ge=1, le=256, description="parallel requests for many keys")

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a valid GCS bucket name (3-222 characters: lower-case letters, digits, "
                "'-', '_' and '.', starting and ending with a letter or digit)"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

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
                "find it (PGPASSWORD or ~/.pgpass for PostgreSQL, IAM auth for Cloud SQL)"
            )
        return url


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ValueError(
            f"invalid blob key {key!r}: keys are relative, '/'-separated, without empty or '..' parts"
        )
    return key


def transient_errors() -> tuple[type[BaseException], ...]:
    """Throttling, server errors and dropped connections, as the Google client raises them."""
    import requests
    from google.api_core import exceptions as api
    from google.auth.exceptions import TransportError

    return (
        api.TooManyRequests,
        api.InternalServerError,
        api.BadGateway,
        api.ServiceUnavailable,
        api.GatewayTimeout,
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.Timeout,
        TransportError,
        ConnectionError,
    )


class GcsVersioning:
    """Versioning-layer plugin over one bucket and prefix; see the module docstring."""

    def __init__(self, settings: GcsVersioningSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self.base = f"{settings.prefix}/" if settings.prefix else ""
        self._client: Any = None
        self._bucket: Any = None

    # ------------------------------------------------------------------------------ helpers

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            endpoint = self.settings.endpoint or os.environ.get("STORAGE_EMULATOR_HOST")
            if endpoint:
                from google.auth.credentials import AnonymousCredentials

                self._client = storage.Client(
                    project=self.settings.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or "lamina",
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": endpoint},
                )
            else:
                from google.auth.exceptions import DefaultCredentialsError

                try:
                    self._client = storage.Client(project=self.settings.project)
                except DefaultCredentialsError as exc:
                    raise StoreError(
                        f"no Google credentials for {self.uri()}: {exc}. {_CREDENTIALS_FIX}."
                    ) from exc
            # the HTTP pool serves every thread of exists/delete
            adapter = _pool_adapter(self.settings.max_concurrency + 4)
            session = getattr(self._client, "_http", None)
            if adapter is not None and session is not None and hasattr(session, "mount"):
                session.mount("https://", adapter)
                session.mount("http://", adapter)
        return self._client

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            self._bucket = self.client.bucket(self.settings.bucket)
        return self._bucket

    def blob(self, key: str) -> Any:
        return self.bucket.blob(self.base + _check_key(key))

    def uri(self, key: str = "") -> str:
        return f"gs://{self.settings.bucket}/{self.base}{key}"

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Google API errors as :class:`StoreError` with a fix; transient ones pass unchanged
        (the facade retries them); 404 of an object passes too (callers make it ``KeyError``)."""
        from google.api_core import exceptions as api

        try:
            yield
        except transient_errors():
            raise
        except api.NotFound as exc:
            if "bucket" in str(exc).lower():
                raise StoreError(
                    f"{what}: the bucket {self.settings.bucket!r} does not exist: create it "
                    f"(`gcloud storage buckets create gs://{self.settings.bucket}`), or set `bucket` in the "
                    "profile's [versioning] table (LAMINA_GCS_BUCKET for the built-in gcp-vertex profile)"
                ) from exc
            raise
        except api.PreconditionFailed:
            raise
        except (api.Forbidden, api.Unauthorized) as exc:
            raise StoreError(
                f"{what}: {exc.message}. Grant the credentials roles/storage.objectAdmin on "
                f"gs://{self.settings.bucket} (storage.objects.create/get/list/delete)."
            ) from exc
        except api.GoogleAPICallError as exc:
            raise StoreError(f"{what}: {type(exc).__name__}: {exc.message}") from exc

    def _exists(self, key: str) -> bool:
        blob = self.blob(key)
        with self._translated(f"checking {self.uri(key)}"):
            return bool(blob.exists(retry=_retry()))

    # -------------------------------------------------------------------------------- hooks

    @hookimpl
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        """Store ``data`` or the file ``path`` under ``key``; see the module docstring."""
        from google.api_core.exceptions import PreconditionFailed

        if (data is None) == (path is None):
            raise ValueError(f"versioning_put({key!r}): pass exactly one of data= or path=")
        blob = self.blob(key)
        size = len(data) if data is not None else os.path.getsize(path)  # type: ignore[arg-type]
        resumable = size > self.settings.resumable_threshold_mb * _MiB
        if not overwrite and resumable and self._exists(key):
            return False
        condition: dict[str, Any] = {} if overwrite else {"if_generation_match": 0}
        try:
            with self._translated(f"writing {self.uri(key)}"):
                if not resumable:
                    body = bytes(data) if data is not None else Path(path).read_bytes()  # type: ignore[arg-type]
                    blob.upload_from_string(
                        body, content_type="application/octet-stream", retry=_retry(), **condition
                    )
                else:
                    blob.chunk_size = self.settings.chunk_mb * _MiB  # a chunk size means resumable
                    if data is not None:
                        blob.upload_from_file(
                            io.BytesIO(data),  # type: ignore[arg-type]
                            size=size,
                            content_type="application/octet-stream",
                            retry=_retry(),
                            **condition,
                        )
                    else:
                        blob.upload_from_filename(
                            path, content_type="application/octet-stream", retry=_retry(), **condition
                        )
        except PreconditionFailed:
            return False  # someone else stored this key first
        return True

    @hookimpl
    def versioning_get(self, key: str) -> bytes:
        """The bytes under ``key``. :raises KeyError: no such key."""
        from google.api_core.exceptions import NotFound

        blob = self.blob(key)
        try:
            with self._translated(f"reading {self.uri(key)}"):
                return bytes(blob.download_as_bytes(retry=_retry()))
        except NotFound:
            raise KeyError(key) from None

    @hookimpl
    def versioning_local_path(self, key: str) -> str | None:
        """Always ``None``: GCS objects are not on the local filesystem."""
        return None

    @hookimpl
    def versioning_fetch(self, key: str, path: str) -> None:
        """Download ``key`` to ``path``, atomically. :raises KeyError: no such key; ``path`` is
        left untouched."""
        from google.api_core.exceptions import NotFound

        blob = self.blob(key)
        try:
            with replacing(path) as tmp, self._translated(f"downloading {self.uri(key)}"):
                blob.download_to_filename(str(tmp), retry=_retry())
        except NotFound:
            raise KeyError(key) from None

    @hookimpl
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        """Whether each key exists: metadata reads, ``max_concurrency`` at a time."""
        if len(keys) <= 1:
            return [self._exists(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(len(keys), self.settings.max_concurrency)) as pool:
            return list(pool.map(self._exists, keys))

    @hookimpl
    def versioning_list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a plain string prefix, not a folder), sorted."""
        found: list[str] = []
        with self._translated(f"listing {self.uri(prefix)}"):
            for blob in self.client.list_blobs(
                self.settings.bucket, prefix=self.base + prefix, retry=_retry()
            ):
                found.append(blob.name[len(self.base) :])
        return sorted(found)

    @hookimpl
    def versioning_delete(self, keys: list[str]) -> None:
        """Remove keys, ``max_concurrency`` at a time; missing keys are ignored."""
        from google.api_core.exceptions import NotFound

        blobs = [self.blob(k) for k in keys]

        def delete(blob: Any) -> None:
            try:
                with self._translated(f"deleting {self.uri(blob.name[len(self.base) :])}"):
                    blob.delete(retry=_retry())
            except NotFound:
                pass

        if len(blobs) <= 1:
            for blob in blobs:
                delete(blob)
            return
        with ThreadPoolExecutor(max_workers=min(len(blobs), self.settings.max_concurrency)) as pool:
            list(pool.map(delete, blobs))

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
        """Credentials, the bucket, a write-read-delete probe, then the metadata database."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="versioning", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        from google.api_core import exceptions as api
        from google.auth.exceptions import GoogleAuthError

        bucket = self.settings.bucket
        try:
            found = self.bucket.exists(retry=_retry())
        except (LaminaError, GoogleAuthError) as exc:
            return verdict(False, f"no usable Google credentials: {exc}", _CREDENTIALS_FIX)
        except api.Forbidden as exc:
            return verdict(
                False,
                f"the credentials may not use the bucket {bucket!r} (403 Forbidden: {exc.message})",
                f"grant roles/storage.objectAdmin on gs://{bucket}",
            )
        except (api.GoogleAPICallError, *transient_errors()) as exc:  # type: ignore[misc]
            return verdict(
                False, f"cannot reach the bucket {bucket!r}: {type(exc).__name__}: {exc}", _CREDENTIALS_FIX
            )
        if not found:
            return verdict(
                False,
                f"the bucket {bucket!r} does not exist",
                f"create it (`gcloud storage buckets create gs://{bucket}`), or point the profile's [versioning] "
                "`bucket` at an existing one (LAMINA_GCS_BUCKET for the built-in gcp-vertex profile)",
            )
        try:
            round_trip(self)
        except (LaminaError, api.GoogleAPICallError, KeyError, *transient_errors()) as exc:  # type: ignore[misc]
            return verdict(
                False,
                f"cannot write, read and delete a probe under {self.uri()}: {exc}",
                f"grant roles/storage.objectAdmin on gs://{bucket} (objects under {self.base or '/'})",
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
        """429, 5xx and dropped connections."""
        return transient_errors()


def _retry() -> Any:
    """The client's default retry (429, 5xx, connection errors), for every call: a put sends
    whole bytes and a create-only put carries its precondition, so repeating either is safe."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


def _pool_adapter(size: int) -> Any:
    """A requests adapter with ``size`` pooled connections per host (the default is 10)."""
    try:
        from requests.adapters import HTTPAdapter
    except ImportError:  # pragma: no cover - requests comes with google-cloud-storage
        return None
    return HTTPAdapter(pool_connections=size, pool_maxsize=size)


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


ADAPTER = AdapterInfo(
    layer="versioning",
    name=ADAPTER_NAME,
    settings=GcsVersioningSettings,
    factory=GcsVersioning,
    extra="gcs",
    requires=("google.cloud.storage", "sqlalchemy"),
    description="blobs in a GCS bucket (create-only with generation preconditions, resumable); metadata in any SQLAlchemy database",
)
