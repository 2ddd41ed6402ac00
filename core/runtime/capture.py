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

from ..redaction import VALUE_TAIL, redact, secret_patterns_spanning, secret_values  # noqa: F401


class LineEcho:
    """Turns output read in arbitrary chunks into prefixed, redacted text to show, in linear time.

    Only the unterminated tail of the output is kept between chunks, and only the new chunk is
    searched for line ends, so a 50 MB line without a newline (a progress bar) costs what 50 MB
    of short lines cost. A line longer than ``flush_at`` is shown in pieces (continuation pieces
    carry no prefix); each cut is moved back so that no secret straddles it, and the bytes
    before a cut are redacted as a whole: a secret split between two reads is still masked.
    ``scanned`` counts the bytes searched, for tests of the linear bound.
    """

    def __init__(self, prefix: bytes, secrets: list[bytes], flush_at: int = 1 << 20) -> None:
        self.prefix = prefix
        self.secrets = secrets
        self.flush_at = flush_at
        self.keep = max([VALUE_TAIL, *(len(s) for s in secrets)])
        self.pending = bytearray()
        self.at_line_start = True
        self.scanned = 0

    def feed(self, chunk: bytes) -> bytes:
        """The text to show for ``chunk`` (possibly empty)."""
        self.scanned += len(chunk)
        end = chunk.rfind(b"\n")
        if end < 0:
            self.pending += chunk
            return self._partial() if len(self.pending) > self.flush_at else b""
        self.pending += chunk[: end + 1]
        complete = bytes(self.pending)
        self.pending = bytearray(chunk[end + 1 :])
        return self._lines(complete)

    def close(self) -> bytes:
        """The text to show for what is left when the stream ends."""
        if not self.pending:
            return b""
        rest = bytes(self.pending) + b"\n"
        self.pending = bytearray()
        return self._lines(rest)

    def _lines(self, complete: bytes) -> bytes:
        self.scanned += len(complete)
        text = redact(complete, self.secrets)
        lines = text.split(b"\n")[:-1]
        first = (self.prefix if self.at_line_start else b"") + lines[0] + b"\n"
        self.at_line_start = True
        return first + b"".join(self.prefix + line + b"\n" for line in lines[1:])

    def _partial(self) -> bytes:
        buf = bytes(self.pending)
        self.scanned += len(buf)
        cut = secret_patterns_spanning(buf, len(buf) - self.keep, self.secrets)
        if cut <= 0:
            return b""
        shown = (self.prefix if self.at_line_start else b"") + redact(buf[:cut], self.secrets)
        self.at_line_start = False
        del self.pending[:cut]
        return shown


class _Stream:
    def __init__(self, fd: int, echo: LineEcho) -> None:
        self.fd = fd
        self.saved = os.dup(fd)
        self.chunks: list[bytes] = []
        self.echo = echo
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
        self._streams = [
            _Stream(1, LineEcho(self.prefix, self._secrets)),
            _Stream(2, LineEcho(self.prefix, self._secrets)),
        ]
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
                    if self.echo:
                        self._write(stream, stream.echo.close())
                    os.close(fd)
                    del by_fd[fd]
                    continue
                stream.chunks.append(chunk)
                if self.echo:
                    shown = stream.echo.feed(chunk)
                    if shown:
                        self._write(stream, shown)

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
