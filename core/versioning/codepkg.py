"""Code packages: a flow's directory as a deterministic, content-addressed ``.tar.gz``.

A run records its code package so a remote task can run the same code and anyone can restore
what ran. The package is deterministic (sorted entries, zero mtimes and owners, normalised
modes, a fixed gzip header), so unchanged code hashes to the same key and is stored once.

What goes in: regular files under the flow directory not matched by a ``.gitignore`` (the
directory's own and nested ones; ``pathspec`` when installed, else a small fallback matcher),
minus what is never shipped: Lamina's and tools' state (``.lamina/``, ``.git/``, ``.venv/``,
``__pycache__``, caches) and anything that looks like a secret (``.env*``, keys, certificates,
credentials files). Files over ``max_file_size`` are skipped with a warning (data belongs in the
data layer, not the code package). Symlinks are followed only when they stay inside the
directory.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import LaminaError, StoreError
from . import layout

log = logging.getLogger("lamina.versioning")

EXCLUDED_DIRS = frozenset(
    {
        ".lamina",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
    }
)
SECRET_PATTERNS = (
    ".env*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk", "id_rsa*", "id_dsa*",
    "id_ecdsa*", "id_ed25519*", "credentials", "credentials.*", ".netrc", "_netrc", ".pgpass", ".pypirc",
    ".git-credentials", ".dockercfg", "service-account*.json", "*-credentials.json", "*.pyc",
)  # fmt: skip
MAX_FILE_SIZE = 10 << 20


@dataclass
class CodePackage:
    """A built package: a temporary ``.tar.gz`` file (remove it with :meth:`cleanup`)."""

    path: str
    sha256: str
    size: int
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(relative path, reason)`` of files left out for their size or an unsafe link."""

    def cleanup(self) -> None:
        Path(self.path).unlink(missing_ok=True)

    def __enter__(self) -> CodePackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def package_code(
    flow_dir: str | os.PathLike[str], *, max_file_size: int = MAX_FILE_SIZE, tmp_dir: str | None = None
) -> CodePackage:
    """Build the code package of ``flow_dir`` into a temporary file (see the module docstring)."""
    root = Path(flow_dir).resolve()
    if not root.is_dir():
        raise LaminaError(f"cannot package code: {root} is not a directory")
    files, skipped = _select(root, max_file_size)
    fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="code-", suffix=".tar.gz" + layout.OWNED_TEMP_SUFFIX)
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as raw:
        out = _HashingWriter(raw, digest)
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:  # type: ignore[arg-type]
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for rel in files:
                    source = root / rel
                    info = tarfile.TarInfo(rel)
                    info.size = source.stat().st_size
                    info.mode = 0o755 if os.access(source, os.X_OK) else 0o644
                    info.mtime = 0
                    with open(source, "rb") as f:
                        tar.addfile(info, f)
    for rel, reason in skipped:
        log.warning("code package of %s: skipped %s (%s)", root, rel, reason)
    return CodePackage(path, digest.hexdigest(), os.path.getsize(path), files, skipped)


def code_key_of(pkg: CodePackage) -> str:
    """The key a code package is (or would be) stored under; nothing is stored."""
    return layout.code_key(pkg.sha256)


def code_digest(code_key: str) -> str:
    """The SHA-256 a code package's key names (a cache directory is named by it)."""
    return layout.digest_of(code_key)


def store_code(store: Any, flow_dir: str | os.PathLike[str], **options: Any) -> str:
    """Package ``flow_dir`` and store it content-addressed; return its key.

    :param store: an :class:`~.artifacts.ArtifactStore` or the blob facade itself.
    """
    blobs = getattr(store, "blobs", store)
    with package_code(flow_dir, **options) as pkg:
        key = layout.code_key(pkg.sha256)
        if not blobs.exists([key])[0]:
            blobs.put(key, path=pkg.path, overwrite=False)
    return key


