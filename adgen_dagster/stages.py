"""The stage registry: every stage of the pipeline, once, in graph order.

Everything that needs to know the stages loops over `STAGES`: the Dagster assets (their
keys, deps, code versions, config and pools, `assets_defs.factory`), the Dagster-free
runner that the command line and the benchmarks chain (`stage_runner`), staleness
(`staleness.current_settings_keys`) and the tests. An asset's deps are not written by
hand: they are the assets whose stages write the files the stage reads (`deps`).

A new stage is one entry here, its step in a core module (a function of the stage's
parameters, and of its backend if it has one, returning a `Compute`), and an asset module
with its description (`assets_defs`). A stage placed between two others (a watermark after
`retouched`) says which earlier file it `stands_in_for`; `registry` then has the later
stages read its output instead, with no edit to them (tests/test_stage_registry.py). Dagster-free: imports nothing from `resources`,
`assets_defs` or Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Callable, Mapping, Optional, Sequence

from pydantic import BaseModel

from adgen_dagster import steps
from adgen_dagster.encoding import FileValue
from adgen_dagster.imaging import ads, analyze, backdrop, composite, decode, retouch, segment

Files = dict[str, FileValue]  # product file name -> bytes, or an image not yet encoded (adgen_dagster.encoding)


@dataclass(frozen=True)
class StageContext:
    """What a stage may know about its product besides its files."""

    product_id: str
    upload_name: str = ""  # the upload's file name under uploads/, for messages ("" when unknown)

    @property
    def file_name(self) -> str:
        """The name messages give the product: its upload's file name, else its id."""
        return self.upload_name or self.product_id


# A stage's computation: (its input files, context) -> (output files, metadata). It may
# carry `.batch(list of (files, context))` and `.batch_size` to take several products per pass.
Compute = Callable[[Files, StageContext], tuple[Files, dict[str, Any]]]


@dataclass(frozen=True)
class Stage:
    name: str  # the op, its cache folder, its run config section (`ops: {name: ...}`)
    version: str  # the core's code version: a new one recomputes
    params: type[BaseModel]  # the stage's parameters (the core's own model)
    settings_field: str  # the AdgenSettings field holding them (`ADGEN_<FIELD>__*`)
    step: Callable[..., Compute]  # step(params) or, with a backend, step(params, backend) -> Compute
    outputs: Mapping[str, str]  # product file (or glob) it writes -> the asset key it belongs to
    inputs: tuple[str, ...] = ()  # product files it reads from products/<pid>/
    backend: str = ""  # backend kind (also the AdgenSettings field naming it): segmenter | background | analyzer
    keyed: tuple[str, ...] = ()  # StageContext fields its output depends on: they go in the cache key
    sources: tuple[str, ...] = ()  # given from outside products/<pid>/: the upload and its sidecar (up to max_bytes)
    names_upload: bool = False  # its messages name the upload's file (the caller looks the name up)
    # {earlier product file: this stage's output}: later stages read the output in its place
    # (a watermark standing in for retouched.png), their steps still under the old name.
    stands_in_for: Mapping[str, str] = field(default_factory=dict)
    reads: Mapping[str, str] = field(default_factory=dict)  # set by `registry`: {input name: the product file read}

    @property
    def asset_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.outputs.values()))

    def asset_of(self, file: str) -> Optional[str]:
        """The asset key that holds product file `file`, if this stage writes it."""
        return next((key for pattern, key in self.outputs.items() if fnmatchcase(file, pattern)), None)

    def files_of(self, asset_key: str) -> list[str]:
        return [f for f, key in self.outputs.items() if key == asset_key]

    def source_of(self, name: str) -> str:
        """The product file read for input `name` (another one when a later stage stands in for it)."""
        return self.reads.get(name, name)


def registry(*stages: Stage) -> tuple[Stage, ...]:
    """The stages in graph order, each reading a stand-in's output in place of the file it stands in for."""
    resolved, standing = [], {}
    for s in stages:
        resolved.append(replace(s, reads={n: standing[n] for n in s.inputs if n in standing}))
        standing.update(s.stands_in_for)
    return tuple(resolved)


def _out(*files: str, asset: str = "") -> dict[str, str]:
    return {f: asset or f.split("/")[0].rsplit(".", 1)[0] for f in files}


STAGES: tuple[Stage, ...] = registry(
    Stage("product_image", decode.VERSION, decode.DecodeParams, "decode", steps.product_image,
          _out("product_image.png", "details.json", asset="product_image"),
          sources=("upload", "sidecar"), names_upload=True),
    Stage("segmentation", segment.VERSION, segment.SegmentParams, "segment", steps.segmentation,
          _out("nobg_image.png", "mask.png"), inputs=("product_image.png",), backend="segmenter", names_upload=True),
    Stage("background", backdrop.VERSION, backdrop.BackdropParams, "backdrop", steps.background,
          _out("background.png"), inputs=("product_image.png", "details.json"), backend="background",
          keyed=("product_id",)),  # the default seed derives from the product id
    Stage("composite", composite.VERSION, composite.CompositeParams, "composite", steps.composite,
          _out("composite.png", "composite_mask.png", asset="composite"), inputs=("nobg_image.png", "background.png")),
    Stage("retouched", retouch.VERSION, retouch.RetouchParams, "retouch", steps.retouched,
          _out("retouched.png"), inputs=("composite.png", "composite_mask.png", "background.png")),
    Stage("analysis", analyze.VERSION, analyze.AnalysisParams, "analysis", steps.analysis,
          _out("analysis.json"), inputs=("retouched.png", "composite_mask.png"), backend="analyzer"),
    Stage("ad_creatives", ads.VERSION, ads.AdParams, "ads", steps.ad_creatives,
          _out("ads/*.png", "ads/*.html", asset="ad_creatives"), inputs=("retouched.png", "analysis.json", "details.json")),
)


def stage_named(name: str, stages: Sequence[Stage] = STAGES) -> Stage:
    for s in stages:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; stages: {', '.join(s.name for s in stages)}")


def deps(stage: Stage, stages: Sequence[Stage] = STAGES) -> list[str]:
    """The asset keys `stage` depends on: those of the earlier stages that write the files it reads."""
    found: list[str] = []
    for file in map(stage.source_of, stage.inputs):
        writers = [key for s in stages[: list(stages).index(stage)] if (key := s.asset_of(file))]
        if not writers:
            raise ValueError(f"stage {stage.name!r} reads {file!r}, which no earlier stage writes")
        found.append(writers[-1])
    return list(dict.fromkeys(found))


def params_for(stage: Stage, settings: Any) -> BaseModel:
    """The stage's parameters as configured; its defaults when the settings have no field for it."""
    value = getattr(settings, stage.settings_field, None)
    return value if isinstance(value, stage.params) else stage.params()


def backend_for(stage: Stage, settings: Any) -> str:
    """The configured backend name ("" for a stage without alternatives)."""
    return str(getattr(settings, stage.backend)) if stage.backend else ""
