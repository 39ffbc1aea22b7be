"""Why a neural backend cannot run, said once: a `ModelError` names the setting to change.

Apart from the host so that weight lookup, the GPU lock and every backend can raise it
without importing the host (and torch) first.
"""

from __future__ import annotations


class ModelError(RuntimeError):
    """A neural backend cannot run; the message says which setting to change."""

    oom = False


def import_torch(backend: str, setting: str):
    """torch, or one error that says how to install it or switch the backend off."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"the {backend} backend needs torch, transformers and diffusers, which are not installed: "
            f"pip install -e '.[neural]' (with the torch build for your GPU), or set {setting} back to the CPU backend"
        ) from None
    return torch


def is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())
