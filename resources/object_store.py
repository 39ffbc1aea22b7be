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
import stat
from stat import S_ISREG
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Iterator, Optional

from resources import local_listing, safe_files
from resources.store_errors import NotAnObject, ObjectNotFound, StoreError, TooLarge

__all__ = ["ListPage", "LocalObjectStore", "NotAnObject", "ObjectInfo", "ObjectNotFound", "ObjectStore", "Refused",
           "StoreError", "TooLarge", "check_key", "key_problem", "shown"]

_CONTROL = {*range(0x00, 0x20), *range(0x7F, 0xA0)}  # C0, DEL and C1


def shown(key: str) -> str:
    """A key as logs may show it: bytes that are not UTF-8 (a local file name) as \\xNN."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Keys without a surrogate escape, control character or backslash (the common case, checked in C):
_NO_BAD_CHARACTER = re.compile("[^\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff]+")


_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")


def key_problem(key: str) -> Optional[str]:
    """Why `key` is not a plain relative path, in words; None when it is one."""
    if not key:
        return "the key is empty"
    if _NO_BAD_CHARACTER.fullmatch(key):
        return _path_problem(key)
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in key):
        return "the name is not valid UTF-8"
    bad = next((c for c in key if ord(c) in _CONTROL), None)
    if bad is not None:
        return f"the name holds the control character {bad!r}"
    if "\\" in key:
        return "the name holds a backslash"
    return _path_problem(key)


def _path_problem(key: str) -> Optional[str]:
    if key.startswith("/"):
        return "it is an absolute path"
    if key.endswith("/"):
        return "it ends with '/' (a folder marker)"
    if "//" in key or _DOT_SEGMENT.search(key):
        return "it has an empty, '.' or '..' path segment"
    return None


def check_key(key: str) -> str:
    """Refuse keys that are not plain relative paths (no `..`, no absolute, no control chars)."""
    problem = key_problem(key)
    if problem is not None:
        raise ValueError(f"invalid object key {shown(key)!r}: {problem}")
    return key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    version: str  # ETag on S3, mtime_ns + size locally: changes when the object is replaced
    modified: float = field(default=0.0, compare=False)  # last write, epoch seconds (0 = unknown)


@dataclass(frozen=True)
class Refused:
    """A listed name that is not an object the pipeline may read, and why."""

    key: str  # as `shown`: safe to log
    reason: str


@dataclass(frozen=True)
class ListPage:
    objects: list[ObjectInfo]
    next_start_after: Optional[str]  # None when the listing is complete
    refused: list[Refused] = field(default_factory=list)  # names on this page that are not objects


class ObjectStore(abc.ABC):
    """What the pipeline needs from storage, nothing more."""

    @abc.abstractmethod
    def get(self, key: str, max_bytes: Optional[int] = None) -> bytes:
        """The object's bytes; `TooLarge` (before reading) when it is over `max_bytes`."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Write only if `key` does not exist; True when this call wrote it."""

    @abc.abstractmethod
    def info(self, key: str) -> Optional[ObjectInfo]:
        """None when there is no such object; `NotAnObject` when the name holds something else."""

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

    def get_or_none(self, key: str, max_bytes: Optional[int] = None) -> Optional[bytes]:
        try:
            return self.get(key, max_bytes)
        except ObjectNotFound:
            return None

    def list(self, prefix: str, page_size: int = 1000) -> Iterator[ObjectInfo]:
        for page in self.list_pages(prefix, page_size=page_size):
            yield from page.objects

    def list_pages(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ListPage]:
        """`list_page` after `list_page` to the end of the listing (stop early by not asking for more)."""
        while True:
            page = self.list_page(prefix, start_after=start_after, limit=page_size)
            yield page
            if page.next_start_after is None:
                return
            start_after = page.next_start_after


# What the local listings found, per (store root, prefix): key -> (st_mtime_ns, st_ctime_ns, ObjectInfo).
_LISTED: dict[tuple[str, str], dict[str, tuple[int, int, ObjectInfo]]] = {}


