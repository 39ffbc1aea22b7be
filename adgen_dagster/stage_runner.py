"""Running stages without Dagster: one stage through the cache, or every stage in memory.

`run_stage` is what an asset does for one product: inputs are read from
`products/<pid>/`, their digests and the stage's settings form the key, a hit skips the
work entirely (no decode, no model), and the outputs are written back under
`products/<pid>/` either way. `run_chain` is what `adgen run` and the benchmarks do: the
registry's steps back to back in memory, each given the files the earlier ones made.
Both run the same steps (`stages.STAGES`), so they give the same bytes.

The store and the cache come in through small protocols (`resources.object_store` and
`resources.cache` implement them), so this module imports nothing from `resources`,
`assets_defs` or Dagster.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

from pydantic import BaseModel

from adgen_dagster.encoding import encode_files, encoder_pool
from adgen_dagster.stages import STAGES, Compute, Files, Stage, StageContext, backend_for, params_for

# Metadata a computation measures about itself; not repeated when its result is reused.
MEASURED_NOW = frozenset({"load_ms", "inference_ms", "lock_wait_ms", "total_ms", "first_call_compiled"})

CONTENT_TYPES = {".png": "image/png", ".json": "application/json", ".html": "text/html; charset=utf-8"}
# Product files some stage reads: kept in memory once encoded, so the next step of a run skips the decode.
READ_BY_A_STAGE = frozenset(name for s in STAGES for name in map(s.source_of, s.inputs))


class Store(Protocol):
    def get(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes, content_type: Optional[str] = None) -> Any: ...
    def digest(self, key: str) -> Optional[str]: ...


class CacheEntryLike(Protocol):
    digests: dict[str, str]
    metadata: dict[str, Any]


class Cache(Protocol):
    enabled: bool

    def manifest(self, stage: str, key: str) -> Optional[CacheEntryLike]: ...
    def blob(self, stage: str, digest: str) -> Optional[bytes]: ...
    def put(self, stage: str, key: str, outputs: Mapping[str, bytes], metadata: Optional[Mapping[str, Any]] = None) -> bool: ...


def product_key(pid: str, name: str) -> str:
    return f"products/{pid}/{name}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_key(stage: str, version: str, backend: str, model_id: str, params: Mapping[str, Any],
              input_digests: Mapping[str, str]) -> str:
    """sha256 of (stage, version, backend, model id, parameters, input digests)."""
    doc = {
        "stage": stage,
        "version": version,
        "backend": backend,
        "model_id": model_id,
        "params": dict(sorted(params.items())),
        "inputs": dict(sorted(input_digests.items())),
    }
    return sha256_hex(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8"))


@dataclass
class StageResult:
    stage: str
    key: str
    cache: str  # "hit", "miss" or "off"
    outputs: Files  # what this call wrote (on a hit, only outputs that had changed)
    metadata: dict[str, Any]
    timings_ms: dict[str, float] = field(default_factory=dict)
    settings_key: str = ""  # digest of stage, version, backend, model id and settings (no inputs)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def _backend_key(backend: Any) -> tuple[str, Optional[BaseModel]]:
    """(name, own settings) of a resolved backend; ("", None) for a stage without one."""
    return (backend.name, backend.params) if backend is not None else ("", None)


def run_stage(store: Store, cache: Cache, stage: Stage, params: BaseModel, ctx: StageContext, compute: Compute,
              given: Optional[Files] = None, backend: Any = None) -> StageResult:
    """Look up or compute one stage for one product and write its outputs.

    `given` are the stage's `sources` (the upload); its `inputs` are read from
    `products/<pid>/` only when needed: for the key, the digest the store recorded when it
    wrote them is enough, so a cache hit reads no image. On a hit, outputs whose stored
    digest already matches are not written again.
    """
    pid = ctx.product_id
    t = time.perf_counter()
    key, files = stage_key(store, cache, stage, params, ctx, given or {}, backend)
    timings = {"cache_lookup": _ms(t)}

    entry = cache.manifest(stage.name, key)
    written: Files = {}
    if entry is not None:
        for name, digest in entry.digests.items():
            if store.digest(product_key(pid, name)) == digest:
                continue  # already the latest output
            data = cache.blob(stage.name, digest)
            if data is None:  # damaged entry: recompute below
                entry = None
                break
            written[name] = data
    if entry is not None:
        # The entry's metadata describes the run that computed it; what that run measured
        # (load and inference times) did not happen now.
        metadata = {k: v for k, v in entry.metadata.items() if k not in MEASURED_NOW}
        status = "hit"
    else:
        for name in stage.inputs:
            if name not in files:
                files[name] = store.get(product_key(pid, stage.source_of(name)))
        t = time.perf_counter()
        written, metadata = compute(files, ctx)
        timings["compute"] = _ms(t)
        t = time.perf_counter()
        written = encode_files(written, remember=READ_BY_A_STAGE)
        timings["encode"] = _ms(t)
        status = "miss" if cache.enabled else "off"
        if not cache.put(stage.name, key, written, metadata) and cache.enabled:
            written, metadata = _committed(cache, stage.name, key, written, metadata)
    t = time.perf_counter()
    put_all(store, {product_key(pid, name): data for name, data in written.items()})
    timings["write"] = _ms(t)
    return StageResult(stage.name, key, status, written, metadata, timings,
                       settings_key(stage.name, stage.version, params, *_backend_key(backend)))


def put_all(store: Store, objects: Mapping[str, bytes]) -> None:
    """Write several objects at once (their disk syncs or S3 round trips overlap); errors propagate."""
    def put(item: tuple[str, bytes]) -> None:
        key, data = item
        store.put(key, data, CONTENT_TYPES.get(key[key.rfind("."):]))

    if len(objects) > 1:
        list(encoder_pool().map(put, objects.items()))
    else:
        for item in objects.items():
            put(item)


def _committed(cache: Cache, stage: str, key: str, written: Files, metadata: dict) -> tuple[Files, dict]:
    """Another run committed this key first: write its bytes, not ours.

    A GPU model (FLUX) need not give the same bytes twice; the product's files must agree
    with the cache entry that later runs will reuse.
    """
    entry = cache.manifest(stage, key)
    if entry is None:
        return written, metadata
    theirs: Files = {}
    for name, digest in entry.digests.items():
        data = cache.blob(stage, digest)
        if data is None:
            return written, metadata
        theirs[name] = data
    return theirs, entry.metadata


def stage_key(store: Store, cache: Cache, stage: Stage, params: BaseModel, ctx: StageContext, given: Files,
              backend: Any = None) -> tuple[str, Files]:
    """(cache key, the files read to make it): inputs' digests come from the store when it has them.

    The context fields the stage is keyed by count as inputs named after the field (the
    digest of their UTF-8 text), as the given files do.
    """
    files = dict(given)
    digests = {n: sha256_hex(b) for n, b in given.items()}
    digests.update({f: sha256_hex(str(getattr(ctx, f)).encode("utf-8")) for f in stage.keyed})
    for name in stage.inputs:
        stored = product_key(ctx.product_id, stage.source_of(name))
        digest = store.digest(stored) if cache.enabled else None
        if digest is None:
            files[name] = store.get(stored)
            digest = sha256_hex(files[name])
        digests[name] = digest
    name, backend_params = _backend_key(backend)
    return cache_key(stage.name, stage.version, name, _model_id(backend_params),
                     _key_params(params, backend_params), digests), files


def _model_id(backend_params: Optional[BaseModel]) -> str:
    """The model setting; for a hub id, with the snapshot in the local cache, so new weights are new results."""
    if backend_params is None:
        return ""
    from adgen_dagster.models.weights import snapshot_name

    ref = str(getattr(backend_params, "model", ""))
    snap = snapshot_name(ref)
    return f"{ref}@{snap}" if snap else ref


def _key_params(params: BaseModel, backend_params: Optional[BaseModel]) -> dict:
    """The stage's settings, plus a neural backend's own (minus those that only change speed)."""
    doc = params.model_dump(mode="json")
    if backend_params is not None:
        doc["backend_params"] = (backend_params.key_params() if hasattr(backend_params, "key_params")
                                 else backend_params.model_dump(mode="json"))
    return doc


def settings_key(stage: str, version: str, params: BaseModel, backend: str = "",
                 backend_params: Optional[BaseModel] = None) -> str:
    """What decides a stage's output besides its inputs; a change makes earlier outputs stale."""
    return cache_key(stage, version, backend, _model_id(backend_params), _key_params(params, backend_params), {})[:16]


