"""The one way the package builds something on first use: ``Lazy[T]``.

A cold start pays for what it imports and builds; a dispatcher whose deliveries all succeed never
needs SQS, and one that meets no digest or rate limit never needs their stores or modules. So the
composition root hands such things in as ``Lazy`` values, typed as what they build (mypy sees a
``Lazy[WindowStore]``, not ``Any``), built once even when the sender's threads race for them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Lazy"]


class Lazy(Generic[T]):
    """``build()`` run once, on the first ``get()`` (or call: a ``Lazy[T]`` is a ``Callable[[], T]``)."""

    __slots__ = ("_build", "_done", "_lock", "_value")

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._done = False

    def get(self) -> T:
        if not self._done:
            with self._lock:
                if not self._done:
                    self._value = self._build()
                    self._done = True
        return self._value  # type: ignore[return-value]  # set with _done, and T may itself admit None

    __call__ = get

    @property
    def built(self) -> bool:
        """Whether the value exists yet (a hook that must reach it only if it was built asks this)."""
        return self._done
