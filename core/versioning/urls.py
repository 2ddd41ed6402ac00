"""Database URLs in profiles, checked without importing SQLAlchemy (``lamina stack list`` and
profile validation must stay fast)."""

from __future__ import annotations

from urllib.parse import urlsplit


def has_password(url: str) -> bool:
    """Whether a SQLAlchemy-style URL (``dialect+driver://user:password@host/db``) holds a password."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:  # a malformed netloc: SQLAlchemy reports it when the URL is used
        return False
