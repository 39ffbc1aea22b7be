"""Neural backends: the shipped U²-Net-p cut-out (the default, CPU), and BiRefNet, FLUX, Qwen2-VL (GPU).

`u2netp` and `auto_segment` need only OpenCV, which every install has: their 4.6 MB model
ships in `data/`. The GPU backends' modules import no torch, diffusers or transformers at
the top (the backend registry imports their classes): those are optional (`pip install -e
'.[neural]'`) and imported only when one of these backends loads its model, so a laptop
install without them still runs every stage. `params` holds each
backend's settings as plain pydantic models (no torch) so they can sit in the settings and
in Dagster's run config.
"""
