"""What a hostile or careless upload folder holds, built on a real filesystem for the tests:
odd names, links of every kind, FIFOs, sockets, folders named like files, sparse giants."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

# Names no store key may hold: each is skipped by the sensors with this reason (words from it).
REFUSED_NAMES = {
    "new\nline.jpg": "control character '\\n'",
    "esc\x1b[31mred.jpg": "control character '\\x1b'",
    "back\\slash.jpg": "backslash",
    "tab\there.jpg": "control character '\\t'",
    "del\x7f.jpg": "control character '\\x7f'",
    "c1\x85next.jpg": "control character '\\x85'",
    "bell\x07.png": "control character '\\x07'",
}
NOT_UTF8 = b"caf\xe9 cr\xe8me.jpg"  # Latin-1 bytes: not a UTF-8 name
# Odd but valid names: each is a product of its own.
ODD_BUT_FINE = [".jpg", "..jpg", ".hidden.png", "CON.jpg", "nul.png", "COM1.webp", "aux .jpg", "  spaced  .jpg",
                "l" * 251 + ".jpg"]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@contextlib.contextmanager
def unix_socket(path: Path):
    """A listening socket at `path` (bound from inside its folder: socket paths are short)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    try:
        os.chdir(path.parent)
        s.bind(path.name)
        s.listen(1)
    finally:
        os.chdir(here)
    try:
        yield path
    finally:
        s.close()


def link(path: Path, target: str | Path) -> Path:
    os.symlink(target, path)
    return path


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a 30 GB 'photo')."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry below `root` with its size and mtime (links not followed): to prove nothing was written there."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            out[os.path.relpath(os.path.join(d, n), root)] = (st.st_size, st.st_mtime_ns)
    return out
