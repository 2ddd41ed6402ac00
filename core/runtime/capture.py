"""Capture a task's stdout and stderr at the file-descriptor level.

Output of the step, of C extensions and of subprocesses it starts all go through fds 1 and 2; we
point them at pipes, and a reader thread shows each line live, prefixed with the step and task,
and keeps every byte for the task's stored logs.
"""

from __future__ import annotations

import os
import sys
import threading


class _Stream:
    def __init__(self, fd: int, prefix: bytes, echo: bool) -> None:
        self.fd = fd
        self.prefix = prefix
        self.echo = echo
        self.saved = os.dup(fd)
        self.chunks: list[bytes] = []
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name=f"lamina-capture-{fd}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.chunks.append(chunk)
            if self.echo:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    self._write(b"".join(self.prefix + line + b"\n" for line in lines))
        if self.echo and pending:
            self._write(self.prefix + pending + b"\n")
        os.close(self.read_end)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.saved, view)
            except OSError:
                return
            view = view[written:]

    def close(self) -> bytes:
        os.dup2(self.saved, self.fd)  # closes the pipe's last write end: the pump sees EOF
        self.thread.join(timeout=10)
        os.close(self.saved)
        return b"".join(self.chunks)


class Capture:
    """``with Capture("[train/3] ") as cap: ...``; then ``cap.stdout``, ``cap.stderr`` (bytes)."""

    def __init__(self, prefix: str, echo: bool = True) -> None:
        self.prefix = prefix.encode()
        self.echo = echo
        self.stdout = b""
        self.stderr = b""
        self._streams: list[_Stream] = []

    def __enter__(self) -> Capture:
        _flush()
        self._streams = [_Stream(1, self.prefix, self.echo), _Stream(2, self.prefix, self.echo)]
        return self

    def __exit__(self, *exc: object) -> None:
        _flush()
        out, err = (s.close() for s in self._streams)
        self.stdout, self.stderr = out, err


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
