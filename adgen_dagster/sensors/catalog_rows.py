"""A catalog's rows: parsed from CSV or JSONL, checked one by one, applied to the store.

Each row names an upload (`file`) and its details (name, headline, subline, price, style;
optional palette, seed). A valid row's details become the sidecar `uploads/<file>.json`
and the product's upload record says which catalog requested its run; a bad row gets one
readable error and never stops the others. `catalogs.py` decides which rows a tick takes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Optional

from pydantic import ValidationError

from adgen_dagster.imaging.details import MAX_DETAILS_BYTES, ProductDetails
from adgen_dagster.product_ids import is_valid_product_id, product_id_for
from adgen_dagster.sensors.base import read_json
from adgen_dagster.encoding import encode_json
from resources.object_store import NotAnObject, ObjectStore, TooLarge, check_key
from resources.products import UPLOADS, is_image_name, product_key

DETAIL_FIELDS = ("name", "headline", "subline", "price", "style", "palette", "seed")


class CatalogError(ValueError):
    """The whole catalog cannot be read (encoding, missing `file` column, too large)."""


@dataclass
class Row:
    number: int  # 1-based data row (CSV: header not counted; JSONL: line number)
    fields: dict = field(default_factory=dict)
    error: str = ""
    file: str = ""
    pid: str = ""
    details: Optional[ProductDetails] = None
    run_key: str = ""


def parse_catalog(key: str, data: bytes) -> list[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text ({exc})") from None
    rows: list[Row] = []
    if key.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "file" not in columns:
                raise CatalogError(f"no 'file' column (columns: {', '.join(columns) or 'none'})")
            reader.fieldnames = columns
            for n, raw in enumerate(reader, start=1):
                rows.append(Row(n, {k: v for k, v in raw.items() if k is not None}))
        except csv.Error as exc:  # e.g. a field over the csv module's size limit: the rest cannot be trusted
            raise CatalogError(f"not readable as CSV after row {len(rows)} ({exc})") from None
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(Row(n, error=f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except RecursionError:
            rows.append(Row(n, error="not usable JSON (nested too deeply)"))
            continue
        if not isinstance(value, dict):
            rows.append(Row(n, error=f"expected a JSON object, got {type(value).__name__}"))
            continue
        rows.append(Row(n, {str(k).strip().lower(): v for k, v in value.items()}))
    return rows


def validate_row(row: Row) -> None:
    """Shape checks that need no store calls; sets row.error or file/pid/details."""
    if row.error:
        return
    file = row.fields.get("file")
    if not isinstance(file, str) or not file.strip():
        row.error = "missing 'file'"
        return
    row.file = file.strip().replace("\\", "/")
    try:
        check_key(UPLOADS + row.file)
    except ValueError:
        row.error = f"'file' {row.file!r} is not a plain path under uploads/"
        return
    if not is_image_name(row.file):
        row.error = f"'file' {row.file!r} is not an image file name"
        return
    values = {k: row.fields[k] for k in DETAIL_FIELDS if row.fields.get(k) not in (None, "")}
    try:
        row.details = ProductDetails.model_validate(values)
    except ValidationError as exc:
        row.error = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        return
    row.pid = product_id_for(row.file)
    if not is_valid_product_id(row.pid):
        row.error = f"no valid product id from {row.file!r}"


def _same_sidecar(store: ObjectStore, key: str, data: bytes) -> bool:
    """Whether the stored sidecar already holds `data`; one that is not a readable file is replaced."""
    try:
        return store.get_or_none(key, MAX_DETAILS_BYTES) == data
    except (NotAnObject, TooLarge):
        return False


def apply_row(store: ObjectStore, catalog: str, row: Row) -> Row:
    """Write the sidecar and the upload record for one valid row. Never raises."""
    try:
        key = UPLOADS + row.file
        info = store.info(key)
        if info is None:
            row.error = f"file {key!r} not found in the store"
            return row
        if info.size == 0:
            row.error = f"file {key!r} is empty"
            return row
        sidecar = key + ".json"
        data = encode_json(row.details.model_dump(exclude_defaults=True))
        if not _same_sidecar(store, sidecar, data):
            store.put(sidecar, data, "application/json")
        sidecar_info = store.info(sidecar)
        record = {"upload": key, "version": info.version, "sidecar_version": sidecar_info.version if sidecar_info else "-",
                  "requested_by": f"catalog {catalog}"}
        if read_json(store, product_key(row.pid, "upload.json")) != record:
            store.put(product_key(row.pid, "upload.json"), encode_json(record), "application/json")
    except (NotAnObject, ValueError) as exc:  # a link or a special file where the photo or its folder should be
        row.error = str(exc)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    return row

