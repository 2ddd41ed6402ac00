"""The ``local`` versioning adapter: blobs as files under ``.lamina/blobs/``, metadata in SQLite.

Writes are atomic and durable: bytes go to a hidden temporary file in the key's own directory,
are fsynced, then renamed into place (``overwrite=True``) or hard-linked (``overwrite=False``:
``link`` fails if the key appeared meanwhile, so a concurrent writer is never clobbered and no
reader ever sees a partial file). A crash leaves at most a dot-named temporary, which
:meth:`LocalVersioning.versioning_list` never reports.

A ``path=`` input whose name ends with :data:`lamina.adapter.OWNED_TEMP_SUFFIX` is a
temporary its caller abandons: on the same filesystem it is hard-linked into place, so a large
artifact is never copied. Other files are copied with ``shutil.copyfile`` (in-kernel
``copy_file_range``/``sendfile``, no user-space buffers).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lamina.adapter import OWNED_TEMP_SUFFIX, ping_database, replacing, round_trip, temp_sibling
from lamina.hookspecs import AdapterContext, hookimpl
from lamina.models import AdapterInfo, AdapterSettings, CheckResult
from pydantic import field_validator


class LocalVersioningSettings(AdapterSettings):
    """Settings of the ``local`` versioning adapter."""

    root: str = ".lamina"
    """Directory of blobs and the default SQLite file; relative paths are under the project."""
    metadata_url: str | None = None
    """SQLAlchemy URL of the metadata database; default ``sqlite:///<root>/metadata.db``."""
    fsync: bool = True
    """Flush each blob to disk before it becomes visible (turn off only for throwaway runs)."""

    @field_validator("metadata_url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        if url is not None:
            from lamina.redaction import url_has_password as has_password

            if has_password(url):
                raise ValueError(
                    "metadata_url must not contain a password: profiles hold no secrets; "
                    "let the driver find it (PGPASSWORD or ~/.pgpass for PostgreSQL)"
                )
        return url


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


class LocalVersioning:
    """Blob store over a directory; see the module docstring for the guarantees."""

    def __init__(self, settings: LocalVersioningSettings, context: AdapterContext) -> None:
        root = Path(settings.root).expanduser()
        self.root = root if root.is_absolute() else Path(context.project_dir) / root
        self.blob_dir = self.root / "blobs"
        self.settings = settings

    # ------------------------------------------------------------------------------ helpers

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"invalid blob key {key!r}: keys are relative, '/'-separated, without '.'-names")
        if "\\" in key or "\x00" in key:
            raise ValueError(f"invalid blob key {key!r}")
        return self.blob_dir.joinpath(*parts)

    def _sync(self, fd: int) -> None:
        if self.settings.fsync:
            os.fsync(fd)

    def _sync_dir(self, directory: Path) -> None:
        if self.settings.fsync:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _stage(self, final: Path, data: bytes | memoryview | None, path: str | None) -> Path:
        """A complete, synced temporary next to ``final``."""
        tmp = temp_sibling(final)
        if path is not None and path.endswith(OWNED_TEMP_SUFFIX):
            try:
                os.link(path, tmp)
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    self._sync(fd)
                finally:
                    os.close(fd)
                return tmp
            except OSError:
                pass  # another filesystem, or no hard links: copy below
        try:
            if path is not None:
                shutil.copyfile(path, tmp)
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    self._sync(fd)
                finally:
                    os.close(fd)
            else:
                with open(tmp, "xb") as f:
                    f.write(data if data is not None else b"")
                    f.flush()
                    self._sync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    # -------------------------------------------------------------------------------- hooks

    @hookimpl
    def versioning_put(
        self, key: str, data: bytes | memoryview | None, path: str | None, overwrite: bool
    ) -> bool:
        if (data is None) == (path is None):
            raise ValueError(f"versioning_put({key!r}): pass exactly one of data= or path=")
        final = self._path(key)
        if not overwrite and final.exists():
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._stage(final, data, path)
        try:
            if overwrite:
                os.replace(tmp, final)
            else:
                try:
                    os.link(tmp, final)  # atomic and never clobbers
                except FileExistsError:
                    return False
                except OSError:  # no hard links here: content-addressed bytes make replace safe
                    if final.exists():
                        return False
                    os.replace(tmp, final)
            self._sync_dir(final.parent)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    @hookimpl
    def versioning_get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyError(key) from None

    @hookimpl
    def versioning_local_path(self, key: str) -> str | None:
        path = self._path(key)
        return str(path) if path.is_file() else None

    @hookimpl
    def versioning_fetch(self, key: str, path: str) -> None:
        source = self._path(key)
        if not source.is_file():
            raise KeyError(key)
        with replacing(path) as tmp:
            shutil.copyfile(source, tmp)

    @hookimpl
    def versioning_exists(self, keys: list[str]) -> list[bool]:
        return [self._path(k).is_file() for k in keys]

    @hookimpl
    def versioning_list(self, prefix: str) -> list[str]:
        directory, _, _ = prefix.rpartition("/")
        start = self.blob_dir / directory if directory else self.blob_dir
        if not start.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.blob_dir).as_posix()
            for name in filenames:
                if _is_temp(name) or name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    @hookimpl
    def versioning_delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    @hookimpl
    def versioning_metadata_url(self) -> str:
        if self.settings.metadata_url:
            return self.settings.metadata_url
        return f"sqlite:///{(self.root / 'metadata.db').as_posix()}"

    @hookimpl
    def versioning_check(self) -> CheckResult:
        try:
            round_trip(self)
        except Exception as e:
            return CheckResult(
                layer="versioning",
                adapter="local",
                ok=False,
                message=f"cannot write blobs under {self.blob_dir}: {e}",
                fix=f"make {self.root} writable, or set `root` in the profile's [versioning] table",
            )
        url = self.versioning_metadata_url()
        try:
            if url.startswith("sqlite:///"):
                self.root.mkdir(parents=True, exist_ok=True)
            ping_database(url)
        except Exception as e:
            return CheckResult(
                layer="versioning",
                adapter="local",
                ok=False,
                message=f"cannot reach the metadata database {url}: {e}",
                fix="check `metadata_url` in the profile's [versioning] table and that the server runs",
            )
        return CheckResult(
            layer="versioning",
            adapter="local",
            ok=True,
            message=f"blobs in {self.blob_dir}; metadata at {url}",
        )

    @hookimpl
    def versioning_transient_errors(self) -> tuple[type[BaseException], ...]:
        return (InterruptedError, BlockingIOError)


ADAPTER = AdapterInfo(
    layer="versioning",
    name="local",
    settings=LocalVersioningSettings,
    factory=LocalVersioning,
    description="Blobs as files under the project's .lamina/ directory; metadata in SQLite (or any SQLAlchemy URL).",
)
