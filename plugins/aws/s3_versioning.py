"""The ``s3`` versioning adapter: run bytes in an S3 bucket, metadata in any SQLAlchemy database.

Keys map to ``s3://{bucket}/{prefix}/{key}``. Guarantees, per :class:`lamina.hookspecs.VersioningSpec`:

* **Atomic**: an S3 object appears whole or not at all, single-part or multipart, so a reader
  never sees a partial blob and a crashed task leaves at most an incomplete multipart upload
  (invisible to reads and lists; a bucket lifecycle rule aborts it).
* **No clobbering** with ``overwrite=False``: small blobs are written with a conditional put
  (``If-None-Match: *``), which S3 refuses with 412 when the key exists, so concurrent writers
  never overwrite each other. Multipart uploads (blobs over ``multipart_threshold_mb``) and
  S3-compatible stores without conditional writes fall back to a ``HEAD`` before the upload;
  the race that leaves open is harmless for the content-addressed keys that use
  ``overwrite=False`` (both writers store the same bytes).
* **Large and many blobs**: uploads and downloads above the threshold go through boto3's
  transfer manager (multipart, ``max_concurrency`` parts in parallel); ``exists`` checks keys
  in parallel and ``delete`` removes them 1000 per request.
* **Throttling** (``SlowDown``, 503) and dropped connections are declared transient, so the layer
  facade retries them with backoff on top of botocore's own retries.

``versioning_local_path`` is always ``None``: artifacts are fetched to a local cache by the core.
"""

from __future__ import annotations

import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lamina.adapter import ping_database, replacing, round_trip
from lamina.errors import LaminaError, StoreError
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult
from pydantic import Field, field_validator

from . import _aws

ADAPTER_NAME = "s3"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MiB = 1024 * 1024


class S3VersioningSettings(AdapterSettings):
    """Settings of the ``s3`` versioning adapter (the ``[versioning]`` table of a profile)."""

    bucket: str = Field(description="the S3 bucket that holds code packages, artifacts, logs and records")
    prefix: str = Field(default="lamina", description="key prefix inside the bucket ('' for the root)")
    region: str | None = Field(default=None, description="the bucket's region; default: the standard chain's")
    endpoint_url: str | None = Field(default=None, description="an S3-compatible endpoint (MinIO...)")
    metadata_url: str = Field(
        default="sqlite:///.lamina/metadata.db",
        description="SQLAlchemy URL of the metadata database; relative SQLite paths are under the project",
    )
    multipart_threshold_mb: int = Field(default=64, ge=5, description="blobs larger than this use multipart")
    multipart_chunk_mb: int = Field(default=16, ge=5, description="size of each multipart part")
    max_concurrency: int = Field(default=16, ge=1, le=256, description="parallel requests per transfer")
    server_side_encryption: str | None = Field(default=None, description="'AES256' or 'aws:kms'")
    kms_key_id: str | None = Field(default=None, description="KMS key for 'aws:kms' encryption")


    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 characters: lower-case letters, digits, "
                "'.' and '-', starting and ending with a letter or digit)"
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
        from lamina.redaction import url_has_password as has_password

        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            raise ValueError(f"not a SQLAlchemy URL (dialect://...): {url!r}")
        if has_password(url):
            raise ValueError(
                "metadata_url must not contain a password: profiles hold no secrets; let the driver "
                "find it (PGPASSWORD or ~/.pgpass for PostgreSQL, IAM auth for RDS)"
            )
        return url


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ValueError(
            f"invalid blob key {key!r}: keys are relative, '/'-separated, without empty or '..' parts"
        )
    return key