class LocalObjectStore(ObjectStore):
    """A directory on disk; the embedded default (`.adgen/` in the working directory).

    Below the root no symbolic link is followed and only regular files are read
    (`resources.safe_files`); the root itself may be a link (the operator's choice).
    """

    def __init__(self, root: str | os.PathLike):
        if not str(root).strip():
            raise StoreError("the local store root is empty; set ADGEN_STORE__ROOT to a folder (e.g. .adgen)")
        self.root = Path(root).expanduser().resolve()
        self._check_root()

    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the local store root {self.root} is a file, not a folder; set ADGEN_STORE__ROOT to a folder")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @contextlib.contextmanager
    def _dir_of(self, key: str, create: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of the key's folder, its last name), links refused on the way."""
        parts = check_key(key).split("/")
        self._check_root()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            with safe_files.open_dir(str(self.root), parts[:-1], key, create=create) as fd:
                yield fd, parts[-1]
        except FileNotFoundError:  # no root yet: nothing is stored
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from None

    def get(self, key: str, max_bytes: Optional[int] = None) -> bytes:
        missing = ObjectNotFound(f"no object {key!r} in {self.root}")
        try:
            with self._dir_of(key) as (fd, name):
                st = safe_files.lstat_at(fd, name)
                if st is None or stat.S_ISDIR(st.st_mode):  # a folder is not an object (as on S3)
                    raise missing
                f = safe_files.open_regular(fd, name, key)
                try:
                    return safe_files.read_capped(f, key, max_bytes)
                finally:
                    os.close(f)
        except ObjectNotFound:
            raise missing from None

    _DIGEST_XATTR = "user.adgen.sha256"

    def _write_temp(self, key: str, data: bytes) -> tuple[int, str, str]:
        """A complete temporary file next to `key`: (folder descriptor, temp name, final name)."""
        path = self._path(key)
        stack = contextlib.ExitStack()
        tmp = None
        try:
            fd, name = stack.enter_context(self._dir_of(key, create=True))
            tmp = safe_files.temp_name(name)
            # The digest travels with the file through the atomic rename.
            safe_files.write_new(fd, tmp, data, {self._DIGEST_XATTR: hashlib.sha256(data).hexdigest().encode()})
            return os.dup(fd), tmp, name
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"disk full while writing {path} (local store root: {self.root}); free space or set ADGEN_STORE__ROOT") from None
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            stack.close()

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        fd, tmp, name = self._write_temp(key, data)
        try:
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)  # atomic on POSIX within one directory
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise StoreError(f"cannot write {self._path(key)}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        fd, tmp, name = self._write_temp(key, data)
        try:
            os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)  # fails if the target exists: an atomic create-once
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            os.close(fd)

    def _lstat(self, key: str) -> Optional[os.stat_result]:
        try:
            with self._dir_of(key) as (fd, name):
                return safe_files.lstat_at(fd, name)
        except ObjectNotFound:
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return None
            raise

    def info(self, key: str) -> Optional[ObjectInfo]:
        st = self._lstat(key)
        if st is None or stat.S_ISDIR(st.st_mode):  # a folder is not an object (as on S3)
            return None
        if not stat.S_ISREG(st.st_mode):
            raise NotAnObject(f"{key} is {safe_files.kind(st.st_mode)}")
        return self._info(key, st)

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        # `modified` is when the file arrived or last changed here: a copy that keeps an old
        # file time (cp -p, rsync -a, unzip) still counts as the latest upload.
        return ObjectInfo(key=key, size=st.st_size, version=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                          modified=max(st.st_mtime_ns, st.st_ctime_ns) / 1e9)

    def list_page(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> ListPage:
        return next(self.list_pages(prefix, start_after, limit))

    def list_pages(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ListPage]:
        """The pages of one walk over the folder: a whole listing costs one pass over the tree,
        however many pages it has (each `list_page` call walks the tree again).

        A file listed before with the same status (modification and change times, size) is
        the same object: its key was checked and its `ObjectInfo` built when it was first
        listed (`_LISTED`), so listing an unchanged folder again costs one look-up per file
        and gives the same `ObjectInfo` objects. A whole listing forgets the deleted files.
        """
        self._check_root()
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        entries = sorted((e for e in local_listing.walk(str(self.root), head) if e[0].startswith(prefix)
                          and (start_after is None or e[0] > start_after)), key=itemgetter(0))
        if not entries:
            yield ListPage([], None, [])
            return
        known = _LISTED.setdefault((str(self.root), prefix), {})
        files = 0
        for at in range(0, len(entries), max(1, page_size)):
            page = entries[at:at + page_size]
            objects, refused = [], []
            for key, entry_kind, st in page:
                if st is not None and S_ISREG(st.st_mode):
                    hit = known.get(key)
                    if hit is None or hit[0] != st.st_mtime_ns or hit[1] != st.st_ctime_ns or hit[2].size != st.st_size:
                        problem = key_problem(key)
                        if problem is not None:
                            refused.append(Refused(shown(key), f"invalid object key: {problem}"))
                            continue
                        hit = known[key] = (st.st_mtime_ns, st.st_ctime_ns, self._info(key, st))
                    objects.append(hit[2])
                    continue
                problem = key_problem(key)
                if problem is not None:
                    refused.append(Refused(shown(key), f"invalid object key: {problem}"))
                else:
                    refused.append(Refused(key, safe_files.kind(st.st_mode) if st is not None else local_listing.KINDS[entry_kind]))
            files += len(objects)
            last = at + page_size >= len(entries)
            if last and start_after is None and len(known) > files:  # a whole listing: forget deleted files
                listed = {e[0] for e in entries}
                for key in [k for k in known if k not in listed]:
                    del known[key]
            yield ListPage(objects, None if last else page[-1][0], refused)

    def delete(self, key: str) -> None:
        try:
            with self._dir_of(key) as (fd, name):
                os.unlink(name, dir_fd=fd)
        except (ObjectNotFound, FileNotFoundError):
            pass

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def digest(self, key: str) -> Optional[str]:
        try:
            with self._dir_of(key) as (fd, name):
                f = safe_files.open_regular(fd, name, key)
                try:
                    return os.getxattr(f, self._DIGEST_XATTR).decode()
                finally:
                    os.close(f)
        except (OSError, AttributeError, StoreError):
            return None
