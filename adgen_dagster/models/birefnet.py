"""`birefnet` segmenter: BiRefNet's alpha, then the classical path's foreground estimate.

BiRefNet ships as remote code on the hub (`trust_remote_code`): a `config.json` whose
`auto_map` names its own modules. Those modules were written for transformers 4 and do
not call `post_init()`; transformers 5 then fails with "'BiRefNet' object has no
attribute 'all_tied_weights_keys'". The loader patches the remote class so its
`__init__` finishes with `post_init()` when the class did not do it itself, instead of
pinning an old transformers.

Inference as the model was trained: RGB resized to `input_size` square, ImageNet
normalisation, batches of `batch_size`, half precision on GPUs (the host's dtype), the
last prediction's sigmoid resized back to the photo. The foreground colours are then
re-estimated exactly as the classical cut-out does (blur fusion), so no halo of the old
background survives on the new one. Input that already carries an informative alpha
keeps it, as with the classical backend.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from adgen_dagster.imaging.segment import Cutout, SegmentParams, cutout_classical, has_informative_alpha
from adgen_dagster.imaging.segment_matting import estimate_foreground
from adgen_dagster.models.params import BiRefNetParams
from adgen_dagster.models.weights import locate, weights_bytes
from adgen_dagster.models.errors import ModelError, import_torch
from adgen_dagster.models.host import ModelHost

log = logging.getLogger("adgen_dagster.models")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SETTING = "ADGEN_BIREFNET__MODEL"


def _finish_init_with_post_init(cls: type) -> None:
    """Make a transformers-4 style remote model class usable under transformers 5 (see module doc)."""
    if getattr(cls, "_adgen_post_init_patched", False):
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()

    cls.__init__ = __init__
    cls._adgen_post_init_patched = True


def load_birefnet(folder: Path, device: Any, dtype: Any):
    """The BiRefNet model from a local folder, through `AutoModelForImageSegmentation` + remote code."""
    import_torch("birefnet", "ADGEN_SEGMENTER")
    from transformers import AutoConfig, AutoModelForImageSegmentation
    from transformers.dynamic_module_utils import get_class_from_dynamic_module
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress goes to our log, not a bar on stderr

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
        ref = (getattr(config, "auto_map", None) or {}).get("AutoModelForImageSegmentation")
        if ref:
            _finish_init_with_post_init(get_class_from_dynamic_module(ref, str(folder), local_files_only=True))
        model = AutoModelForImageSegmentation.from_pretrained(
            folder, config=config, trust_remote_code=True, local_files_only=True, dtype=dtype)
    except ImportError as exc:
        raise ModelError(f"BiRefNet's code (in {folder}) needs a module that is not installed "
                         f"({exc.name or exc}): pip install -e '.[birefnet]' next to the torchvision that matches "
                         f"your torch, or set ADGEN_SEGMENTER=classical") from None
    except (OSError, ValueError, AttributeError, RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{SETTING}={str(folder)!r}: cannot load BiRefNet from that folder ({type(exc).__name__}: "
                         f"{first}); point {SETTING} at a BiRefNet snapshot (config.json, its .py files and weights; "
                         f"an old snapshot's code may need updating from the hub)") from None
    return model.to(device=device, dtype=dtype).eval()


class BiRefNetSegmenter:
    """The `birefnet` segmenter (`imaging.backend.Segmenter`): `batch_size` products per forward pass."""

    name: ClassVar[str] = "birefnet"
    description: ClassVar[str] = "BiRefNet (transformers, remote code) on the GPU"
    params_model: ClassVar[type[BiRefNetParams]] = BiRefNetParams
    settings_field: ClassVar[str] = "birefnet"

    def __init__(self, params: BiRefNetParams, host: ModelHost):
        self.params = params
        self.host = host
        self.last_metadata: dict = {}

    @property
    def batch_size(self) -> int:
        return self.params.batch_size

    @property
    def dtype(self):
        """The host's precision, except fp16 for bf16 on CUDA: BiRefNet's deformable convolutions
        (torchvision's `deform_conv2d`) have no bfloat16 kernel, and upstream runs it in fp16."""
        torch = import_torch("birefnet", "ADGEN_SEGMENTER")
        dtype = self.host.dtype
        return torch.float16 if dtype == torch.bfloat16 and self.host.device.type == "cuda" else dtype

    def _model(self):
        folder = locate(self.params.model, SETTING)
        dtype = self.dtype
        key = f"birefnet:{folder.resolve()}:{dtype}"
        model = self.host.model(key, lambda: load_birefnet(folder, self.host.device, dtype), "BiRefNet",
                                size_hint=weights_bytes(folder))
        return model, key

    def __call__(self, image: Image.Image, params: SegmentParams | None = None) -> Cutout:
        return self.batch([image], params)[0]

    def _inputs(self, images: list[Image.Image]) -> np.ndarray:
        n = self.params.input_size
        out = np.empty((len(images), 3, n, n), dtype=np.float32)
        for i, img in enumerate(images):
            x = np.asarray(img.convert("RGB").resize((n, n), Image.BILINEAR), dtype=np.float32) / 255.0
            out[i] = ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
        return out

    def alphas(self, images: list[Image.Image]) -> list[np.ndarray]:
        """BiRefNet's soft mask for each image, float32 in [0, 1] at the image's own size."""
        self.host.require_accelerator("birefnet", "ADGEN_SEGMENTER")
        torch = import_torch("birefnet", "ADGEN_SEGMENTER")
        loads_before = self.host.loads
        model, key = self._model()
        preds: list[np.ndarray] = []
        size = self.params.batch_size
        with self.host.inference(f"BiRefNet on {len(images)} image(s)") as timing:
            for start in range(0, len(images), size):
                x = torch.from_numpy(self._inputs(images[start:start + size]))
                x = x.to(device=self.host.device, dtype=self.dtype)
                out = model(x)
                logits = out[-1] if isinstance(out, (list, tuple)) else getattr(out, "logits", out)
                preds += list(logits.sigmoid().float().cpu().numpy()[:, 0])
        alphas = []
        for img, p in zip(images, preds):
            w, h = img.size
            alphas.append(np.clip(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32))
        self.last_metadata = {
            **self.host.describe(), "dtype": str(self.dtype).replace("torch.", ""), "model": self.params.model, "input_size": self.params.input_size,
            "batch": len(images), "inference_ms": timing["inference_ms"], "lock_wait_ms": timing["lock_wait_ms"],
            **({"load_ms": self.host.load_ms(key)} if self.host.loads > loads_before else {}),
        }
        return alphas

    def batch(self, images: list[Image.Image], params: SegmentParams | None = None) -> list[Cutout]:
        t0 = time.perf_counter()
        todo = [i for i, img in enumerate(images) if not has_informative_alpha(img)]
        out: list[Cutout | None] = [None] * len(images)
        for i in set(range(len(images))) - set(todo):  # its own alpha is the mask, as in the classical path
            out[i] = cutout_classical(images[i], params)
        alphas = self.alphas([images[i] for i in todo]) if todo else []
        for i, alpha in zip(todo, alphas):
            rgb = np.asarray(images[i].convert("RGB"), dtype=np.float32) / 255.0
            fg = estimate_foreground(rgb, alpha)
            a8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
            f8 = np.clip(fg * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out[i] = Cutout(Image.fromarray(np.dstack([f8, a8]), "RGBA"), Image.fromarray(a8, "L"),
                            {"source": "birefnet", "coverage": round(float(alpha.mean()), 5)})
        if not todo:
            self.last_metadata = {"source": "input_alpha"}
        self.last_metadata["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return out  # type: ignore[return-value]
