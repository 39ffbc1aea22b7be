"""Moved to `adgen_dagster.encoding` (the Dagster-free stage runner encodes outputs); kept for old imports."""

from adgen_dagster.encoding import (  # noqa: F401
    DOWNLOAD_LEVEL,
    FAST_LEVEL,
    INTERMEDIATE,
    FileValue,
    decode_png,
    encode_files,
    encode_json,
    encode_output,
    encode_png,
    encoder_pool,
    png_level,
    preview_markdown,
)
