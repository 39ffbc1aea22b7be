"""Neural backends: BiRefNet cut-out, FLUX backgrounds, Qwen2-VL analysis.

Nothing here is imported by the classical path: torch, diffusers and transformers are
optional (`pip install -e '.[neural]'`) and only imported when one of these backends is
selected, so a laptop install without them still runs every stage. `params` holds each
backend's settings as plain pydantic models (no torch) so they can sit in the settings and
in Dagster's run config.
"""
