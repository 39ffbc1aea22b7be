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

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adgen_dagster.imaging.ads import AdParams
from adgen_dagster.imaging.analyze import AnalysisParams
from adgen_dagster.imaging.backdrop import BackdropParams
from adgen_dagster.imaging.composite import CompositeParams
from adgen_dagster.imaging.decode import DecodeParams
from adgen_dagster.imaging.retouch import RetouchParams
from adgen_dagster.imaging.segment import SegmentParams
from adgen_dagster.models.params import BiRefNetParams, FluxParams, GpuSettings, QwenParams


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

    @field_validator("root")
    @classmethod
    def _root_not_empty(cls, v: str) -> str:
        if not v.strip():  # Path('') is the current folder: never a silent default
            raise ValueError("must name a folder (empty means nothing; the default is .adgen)")
        return v


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Start the nightly schedule running (ADGEN_SCHEDULE__ENABLED=true); "
                          "off by default so a fresh install never starts re-processing a catalog by itself.")
    cron: str = Field("0 2 * * *", description="When the nightly schedule ticks, cron syntax (ADGEN_SCHEDULE__CRON).")
    timezone: str = Field("UTC", description="IANA time zone of the cron, e.g. 'Asia/Seoul' (ADGEN_SCHEDULE__TIMEZONE).")


class SensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    running: bool = Field(True, description="Start the upload and catalog sensors running (ADGEN_SENSOR__RUNNING=false "
                          "to leave them stopped until switched on in the UI).")
    interval_seconds: int = Field(10, ge=5, le=3600, description="Seconds between upload sensor ticks "
                                  "(ADGEN_SENSOR__INTERVAL_SECONDS). A tick costs the listing of uploads/ (on S3 one LIST "
                                  "request per 1000 objects): raise it for very large buckets.")
    catalog_interval_seconds: int = Field(60, ge=5, le=3600, description="Seconds between catalog sensor ticks "
                                          "(ADGEN_SENSOR__CATALOG_INTERVAL_SECONDS).")
    page_size: int = Field(1000, ge=1, le=1000, description="Objects per listing call; S3 returns at most 1000 "
                           "(ADGEN_SENSOR__PAGE_SIZE).")
    pages_per_tick: int = Field(100, ge=1, le=10_000, description="Listing pages one upload sensor tick reads before it "
                                "hands over to the next tick (ADGEN_SENSOR__PAGES_PER_TICK); unchanged uploads cost only "
                                "their listing, so a tick can go over 100,000 of them.")
    tick_seconds: float = Field(30.0, gt=0, description="Time after which a tick stops reading further pages, well "
                                "inside Dagster's 60 s sensor timeout (ADGEN_SENSOR__TICK_SECONDS).")
    workers: int = Field(8, ge=1, le=64, description="Parallel store calls within one tick (ADGEN_SENSOR__WORKERS).")
    catalog_rows_per_tick: int = Field(5000, ge=1, le=100_000, description="Catalog rows registered, and runs requested, "
                                       "per catalog sensor tick, shared equally among unfinished catalogs "
                                       "(ADGEN_SENSOR__CATALOG_ROWS_PER_TICK).")
    catalog_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Catalog files larger than this are reported "
                                   "and not read (ADGEN_SENSOR__CATALOG_MAX_BYTES).")


class AdgenSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADGEN_", env_nested_delimiter="__", extra="ignore")

    store: StoreSettings = StoreSettings()
    segmenter: str = Field("auto", description="Cut-out backend: auto | u2netp | classical | birefnet (ADGEN_SEGMENTER).")
    background: str = Field("studio", description="Background backend: studio | flux (ADGEN_BACKGROUND).")
    analyzer: str = Field("classical", description="Analysis backend: classical | qwen2-vl (ADGEN_ANALYZER).")
    gpu: GpuSettings = GpuSettings()
    birefnet: BiRefNetParams = BiRefNetParams()
    flux: FluxParams = FluxParams()
    qwen2_vl: QwenParams = QwenParams()
    decode: DecodeParams = DecodeParams()
    segment: SegmentParams = SegmentParams()
    backdrop: BackdropParams = BackdropParams()
    composite: CompositeParams = CompositeParams()
    retouch: RetouchParams = RetouchParams()
    analysis: AnalysisParams = AnalysisParams()
    ads: AdParams = AdParams()
    schedule: ScheduleSettings = ScheduleSettings()
    sensor: SensorSettings = SensorSettings()
    batch_size: int = Field(10, ge=1, le=1000, description="Products per run in backfills and nightly runs (ADGEN_BATCH_SIZE).")


@lru_cache(maxsize=1)
def get_settings() -> AdgenSettings:
    """Settings read once per process (the code location reloads to pick up changes)."""
    return AdgenSettings()
