"""What the commands read and write on the local disk, with the store's rules.

- A file named on the command line is read even through a link, and may be a pipe
  (`adgen cutout <(cat x.jpg) x.png`): the user chose it. Every read is bounded.
- Inside a folder given as input, only regular files are taken: links, FIFOs, sockets,
  devices and sub-folders are skipped with a note, never opened. Hidden names count as
  photos as they do for the upload sensor (`.jpg`, `..jpg`, `.hidden.png`).
- A photo's sidecar (`<photo>.json` next to it) must be a regular file if it exists; a
  link or a FIFO there fails that photo, naming the sidecar. A name too long to have a
  sidecar has none.
- No output is ever written over an input (`Inputs.guard`).

Standard library only, like the rest of the command line's start-up.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from resources.object_store import shown
from resources.safe_files import kind, name_fits, read_capped

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")  # as resources.products


class WouldOverwrite(ValueError):
    """An output would replace one of the command's own inputs."""


def printable(text: str) -> str:
    """A path for a message line: undecodable bytes as \\xNN, control characters escaped (one line, always)."""
    return "".join(repr(c)[1:-1] if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in shown(text))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def output_stem(name: str) -> str:
    """The output name's stem for a photo: its name without the image suffix (`a.b.jpg` -> `a.b`);
    a name that is only a suffix (`.jpg`, `..jpg`) gets its product id instead."""
    from adgen_dagster.product_ids import product_id_for

    lower = name.lower()
    suffix = next((s for s in IMAGE_SUFFIXES if lower.endswith(s)), "")
    stem = name[: len(name) - len(suffix)] if suffix else name
    return stem if stem.strip(".") else product_id_for(name)


def scan_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """(photos, notes): the folder's regular image files in name order, and why each other entry is skipped.

    Sidecars (`*.json`) are skipped without a note: they belong to their photo.
    """
    photos, notes = [], []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = folder / entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        if stat.S_ISREG(st.st_mode):
            if entry.name.lower().endswith(".json"):
                continue
            if is_image_name(entry.name):
                photos.append(path)
            else:
                notes.append(f"skipped {printable(str(path))}: not an image file name")
        else:
            notes.append(f"skipped {printable(str(path))}: {kind(st.st_mode)}")
    return photos, notes


def read_named(path: Path, label: str, max_bytes: int) -> bytes:
    """A file the user named: links followed, pipes allowed, folders refused; at most `max_bytes`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise ValueError(f"{label}: a folder, not a photo")
        return read_capped(fd, label, max_bytes)
    finally:
        os.close(fd)


def read_stdin(max_bytes: int) -> bytes:
    import sys

    from resources.store_errors import TooLarge

    data = sys.stdin.buffer.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge("<stdin>", len(data), max_bytes)
    return data


def read_sidecar(photo: Path, label: str) -> Optional[bytes]:
    """The details next to a photo: None when there are none; a link or special file there fails the photo."""
    from adgen_dagster.imaging.details import MAX_DETAILS_BYTES
    from resources.safe_files import open_regular

    side = photo.with_name(photo.name + ".json")
    if not name_fits(side.name):
        return None  # a name that long cannot have a sidecar
    try:
        st = os.stat(side, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    fd = open_regular(None, str(side), f"{label}.json", follow=False)
    try:
        return read_capped(fd, f"{label}.json", MAX_DETAILS_BYTES)
    finally:
        os.close(fd)


@dataclass
class Inputs:
    """The files a command reads, so that none of them is ever written over."""

    ids: dict[tuple[int, int], str] = field(default_factory=dict)

    def add(self, path: Path, label: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode):
            self.ids[(st.st_dev, st.st_ino)] = label

    def guard(self, dest: Path, label: str) -> None:
        """Refuse `dest` (the output of `label`) when it is, or links to, one of the inputs."""
        try:
            st = os.stat(dest)
        except OSError:
            return
        other = self.ids.get((st.st_dev, st.st_ino))
        if other is not None:
            what = "this photo itself" if other == label else f"the input {other}"
            raise WouldOverwrite(f"{label}: not written: the output {printable(str(dest))} is {what}; choose another output")
