import os
import threading

import pytest

from resources.object_store import LocalObjectStore, ObjectNotFound, StoreError, check_key


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "store")


def test_put_get_info_list_delete(store):
    store.put("products/a/x.png", b"one")
    store.put("products/b/y.png", b"two!")
    assert store.get("products/a/x.png") == b"one"
    assert store.info("products/b/y.png").size == 4
    assert [o.key for o in store.list("products/")] == ["products/a/x.png", "products/b/y.png"]
    store.delete("products/a/x.png")
    with pytest.raises(ObjectNotFound, match="products/a/x.png"):
        store.get("products/a/x.png")
    assert store.get_or_none("products/a/x.png") is None


def test_version_changes_when_replaced(store):
    store.put("uploads/a.jpg", b"v1")
    v1 = store.info("uploads/a.jpg").version
    store.put("uploads/a.jpg", b"v2-longer")
    assert store.info("uploads/a.jpg").version != v1


def test_listing_pages_in_key_order(store):
    for i in range(25):
        store.put(f"uploads/{i:03d}.jpg", b"x")
    store.put("other/zzz", b"x")
    keys, start = [], None
    pages = 0
    while True:
        page = store.list_page("uploads/", start_after=start, limit=10)
        keys += [o.key for o in page.objects]
        pages += 1
        if page.next_start_after is None:
            break
        start = page.next_start_after
    assert pages == 3 and keys == [f"uploads/{i:03d}.jpg" for i in range(25)]


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", "a/", "", "a/./b", "a\\b", "a\x00b"])
def test_hostile_keys_are_refused(key, store):
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_put_if_absent_writes_once_under_contention(store):
    wins = []

    def writer(i):
        if store.put_if_absent("cache/k", f"writer-{i}".encode()):
            wins.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(wins) == 1 and store.get("cache/k") == f"writer-{wins[0]}".encode()
    assert not [f for f in os.listdir(store.root / "cache") if f.endswith(".part")]


def test_atomic_put_leaves_no_partial_file_on_failure(store, monkeypatch):
    store.put("products/p/a.png", b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(StoreError, match="disk full"):
        store.put("products/p/a.png", b"new-but-broken")
    monkeypatch.undo()
    assert store.get("products/p/a.png") == b"old"
    assert sorted(os.listdir(store.root / "products" / "p")) == ["a.png"]


def test_a_listing_again_keeps_unchanged_infos_and_sees_each_change(store):
    """The local listing remembers what it built per file; a file rewritten in place (same size),
    replaced by a link, or deleted is seen as it is now."""
    for name in ("a", "b", "c", "d"):
        store.put(f"uploads/{name}.jpg", b"1234")
    first = {o.key: o for o in store.list("uploads/")}
    again = {o.key: o for o in store.list("uploads/")}
    assert all(again[k] is first[k] for k in first)  # nothing changed: the same objects, nothing rebuilt
    path = store.root / "uploads" / "a.jpg"
    st = os.stat(path)
    path.write_bytes(b"5678")  # in place, same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    (store.root / "uploads" / "b.jpg").unlink()
    os.symlink("/etc/passwd", store.root / "uploads" / "b.jpg")
    store.delete("uploads/c.jpg")
    page = store.list_page("uploads/")
    now = {o.key: o for o in page.objects}
    assert sorted(now) == ["uploads/a.jpg", "uploads/d.jpg"]
    assert now["uploads/a.jpg"].version != first["uploads/a.jpg"].version and now["uploads/d.jpg"] is first["uploads/d.jpg"]
    assert [(r.key, "link" in r.reason) for r in page.refused] == [("uploads/b.jpg", True)]
    store.put("uploads/c.jpg", b"1234")
    assert store.info("uploads/c.jpg") in store.list_page("uploads/").objects