# --- the chain: every stage in memory -------------------------------------------------------


def build_step(stage: Stage, params: BaseModel, backend: Any = None) -> Compute:
    """The stage's compute from its parameters and (for a stage with alternatives) its resolved backend."""
    return stage.step(params, backend) if stage.backend else stage.step(params)


def default_backend(stage: Stage, settings: Any, host: Any) -> Any:
    """The backend the settings name for `stage` on `host` (None without alternatives); unknown names fail here."""
    if not stage.backend:
        return None
    from adgen_dagster.backends import resolve

    return resolve(stage.backend, backend_for(stage, settings), host=host)


Chain = list[tuple[Stage, Compute]]


def chain_for(settings: Any, stages: Sequence[Stage] = STAGES, host: Any = None) -> Chain:
    """Every stage's compute with the settings applied, in graph order; backends resolved once, here.

    Neural backends run on `host` (default: this process's host for the settings' `gpu` section).
    """
    if host is None and any(s.backend for s in stages):
        from adgen_dagster.models.host import host_for

        host = host_for(settings.gpu)
    return [(s, build_step(s, params_for(s, settings), default_backend(s, settings, host))) for s in stages]


@dataclass
class ChainResult:
    files: Files = field(default_factory=dict)  # every stage's outputs (images not yet encoded)
    metadata: dict[str, dict] = field(default_factory=dict)  # stage -> its metadata
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> compute time


def run_chain(chain: Iterable[tuple[Stage, Compute]], ctx: StageContext, given: Files,
              on_stage: Callable[[int, str], None] = lambda i, name: None,
              around: Optional[Callable[[str, Callable[[], Any]], Any]] = None) -> ChainResult:
    """All stages for one product, in memory; raises on the first failure (nothing is written).

    Each stage gets the images the earlier ones made as they are, not as PNG bytes to
    decode (the same pixels: PNG is lossless). `around(name, fn)` may wrap each stage (profiling).
    """
    res = ChainResult()
    files: Files = dict(given)
    for i, (stage, compute) in enumerate(chain):
        on_stage(i, stage.name)
        t0 = time.perf_counter()
        given_files = {**files, **{n: files[f] for n, f in stage.reads.items() if f in files}}
        call = (lambda c=compute: c(given_files, ctx))
        outputs, meta = around(stage.name, call) if around else call()
        res.timings_ms[stage.name] = _ms(t0)
        files.update(outputs)
        res.files.update(outputs)
        res.metadata[stage.name] = meta
    return res
