"""Reading and writing files below a root without ever following a symbolic link.

The rule (SECURITY.md, "Links and special files"): below the local store's root no
symbolic link is followed, for reading, writing, listing or creating folders, whether
it points inside the store or out of it, dangles or loops; and only regular files are
ever opened: FIFOs, sockets and devices are refused from their `lstat` alone, so a FIFO
cannot block a reader and `/dev/zero` cannot be read. Paths are walked one component at
a time with `O_NOFOLLOW` directory descriptors (`openat`), so nothing can swap a folder
for a link between a check and its use. Every read is bounded before it happens: the
size comes from the open file, and at most `max_bytes + 1` bytes are read.

Standard library only: the command line uses the same functions for the files it is
given (`read_file`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import Iterator, Optional

from resources.store_errors import NotAnObject, ObjectNotFound, TooLarge

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NAME_MAX = 255


def kind(mode: int) -> str:
    """What a non-regular file is, in words (for messages)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not followed)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode):
        return "a character device, not a regular file"
    if stat.S_ISBLK(mode):
        return "a block device, not a regular file"
    return "not a regular file"


@contextlib.contextmanager
def open_dir(root: str, parts: list[str], label: str, create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts[0]/.../parts[-1], refusing links on the way (and making folders if `create`).

    Missing folders raise `ObjectNotFound` (unless created); a link or a file where a
    folder should be raises `NotAnObject` naming that component.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                where = "/".join(parts[:i + 1])
                if exc.errno in (errno.ENOENT, errno.ENAMETOOLONG):
                    raise ObjectNotFound(f"no {label!r}: the folder {where!r} does not exist") from None
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    raise NotAnObject(f"{label!r} cannot be reached: {where!r} is {kind(st.st_mode)}") from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> Optional[os.stat_result]:
    """The entry's own status (links not followed); None when it does not exist or cannot (name too long)."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None
        raise


def open_regular(dir_fd: Optional[int], name: str, label: str, follow: bool = False) -> int:
    """A read descriptor of a regular file, never opening anything else.

    The entry is checked with `lstat` before it is opened (a FIFO or a device is never
    opened at all) and again with `fstat` after (in case it was swapped in between).
    `follow=True` (the command line, for a file the user named) allows the name itself to
    be a link; the target must still be a regular file.
    """
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=follow)
    if not stat.S_ISREG(st.st_mode):
        raise NotAnObject(f"{label} is {kind(st.st_mode)}; it is never opened")
    fd = os.open(name, _READ_FLAGS & ~(0 if not follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise NotAnObject(f"{label} changed into {kind(now.st_mode)} while being opened; it is not read")
    return fd


def read_capped(fd: int, label: str, max_bytes: Optional[int]) -> bytes:
    """All of an open file, or `TooLarge` when it holds more than `max_bytes` (checked before reading)."""
    size = os.fstat(fd).st_size
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(label, size, max_bytes)
    chunks, total = [], 0
    cap = None if max_bytes is None else max_bytes + 1
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        while cap is None or total < cap:
            chunk = fh.read(min(1 << 24, cap - total) if cap is not None else 1 << 24)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if max_bytes is not None and total > max_bytes:  # it grew while being read
        raise TooLarge(label, total, max_bytes)
    return b"".join(chunks)


def read_file(path: str, label: str, max_bytes: Optional[int], follow: bool = True) -> bytes:
    """A local file given to the command line: regular files only, bounded."""
    fd = open_regular(None, path, label, follow=follow)
    try:
        return read_capped(fd, label, max_bytes)
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    """A hidden temporary name next to `name` that stays within the 255-byte name limit."""
    stem = name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "ignore")
    return f".{stem}.{secrets.token_hex(4)}.part"


def write_new(dir_fd: int, name: str, data: bytes, xattrs: Optional[dict[str, bytes]] = None, mode: int = 0o666) -> None:
    """Create `name` (which must not exist) in the folder and write `data` durably.

    Mode 0666 less the process's umask, as for any file a program writes (0644 under the usual
    022): stored ads must be readable by a web server or a colleague.

    Extended attributes are set where the filesystem has them (silently skipped elsewhere).
    """
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with open(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
        os.fsync(fd)
        for key, value in (xattrs or {}).items():
            with contextlib.suppress(OSError, AttributeError):
                os.setxattr(fd, key, value)
    finally:
        os.close(fd)


def name_fits(name: str) -> bool:
    return len(name.encode("utf-8", "surrogateescape")) <= _NAME_MAX
