"""Giving a model's memory back: after an out-of-memory error, after unloading, and measuring it.

Memory held by a model comes back only when nothing references it any more (tracebacks
included) and the allocator's cache is emptied; these helpers do both, so the host can
keep its budget and one failed step does not starve the next.
"""

from __future__ import annotations

import gc
import sys
import traceback
from typing import Any


def free_after_oom(exc: BaseException) -> None:
    """Return the memory an out-of-memory error's frames still hold (call where it was caught).

    A traceback keeps every frame it passed through alive, with the locals that hold the
    model and its activations; clearing them and dropping the chained errors lets
    `gc.collect()` and `torch.cuda.empty_cache()` really give the memory back.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)
        nxt = e.__cause__ or e.__context__
        e.__cause__ = e.__context__ = None
        e = nxt
    release_memory()


def release_memory() -> None:
    """Give freed model memory back: drop compiled graphs, then collect and empty the accelerator's cache.

    The collecting and emptying is accelerate's `release_memory` (it knows every device
    kind torch has); what it does not do is drop torch.compile's graphs, which keep the
    modules they were compiled for alive.
    """
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        try:
            dynamo.reset()
        except Exception:  # noqa: BLE001 - best effort
            pass
    if "torch" not in sys.modules:  # no model was ever loaded: nothing on a device to give back
        gc.collect()
        return
    try:
        from accelerate.utils import release_memory as collect_and_empty_cache
    except ImportError:  # torch without the neural extra: no backend could have loaded a model
        gc.collect()
        return
    collect_and_empty_cache()


def model_bytes(obj: Any) -> int:
    """Bytes of parameters and buffers in a module, a pipeline's components, or a tuple of them."""
    try:
        import torch
    except ImportError:  # pragma: no cover - a model implies torch
        return 0
    seen: set[int] = set()
    total = 0

    def visit(o: Any, depth: int = 0) -> None:
        nonlocal total
        if o is None or depth > 3 or id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, torch.nn.Module):
            for t in list(o.parameters()) + list(o.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        elif isinstance(o, dict):
            for v in o.values():
                visit(v, depth + 1)
        elif isinstance(o, (list, tuple)):
            for v in o:
                visit(v, depth + 1)
        elif hasattr(o, "components") and isinstance(o.components, dict):  # a diffusers pipeline
            visit(o.components, depth + 1)
        elif hasattr(o, "__dict__"):
            for v in vars(o).values():
                if isinstance(v, (torch.nn.Module, dict, list, tuple)):
                    visit(v, depth + 1)

    visit(obj)
    return total
