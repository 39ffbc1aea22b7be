"""`qwen2-vl` analyzer: Qwen2-VL / Qwen2.5-VL judges the image, the classical analysis measures it.

What a vision-language model can judge, it answers as one small JSON object: the tone
(warm | cool | neutral), the main colours (hex), a few mood words, where a headline fits
(top | center | bottom) and a text colour. The answer is taken apart without any keyword
search: the first balanced `{...}` in it is parsed as JSON and each field is validated on
its own (`VlmAnswer`), so one bad field costs only that field. While fields are missing or
invalid the model is asked again (`QwenParams.retries` times), told what was wrong; then
`analyze_classical` fills whatever is still missing. What needs measuring, not judging
(size, brightness, the product box, the text box and its busyness, contrast) always comes
from the classical analysis, and the model's choices are checked against it:

- its text position picks the classical text box at that position when one is free there
  (else the classical choice stays, and the metadata says why);
- its text colour is kept only if its WCAG contrast on that box reaches
  `AnalysisParams.min_contrast` (4.5 by default), else the classical colour;
- its main colours get shares measured on the image (nearest colour in Lab).

`last_metadata` says where every field came from (`field_sources`), why a field fell back
(`fallback_reasons`), the attempts, the raw answer, device, precision and timings.

torch and transformers are imported on the first call, not at import.
The conversation and answer checks are `qwen_answer`, the merge `qwen_merge`, loading and
generation `qwen_loading`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Optional

from PIL import Image

from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.analysis_params import AnalysisParams
from adgen_dagster.models.params import QwenParams
from adgen_dagster.models.qwen_answer import ask_until_valid, clip
from adgen_dagster.models.qwen_loading import SETTING, QwenModel, generate_answer, load_qwen, prepare_inputs, sized_for_model
from adgen_dagster.models.qwen_merge import BACKEND, merge_answer
from adgen_dagster.models.weights import weights_bytes

log = logging.getLogger("adgen_dagster.models")

ANALYZER_SETTING = "ADGEN_ANALYZER"
RAW_LIMIT = 600  # characters of a raw answer kept in the metadata


# the backend


class QwenAnalyzer:
    """The `qwen2-vl` analyzer (`imaging.backend.Analyzer`); nothing loads before the first call."""

    name: ClassVar[str] = BACKEND
    description: ClassVar[str] = ("Qwen2-VL / Qwen2.5-VL (transformers) answering the analysis schema, classical "
                                  "fallback")
    params_model: ClassVar[type[QwenParams]] = QwenParams
    settings_field: ClassVar[str] = "qwen2_vl"
    batch_size: ClassVar[int] = 1  # one conversation per image

    def __init__(self, params: QwenParams, host):
        self.params = params
        self.host = host
        self.last_metadata: dict[str, Any] = {}

    def _bundle(self) -> tuple[QwenModel, Optional[float]]:
        from .errors import import_torch

        from .weights import locate

        import_torch(BACKEND, ANALYZER_SETTING)
        self.host.require_accelerator(BACKEND, ANALYZER_SETTING)
        folder = locate(self.params.model, SETTING)
        key = f"{BACKEND}:{folder.resolve()}"
        before = self.host.loads
        device, dtype = self.host.device, self.host.dtype
        bundle = self.host.model(key, lambda: load_qwen(folder, device, dtype), f"Qwen2-VL ({self.params.model})",
                                 size_hint=weights_bytes(folder))
        return bundle, (self.host.load_ms(key) if self.host.loads > before else None)

    def ask(self, bundle: QwenModel, image: Image.Image, messages: list[dict],
            min_new_tokens: Optional[int] = None) -> tuple[str, int]:
        inputs, _ = prepare_inputs(bundle, image, messages, self.params.image_size)
        return generate_answer(bundle, inputs, self.params.max_new_tokens, static_cache=self.params.static_cache,
                               compile=self.params.compile, min_new_tokens=min_new_tokens)

    def __call__(self, image: Image.Image, mask: Optional[Image.Image], analysis_params: AnalysisParams) -> Analysis:
        p = analysis_params or AnalysisParams()
        self.last_metadata = {}
        bundle, load_ms = self._bundle()
        with self.host.inference(f"analysing with Qwen2-VL ({self.params.model})") as timing:
            attempts = ask_until_valid(lambda messages: self.ask(bundle, image, messages), self.params.retries)
        result, sources, reasons = merge_answer(attempts.values, attempts.errors, image, mask, p)
        on_gpu = self.host.device.type == "cuda"
        ip = bundle.processor.image_processor
        sized = sized_for_model(image, self.params.image_size, int(ip.patch_size) * int(ip.merge_size))
        md: dict[str, Any] = {
            "field_sources": sources,
            "attempts": len(attempts.raws),
            "raw_answer": clip(attempts.raws[-1] if attempts.raws else "", RAW_LIMIT),
            "tokens_generated": sum(attempts.tokens),
            "device": str(self.host.device),
            "dtype": str(self.host.dtype).replace("torch.", ""),
            "inference_ms": timing.get("inference_ms"),
            "lock_wait_ms": timing.get("lock_wait_ms"),
            "model": self.params.model,
            "model_type": bundle.model_type,
            "processor": bundle.processor_kind,
            "image_size": self.params.image_size,
            "visual_tokens": (sized.width // ip.patch_size) * (sized.height // ip.patch_size) // ip.merge_size**2,
            "static_cache": bool(on_gpu and (self.params.static_cache or self.params.compile)),
            "compiled": bool(on_gpu and self.params.compile),
        }
        if timing.get("inference_ms"):
            md["tokens_per_s"] = round(sum(attempts.tokens) / (timing["inference_ms"] / 1000), 1)
        if load_ms is not None:
            md["load_ms"] = load_ms
        if reasons:
            md["fallback_reasons"] = reasons
        if attempts.parse_errors:
            md["parse_error"] = clip(" | ".join(attempts.parse_errors), RAW_LIMIT)
        self.last_metadata = md
        log.info("qwen2-vl analysis: %d attempt(s), %d token(s), fields from the model: %s", md["attempts"],
                 md["tokens_generated"], ", ".join(k for k, v in sources.items() if v == BACKEND) or "none")
        return result
