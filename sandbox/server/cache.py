"""Values a served world derives from its store, each kept until its inputs change.

Sandbox answers are queries over a store that does not change while it is served; what they
show changes only with the world clock and with the overlays API writes put beside the store.
At a million customers some derived values (sorted parts, materialized relations, a vendor's
campaign stats) take seconds to build and are read on every page, so each vendor keeps them
here, keyed by what they were built from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import pyarrow as pa

from sandbox.server.state import SandboxState


@dataclass
class _Entry:
    version: tuple[Any, ...]
    value: Any
    inputs: tuple[Any, ...]  # kept alive, so the ids in `version` stay theirs


class Cache:
    """Named values, each kept until its inputs change. The store does not change while it is
    served, and a write replaces an overlay's table rather than changing it, so a value's
    version is the clock (where it matters) and the identity of the overlay tables it was read
    from."""

    def __init__(self) -> None:
        self._entries: dict[Any, _Entry] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: Any, inputs: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """The value named `name` for these inputs (tables by identity, other values by
        equality), built by `build()` if missing or stale. One build at a time per name:
        requests that want the same value wait for it rather than build it again."""
        version = tuple(id(i) if isinstance(i, pa.Table) else i for i in inputs)
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            entry = self._entries.get(name)
            if entry is None or entry.version != version:
                self._entries.pop(name, None)  # let the stale value go before its successor is built
                entry = self._entries[name] = _Entry(version, build(), inputs)
            return entry.value


_CACHES: WeakKeyDictionary[SandboxState, Cache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache(state: SandboxState) -> Cache:
    """The served world's cache."""
    with _CACHES_LOCK:
        return _CACHES.setdefault(state, Cache())
