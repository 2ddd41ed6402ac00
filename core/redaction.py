"""What counts as a secret, in one place: profiles refuse literal secrets, run metadata blanks
them, and task output, stored logs, errors and the command line mask them.

Names. A setting or environment variable holds a secret when one of its *name tokens* says so.
A name is split into tokens on ``_ - .``, spaces and camelCase boundaries (``apiKey`` is
``api key``, ``AWSSecretAccessKey`` is ``aws secret access key``), so a word must be a whole
token: ``path`` is not ``pat``, ``bypass`` is not ``pass``.

- Secret words: ``password passwd pass pwd passphrase secret token credential(s) cred(s) pat
  apikey auth authorization bearer sas`` (and single tokens that end in ``password``, ``secret``,
  ``token``, ``apikey``, ``privatekey``, ``accesskey``, like ``PGPASSWORD``).
- ``key`` is a secret only as the last token after a word that makes it one: ``api access
  private account secret client sas master signing encryption shared storage subscription
  session ssh hmac webhook app consumer license deploy``. So ``API_KEY``, ``private_key`` and
  ``AccountKey`` are secrets, while ``code_key``, ``record_key``, ``stdout_key``, ``sort_key``,
  ``partition_key``, ``primary_key`` and a bare ``key`` are identifiers.
- ``*_connection_string`` (``conn_str``) is a secret: such strings carry an ``AccountKey``.
- A name whose last token says it is a *reference* is not a secret, whatever comes before:
  ``*_env``, ``*_arn``, ``*_path``, ``*_file``, ``*_dir``, ``*_url``, ``*_uri``, ``*_id``,
  ``*_name``, ``*_type``, ``*_method``, ``*_mode``... (``secrets_arn``, ``private_key_file``,
  ``token_url``, ``AWS_ACCESS_KEY_ID``, ``auth_type``). Counts such as ``max_tokens`` are not
  secrets either, and neither are the shell's ``PWD``/``OLDPWD`` nor
  ``GOOGLE_APPLICATION_CREDENTIALS`` (a file path).

Values. Wherever text is printed or stored, besides the values of secret-named environment
variables: the password of any URL (``scheme://user:PASSWORD@host``), ``AccountKey=``,
``SharedAccessKey=``, ``SharedAccessSignature=``, ``Password=`` and ``PWD=`` in connection strings,
and the signature of a signed URL (``sig=``, ``X-Amz-Signature=``, ``X-Amz-Security-Token=``,
``X-Goog-Signature=``) are replaced by ``***``.
"""

from __future__ import annotations

import os
import re

MASK = "***"

_SECRET_WORDS = frozenset(
    "password passwd pass pwd passphrase secret secrets token credential credentials cred creds "
    "pat apikey auth authorization bearer sas".split()
)
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "accesskey", "secretkey")
_KEY_PREFIXES = frozenset(
    "api access private account secret client sas master signing encryption shared storage "
    "subscription session ssh hmac webhook app consumer license deploy".split()
)
_REFERENCE_ENDINGS = frozenset(
    "env arn path paths file files dir directory url uri endpoint host id ids name names type kind "
    "method mode provider location ref version len length size count limit ttl expiry expires "
    "expiration hint prompt policy prefix suffix header field format enabled".split()
)
_COUNT_WORDS = frozenset("max min num n count limit".split())
_NOT_SECRETS = frozenset({"pwd", "oldpwd", "google_application_credentials"})

_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_tokens(name: str) -> list[str]:
    """``"AWSSecretAccessKey"`` -> ``["aws", "secret", "access", "key"]``; see the module docstring."""
    return [t.lower() for part in _TOKEN_SPLIT.split(name) for t in _CAMEL.findall(part)]


def is_secret_name(name: str) -> bool:
    """Whether a setting or environment variable called ``name`` holds a secret."""
    if name.lower() in _NOT_SECRETS:
        return False
    tokens = name_tokens(name)
    if not tokens or tokens[-1] in _REFERENCE_ENDINGS:
        return False
    if tokens[-1] == "key" and len(tokens) > 1 and tokens[-2] in _KEY_PREFIXES:
        return True
    if tokens[-2:] in (["connection", "string"], ["conn", "str"]) or tokens[-1] == "connstr":
        return True  # Azure-style connection strings carry an AccountKey
    for token in tokens:
        if token in ("token", "tokens") and (tokens[0] in _COUNT_WORDS or tokens[-1] in _COUNT_WORDS):
            continue  # max_tokens, num_tokens: counts
        if token == "tokens":
            continue
        if token in _SECRET_WORDS or token.endswith(_SECRET_ENDINGS):
            return True
    return False


