"""The object store's errors (standard library only, shared by the stores and `safe_files`)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A storage operation failed; the message says which key and what to check."""


class ObjectNotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else "object not found"


class NotAnObject(StoreError):
    """The name exists but is not something the store reads: a link, a FIFO, a socket, a device."""


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10_000_000 else f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


class TooLarge(StoreError):
    """More bytes than the reader allows; found out before reading them."""

    def __init__(self, label: str, size: int, limit: int):
        super().__init__(f"{label} is {_mb(size)}, larger than the {_mb(limit)} limit")
        self.label, self.size, self.limit = label, size, limit
