"""The object store: one small interface, one implementation per backend.

Assets only ever talk to `ObjectStore`, so switching the embedded local directory for
S3 (or MinIO, R2, Ceph) is a setting, not a code change. Keys are POSIX-style relative
paths (`products/<pid>/mask.png`); the store validates them so a hostile upload name
can never address anything outside the store.

Guarantees every implementation keeps:
- `put` is atomic: a reader sees the old object or the new one, never half of one;
- `put_if_absent` writes only when the key does not exist yet (write-once cache);
- `list` pages in key order with `start_after`, so callers can resume across ticks.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

_KEY_RE = re.compile(r"^[^/\x00-\x1f\\][^\x00-\x1f\\]*$")


class StoreError(RuntimeError):
    """A storage operation failed; the message says which key and what to check."""


class ObjectNotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else "object not found"


def check_key(key: str) -> str:
    """Refuse keys that are not plain relative paths (no `..`, no absolute, no control chars)."""
    if not key or not _KEY_RE.match(key) or key.endswith("/"):
        raise ValueError(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' path segment")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    version: str  # ETag on S3, mtime_ns + size locally: changes when the object is replaced
    modified: float = field(default=0.0, compare=False)  # last write, epoch seconds (0 = unknown)


@dataclass(frozen=True)
class ListPage:
    objects: list[ObjectInfo]
    next_start_after: Optional[str]  # None when the listing is complete


class ObjectStore(abc.ABC):
    """What the pipeline needs from storage, nothing more."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Write only if `key` does not exist; True when this call wrote it."""

    @abc.abstractmethod
    def info(self, key: str) -> Optional[ObjectInfo]: ...

    @abc.abstractmethod
    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> ListPage: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """A human-readable location for logs and metadata (file path or s3:// URL)."""

    def digest(self, key: str) -> Optional[str]:
        """The sha256 recorded with the object when this store wrote it, without reading it.

        None when unknown (an object written by someone else, or a filesystem without
        extended attributes); callers then hash the bytes themselves.
        """
        return None

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def get_or_none(self, key: str) -> Optional[bytes]:
        try:
            return self.get(key)
        except ObjectNotFound:
            return None

    def list(self, prefix: str, page_size: int = 1000) -> Iterator[ObjectInfo]:
        start = None
        while True:
            page = self.list_page(prefix, start_after=start, limit=page_size)
            yield from page.objects
            if page.next_start_after is None:
                return
            start = page.next_start_after


def _create_beside(path: Path) -> tuple[int, str]:
    """A new, uniquely named temp file in `path`'s folder, open for writing.

    Created with mode 0666 so that the kernel applies the process's umask, as for any file a
    program writes (0644 under the usual 022): `tempfile.mkstemp` would make every stored
    object 0600, unreadable by a web server or a colleague.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


class LocalObjectStore(ObjectStore):
    """A directory on disk; the embedded default (`.adgen/` in the working directory)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # a name this filesystem cannot hold cannot exist here
                raise ObjectNotFound(f"no object {key!r} in {self.root} (name too long for this filesystem)") from None
            raise

    _DIGEST_XATTR = "user.adgen.sha256"

    def _write_temp(self, path: Path, data: bytes) -> str:
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _create_beside(path)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            # The digest travels with the file through the atomic rename.
            with contextlib.suppress(OSError, AttributeError):
                os.setxattr(tmp, self._DIGEST_XATTR, hashlib.sha256(data).hexdigest().encode())
            return tmp
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"disk full while writing {path} (local store root: {self.root}); free space or set ADGEN_STORE__ROOT") from None
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        os.replace(tmp, path)  # atomic on POSIX within one directory

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)  # fails if the target exists: an atomic create-once
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def info(self, key: str) -> Optional[ObjectInfo]:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return None
            raise
        if not os.path.isfile(self._path(key)):
            return None
        return ObjectInfo(key=key, size=st.st_size, version=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                          modified=st.st_mtime_ns / 1e9)

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> ListPage:
        base = self.root
        keys = []
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        walk_from = base.joinpath(*check_key(head).split("/")) if head else base
        for dirpath, dirnames, filenames in os.walk(walk_from):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, base)
            for fn in filenames:
                if fn.startswith(".") and fn.endswith(".part"):
                    continue  # in-flight atomic write
                key = fn if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{fn}"
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        keys.sort()
        page = keys[:limit]
        objects = [i for i in (self.info(k) for k in page) if i is not None]
        return ListPage(objects, page[-1] if len(keys) > limit else None)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def digest(self, key: str) -> Optional[str]:
        try:
            return os.getxattr(self._path(key), self._DIGEST_XATTR).decode()
        except (OSError, AttributeError):
            return None
