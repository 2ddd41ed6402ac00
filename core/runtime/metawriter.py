"""Writes task metadata from a background thread, in batches.

The blob store is the source of truth for a task's result (its completion record); the metadata
store is the index. Recording every task in its own transaction would cost a wide foreach two
commits per task on the scheduler's critical path, so the scheduler queues writes here and this
thread applies them in batches. ``close()`` flushes; a run is marked finished only after.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

_STOP = ("stop", ())
RETRIES = 5
"""Times a batch is retried after the database dropped the connection (backing off to ~6 s)."""


def _is_disconnect(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc).lower()
        return (
            any(s in text for s in ("terminat", "closed", "connection", "server", "lost", "reset"))
            and "locked" not in text
        )
    return False


class MetadataWriter:
    """``store`` is a ``MetadataStore`` or a callable that opens one: opening it (SQLAlchemy's
    import, the migration check) then happens on this thread, in parallel with the run."""

    def __init__(self, store: Any, max_batch: int = 500) -> None:
        self._store = store
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="lamina-metadata", daemon=True)
        self._thread.start()

    @property
    def store(self) -> Any:
        if callable(self._store) and not hasattr(self._store, "record_batch"):
            self._store = self._store()
        return self._store

    def call(self, method: str, **kwargs: Any) -> None:
        """Queue any other store call (``create_run``, ``finish_run``), applied in order."""
        self._check()
        self._queue.put(("call", (method, kwargs)))

    def beat(self, run_id: str) -> None:
        """Queue a heartbeat; from any thread, and never raises (the scheduler sees write errors)."""
        if self._thread.is_alive():
            self._queue.put(("call", ("heartbeat", {"run_id": run_id})))

    def started(self, *args: Any) -> None:
        self._check()
        self._queue.put(("started", args))

    def finished(self, record: Any, key: str) -> None:
        self._check()
        self._queue.put(("finished", (record, key)))

    def flush(self) -> None:
        """Wait until everything queued so far is written; re-raise a write's failure."""
        self._queue.join()
        self._check()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._check()

    def _apply_with_retries(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Apply a batch; a dropped database connection (a server restart, a killed backend) is
        retried on a fresh one. Task writes are upserts, so applying a batch again is harmless."""
        for attempt in range(RETRIES + 1):
            try:
                self._apply(batch)
                return
            except Exception as exc:
                if attempt == RETRIES or not _is_disconnect(exc):
                    raise
                time.sleep(0.2 * 2**attempt)

    def _apply(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        pending: list[tuple[str, tuple[Any, ...]]] = []
        for op in batch:
            if op[0] in ("started", "finished"):
                pending.append(op)
                continue
            self.store.record_batch(pending)
            pending = []
            if op[0] == "call":
                method, kwargs = op[1]
                getattr(self.store, method)(**kwargs)
        self.store.record_batch(pending)

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            try:
                self._apply_with_retries(batch)
            except BaseException as exc:  # surfaced to the scheduler by the next call
                self._error = exc
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return
