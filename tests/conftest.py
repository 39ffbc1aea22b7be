import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from resources.object_store import LocalObjectStore
from resources.products import register_upload
from resources.store_resource import StoreResource
from tests.imagegen import encode, product_photo

# Tests never reach a model hub: the neural backends load tiny models built in the tests,
# and transformers writes remote code (BiRefNet's) under HF_HOME, which must be writable.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="adgen-hf-"))

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "adgen_dagster" / "samples" / "abo"


@pytest.fixture
def store_root(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_root) -> LocalObjectStore:
    return LocalObjectStore(store_root)


@pytest.fixture
def store_resource(store_root) -> StoreResource:
    return StoreResource(root=str(store_root))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def add_product(store, instance):
    """Upload bytes (and optional sidecar) and register them as a product partition."""

    def add(name: str, data: bytes | None = None, details: dict | str | None = None) -> str:
        key = f"uploads/{name}"
        store.put(key, data if data is not None else encode(product_photo(), "JPEG", quality=92))
        if details is not None:
            raw = details if isinstance(details, str) else json.dumps(details, ensure_ascii=False)
            store.put(key + ".json", raw.encode("utf-8"))
        pid = register_upload(store, key).product_id
        instance.add_dynamic_partitions("products", [pid])
        return pid

    return add


@pytest.fixture(scope="module")
def server():
    """A real S3-protocol server (moto) on 127.0.0.1, shared by a test module."""
    from tests.s3server import S3TestServer

    srv = S3TestServer().start()
    yield srv
    srv.stop()
