"""Listing the local store: every name below a folder, with what it is, links never followed.

`walk` yields `(key, kind, status)` for each entry that is not a folder: kind "file" for a
regular file (with its `lstat`) and "link", "fifo", "socket", "device" or "other" for the
rest, from the directory entry's type alone (nothing opened), so a looping or dangling
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


def _walk_fd(fd: int, rel: str, out: list) -> None:
    """Append this folder's entries, then its sub-folders', to `out` (a list, not a generator:
    a listing of 100,000 names is one pass with no per-name generator step)."""
    with os.scandir(fd) as it:
        entries = list(it)
    head = f"{rel}/" if rel else ""
    for entry in entries:
        name = entry.name
        try:
            if entry.is_file(follow_symlinks=False):  # the common case, from the entry's type alone
                if name[0] == "." and name.endswith(".part"):
                    continue  # in-flight atomic write
                # the file's status through this folder's descriptor, never following a link
                out.append((head + name, "file", os.stat(name, dir_fd=fd, follow_symlinks=False)))
            elif entry.is_dir(follow_symlinks=False):
                if name.startswith("."):
                    continue
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:  # replaced or unreadable meanwhile: say so, do not stop
                    if exc.errno in (errno.ENOENT,):
                        continue
                    out.append((head + name, "other", None))
                    continue
                try:
                    _walk_fd(sub, head + name, out)
                finally:
                    os.close(sub)
            elif not (name[0] == "." and name.endswith(".part")):
                out.append((head + name, _kind(entry), None))
        except FileNotFoundError:  # gone between listing and looking
            continue


def walk(root: str, head: str) -> list[tuple[str, str, "os.stat_result | None"]]:
    """Every non-folder entry below root/head, as (key relative to root, kind, status): a regular
    file's status is taken during the walk (one `fstatat` per file, through the folder's
    descriptor), so a whole listing costs one pass over the tree; other kinds have none."""
    out: list = []
    try:
        with safe_files.open_dir(root, head.split("/") if head else [], head or ".") as fd:
            _walk_fd(fd, head, out)
    except (ObjectNotFound, FileNotFoundError):
        pass
    return out
