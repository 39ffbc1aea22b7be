"""A tiny BiRefNet model folder, shaped like the real one on the hub.

`config.json` with an `auto_map` pointing at the folder's own modules (so loading runs
transformers' `trust_remote_code` path), a model class written the transformers-4 way
(no `post_init()` call, like the real BiRefNet), forward returning a list of
predictions whose last is the final logits, and safetensors weights.

The weights are set, not trained: logit = k * (0.9 - mean RGB) on ImageNet-normalised
input, i.e. "darker than near-white is product". That makes the tiny model's output
predictable, so tests can check that preprocessing (resize, normalisation) and
postprocessing (sigmoid, resize back, foreground colours) are right, not only shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_PY = '''
from transformers import PretrainedConfig


class BiRefNetConfig(PretrainedConfig):
    model_type = "SwinUNet"

    def __init__(self, bb_pretrained=False, **kwargs):
        self.bb_pretrained = bb_pretrained
        super().__init__(**kwargs)
'''

MODEL_PY = '''
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from .BiRefNet_config import BiRefNetConfig


class BiRefNet(PreTrainedModel):
    config_class = BiRefNetConfig

    def __init__(self, bb_pretrained=True, config=BiRefNetConfig()):
        super(BiRefNet, self).__init__(config)
        self.squeeze = nn.Conv2d(3, 1, 1)
        self.refine = nn.Conv2d(1, 1, 3, padding=1)
        # Written for transformers 4, like the real BiRefNet: no self.post_init() here.

    def forward(self, x):
        coarse = self.squeeze(F.avg_pool2d(x, 2))
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return [coarse, self.refine(coarse)]
'''

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def build_tiny_birefnet(folder: Path, k: float = 40.0, threshold: float = 0.9) -> Path:
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "BiRefNet_config.py").write_text(CONFIG_PY)
    (folder / "birefnet.py").write_text(MODEL_PY)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BiRefNet"],
        "auto_map": {"AutoConfig": "BiRefNet_config.BiRefNetConfig", "AutoModelForImageSegmentation": "birefnet.BiRefNet"},
        "model_type": "SwinUNet",
        "bb_pretrained": False,
    }, indent=2))
    # logit = -k/3 * sum_c (x_c * std_c + mean_c) + k * threshold, with x the normalised input
    w = torch.tensor([-k * s / 3.0 for s in STD], dtype=torch.float32).view(1, 3, 1, 1)
    b = torch.tensor([k * (threshold - sum(MEAN) / 3.0)], dtype=torch.float32)
    refine = torch.zeros(1, 1, 3, 3)
    refine[0, 0, 1, 1] = 1.0
    save_file({"squeeze.weight": w.contiguous(), "squeeze.bias": b, "refine.weight": refine, "refine.bias": torch.zeros(1)},
              str(folder / "model.safetensors"))
    return folder
