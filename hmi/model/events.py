"""A minimal evented-model primitive: a list of callbacks called in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Event"]

T = TypeVar("T")


class Event(Generic[T]):
    """Callbacks taking one value, called synchronously by :meth:`emit` in connection order.

    A callback that raises propagates to the emitter: model code emits only
    after its own state is consistent, so a failing view cannot corrupt it.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], None]] = []

    def connect(self, callback: Callable[[T], None]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[T], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: T) -> None:
        for callback in list(self._callbacks):
            callback(value)
