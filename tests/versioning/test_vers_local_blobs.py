"""The ``local`` versioning adapter: atomic, race-safe blob files under ``.lamina/blobs``.

:class:`TestLocalVersioningConformance` runs the promises every versioning adapter makes
(``lamina.testing.VersioningSuite``); the tests below it are the local adapter's own: where
files land, hard links for owned temporaries, crashes mid-write, its settings and checks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lamina.hookspecs import AdapterContext
from lamina.plugins.local_versioning import ADAPTER, LocalVersioning, LocalVersioningSettings
from lamina.testing import VersioningSuite
from lamina.versioning.layout import OWNED_TEMP_SUFFIX
from pydantic import ValidationError
from vers_helpers import make_blobs


class TestLocalVersioningConformance(VersioningSuite):
    @pytest.fixture
    def versioning_adapter(self, project: Path) -> LocalVersioning:
        context = AdapterContext(project_dir=project, stack_name="local", adapter_name="local")
        return LocalVersioning(LocalVersioningSettings(), context)


def test_adapter_is_described_for_central_registration():
    assert (ADAPTER.layer, ADAPTER.name) == ("versioning", "local")
    assert ADAPTER.settings is LocalVersioningSettings
    with pytest.raises(ValidationError):
        LocalVersioningSettings(bucket="x")  # unknown keys are errors, not ignored


def test_bytes_round_trip_under_the_project_root(blobs, project):
    assert blobs.put("a/b/c.bin", data=b"hello") is True
    assert blobs.get("a/b/c.bin") == b"hello"
    assert (project / ".lamina" / "blobs" / "a" / "b" / "c.bin").read_bytes() == b"hello"
    assert blobs.local_path("a/b/c.bin") == str(project / ".lamina" / "blobs" / "a" / "b" / "c.bin")
    assert blobs.exists(["a/b/c.bin", "a/b/missing"]) == [True, False]
    assert blobs.local_path("a/b/missing") is None
    with pytest.raises(KeyError):
        blobs.get("a/b/missing")
    with pytest.raises(KeyError):
        blobs.fetch("a/b/missing", str(project / "out"))


def test_files_are_copied_and_owned_temporaries_are_linked_not_copied(blobs, tmp_path):
    user_file = tmp_path / "data.bin"
    user_file.write_bytes(b"x" * 1000)
    blobs.put("copied", path=str(user_file))
    stored = Path(blobs.local_path("copied"))
    assert stored.read_bytes() == user_file.read_bytes()
    assert not os.path.samefile(stored, user_file), "a user's file must be copied: they may change it later"

    owned = tmp_path / ("artifact" + OWNED_TEMP_SUFFIX)
    owned.write_bytes(b"y" * 1000)
    blobs.put("linked", path=str(owned))
    assert os.path.samefile(blobs.local_path("linked"), owned), "an owned temporary is linked into place"


def test_list_is_sorted_prefix_matching_and_hides_temporaries(blobs, project):
    for key in ["runs/F/r1/a", "runs/F/r12/b", "runs/F/r2/c", "runs/G/r1/d", "top"]:
        blobs.put(key, data=b"")
    (project / ".lamina" / "blobs" / "runs" / "F" / "r1" / ".a.123.tmp").write_bytes(b"partial")
    assert blobs.list("runs/F/r1") == ["runs/F/r1/a", "runs/F/r12/b"]
    assert blobs.list("runs/F/r1/") == ["runs/F/r1/a"]
    assert blobs.list("runs/F/") == ["runs/F/r1/a", "runs/F/r12/b", "runs/F/r2/c"]
    assert blobs.list("") == ["runs/F/r1/a", "runs/F/r12/b", "runs/F/r2/c", "runs/G/r1/d", "top"]
    assert blobs.list("nothing/") == []


@pytest.mark.parametrize("key", ["/abs", "a/../b", "a//b", ".hidden", "a/.x.tmp", "a\\b", ""])
def test_keys_that_could_escape_the_root_or_clash_with_temporaries_are_refused(blobs, key):
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.put(key, data=b"x")


def test_put_needs_exactly_one_source(blobs, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        blobs.put("k")
    with pytest.raises(ValueError, match="exactly one"):
        blobs.put("k", data=b"x", path=str(tmp_path))


@pytest.mark.parametrize("moment", ["before-sync", "before-publish"])
def test_a_crash_mid_write_leaves_nothing_a_reader_can_see(project, moment):
    """The writer process is killed (SIGKILL) while writing; the key must not exist afterwards."""
    hook = "LocalVersioning._sync" if moment == "before-sync" else "os.link"
    code = f"""
        import os, signal, json
        from pathlib import Path
        import lamina.plugins.local_versioning as lv
        from lamina.hookspecs import AdapterContext
        adapter = lv.LocalVersioning(lv.LocalVersioningSettings(), AdapterContext(Path({str(project)!r}), "local", "local"))
        adapter.versioning_put("done", b"complete", None, False)
        def crash(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        if {hook!r} == "os.link":
            lv.os.link = crash
        else:
            lv.LocalVersioning._sync = crash
        adapter.versioning_put("big", b"x" * (8 << 20), None, False)
        print(json.dumps({{"crashed": False}}))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    blobs = make_blobs(project)
    assert blobs.exists(["done", "big"]) == [True, False]
    assert blobs.list("") == ["done"]
    with pytest.raises(KeyError):
        blobs.get("big")
    leftovers = [p.name for p in (project / ".lamina" / "blobs").iterdir() if p.name.startswith(".")]
    assert leftovers, "the crash left its temporary behind (hidden), which is the point of the test"
    assert blobs.put("big", data=b"retry") is True  # a retry publishes normally
    assert blobs.get("big") == b"retry"


def test_metadata_url_defaults_to_sqlite_under_the_root_and_refuses_passwords(project, tmp_path):
    assert make_blobs(project).metadata_url() == f"sqlite:///{project}/.lamina/metadata.db"
    elsewhere = make_blobs(project, root=str(tmp_path / "store"))
    assert elsewhere.metadata_url() == f"sqlite:///{tmp_path}/store/metadata.db"
    url = "postgresql+psycopg://lamina@db/lamina"
    assert make_blobs(project, metadata_url=url).metadata_url() == url
    with pytest.raises(ValidationError, match="must not contain a password.*PGPASSWORD"):
        LocalVersioningSettings(metadata_url="postgresql://u:secret@db/x")


def test_check_reports_a_writable_store_and_an_unreachable_database(blobs, project):
    ok = blobs.hook.versioning_check()
    assert ok.ok and ok.layer == "versioning"
    bad = make_blobs(
        project, metadata_url="postgresql+psycopg://nobody@127.0.0.1:1/none"
    ).hook.versioning_check()
    assert not bad.ok and "metadata database" in bad.message and bad.fix


def test_check_reports_an_unwritable_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = make_blobs(tmp_path, root=str(blocker / "sub")).hook.versioning_check()
    assert not result.ok and "cannot write blobs" in result.message