class S3Versioning:
    """Versioning-layer plugin over one bucket and prefix; see the module docstring."""

    def __init__(self, settings: S3VersioningSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context
        self.base = f"{settings.prefix}/" if settings.prefix else ""
        self._client: Any = None
        self._conditional_puts = True  # cleared when the store answers 501 to If-None-Match

    # ------------------------------------------------------------------------------ helpers

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _aws.client(
                "s3",
                self.settings.region,
                endpoint_url=self.settings.endpoint_url,
                max_pool_connections=self.settings.max_concurrency + 4,
            )
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.settings.multipart_threshold_mb * _MiB,
            multipart_chunksize=self.settings.multipart_chunk_mb * _MiB,
            max_concurrency=self.settings.max_concurrency,
            use_threads=True,
        )

    def _extra_args(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.settings.server_side_encryption:
            extra["ServerSideEncryption"] = self.settings.server_side_encryption
        if self.settings.kms_key_id:
            extra["SSEKMSKeyId"] = self.settings.kms_key_id
        return extra

    def s3_key(self, key: str) -> str:
        return self.base + _check_key(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.settings.bucket}/{self.base}{key}"

    def _missing(self, exc: BaseException) -> bool:
        return _aws.error_code(exc) in ("NoSuchKey", "404", "NotFound") or _aws.http_status(exc) == 404

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        code = _aws.error_code(exc)
        hint = ""
        if code == "NoSuchBucket":
            hint = (
                f" The bucket {self.settings.bucket!r} does not exist: create it, or set `bucket` in the "
                "profile's [versioning] table (LAMINA_S3_BUCKET for the built-in aws-sagemaker profile)."
            )
        elif code in ("AccessDenied", "403", "AllAccessDisabled"):
            hint = f" Grant the credentials s3:GetObject/PutObject/ListBucket/DeleteObject on {self.uri()}*."
        return StoreError(f"{what} {self.uri()}: {_aws.describe_failure(exc)}.{hint}")

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            with _aws.translated(f"checking {self.uri(key)}"):
                self.client.head_object(Bucket=self.settings.bucket, Key=self.s3_key(key))
            return True
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise self._fail(f"checking {key} in", exc) from exc

    # -------------------------------------------------------------------------------- hooks

    @hookimpl
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        """Store ``data`` or the file ``path`` under ``key``; see the module docstring."""
        from botocore.exceptions import ClientError

        if (data is None) == (path is None):
            raise ValueError(f"versioning_put({key!r}): pass exactly one of data= or path=")
        s3_key = self.s3_key(key)
        size = len(data) if data is not None else os.path.getsize(path)  # type: ignore[arg-type]
        multipart = size > self.settings.multipart_threshold_mb * _MiB
        conditional = not overwrite and self._conditional_puts and not multipart
        if not overwrite and not conditional and self._exists(key):
            return False
        try:
            with _aws.translated(f"writing {self.uri(key)}"):
                if not multipart:
                    body = bytes(data) if data is not None else Path(path).read_bytes()  # type: ignore[arg-type]
                    args: dict[str, Any] = {
                        "Bucket": self.settings.bucket,
                        "Key": s3_key,
                        "Body": body,
                        **self._extra_args(),
                    }
                    if conditional:
                        args["IfNoneMatch"] = "*"
                    self.client.put_object(**args)
                elif data is not None:
                    self.client.upload_fileobj(
                        io.BytesIO(data),  # type: ignore[arg-type]
                        self.settings.bucket,
                        s3_key,
                        ExtraArgs=self._extra_args() or None,
                        Config=self._transfer_config(),
                    )
                else:
                    self.client.upload_file(
                        path,
                        self.settings.bucket,
                        s3_key,
                        ExtraArgs=self._extra_args() or None,
                        Config=self._transfer_config(),
                    )
        except ClientError as exc:
            code, status = _aws.error_code(exc), _aws.http_status(exc)
            if conditional and (code == "PreconditionFailed" or status == 412):
                return False  # someone else stored this key first
            if conditional and code == "ConditionalRequestConflict":
                return not self._exists(key) and self.versioning_put(key, data, path, overwrite)
            if conditional and (status == 501 or code == "NotImplemented"):
                self._conditional_puts = False  # an S3-compatible store without conditional writes
                return self.versioning_put(key, data, path, overwrite)
            raise self._fail(f"writing {key} to", exc) from exc
        return True

    @hookimpl
    def versioning_get(self, key: str) -> bytes:
        """The bytes under ``key``. :raises KeyError: no such key."""
        from botocore.exceptions import ClientError

        try:
            with _aws.translated(f"reading {self.uri(key)}"):
                response = self.client.get_object(Bucket=self.settings.bucket, Key=self.s3_key(key))
                with response["Body"] as body:
                    return bytes(body.read())
        except ClientError as exc:
            if self._missing(exc):
                raise KeyError(key) from None
            raise self._fail(f"reading {key} from", exc) from exc

    @hookimpl
    def versioning_local_path(self, key: str) -> str | None:
        """Always ``None``: S3 objects are not on the local filesystem."""
        return None

    @hookimpl
    def versioning_fetch(self, key: str, path: str) -> None:
        """Download ``key`` to ``path`` (ranged parts in parallel when large), atomically.

        :raises KeyError: no such key; ``path`` is left untouched.
        """
        from botocore.exceptions import ClientError

        try:
            with replacing(path) as tmp, _aws.translated(f"downloading {self.uri(key)}"):
                self.client.download_file(
                    self.settings.bucket, self.s3_key(key), str(tmp), Config=self._transfer_config()
                )
        except ClientError as exc:
            if self._missing(exc):
                raise KeyError(key) from None
            raise self._fail(f"downloading {key} from", exc) from exc

    @hookimpl
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        """Whether each key exists: ``HEAD`` requests, ``max_concurrency`` at a time."""
        if len(keys) <= 1:
            return [self._exists(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(len(keys), self.settings.max_concurrency)) as pool:
            return list(pool.map(self._exists, keys))

    @hookimpl
    def versioning_list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, sorted (S3 lists in UTF-8 binary order; we sort anyway)."""
        from botocore.exceptions import ClientError

        found: list[str] = []
        try:
            with _aws.translated(f"listing {self.uri(prefix)}"):
                paginator = self.client.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.base + prefix):
                    for item in page.get("Contents", []):
                        found.append(item["Key"][len(self.base) :])
        except ClientError as exc:
            raise self._fail(f"listing {prefix!r} in", exc) from exc
        return sorted(found)

    @hookimpl
    def versioning_delete(self, keys: list[str]) -> None:
        """Remove keys, 1000 per request; missing keys are ignored."""
        from botocore.exceptions import ClientError

        objects = [{"Key": self.s3_key(k)} for k in keys]
        for start in range(0, len(objects), 1000):
            batch = objects[start : start + 1000]
            try:
                with _aws.translated(f"deleting from {self.uri()}"):
                    response = self.client.delete_objects(
                        Bucket=self.settings.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
            except ClientError as exc:
                raise self._fail("deleting keys from", exc) from exc
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise StoreError(
                    f"could not delete {len(errors)} key(s) from {self.uri()}, e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}"
                )

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
        """Credentials (STS), the bucket (``HEAD``), a write-read-delete probe, then the database."""

        def verdict(ok: bool, message: str, fix: str = "") -> CheckResult:
            return CheckResult(layer="versioning", adapter=ADAPTER_NAME, ok=ok, message=message, fix=fix)

        from botocore.exceptions import BotoCoreError, ClientError

        identity, failure = _aws.check_identity(self.settings.region, None)
        if failure:
            return verdict(False, failure, _aws.CREDENTIALS_FIX)
        bucket = self.settings.bucket
        try:
            with _aws.translated(f"checking the bucket {bucket}"):
                self.client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError, LaminaError) as exc:
            status = _aws.http_status(exc)
            if status == 404 or _aws.error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                return verdict(
                    False,
                    f"the bucket {bucket!r} does not exist (as seen by {identity})",
                    f"create it (`aws s3 mb s3://{bucket}`), or point the profile's [versioning] `bucket` "
                    "at an existing one (LAMINA_S3_BUCKET for the built-in aws-sagemaker profile)",
                )
            if status == 403:
                return verdict(
                    False,
                    f"{identity} may not use the bucket {bucket!r} (403 Forbidden)",
                    f"grant s3:ListBucket on arn:aws:s3:::{bucket} and s3:GetObject/PutObject/DeleteObject "
                    f"on arn:aws:s3:::{bucket}/{self.base}*",
                )
            return verdict(
                False,
                f"cannot reach the bucket {bucket!r}: {_aws.describe_failure(exc)}",
                _aws.CREDENTIALS_FIX,
            )
        try:
            round_trip(self)
        except (LaminaError, ClientError, BotoCoreError, KeyError) as exc:
            return verdict(
                False,
                f"cannot write, read and delete a probe under {self.uri()}: {exc}",
                f"grant s3:GetObject/PutObject/DeleteObject on arn:aws:s3:::{bucket}/{self.base}*",
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
        return verdict(True, f"blobs in {self.uri()} (as {identity}); metadata at {shown}")

    @hookimpl
    def versioning_transient_errors(self) -> tuple[type[BaseException], ...]:
        """Throttling (``SlowDown``/503, translated to ``AwsThrottled``) and dropped connections."""
        return _aws.transient_errors()


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


ADAPTER = AdapterInfo(
    layer="versioning",
    name=ADAPTER_NAME,
    settings=S3VersioningSettings,
    factory=S3Versioning,
    extra="aws",
    requires=("boto3", "botocore", "sqlalchemy"),
    description="blobs in an S3 bucket (multipart, parallel, conditional writes); metadata in any SQLAlchemy database",
)
