"""Listing the local store: every name below a folder, with what it is, links never followed.

`walk` yields `(key, kind)` for each entry that is not a folder: kind "file" for a
regular file and "link", "fifo", "socket", "device" or "other" for the rest, from the
directory entry's type alone (no `stat`, nothing opened), so a looping or dangling
link, a FIFO or a device cannot stop, block or slow a listing; the caller reports each
of those as a name that is not an object. Folders are descended through descriptors
opened with `O_NOFOLLOW` (a link to a folder is reported, never entered). Hidden
folders and the store's own in-flight temporary files (`.<name>.<random>.part`) are
skipped, as before. Names are decoded as the filesystem gives them; bytes that are not
UTF-8 come back as surrogate escapes, which `object_store.key_problem` refuses.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator

from resources import safe_files
from resources.store_errors import ObjectNotFound

KINDS = {
    "link": "a symbolic link (links are not followed)",
    "fifo": "a FIFO (named pipe), not a regular file",
    "socket": "a socket, not a regular file",
    "device": "a device, not a regular file",
    "other": "not a regular file",
}


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_file(follow_symlinks=False):
        return "file"
    mode = entry.stat(follow_symlinks=False).st_mode  # rare: FIFOs, sockets, devices
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


def _walk_fd(fd: int, rel: str, with_stat: bool = False) -> Iterator[tuple]:
    with os.scandir(fd) as it:
        entries = list(it)
    for entry in entries:
        name = entry.name
        key = f"{rel}/{name}" if rel else name
        try:
            if entry.is_dir(follow_symlinks=False):
                if name.startswith("."):
                    continue
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:  # replaced or unreadable meanwhile: say so, do not stop
                    if exc.errno in (errno.ENOENT,):
                        continue
                    yield key, "other"
                    continue
                try:
                    yield from _walk_fd(sub, key, with_stat)
                finally:
                    os.close(sub)
                continue
            if name.startswith(".") and name.endswith(".part"):
                continue  # in-flight atomic write
            kind = _kind(entry)
            if not with_stat:
                yield key, kind
            else:  # the file's status through this folder's descriptor, never following a link
                yield key, kind, (os.stat(name, dir_fd=fd, follow_symlinks=False) if kind == "file" else None)
        except FileNotFoundError:  # gone between listing and looking
            continue


def walk(root: str, head: str) -> Iterator[tuple[str, str]]:
    """Every non-folder entry below root/head, as (key relative to root, kind)."""
    try:
        with safe_files.open_dir(root, head.split("/") if head else [], head or ".") as fd:
            yield from _walk_fd(fd, head)
    except (ObjectNotFound, FileNotFoundError):
        return


def walk_with_stat(root: str, head: str) -> Iterator[tuple[str, str, "os.stat_result | None"]]:
    """As `walk`, with each regular file's status taken during the walk (one `fstatat` per file,
    through the folder's descriptor): a whole listing costs one pass over the tree."""
    try:
        with safe_files.open_dir(root, head.split("/") if head else [], head or ".") as fd:
            yield from _walk_fd(fd, head, with_stat=True)
    except (ObjectNotFound, FileNotFoundError):
        return
