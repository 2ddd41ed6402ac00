"""Where things live in the blob store: pure functions from names to keys.

Every backend stores bytes under ``/``-separated relative keys; this module is the one place
that decides those keys. It is private to the versioning core: the artifact store, the run store
(:mod:`.runstore`) and code packages use it, and everyone else goes through them
(``tests/test_import_hygiene.py`` keeps it so).

Layout::

    artifacts/sha256/ab/cdef...                       content-addressed artifact bytes
    code/sha256/ab/cdef....tar.gz                     content-addressed code packages
    runs/{flow}/{run_id}/params.json                  a run's parameters
    runs/{flow}/{run_id}/{step}/{task_id}/{attempt}/record.json   a task's completion record
    runs/{flow}/{run_id}/{step}/{task_id}/{attempt}/stdout.log    (and stderr.log)

Content-addressed keys depend only on the bytes, so a value stored by two runs of two flows is
kept once. Names used as key segments (flow, run id, step, task id) may not contain ``/`` and may
not start with ``.`` (backends use dot-names for their temporary files).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Literal

ARTIFACTS_PREFIX = "artifacts/sha256/"
CODE_PREFIX = "code/sha256/"
RUNS_PREFIX = "runs/"
CODE_SUFFIX = ".tar.gz"
RECORD_NAME = "record.json"
PARAMS_NAME = "params.json"
MANIFEST_NAME = "run.json"

OWNED_TEMP_SUFFIX = ".lamina-owned"
"""Convention of ``versioning_put(path=...)``: a file whose name ends with this suffix is a
temporary that the caller owns and abandons after the call. A backend on the same filesystem may
hard-link or move it into place instead of copying it; the caller then removes its name if it is
still there. Backends that upload treat it like any other file."""

Stream = Literal["stdout", "stderr"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_segment(value: str, what: str) -> str:
    """Return ``value`` if it can be one key segment, else raise ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if "/" in value or "\\" in value or value.startswith(".") or "\x00" in value:
        raise ValueError(
            f"{what} {value!r} cannot be used in a storage key: it may not contain '/' or '\\' "
            "nor start with '.'"
        )
    return value


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a lowercase hex SHA-256, else raise ``ValueError``."""
    if not _HEX64.match(digest):
        raise ValueError(f"not a lowercase hex sha256 digest: {digest!r}")
    return digest


def artifact_key(digest: str) -> str:
    """Key of the artifact whose serialized bytes hash to ``digest`` (hex SHA-256)."""
    check_digest(digest)
    return f"{ARTIFACTS_PREFIX}{digest[:2]}/{digest[2:]}"


def code_key(digest: str) -> str:
    """Key of the code package (a ``.tar.gz``) whose bytes hash to ``digest``."""
    check_digest(digest)
    return f"{CODE_PREFIX}{digest[:2]}/{digest[2:]}{CODE_SUFFIX}"


def digest_of(key: str) -> str:
    """The SHA-256 digest encoded in an artifact or code key.

    :raises ValueError: ``key`` is not content-addressed.
    """
    for prefix, suffix in ((ARTIFACTS_PREFIX, ""), (CODE_PREFIX, CODE_SUFFIX)):
        if key.startswith(prefix) and key.endswith(suffix):
            rest = key[len(prefix) : len(key) - len(suffix)]
            head, _, tail = rest.partition("/")
            if len(head) == 2:
                return check_digest(head + tail)
    raise ValueError(f"not a content-addressed key: {key!r}")


def flow_prefix(flow: str) -> str:
    """Prefix (ending in ``/``) of every run of one flow."""
    return f"{RUNS_PREFIX}{check_segment(flow, 'flow name')}/"


def run_prefix(flow: str, run_id: str) -> str:
    """Prefix (ending in ``/``) of everything stored for one run."""
    return f"{RUNS_PREFIX}{check_segment(flow, 'flow name')}/{check_segment(run_id, 'run id')}/"


def run_params_key(flow: str, run_id: str) -> str:
    """Key of a run's parameters (JSON)."""
    return run_prefix(flow, run_id) + PARAMS_NAME


def run_manifest_key(flow: str, run_id: str) -> str:
    """Key of a run's manifest (JSON: parameters, stack, code, user, tags, versions), from which
    ``lamina sync`` can index a run in any metadata store."""
    return run_prefix(flow, run_id) + MANIFEST_NAME


def deploy_template_key(flow: str, digest: str) -> str:
    """Key of a deployed flow's template (JSON), content-addressed: a redeploy of the same flow
    and stack finds it stored, and a deployed run keeps reading the template it started with."""
    return f"deploy/{check_segment(flow, 'flow name')}/{check_digest(digest)}.json"


def latest_run_key(flow: str, user: str) -> str:
    """Key of a pointer to a user's latest run of a flow (JSON ``{"run_id": ...}``), so that
    ``resume`` finds it without listing every run or opening the metadata database."""
    return (
        f"pointers/{check_segment(flow, 'flow name')}/{check_segment(user or 'unknown', 'user')}/latest.json"
    )


def task_prefix(flow: str, run_id: str, step: str, task_id: str) -> str:
    """Prefix (ending in ``/``) of all attempts of one task."""
    return (
        run_prefix(flow, run_id) + f"{check_segment(step, 'step name')}/{check_segment(task_id, 'task id')}/"
    )


def attempt_prefix(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    """Prefix (ending in ``/``) of one attempt of one task."""
    if not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a non-negative int, got {attempt!r}")
    return task_prefix(flow, run_id, step, task_id) + f"{attempt}/"


def task_record_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    """Key of a task attempt's completion record (a JSON ``TaskRecord``)."""
    return attempt_prefix(flow, run_id, step, task_id, attempt) + RECORD_NAME


def log_key(flow: str, run_id: str, step: str, task_id: str, attempt: int, stream: Stream) -> str:
    """Key of a task attempt's ``stdout`` or ``stderr`` log."""
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    return attempt_prefix(flow, run_id, step, task_id, attempt) + f"{stream}.log"


def card_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    """Key of a task attempt's card (one self-contained HTML document, see ``lamina.cards``)."""
    return attempt_prefix(flow, run_id, step, task_id, attempt) + "card.html"


def parse_task_record_key(key: str) -> tuple[str, str, str, str, int]:
    """Invert :func:`task_record_key`: ``(flow, run_id, step, task_id, attempt)``.

    :raises ValueError: ``key`` is not a task record key.
    """
    parts = key.split("/")
    if len(parts) != 7 or parts[0] + "/" != RUNS_PREFIX or parts[6] != RECORD_NAME or not parts[5].isdigit():
        raise ValueError(f"not a task record key: {key!r}")
    return parts[1], parts[2], parts[3], parts[4], int(parts[5])


def new_run_id() -> str:
    """A new run id: unique across flows and sortable by start time (UTC, microseconds).

    Example: ``20250130T020812.123456.3f9a1c``.
    """
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S.%f}.{secrets.token_hex(3)}"
