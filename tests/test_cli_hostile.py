"""Issue 14: the command line never destroys or loses work, whatever the folder holds.

Never a write over an input; one bad name fails one file; a path ending in / is a
folder; a pipe is a file; hidden photos are photos (as for the sensor); links, FIFOs and
sockets inside a folder are skipped with a note and never opened; every failure line
names its file; reads are bounded. Most runs go through typer's CliRunner in this
process (fast); the process substitution runs the real console script under bash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from adgen_dagster.cli import app
from adgen_dagster.product_ids import product_id_for
from tests.hostile import fifo, link, sparse, tree_state, unix_socket
from tests.imagegen import blank, encode, product_photo
from tests.test_cli import ADGEN

pytestmark = pytest.mark.timeout(180)
SMALL_ENV = {"ADGEN_COMPOSITE__WIDTH": "192", "ADGEN_COMPOSITE__HEIGHT": "192", "ADGEN_BACKDROP__WIDTH": "192",
             "ADGEN_BACKDROP__HEIGHT": "192", "ADGEN_ADS__SIZES": "256x256"}


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    for k in list(os.environ):
        if k.upper().startswith("ADGEN_"):
            monkeypatch.delenv(k)
    for k, v in {**SMALL_ENV, "ADGEN_STORE__ROOT": str(tmp_path / "store")}.items():
        monkeypatch.setenv(k, v)
    return CliRunner()


def photo(seed=0, fmt="JPEG") -> bytes:
    return encode(product_photo((96, 72), seed=seed), fmt)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


def lines(output: str, prefix: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(prefix)]


def test_cutout_in_place_never_writes_over_a_photo(tmp_path, runner):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(photo(1))
    (photos / "b.png").write_bytes(photo(2, "PNG"))
    (photos / "c.jpg").write_bytes(photo(3))
    (photos / "c.png").write_bytes(photo(4, "PNG"))
    before = digests(photos)
    r = runner.invoke(app, ["cutout", str(photos), str(photos)])
    assert r.exit_code == 1
    after = digests(photos)
    assert {k: after[k] for k in before} == before and set(after) == set(before) | {"a.png"}
    with Image.open(photos / "a.png") as im:
        assert im.mode == "RGBA"
    refused = lines(r.output, "adgen cutout: ")
    assert sorted(refused) == sorted([
        f"adgen cutout: {photos / 'b.png'}: not written: the output {photos / 'b.png'} is this photo itself; choose another output",
        f"adgen cutout: {photos / 'c.jpg'}: not written: the output {photos / 'c.png'} is the input {photos / 'c.png'}; "
        "choose another output",
        f"adgen cutout: {photos / 'c.png'}: not written: the output {photos / 'c.png'} is this photo itself; choose another output",
    ])

    # single mode: the output is the input itself, or a link to it
    link(tmp_path / "alias.png", photos / "b.png")
    for out in (photos / "b.png", tmp_path / "alias.png"):
        r = runner.invoke(app, ["cutout", str(photos / "b.png"), str(out)])
        assert r.exit_code == 1 and "is this photo itself" in r.output, r.output
    assert digests(photos) == after


def test_cutout_trailing_slash_is_a_folder_and_a_pipe_is_a_file(tmp_path, runner):
    (tmp_path / "mug.jpg").write_bytes(photo())
    r = runner.invoke(app, ["cutout", str(tmp_path / "mug.jpg"), str(tmp_path / "newdir") + "/"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "newdir").is_dir() and (tmp_path / "newdir" / "mug.png").is_file()

    # hidden names are photos (as for the sensor), and a 255-byte name gets its 255-byte output
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    long = "l" * 251 + ".jpg"
    for name in (".jpg", "..jpg", ".hidden.png", long):
        (hidden / name).write_bytes(photo())
    r = runner.invoke(app, ["cutout", str(hidden), str(tmp_path / "cut")])
    assert r.exit_code == 0 and "4 written, 0 failed, 0 skipped" in r.output, r.output
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == sorted(
        [product_id_for(".jpg") + ".png", product_id_for("..jpg") + ".png", ".hidden.png", "l" * 251 + ".png"])

    if ADGEN is None or shutil.which("bash") is None:
        pytest.fail("needs the adgen console script and bash")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADGEN_")}
    proc = subprocess.run(["bash", "-c", f'"{ADGEN}" cutout <(cat mug.jpg) single.png'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "single.png").is_file()
    with Image.open(tmp_path / "single.png") as im:
        assert im.mode == "RGBA" and im.size == (96, 72)


def test_folder_mode_takes_hidden_photos_skips_links_and_special_files_and_names_every_failure(tmp_path, runner):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(photo(7))
    for name in ("good.jpg", ".jpg", "..jpg", ".hidden.png", "l" * 251 + ".jpg", "new\nline.jpg"):
        (src / name).write_bytes(photo(1))
    with open(os.path.join(os.fsencode(src), b"caf\xe9.jpg"), "wb") as fh:
        fh.write(photo(2))
    (src / "blank.png").write_bytes(blank())  # decodes, but nothing to cut out: fails later, must still be named
    (src / "broken.jpg").write_bytes(b"not a photo at all\n" * 9)
    link(src / "linked.jpg", outside / "private.jpg")
    fifo(src / "pipe.jpg")
    (src / "sub.jpg").mkdir()
    (src / "withlink.jpg").write_bytes(photo(3))
    link(src / "withlink.jpg.json", outside / "private.jpg")
    (src / "withfifo.jpg").write_bytes(photo(4))
    fifo(src / "withfifo.jpg.json")
    with unix_socket(src / "sock.jpg"):
        r = runner.invoke(app, ["run", str(src), "--out", str(out), "-q"])
    assert r.exit_code == 1
    made = {p.name for p in out.iterdir()}
    assert made == {product_id_for(n) for n in ("good.jpg", ".jpg", "..jpg", ".hidden.png", "l" * 251 + ".jpg",
                                               "new\nline.jpg", os.fsdecode(b"caf\xe9.jpg"))}
    notes = lines(r.output, "skipped ")
    for name, why in {"linked.jpg": "symbolic link", "pipe.jpg": "FIFO", "sock.jpg": "socket", "sub.jpg": "a folder"}.items():
        assert sum(ln.startswith(f"skipped {src / name}: ") and why in ln for ln in notes) == 1, (name, notes)
    failed = [ln for ln in lines(r.output, "adgen run: ") if not ln.startswith("adgen run: auto / ")]  # the table's title
    expect = {"blank.png": "no trustworthy cut-out: no product found", "broken.jpg": "not an image",
              "withlink.jpg": "withlink.jpg.json is a symbolic link", "withfifo.jpg": "withfifo.jpg.json is a FIFO"}
    assert len(failed) == len(expect), failed
    for name, why in expect.items():
        assert sum(ln.startswith(f"adgen run: {src / name}") and why in ln for ln in failed) == 1, (name, failed)


def test_upload_judges_each_file_alone_and_never_writes_through_a_link(tmp_path, runner, monkeypatch):
    src, store = tmp_path / "in", tmp_path / "store"
    src.mkdir()
    (src / "good.jpg").write_bytes(photo())
    (src / ".hidden.jpg").write_bytes(photo(1))
    (src / "new\nline.jpg").write_bytes(photo(2))
    (src / "tab\there.jpg").write_bytes(photo(3))
    with open(os.path.join(os.fsencode(src), b"caf\xe9.jpg"), "wb") as fh:
        fh.write(photo(4))
    link(src / "linked.jpg", src / "good.jpg")
    sparse(src / "huge.jpg", 30 * 2**30)
    r = runner.invoke(app, ["upload", str(src)])
    assert r.exit_code == 1
    assert sorted(p.name for p in (store / "uploads").iterdir()) == [".hidden.jpg", "good.jpg"]
    failed = lines(r.output, "adgen upload: ")
    assert any(ln.startswith(f"adgen upload: {src}/new\\nline.jpg: cannot be an upload name") for ln in failed), failed
    assert any(ln.startswith(f"adgen upload: {src}/tab\\there.jpg: cannot be an upload name") for ln in failed), failed
    assert any(ln.startswith(f"adgen upload: {src}/caf\\xe9.jpg: cannot be an upload name (the name is not valid UTF-8)")
               for ln in failed), failed
    assert any("huge.jpg is 32212 MB, larger than the 210 MB limit" in ln for ln in failed), failed
    assert any(ln.startswith(f"skipped {src / 'linked.jpg'}: a symbolic link") for ln in r.output.splitlines())

    # A store whose uploads/ is a link out of it: refused, nothing written there.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.rmtree(store / "uploads")
    link(store / "uploads", outside)
    r = runner.invoke(app, ["upload", str(src / "good.jpg")])
    assert r.exit_code == 1 and "'uploads' is a symbolic link" in r.output, r.output
    assert tree_state(outside) == {}
