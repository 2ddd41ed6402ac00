"""Code packages: deterministic, content-addressed, without secrets, safely restored."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from lamina.errors import LaminaError, StoreError
from lamina.versioning import codepkg, layout
from lamina.versioning.codepkg import package_code, restore_code, store_code


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    root = tmp_path / "flowdir"
    _write(
        root,
        {
            "flow.py": "print('hi')\n",
            "lib/util.py": "X = 1\n",
            "lib/__pycache__/util.cpython-311.pyc": b"\x00",
            "conf/settings.toml": "a = 1\n",
            ".gitignore": "data/\n*.log\n!keep.log\n/build\n",
            "data/big.csv": "1,2\n",
            "run.log": "noise",
            "keep.log": "kept",
            "build/out.txt": "x",
            "sub/build/inner.txt": "not anchored: kept",
            "sub/.gitignore": "local.txt\n",
            "sub/local.txt": "ignored by the nested .gitignore",
            "sub/shared.txt": "kept",
            ".lamina/metadata.db": "x",
            ".git/config": "x",
            ".venv/bin/python": "x",
            ".env": "SECRET=1",
            ".env.production": "SECRET=2",
            "keys/id_rsa": "x",
            "keys/id_ed25519.pub": "x",
            "tls/server.pem": "x",
            "tls/server.key": "x",
            "certs/client.p12": "x",
            "credentials": "x",
            "aws/credentials.json": "x",
            "gcp/service-account-prod.json": "x",
            ".netrc": "x",
        },
    )
    (root / "flow.py").chmod(0o755)
    return root


def test_the_package_holds_the_code_and_nothing_secret_or_ignored(flow_dir):
    with package_code(flow_dir) as pkg:
        assert pkg.files == [
            ".gitignore",
            "conf/settings.toml",
            "flow.py",
            "keep.log",
            "lib/util.py",
            "sub/.gitignore",
            "sub/build/inner.txt",
            "sub/shared.txt",
        ]
        with tarfile.open(pkg.path, "r:gz") as tar:
            assert sorted(tar.getnames()) == pkg.files


def test_files_over_the_size_cap_are_skipped_with_a_warning(flow_dir, caplog):
    _write(flow_dir, {"model.bin": b"\x00" * 5000})
    with package_code(flow_dir, max_file_size=4096) as pkg:
        assert "model.bin" not in pkg.files
        assert pkg.skipped == [("model.bin", "larger than 4096 bytes")]
    assert "model.bin" in caplog.text


def test_symlinks_are_followed_only_inside_the_directory(flow_dir, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("do not ship")
    (flow_dir / "leak.txt").symlink_to(outside)
    (flow_dir / "alias.py").symlink_to(flow_dir / "lib" / "util.py")
    with package_code(flow_dir) as pkg:
        assert "alias.py" in pkg.files and "leak.txt" not in pkg.files
        assert ("leak.txt", "symlink leaving the directory") in pkg.skipped


def test_unchanged_code_hashes_the_same_whatever_the_mtimes(flow_dir):
    with package_code(flow_dir) as first:
        digest = first.sha256
    later = time.time() + 1000
    for path in flow_dir.rglob("*"):
        os.utime(path, (later, later), follow_symlinks=False)
    with package_code(flow_dir) as second:
        assert second.sha256 == digest
    (flow_dir / "flow.py").write_text("print('changed')\n")
    with package_code(flow_dir) as third:
        assert third.sha256 != digest


def test_stored_code_is_content_addressed_and_restores_exactly(flow_dir, store, blobs, tmp_path):
    key = store_code(store, flow_dir)
    assert key.startswith(layout.CODE_PREFIX)
    assert hashlib.sha256(blobs.get(key)).hexdigest() == layout.digest_of(key)
    assert store_code(blobs, flow_dir) == key  # the facade works as well as the artifact store
    assert blobs.list(layout.CODE_PREFIX) == [key], "the same code is stored once"
    dest = restore_code(store, key, tmp_path / "restored")
    assert (dest / "flow.py").read_text() == "print('hi')\n"
    assert os.access(dest / "flow.py", os.X_OK) and not os.access(dest / "lib" / "util.py", os.X_OK)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        ".gitignore",
        "conf/settings.toml",
        "flow.py",
        "keep.log",
        "lib/util.py",
        "sub/.gitignore",
        "sub/build/inner.txt",
        "sub/shared.txt",
    ]


def test_restoring_refuses_a_non_empty_directory_unless_asked(flow_dir, store, tmp_path):
    key = store_code(store, flow_dir)
    dest = tmp_path / "busy"
    _write(dest, {"flow.py": "mine"})
    with pytest.raises(LaminaError, match="not empty.*overwrite=True"):
        restore_code(store, key, dest)
    assert (dest / "flow.py").read_text() == "mine"
    restore_code(store, key, dest, overwrite=True)
    assert (dest / "flow.py").read_text() == "print('hi')\n"


def _malicious_package(blobs, names: list[str]) -> str:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            if name.startswith("link:"):
                info.name, info.type, info.linkname = name[5:], tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
    data = buf.getvalue()
    key = layout.code_key(hashlib.sha256(data).hexdigest())
    blobs.put(key, data=data)
    return key


@pytest.mark.parametrize("bad", ["../escape.py", "/abs/path.py", "a/../../escape.py", "link:flow.py"])
def test_restoring_refuses_unsafe_entries_before_writing_anything(blobs, tmp_path, bad):
    key = _malicious_package(blobs, ["ok.py", bad])
    dest = tmp_path / "a" / "dest"
    with pytest.raises(StoreError, match="unsafe entry"):
        restore_code(blobs, key, dest)
    assert not dest.exists() and not (tmp_path / "a" / "escape.py").exists()


def test_a_corrupt_or_missing_package_is_an_error(blobs, tmp_path):
    key = layout.code_key("0" * 64)
    with pytest.raises(StoreError, match="not in the blob store"):
        restore_code(blobs, key, tmp_path / "d")
    blobs.put(key, data=b"garbage")
    with pytest.raises(StoreError, match="corrupt"):
        restore_code(blobs, key, tmp_path / "d")


PATTERNS = ["*.log", "!keep.log", "build/", "/top.txt", "docs/**/*.md", "a?c", "[bc]at", "**/cache", "x/y"]
PATHS = [
    ("run.log", False),
    ("keep.log", False),
    ("sub/run.log", False),
    ("build", True),
    ("build", False),
    ("sub/build", True),
    ("top.txt", False),
    ("sub/top.txt", False),
    ("docs/a/b/c.md", False),
    ("docs/c.md", False),
    ("abc", False),
    ("bat", False),
    ("hat", False),
    ("deep/er/cache", True),
    ("x/y", False),
    ("z/x/y", False),
]


def test_the_fallback_gitignore_matcher_agrees_with_pathspec():
    pathspec = pytest.importorskip("pathspec")
    spec = pathspec.GitIgnoreSpec.from_lines(PATTERNS)
    fallback = codepkg._FallbackGitignore(PATTERNS)
    for rel, is_dir in PATHS:
        expected = spec.match_file(rel + "/" if is_dir else rel)
        assert fallback(rel, is_dir) == expected, (rel, is_dir)


def test_packaging_without_pathspec_uses_the_fallback(flow_dir, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pathspec(name, *args, **kwargs):
        if name == "pathspec":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    with package_code(flow_dir) as with_pathspec:
        expected = with_pathspec.files
    monkeypatch.setattr(builtins, "__import__", no_pathspec)
    with package_code(flow_dir) as without:
        assert without.files == expected


def test_packaging_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(LaminaError, match="not a directory"):
        package_code(tmp_path / "nope")
