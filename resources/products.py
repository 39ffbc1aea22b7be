"""The link between uploads and products (partitions).

Registering an upload records, under `products/<pid>/upload.json`, which object the
product comes from and its version at that time. Assets find their input through this
record, so they never have to list the upload prefix (which may hold thousands of
objects), and a product id never has to be turned back into a file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from adgen_dagster.encoding import encode_json
from adgen_dagster.imaging.decode import BadImageError
from adgen_dagster.imaging.details import MAX_DETAILS_BYTES, DetailsError
from adgen_dagster.product_ids import product_id_for
from adgen_dagster.stage_runner import product_key  # noqa: F401 - re-exported: where products' files live
from resources.object_store import ObjectNotFound, ObjectStore, TooLarge

UPLOADS = "uploads/"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class UploadRecord:
    product_id: str
    upload_key: str
    version: str

    @property
    def sidecar_key(self) -> str:
        return self.upload_key + ".json"

    @property
    def file_name(self) -> str:
        return self.upload_key[len(UPLOADS):] if self.upload_key.startswith(UPLOADS) else self.upload_key


def is_image_name(key: str) -> bool:
    return key.lower().endswith(IMAGE_SUFFIXES)


def register_upload(store: ObjectStore, upload_key: str) -> UploadRecord:
    """Record that `upload_key` is the source of its product; returns the record."""
    if not upload_key.startswith(UPLOADS):
        raise ValueError(f"uploads live under {UPLOADS!r}, got {upload_key!r}")
    info = store.info(upload_key)
    if info is None:
        raise ObjectNotFound(f"no upload {upload_key!r} in {store.uri(UPLOADS)}")
    rec = UploadRecord(product_id_for(upload_key[len(UPLOADS):]), upload_key, info.version)
    store.put(product_key(rec.product_id, "upload.json"), encode_json({"upload": rec.upload_key, "version": rec.version}))
    return rec


def upload_for(store: ObjectStore, pid: str) -> UploadRecord:
    try:
        raw = json.loads(store.get(product_key(pid, "upload.json")))
    except ObjectNotFound:
        raise ObjectNotFound(
            f"product {pid!r} has no registered upload (products/{pid}/upload.json); "
            "add the photo under uploads/ and register it (sensor or `make demo`)"
        ) from None
    return UploadRecord(pid, raw["upload"], raw.get("version", ""))


def upload_files(store: ObjectStore, rec: UploadRecord, max_bytes: int) -> dict[str, bytes]:
    """The product_image stage's sources: the upload and its optional sidecar, each read only if small enough.

    A file over its limit fails with the sentence `decode_upload` / `parse_details` would give.
    """
    name = rec.file_name
    try:
        upload = store.get(rec.upload_key, max_bytes)
    except TooLarge as exc:
        raise BadImageError(f"{name}: the file is {exc.size / 1e6:.0f} MB, larger than the "
                            f"{max_bytes / 1e6:.0f} MB limit") from None
    try:
        sidecar = store.get_or_none(rec.sidecar_key, MAX_DETAILS_BYTES) or b""
    except TooLarge as exc:
        raise DetailsError(f"{name}.json: {exc.size / 1e6:.1f} MB of details, larger than the "
                           f"{MAX_DETAILS_BYTES / 1e6:.0f} MB limit") from None
    return {"upload": upload, "sidecar": sidecar}
