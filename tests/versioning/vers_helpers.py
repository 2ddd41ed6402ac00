"""Fixtures of the versioning tests: a local blob store behind a real pluggy manager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
from lamina.hookspecs import AdapterContext, VersioningSpec
from lamina.plugins.local_versioning import LocalVersioning, LocalVersioningSettings


class Blobs:
    """A minimal versioning facade: one pluggy manager with the local adapter registered."""

    def __init__(self, adapter: object) -> None:
        self.pm = pluggy.PluginManager("lamina")
        self.pm.add_hookspecs(VersioningSpec)
        self.pm.register(adapter, name="local")
        self.pm.check_pending()
        self.adapter = adapter
        self.hook = self.pm.hook

    def put(self, key, data=None, path=None, overwrite=False):
        return self.hook.versioning_put(key=key, data=data, path=path, overwrite=overwrite)

    def get(self, key):
        return self.hook.versioning_get(key=key)

    def local_path(self, key):
        return self.hook.versioning_local_path(key=key)

    def fetch(self, key, path):
        return self.hook.versioning_fetch(key=key, path=path)

    def exists(self, keys):
        return self.hook.versioning_exists(keys=keys)

    def list(self, prefix):
        return self.hook.versioning_list(prefix=prefix)

    def delete(self, keys):
        return self.hook.versioning_delete(keys=keys)

    def metadata_url(self):
        return self.hook.versioning_metadata_url()


class RemoteBlobs(Blobs):
    """The same store seen as a remote one would be: no local paths, so loads fetch or get."""

    def local_path(self, key):
        return None


def make_blobs(project: Path, cls: type[Blobs] = Blobs, **settings: object) -> Blobs:
    ctx = AdapterContext(project_dir=project, stack_name="local", adapter_name="local")
    return cls(LocalVersioning(LocalVersioningSettings(**settings), ctx))


def run_python(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


PG_URL = os.environ.get("LAMINA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
