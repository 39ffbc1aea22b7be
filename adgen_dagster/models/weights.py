"""Where a model's weights are: a local folder, or a snapshot already in the Hugging Face cache.

Code never downloads (the machines this runs on may have no network, and a silent 30 GB
download in the middle of a run is not what an operator expects): a hub id is looked up
in the local hub cache only, and anything missing is one error that says how to fetch
it and which setting to change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from adgen_dagster.models.errors import ModelError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_cache() -> Path:
    """Read at each call (huggingface_hub reads HF_HUB_CACHE once, at import), so a changed setting counts."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "huggingface")
    return Path(home).expanduser() / "hub"


def _snapshot(repo_id: str) -> Path | None:
    """The hub cache's snapshot folder for `repo_id` (the revision `refs/main` names), looked up by
    huggingface_hub with `local_files_only=True`: never a download."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # no neural extra: no backend that could use hub weights either
        return None
    try:
        return Path(snapshot_download(repo_id, cache_dir=hub_cache(), local_files_only=True))
    except (LocalEntryNotFoundError, ValueError):  # not cached (or incomplete); ValueError: not a valid id
        return None


def snapshot_name(ref: str) -> str:
    """The hub-cache snapshot (revision) that `ref` resolves to, or "" for a folder or an id not in the cache."""
    if not HUB_ID.match(ref) or Path(ref).expanduser().exists():
        return ""
    snap = _snapshot(ref)
    return snap.name if snap is not None else ""


def locate(ref: str, setting: str, marker: str = "config.json") -> Path:
    """The local folder holding the weights named by `ref` (a path or a hub id)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / marker).is_file():
            raise ModelError(f"{setting}={ref!r}: the folder has no {marker}; point {setting} at the model's folder "
                             f"(the one holding {marker})")
        return path
    if HUB_ID.match(ref) and not path.exists():
        snap = _snapshot(ref)
        if snap is not None and (snap / marker).is_file():
            return snap
        raise ModelError(
            f"{setting}={ref!r}: weights not found: not a local folder and not in the Hugging Face cache ({hub_cache()}). "
            f"Fetch them on a machine with network (`hf download {ref}`; copy the cache or a folder here) and set "
            f"{setting} to the folder, or HF_HOME to the cache"
        )
    raise ModelError(f"{setting}={ref!r}: no such folder; set {setting} to the model's folder or a Hugging Face id")


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files under `folder`: what loading it will take (before the load)."""
    total = 0
    for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth"):
        for f in Path(folder).rglob(pattern):
            try:
                total += f.stat().st_size
            except OSError:
                pass
    return total
