"""The backend registry: classes by name, each with its kind's shape; neural ones only on the caller's host.

No torch needed: building a neural backend loads nothing (its first call would).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import pytest
from PIL import Image

from adgen_dagster import backends
from adgen_dagster.imaging import backend as shapes
from adgen_dagster.models.birefnet import BiRefNetSegmenter
from adgen_dagster.models.host import ModelHost
from adgen_dagster.models.params import BiRefNetParams, GpuSettings
from adgen_dagster.settings import AdgenSettings
from adgen_dagster import steps

PROTOCOLS = {"segmenter": shapes.Segmenter, "background": shapes.BackgroundRenderer, "analyzer": shapes.Analyzer}
ALL = [(kind, name) for kind, (table, _) in backends.TABLES.items() for name in table]


def protocol_members(protocol: type) -> set[str]:
    """The attributes and methods a protocol declares, its bases' included."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (object,) or cls.__name__ in ("Protocol", "Generic"):
            continue
        names |= {n for n, v in vars(cls).items()
                  if isinstance(v, property) or (inspect.isfunction(v) and (n == "__call__" or not n.startswith("_")))}
    return names


@pytest.fixture
def host(tmp_path) -> ModelHost:
    return ModelHost(GpuSettings(allow_cpu=True, lock_dir=str(tmp_path)))


@pytest.mark.parametrize("kind,name", ALL)
def test_every_backend_is_a_class_with_its_kinds_shape(kind, name, host):
    spec = backends.spec(kind, name)
    assert inspect.isclass(spec.cls) and spec.cls.name == name and spec.description == spec.cls.description != ""
    b = backends.resolve(kind, name, host=host)
    assert isinstance(b.impl, spec.cls) and b.name == name and b.kind == kind
    missing = [m for m in protocol_members(PROTOCOLS[kind]) if not hasattr(b.impl, m)]
    assert missing == []
    wanted = list(inspect.signature(PROTOCOLS[kind].__call__).parameters)[1:]
    assert len(inspect.signature(b.impl).parameters) == len(wanted)  # called positionally, as the stages do
    if "seed" in wanted:
        assert "seed" in inspect.signature(b.impl).parameters
    assert isinstance(b.impl.batch_size, int) and b.impl.batch_size >= 1 and b.batch_size == b.impl.batch_size
    assert isinstance(b.impl.last_metadata, Mapping) and b.last_metadata() == {}  # nothing called yet
    if spec.params is None:
        assert spec.settings_field == "" and b.params is None and b.batch_size == 1
    else:  # its own settings: a section of AdgenSettings, validated into its model
        assert isinstance(getattr(AdgenSettings(), spec.settings_field), spec.params)
        assert isinstance(b.params, spec.params) and b.impl.params == b.params and b.impl.host is host
    assert host.loads == 0  # built, not loaded


@pytest.mark.parametrize("kind,name", [(k, n) for k, n in ALL if backends.spec(k, n).params is not None])
def test_a_neural_backend_without_a_host_is_a_clear_error(kind, name):
    with pytest.raises(TypeError, match=rf"the {kind} backend '{name}' runs a model: resolve it with the caller's "
                                        r"ModelHost \(host=\.\.\."):
        backends.resolve(kind, name)


def test_cpu_backends_need_no_host():
    assert isinstance(backends.get_segmenter("classical").impl, backends.SEGMENTERS["classical"].cls)
    assert backends.get_background("studio").params is None
    assert backends.get_analyzer("classical").last_metadata() == {}


@pytest.mark.parametrize("kind,setting", [("segmenter", "ADGEN_SEGMENTER"), ("background", "ADGEN_BACKGROUND"),
                                          ("analyzer", "ADGEN_ANALYZER")])
def test_an_unknown_name_names_the_setting_and_lists_the_backends(kind, setting):
    table, _ = backends.TABLES[kind]
    with pytest.raises(backends.BackendError) as err:
        backends.resolve(kind, "nope")
    assert str(err.value) == (f"unknown {kind} backend 'nope'; set {setting} (or the run config field 'backend') "
                              f"to one of: {', '.join(sorted(table))}")


def test_a_cpu_segmenters_batch_is_each_photo_in_turn():
    seg = backends.get_segmenter("classical")
    photos = [Image.new("RGB", (64, 48), (235, 235, 235)), Image.new("RGB", (48, 64), (20, 20, 20))]
    for img, (x, y) in zip(photos, [(20, 14), (12, 20)]):
        img.paste((200, 40, 30), (x, y, x + 24, y + 20))
    together = seg.batch(photos)
    alone = [seg(p) for p in photos]
    assert [c.mask.size for c in together] == [(64, 48), (48, 64)]
    for a, b in zip(together, alone):
        assert np.array_equal(np.asarray(a.mask), np.asarray(b.mask)) and np.array_equal(np.asarray(a.rgba), np.asarray(b.rgba))


def test_the_stage_batches_only_a_segmenter_that_batches(host):
    params = AdgenSettings().segment
    assert not hasattr(steps.segmentation(params, backends.get_segmenter("classical")), "batch")
    neural = backends.get_segmenter("birefnet", BiRefNetParams(model="unused", batch_size=3), host)
    assert isinstance(neural.impl, BiRefNetSegmenter)
    compute = steps.segmentation(params, neural)
    assert compute.batch_size == 3 and callable(compute.batch)
    one = backends.get_segmenter("birefnet", BiRefNetParams(model="unused", batch_size=1), host)
    assert not hasattr(steps.segmentation(params, one), "batch")  # one per pass: nothing to gather


def test_each_thread_reads_the_metadata_of_its_own_call():
    """Two products on threads (product_threads) through one neural backend: each gets its own call's notes."""
    import threading

    class Noting:  # a model that notes its last call on itself, as the neural backends do
        batch_size = 1

        def __init__(self):
            self.last_metadata: dict = {}

        def __call__(self, name):
            self.last_metadata = {"product": name}
            return name

    backend = backends.Backend("analyzer", "noting", Noting(), BiRefNetParams())
    a_called, b_called, seen = threading.Event(), threading.Event(), {}

    def product_a():
        backend("a")
        a_called.set()
        b_called.wait(10)  # product b's call comes between a's call and a's reading its notes
        seen["a"] = backend.last_metadata()

    def product_b():
        a_called.wait(10)
        backend("b")
        b_called.set()
        seen["b"] = backend.last_metadata()

    threads = [threading.Thread(target=product_a), threading.Thread(target=product_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a": {"product": "a"}, "b": {"product": "b"}}
