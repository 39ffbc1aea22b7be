"""The shape of a backend: what a stage may call and read, whichever implementation a setting picks.

Three stages have alternative implementations, chosen by name (`ADGEN_SEGMENTER`,
`ADGEN_BACKGROUND`, `ADGEN_ANALYZER`; `adgen_dagster.backends` maps names to classes). Each
implementation is one small class with its kind's shape below, as rembg's sessions share
one base: the stage calls it on one product, and reads two more things from it:

- `batch_size`: how many products one `batch` call should get (a model that runs several
  images per forward pass); 1 means one at a time, and the stage then never gathers
  products into batches;
- `last_metadata`: what the last call measured or decided (device, load and inference
  times, where each analysis field came from), shown with the materialization. Each call
  replaces it; the CPU backends report nothing there (their `Cutout.stats` and results
  already say it).

The stages pass the arguments by position (only `seed` by name), so each class may name
them as it likes. A class also says how the registry lists and builds it: its `name`, a
`description`, and, for a backend with settings of its own (`ADGEN_BIREFNET__*` ...),
`params_model` and the `settings_field` of `AdgenSettings` that holds them. Such a backend
is built as `cls(params, host)` on the process's `ModelHost` and loads nothing before its
first call; the others as `cls()`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, Protocol

if TYPE_CHECKING:  # the protocols name the stages' types; those modules define the CPU backends on this file
    from PIL import Image
    from pydantic import BaseModel

    from adgen_dagster.imaging.analysis_model import Analysis
    from adgen_dagster.imaging.analysis_params import AnalysisParams
    from adgen_dagster.imaging.backdrop import BackdropParams
    from adgen_dagster.imaging.details import ProductDetails
    from adgen_dagster.imaging.segment import Cutout
    from adgen_dagster.imaging.segment_params import SegmentParams


class BackendShape(Protocol):
    """What every backend declares, whatever its kind (read-only: a class attribute or a property will do)."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def params_model(self) -> Optional[type[BaseModel]]: ...

    @property
    def settings_field(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def last_metadata(self) -> Mapping[str, Any]: ...


class Segmenter(BackendShape, Protocol):
    """`image -> Cutout` (the product's RGBA and alpha), one photo or a batch of them."""

    def __call__(self, image: Image.Image, params: Optional[SegmentParams] = None, /) -> Cutout: ...

    def batch(self, images: list[Image.Image], params: Optional[SegmentParams] = None, /) -> list[Cutout]: ...


class BackgroundRenderer(BackendShape, Protocol):
    """A new background for a product, from its details and colours; `seed` makes it reproducible."""

    def __call__(self, details: ProductDetails, product_colours: Optional[list[str]],
                 params: Optional[BackdropParams] = None, /, seed: int = 0) -> Image.Image: ...


class Analyzer(BackendShape, Protocol):
    """The finished image (and the product's mask) -> the analysis the ad layout reads."""

    def __call__(self, image: Image.Image, mask: Optional[Image.Image], params: AnalysisParams, /) -> Analysis: ...


class OnCpu:
    """A backend with no settings of its own, nothing to batch and nothing measured to report."""

    params_model: ClassVar[None] = None
    settings_field: ClassVar[str] = ""
    batch_size: ClassVar[int] = 1
    last_metadata: ClassVar[Mapping[str, Any]] = MappingProxyType({})


class OnCpuSegmenter(OnCpu):
    """A CPU segmenter: a batch is each photo in turn."""

    def __call__(self, image: Image.Image, params: Optional[SegmentParams] = None) -> Cutout:
        raise NotImplementedError

    def batch(self, images: list[Image.Image], params: Optional[SegmentParams] = None) -> list[Cutout]:
        return [self(image, params) for image in images]
