"""What counts as a secret, in one place: profiles refuse literal secrets, run metadata blanks
them, and task logs mask the values of secret-named environment variables."""

from __future__ import annotations

import os
import re

SECRET_NAME = re.compile(r"(password|passwd|secret|token|private_key|access_key|api_key|credential)", re.I)
"""A setting or environment variable whose name matches holds a secret."""


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def refuse_secret_names(environment: dict[str, str], where: str, fix: str) -> dict[str, str]:
    """For a settings validator: ``environment`` unchanged, or ``ValueError`` naming the first key
    that looks like a secret, why it may not be there (``where``) and what to do (``fix``)."""
    for key in environment:
        if is_secret_name(key):
            raise ValueError(f"environment.{key} looks like a secret; {where}. {fix}")
    return environment


_cached: tuple[int, list[bytes]] | None = None


def secret_values(environ: dict[str, str] | None = None) -> list[bytes]:
    """Values of environment variables whose names say they hold a secret (6+ characters).

    Cached per process for ``os.environ`` (a warm worker computes it once for all its tasks);
    recomputed when the environment's size changes.
    """
    global _cached
    if environ is None and _cached is not None and _cached[0] == len(os.environ):
        return _cached[1]
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= 6}
    found = sorted((v.encode() for v in values), key=len, reverse=True)
    if environ is None:
        _cached = (len(os.environ), found)
    return found


def redact(data: bytes, secrets: list[bytes]) -> bytes:
    """``data`` with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, b"***")
    return data


def url_has_password(url: str) -> bool:
    """Whether a URL (``dialect+driver://user:password@host/db``) holds a password; checked
    without importing SQLAlchemy, so profile validation stays fast."""
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(url).password)
    except ValueError:  # a malformed netloc: SQLAlchemy reports it when the URL is used
        return False
