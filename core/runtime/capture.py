"""Capture a task's stdout and stderr at the file-descriptor level, secrets masked.

Output of the step, of C extensions and of subprocesses it starts all go through fds 1 and 2; we
point them at pipes, and one reader thread shows each line live, prefixed with the step and
task, and keeps every byte for the task's stored logs. Values of environment variables whose
names say they are secrets (``SNOWFLAKE_PASSWORD``, ``*_TOKEN``...) are replaced by ``***`` in
both.
"""

from __future__ import annotations

import os
import select
import sys
import threading

from ..redaction import redact, secret_values  # noqa: E402,F401 - secret_values re-exported


class _Stream:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved = os.dup(fd)
        self.chunks: list[bytes] = []
        self.pending = b""
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end

    def restore(self) -> None:
        os.dup2(self.saved, self.fd)  # closes the pipe's last write end: the reader sees EOF


class Capture:
    """``with Capture("[train/3] ") as cap: ...``; then ``cap.stdout``, ``cap.stderr`` (bytes)."""

    def __init__(self, prefix: str, echo: bool = True) -> None:
        self.prefix = prefix.encode()
        self.echo = echo
        self.stdout = b""
        self.stderr = b""
        self._streams: list[_Stream] = []
        self._thread: threading.Thread | None = None
        self._secrets = secret_values()

    def __enter__(self) -> Capture:
        _flush()
        self._streams = [_Stream(1), _Stream(2)]
        self._thread = threading.Thread(target=self._pump, name="lamina-capture", daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        by_fd = {s.read_end: s for s in self._streams}
        while by_fd:
            ready, _, _ = select.select(list(by_fd), [], [])
            for fd in ready:
                stream = by_fd[fd]
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    if self.echo and stream.pending:
                        self._write(stream, self.prefix + redact(stream.pending, self._secrets) + b"\n")
                    os.close(fd)
                    del by_fd[fd]
                    continue
                stream.chunks.append(chunk)
                if self.echo:
                    stream.pending += chunk
                    *lines, stream.pending = stream.pending.split(b"\n")
                    if lines:
                        text = b"".join(self.prefix + line + b"\n" for line in lines)
                        self._write(stream, redact(text, self._secrets))

    @staticmethod
    def _write(stream: _Stream, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(stream.saved, view)
            except OSError:
                return
            view = view[written:]

    def __exit__(self, *exc: object) -> None:
        _flush()
        for stream in self._streams:
            stream.restore()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for stream in self._streams:
            os.close(stream.saved)
        out, err = self._streams
        self.stdout = redact(b"".join(out.chunks), self._secrets)
        self.stderr = redact(b"".join(err.chunks), self._secrets)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
