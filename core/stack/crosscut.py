"""Cross-cutting plugins registered beside a layer's adapter, so they work over any adapter.

- :class:`Tracer` is a set of pluggy wrappers: it times every hook call of a layer.
- :class:`QueryCache` answers ``data_query`` from a cache (``tryfirst``) before the adapter, fills
  the cache from a wrapper, and drops it when anything is written.
Retry is not here: a wrapper yields exactly once and cannot call the adapter again, so retry lives
in the layer facade (``lamina.stack.facades``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from ..hookspecs import hookimpl


@dataclass
class CallRecord:
    layer: str
    hook: str
    seconds: float
    ok: bool


@dataclass
class TraceLog:
    records: list[CallRecord] = field(default_factory=list)
    echo: bool = False

    def add(self, record: CallRecord) -> None:
        self.records.append(record)
        if self.echo:
            print(
                f"[lamina trace] {record.layer}.{record.hook} {record.seconds * 1000:.1f} ms"
                + ("" if record.ok else " (raised)"),
                file=sys.stderr,
            )


def make_tracer(layer: str, spec: type, log: TraceLog) -> object:
    """Build a plugin object with one timing wrapper per hook of ``spec``."""

    def wrapper_for(hook: str) -> Callable[..., Generator[None, Any, Any]]:
        # A pluggy implementation may take any subset of the spec's arguments; none are needed.
        def wrapper(self: object) -> Generator[None, Any, Any]:
            start = time.perf_counter()
            try:
                result = yield
            except BaseException:
                log.add(CallRecord(layer, hook, time.perf_counter() - start, False))
                raise
            log.add(CallRecord(layer, hook, time.perf_counter() - start, True))
            return result

        return wrapper

    namespace: dict[str, Any] = {}
    for hook in _hook_names(spec):
        func = wrapper_for(hook)
        func.__name__ = hook
        func.__qualname__ = f"Tracer.{hook}"
        namespace[hook] = hookimpl(wrapper=True)(func)
    return type(f"Tracer_{layer}", (), namespace)()


def _hook_names(spec: type) -> list[str]:
    return [name for name in vars(spec) if not name.startswith("_") and callable(getattr(spec, name))]


class _CacheState:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Any] = {}
        self.hits = 0
        self.misses = 0


class QueryCache:
    """Answers repeated identical queries from memory until something is written."""

    def __init__(self) -> None:
        self.state = _CacheState()
        self.lookup = _CacheLookup(self.state)
        self.fill = _CacheFill(self.state)

    @property
    def hits(self) -> int:
        return self.state.hits

    @property
    def misses(self) -> int:
        return self.state.misses


def _key(sql: str, parameters: list[Any] | None) -> tuple[str, str]:
    return (sql, repr(parameters))


class _CacheLookup:
    def __init__(self, state: _CacheState) -> None:
        self.state = state

    @hookimpl(tryfirst=True)
    def data_query(self, sql: str, parameters: list[Any] | None) -> Any:
        hit = self.state.entries.get(_key(sql, parameters))
        if hit is not None:
            self.state.hits += 1
        return hit


class _CacheFill:
    def __init__(self, state: _CacheState) -> None:
        self.state = state

    @hookimpl(wrapper=True)
    def data_query(self, sql: str, parameters: list[Any] | None) -> Generator[None, Any, Any]:
        result = yield
        key = _key(sql, parameters)
        if key not in self.state.entries:
            self.state.misses += 1
            self.state.entries[key] = result
        return result

    @hookimpl(wrapper=True)
    def data_write(self, name: str, table: Any, mode: str) -> Generator[None, Any, Any]:
        self.state.entries.clear()
        return (yield)
