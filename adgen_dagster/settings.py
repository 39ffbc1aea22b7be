"""Settings with laptop-safe defaults, overridable by `ADGEN_*` environment variables.

One place lists every knob of every stage. Each stage's parameters are the core's own
pydantic model (so the core stays Dagster-free); the assets turn each of them into a
Dagster `Config` whose defaults come from here, so the same setting can be changed by
environment (`ADGEN_RETOUCH__BRIGHTNESS=1.1`) or per run in the Launchpad
(`ops: {retouched: {config: {brightness: 1.1}}}`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adgen_dagster.imaging.ads import AdParams
from adgen_dagster.imaging.analyze import AnalysisParams
from adgen_dagster.imaging.backdrop import BackdropParams
from adgen_dagster.imaging.composite import CompositeParams
from adgen_dagster.imaging.decode import DecodeParams
from adgen_dagster.imaging.retouch import RetouchParams
from adgen_dagster.imaging.segment import SegmentParams


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "s3"] = Field("local", description="Object store backend: 'local' directory or 's3' (ADGEN_STORE__KIND).")
    root: str = Field(".adgen", description="Local store directory, relative to the working directory (ADGEN_STORE__ROOT).")
    bucket: str = Field("", description="S3 bucket (ADGEN_STORE__BUCKET).")
    prefix: str = Field("", description="Key prefix inside the bucket, e.g. 'adgen/' (ADGEN_STORE__PREFIX).")
    endpoint_url: str = Field("", description="S3-compatible endpoint for MinIO, R2, Ceph; empty = AWS (ADGEN_STORE__ENDPOINT_URL).")
    region: str = Field("", description="S3 region; empty = the AWS default chain (ADGEN_STORE__REGION).")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per S3 call, botocore standard retry mode (ADGEN_STORE__MAX_ATTEMPTS).")
    cache: bool = Field(True, description="Reuse cached stage results (ADGEN_STORE__CACHE=false to always recompute).")


class AdgenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADGEN_", env_nested_delimiter="__", extra="ignore")

    store: StoreSettings = StoreSettings()
    segmenter: str = Field("classical", description="Cut-out backend (ADGEN_SEGMENTER).")
    background: str = Field("studio", description="Background backend (ADGEN_BACKGROUND).")
    analyzer: str = Field("classical", description="Analysis backend (ADGEN_ANALYZER).")
    decode: DecodeParams = DecodeParams()
    segment: SegmentParams = SegmentParams()
    backdrop: BackdropParams = BackdropParams()
    composite: CompositeParams = CompositeParams()
    retouch: RetouchParams = RetouchParams()
    analysis: AnalysisParams = AnalysisParams()
    ads: AdParams = AdParams()


@lru_cache(maxsize=1)
def get_settings() -> AdgenSettings:
    """Settings read once per process (the code location reloads to pick up changes)."""
    return AdgenSettings()