def restore_code(
    store: Any, code_key: str, dest_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Unpack the code package ``code_key`` into ``dest_dir`` and return that directory.

    :raises LaminaError: ``dest_dir`` is not empty and ``overwrite`` is false.
    :raises StoreError: the package is missing, corrupt, or holds unsafe paths (absolute,
        ``..``, links, devices), which are refused before anything is written.
    """
    blobs = getattr(store, "blobs", store)
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise LaminaError(
            f"refusing to restore code into {dest}: it is not empty (pass overwrite=True or an empty directory)"
        )
    try:
        data = blobs.get(code_key)
    except KeyError:
        raise StoreError(f"code package {code_key!r} is not in the blob store") from None
    if hashlib.sha256(data).hexdigest() != layout.digest_of(code_key):
        raise StoreError(f"code package {code_key!r} is corrupt: its bytes do not match its hash")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            parts = PurePosixPath(m.name).parts
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts or "\\" in m.name:
                raise StoreError(
                    f"code package {code_key!r} holds an unsafe entry {m.name!r}; nothing was restored"
                )
        dest.mkdir(parents=True, exist_ok=True)
        for m in members:
            target = dest.joinpath(*PurePosixPath(m.name).parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(m)
            assert source is not None
            with source, open(target, "wb") as f:
                shutil.copyfileobj(source, f)
            os.chmod(target, m.mode & 0o755)
    return dest


class _HashingWriter:
    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _select(root: Path, max_file_size: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Relative POSIX paths to package (sorted), and the skipped ones with a reason."""
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    ignores: list[tuple[str, Callable[[str, bool], bool]]] = []  # (dir prefix, matcher)

    def ignored(rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if is_dir and (name in EXCLUDED_DIRS or fnmatch.fnmatch(name, ".env*")):
            return True
        if not is_dir and any(fnmatch.fnmatch(name, p) for p in SECRET_PATTERNS):
            return True
        return any(rel.startswith(base) and match(rel[len(base) :], is_dir) for base, match in ignores)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        base = here.relative_to(root).as_posix()
        base = "" if base == "." else base + "/"
        if ".gitignore" in filenames:
            ignores.append((base, _gitignore_matcher((here / ".gitignore").read_text(errors="replace"))))
        dirnames[:] = sorted(
            d for d in dirnames if not (here / d).is_symlink() and not ignored(base + d, True)
        )
        for name in filenames:
            rel = base + name
            path = here / name
            if ignored(rel, False):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_file() or not target.is_relative_to(root):
                    skipped.append((rel, "symlink leaving the directory"))
                    continue
            elif not path.is_file():
                continue
            if path.stat().st_size > max_file_size:
                skipped.append((rel, f"larger than {max_file_size} bytes"))
                continue
            files.append(rel)
    return sorted(files), skipped


def _gitignore_matcher(text: str) -> Callable[[str, bool], bool]:
    """``match(relative path, is_dir)`` for one ``.gitignore`` (paths relative to its folder)."""
    lines = text.splitlines()
    try:
        import pathspec
    except ImportError:
        return _FallbackGitignore(lines)
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return lambda rel, is_dir: spec.match_file(rel + "/" if is_dir else rel)


class _FallbackGitignore:
    """The common ``.gitignore`` subset: globs, ``**``, ``!`` negation, ``/`` anchors, dir-only ``/``."""

    def __init__(self, lines: list[str]) -> None:
        self.rules: list[tuple[re.Pattern[str], bool, bool]] = []  # (regex, negated, dir only)
        for line in lines:
            line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = line[1:] if negated else line
            dir_only = line.endswith("/")
            line = line.strip("/") if dir_only else line
            anchored = "/" in line.lstrip("/") or line.startswith("/")
            body = _glob_to_regex(line.lstrip("/"))
            regex = ("^" if anchored else "^(?:.*/)?") + body + "$"
            self.rules.append((re.compile(regex), negated, dir_only))

    def __call__(self, rel: str, is_dir: bool) -> bool:
        result = False
        for regex, negated, dir_only in self.rules:
            if (not dir_only or is_dir) and regex.match(rel):
                result = not negated
        return result


def _glob_to_regex(glob: str) -> str:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.find("]", i + 1)
            out, i = (out + glob[i : end + 1], end + 1) if end > 0 else (out + re.escape("["), i + 1)
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return out