def refuse_secret_names(environment: dict[str, str], where: str, fix: str) -> dict[str, str]:
    """For a settings validator: ``environment`` unchanged, or ``ValueError`` naming the first key
    that looks like a secret, why it may not be there (``where``) and what to do (``fix``)."""
    for key in environment:
        if is_secret_name(key):
            raise ValueError(f"environment.{key} looks like a secret; {where}. {fix}")
    return environment


def redact_mapping(value: object) -> object:
    """``value`` (dicts and lists, nested) with every entry whose key is a secret name replaced by
    ``"***"``, and secrets inside string values (URL passwords...) masked."""
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and is_secret_name(k) else redact_mapping(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_mapping(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# -------------------------------------------------------------------------------------- values

_VALUE_PATTERNS = [
    # scheme://user:PASSWORD@host (also scheme://:PASSWORD@host)
    r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)([^\s@/'\"]+)(?=@)",
    # connection strings: AccountKey=...; Password=...
    r"(?i)(\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|PWD)=)([^;\s'\"&]+)",
    # signed URLs: ?sig=... &X-Amz-Signature=...
    r"(?i)([?&](?:sig|X-Amz-Signature|X-Amz-Security-Token|X-Goog-Signature)=)([^&\s'\"]+)",
]
_TEXT_PATTERNS = [re.compile(p) for p in _VALUE_PATTERNS]
_BYTES_PATTERNS = [re.compile(p.encode()) for p in _VALUE_PATTERNS]

VALUE_TAIL = 4096
"""How far back a value pattern may start before the end of a chunk: output captured in pieces
keeps this many bytes unreleased so that a secret split across two reads is still masked."""


def mask_values(data: bytes) -> bytes:
    """``data`` with URL passwords, connection-string keys and URL signatures masked."""
    if b"=" not in data and b"@" not in data:
        return data
    for pattern in _BYTES_PATTERNS:
        data = pattern.sub(rb"\1***", data)
    return data


def secret_patterns_spanning(data: bytes, cut: int, secrets: list[bytes]) -> int:
    """``cut``, moved back to the start of any secret (a value of ``secrets`` or a value pattern)
    that ``data[:cut]`` would split, so that ``redact(data[:cut])`` masks it whole."""
    cut = max(0, min(cut, len(data)))
    for secret in secrets:
        at = data.find(secret, max(0, cut - len(secret) + 1), cut + len(secret) - 1)
        if 0 <= at < cut:
            cut = at
    for pattern in _BYTES_PATTERNS:
        window = max(0, cut - VALUE_TAIL)
        for m in pattern.finditer(data, window):
            if m.start() >= cut:
                break
            if m.end() >= cut:  # reaches the cut: the rest of the secret may still be coming
                cut = m.start()
                break
    return cut


def mask_text(text: str, secrets: list[bytes] | None = None) -> str:
    """``text`` with secret values masked: those of ``secrets`` (default: of secret-named
    environment variables) and the value patterns of the module docstring."""
    for secret in secret_values() if secrets is None else secrets:
        value = secret.decode(errors="ignore")
        if value and value in text:
            text = text.replace(value, MASK)
    if "=" not in text and "@" not in text:
        return text
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


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
    """``data`` with every occurrence of each secret, and every secret value pattern (URL
    passwords, ``AccountKey=``, ``sig=``), replaced by ``***``."""
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, MASK.encode())
    return mask_values(data)


def url_has_password(url: str) -> bool:
    """Whether a URL (``dialect+driver://user:password@host/db``) holds a password; checked
    without importing SQLAlchemy, so profile validation stays fast."""
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(url).password)
    except ValueError:  # a malformed netloc: SQLAlchemy reports it when the URL is used
        return False
