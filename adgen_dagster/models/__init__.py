"""Neural backends: the shipped U²-Net-p cut-out (the default, CPU), and BiRefNet, FLUX, Qwen2-VL (GPU).

`u2netp` and `auto_segment` need only OpenCV, which every install has: their 4.6 MB model
ships in `data/`. For the GPU backends, nothing here is imported by the CPU path: torch, diffusers and transformers are
optional (`pip install -e '.[neural]'`) and only imported when one of these backends is
selected, so a laptop install without them still runs every stage. `params` holds each
backend's settings as plain pydantic models (no torch) so they can sit in the settings and
in Dagster's run config.
"""
