"""The `adgen` command line through its real entry point (the installed console script).

Most tests run `.venv/bin/adgen` as a subprocess on the bundled sample photos; cheap
usage-error checks go through typer's CliRunner on the same app. The digest test runs
the same photos through the Dagster assets and through `adgen run` and compares every
output file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from adgen_dagster.cli import app
from adgen_dagster.demo import sample_catalog
from adgen_dagster.product_ids import product_id_for
from adgen_dagster.definitions import location_resources
from assets_defs import PIPELINE_ASSETS
from tests.conftest import SAMPLES

ADGEN = shutil.which("adgen", path=str(Path(sys.executable).parent))
CATALOG = {row["upload"]: row for row in sample_catalog()}
PHOTO = SAMPLES / "B07GTFSCHB_844a1cce.jpg"  # 1024x1024, "vitamin-e-capsules"


def adgen(*args: str, cwd: Path, env: dict | None = None, input: bytes | None = None, timeout: float = 120):
    if ADGEN is None:
        pytest.fail(f"the adgen console script is not installed next to {sys.executable}; run `pip install -e .`")
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ADGEN_")}
    proc = subprocess.run([ADGEN, *args], cwd=cwd, env={**clean, **(env or {})}, input=input,
                          capture_output=True, timeout=timeout)
    proc.err = proc.stderr.decode("utf-8", "replace")
    proc.out = proc.stdout.decode("utf-8", "replace") if not args or args[-1] != "-" else ""
    return proc


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    for k in list(os.environ):
        if k.upper().startswith("ADGEN_"):
            monkeypatch.delenv(k)
    return CliRunner()


# ------------------------------------------------------------------------------ help, usage


def test_every_command_has_help_with_examples(tmp_path, runner):
    top = adgen("--help", cwd=tmp_path)
    assert top.returncode == 0 and all(c in top.out for c in ("cutout", "run", "upload", "demo", "doctor"))
    for cmd in ("cutout", "run", "upload", "demo", "doctor"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0, r.output
        assert "Examples:" in r.output and f"adgen {cmd}" in r.output, cmd
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_usage_errors_exit_2_and_configuration_errors_exit_1(tmp_path, runner, monkeypatch):
    photo = tmp_path / "p.jpg"
    shutil.copy(PHOTO, photo)
    (tmp_path / "file.txt").write_text("x")
    usage = [
        ["cutout", str(tmp_path / "missing.jpg"), str(tmp_path / "o.png")],
        ["cutout", str(tmp_path), "-"],  # a folder cannot go to stdout
        ["cutout", "--segmenter", "nope", str(photo), str(tmp_path / "o.png")],
        ["run", "--out", str(tmp_path / "o")],  # nothing to run
        ["run", str(photo), "--out", str(tmp_path / "file.txt")],
        ["run", str(photo), "--out", str(tmp_path / "o"), "--background", "flux-typo"],
        ["upload", str(photo), "--details", '{"price": '],
    ]
    for args in usage:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o").exists()

    monkeypatch.setenv("ADGEN_SEGMENTER", "birefnet-typo")
    r = runner.invoke(app, ["cutout", str(photo), str(tmp_path / "o.png")])
    assert r.exit_code == 1 and "ADGEN_SEGMENTER" in r.output and "Traceback" not in r.output
    monkeypatch.delenv("ADGEN_SEGMENTER")
    monkeypatch.setenv("ADGEN_COMPOSITE__PLACEMENT", "sideways")
    r = runner.invoke(app, ["run", str(photo), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "ADGEN_COMPOSITE__PLACEMENT" in r.output


# ------------------------------------------------------------------------------ cutout


def test_cutout_file_mask_and_stdin_stdout_on_a_sample(tmp_path):
    r = adgen("cutout", str(PHOTO), "cut.png", cwd=tmp_path)
    assert r.returncode == 0, r.err
    with Image.open(tmp_path / "cut.png") as im:
        assert im.mode == "RGBA" and im.size == (1024, 1024)
        alpha = np.asarray(im.getchannel("A"))
    assert 0.05 < alpha.mean() / 255 < 0.95

    r = adgen("cutout", "--mask-only", str(PHOTO), "mask.png", cwd=tmp_path)
    assert r.returncode == 0, r.err
    with Image.open(tmp_path / "mask.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), alpha)

    r = adgen("cutout", "-", "-", cwd=tmp_path, input=PHOTO.read_bytes())
    assert r.returncode == 0, r.err
    assert r.stdout == (tmp_path / "cut.png").read_bytes()  # deterministic: same bytes either way


def test_cutout_folder_mode_skips_non_images_and_names_failures(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(PHOTO, src / "capsules.jpg")
    (src / "capsules.jpg.json").write_text('{"headline": "x"}')  # a sidecar: not an input
    (src / "notes.txt").write_text("not a photo")
    (src / "broken.jpg").write_bytes(b"this is not a jpeg\n" * 10)
    (src / "empty.png").write_bytes(b"")
    r = adgen("cutout", str(src), str(out), cwd=tmp_path)
    assert r.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["capsules.png"]
    lines = r.err.splitlines()
    assert any("skipped" in ln and "notes.txt" in ln for ln in lines)
    assert [ln for ln in lines if "broken.jpg" in ln] == [f"adgen cutout: {src / 'broken.jpg'}: not an image (the content is not a format this tool can read)"]
    assert any(ln.startswith("adgen cutout: ") and "empty.png" in ln and "empty" in ln for ln in lines)
    assert "Traceback" not in r.err and "1 written, 2 failed, 1 skipped" in r.err

    r = adgen("cutout", "--verbose", str(src / "broken.jpg"), str(tmp_path / "b.png"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" in r.err and "BadImageError" in r.err
    assert not (tmp_path / "b.png").exists()


def test_cutout_and_run_never_import_dagster(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    code = (
        "import sys; from adgen_dagster.cli import main\n"
        f"assert main(['cutout', {str(tmp_path / 'bad.jpg')!r}, {str(tmp_path / 'o.png')!r}]) == 1\n"
        f"assert main(['run', {str(tmp_path / 'bad.jpg')!r}, '--out', {str(tmp_path / 'o')!r}, '-q']) == 1\n"
        "print('DAGSTER', sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "DAGSTER []"


# ------------------------------------------------------------------------------ run


def test_run_writes_the_same_files_as_the_dagster_assets(tmp_path, store, store_resource, instance, add_product):
    names = ["gu10-led-bulb.jpg", "duffel-bag-strap.jpg"]  # Hangul details; no details at all
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in names:
        row = CATALOG[name]
        data = (SAMPLES.parent / row["photo"]).read_bytes()
        shutil.copy(SAMPLES.parent / row["photo"], photos / name)
        if row["details"] is not None:
            (photos / (name + ".json")).write_text(json.dumps(row["details"], ensure_ascii=False), encoding="utf-8")
        pid = add_product(name, data=data, details=row["details"])
        result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(store_resource), instance=instance)
        assert result.success

    r = adgen("run", str(photos), "--out", "out", cwd=tmp_path)
    assert r.returncode == 0, r.err + r.out
    for name in names:
        pid = product_id_for(name)
        dagster_files = {k: v for k, v in digests(store.root / "products" / pid).items() if k != "upload.json"}
        cli_files = digests(tmp_path / "out" / pid)
        assert len(cli_files) == 17 and {"ads/1080x1080.png", "ads/1200x628.html", "analysis.json"} <= set(cli_files)
        assert cli_files == dagster_files, name
        assert pid in r.out and "ok" in r.out

    # `adgen cutout` writes what the pipeline stores as nobg_image.png / mask.png
    pid = product_id_for(names[1])
    r = adgen("cutout", str(photos / names[1]), "cut.png", cwd=tmp_path)
    assert r.returncode == 0, r.err
    assert (tmp_path / "cut.png").read_bytes() == (store.root / "products" / pid / "nobg_image.png").read_bytes()


def test_run_bad_inputs_fail_alone_with_one_line_each(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "capsules.jpg")
    (src / "broken.jpg").write_bytes(PHOTO.read_bytes()[:3000])  # a truncated JPEG
    shutil.copy(PHOTO, src / "mug.jpg")
    (src / "mug.jpg.json").write_text('{"headline": "Mug", "price": ', encoding="utf-8")
    (src / "readme.md").write_text("notes")
    r = adgen("run", str(src), "--out", "out", "--headline", "여름 세일 & <b>", "-q", cwd=tmp_path)
    assert r.returncode == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["capsules"]  # failed photos write nothing
    details = json.loads((tmp_path / "out" / "capsules" / "details.json").read_text(encoding="utf-8"))
    assert details["headline"] == "여름 세일 & <b>"
    assert "&lt;b&gt;" in (tmp_path / "out" / "capsules" / "ads" / "1080x1080.html").read_text(encoding="utf-8")
    errors = [ln for ln in r.err.splitlines() if ln.startswith("adgen run: ")]
    assert len(errors) == 2, r.err
    assert any(str(src / "broken.jpg") in ln and "truncated or damaged" in ln for ln in errors)
    assert any(str(src / "mug.jpg.json") in ln and "not valid UTF-8 JSON" in ln for ln in errors)
    assert "Traceback" not in r.err
    assert "1 ok, 2 failed" in r.out and "skipped" in r.err and "readme.md" in r.err


def test_run_catalog_errors(tmp_path, runner):
    (tmp_path / "bad.json").write_text("[1, 2]")
    r = runner.invoke(app, ["run", "--catalog", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "bad.json: expected a JSON list" in r.output
    shutil.copy(PHOTO, tmp_path / "shoe.jpg")
    (tmp_path / "shoe.png").write_bytes(b"")
    (tmp_path / "cat.json").write_text(json.dumps([{"photo": "missing.jpg", "upload": "x.jpg"}]))
    r = runner.invoke(app, ["run", str(tmp_path / "shoe.png"), "--catalog", str(tmp_path / "cat.json"), "-q",
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "shoe.png: the file is empty" in r.output and "missing.jpg" in r.output


# ------------------------------------------------------------------------------ upload


def test_upload_puts_photos_and_details_into_the_store(tmp_path):
    store_root = tmp_path / "store"
    env = {"ADGEN_STORE__ROOT": str(store_root)}
    shutil.copy(PHOTO, tmp_path / "Vitamin E.jpg")
    (tmp_path / "Vitamin E.jpg.json").write_text('{"headline": "Daily"}', encoding="utf-8")
    shutil.copy(PHOTO, tmp_path / "plain.jpg")
    (tmp_path / "broken.jpg").write_bytes(PHOTO.read_bytes()[:3000])  # a truncated JPEG
    r = adgen("upload", "Vitamin E.jpg", "plain.jpg", "broken.jpg", cwd=tmp_path, env=env)
    assert r.returncode == 1
    uploads = store_root / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["Vitamin E.jpg", "Vitamin E.jpg.json", "plain.jpg"]
    assert (uploads / "Vitamin E.jpg").read_bytes() == PHOTO.read_bytes()
    assert json.loads((uploads / "Vitamin E.jpg.json").read_text()) == {"headline": "Daily"}
    assert f"product {product_id_for('Vitamin E.jpg')}" in r.err
    [line] = [ln for ln in r.err.splitlines() if "broken.jpg" in ln]
    assert line.startswith("adgen upload: broken.jpg: the image data is truncated or damaged")
    assert "Traceback" not in r.err

    r = adgen("upload", "plain.jpg", "--details", '{"headline": "새 상품", "price": 12000}', cwd=tmp_path, env=env)
    assert r.returncode == 0, r.err
    assert json.loads((uploads / "plain.jpg.json").read_text(encoding="utf-8"))["headline"] == "새 상품"


# ------------------------------------------------------------------------------ doctor, demo


def test_doctor_reports_settings_and_fails_on_a_backend_that_cannot_run(tmp_path):
    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_STORE__ROOT": str(tmp_path / "store")})
    assert r.returncode == 0, r.err
    for text in ("Settings in force", "segmenter", "auto", "U2-Net-p, shipped", "sha256 ok", "studio", str(tmp_path / "store"), "torch",
                 "NanumSquareB.ttf: found", "ok: everything configured can run here"):
        assert text in r.out, text

    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_SEGMENTER": "birefnet-typo"})
    assert r.returncode == 1
    assert ("adgen doctor: ADGEN_SEGMENTER='birefnet-typo': unknown segmenter backend; set ADGEN_SEGMENTER to one of: "
            "auto, birefnet, classical, u2netp") in r.err
    assert "CANNOT RUN" in r.out and "Traceback" not in r.err

    # A neural backend without its weights (and, here, without a GPU) names the setting to change.
    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_BACKGROUND": "flux", "ADGEN_FLUX__MODEL": "nobody/nothing",
                                           "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 1 and "Traceback" not in r.err
    assert "ADGEN_FLUX__MODEL='nobody/nothing': weights not found" in r.err
    # Weights present, no GPU: the setting that allows the CPU is named.
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "model_index.json").write_text("{}")
    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_BACKGROUND": "flux", "ADGEN_FLUX__MODEL": str(tmp_path / "flux")})
    assert r.returncode == 1 and "ADGEN_GPU__ALLOW_CPU=true" in r.err, r.err
    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_BACKGROUND": "flux", "ADGEN_FLUX__MODEL": str(tmp_path / "flux"),
                                           "ADGEN_GPU__ALLOW_CPU": "true"})
    assert r.returncode == 0 and f"ok: {tmp_path / 'flux'} on cpu" in r.out, r.out + r.err

    (tmp_path / "a-file").write_text("x")
    r = adgen("doctor", cwd=tmp_path, env={"ADGEN_STORE__ROOT": str(tmp_path / "a-file" / "store"),
                                           "ADGEN_ADS__FONT_PATH": str(tmp_path / "nope.ttf")})
    assert r.returncode == 1
    assert "ADGEN_STORE__ROOT" in r.err and "ADGEN_ADS__FONT_PATH" in r.err


def test_demo_command_is_the_demo(runner, monkeypatch):
    import adgen_dagster.demo

    calls = []
    monkeypatch.setattr(adgen_dagster.demo, "main", lambda argv=None: calls.append(argv) or 3)
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 3 and calls == [[]]


def test_doctor_reports_cuda_when_torch_sees_a_gpu(runner, monkeypatch, tmp_path):
    import types

    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 1, get_device_name=lambda i: "Fake GPU",
                                 mem_get_info=lambda i: (70 * 2**30, 80 * 2**30))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="9.9", cuda=cuda, version=types.SimpleNamespace(cuda="12.8")))
    monkeypatch.setenv("ADGEN_STORE__ROOT", str(tmp_path / "store"))
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    assert "torch 9.9" in r.output and "CUDA 12.8: 1 device(s): Fake GPU; 70.0 of 80.0 GiB free" in r.output


def test_upload_and_doctor_with_an_s3_store(tmp_path):
    from tests.s3server import CREDS, S3TestServer

    server = S3TestServer().start()
    try:
        server.client().create_bucket(Bucket="shop")
        env = {"ADGEN_STORE__KIND": "s3", "ADGEN_STORE__BUCKET": "shop", "ADGEN_STORE__PREFIX": "adgen/",
               "ADGEN_STORE__ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": CREDS["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": CREDS["aws_secret_access_key"], "AWS_DEFAULT_REGION": CREDS["region_name"]}
        shutil.copy(PHOTO, tmp_path / "capsules.jpg")
        r = adgen("upload", "capsules.jpg", "--details", '{"headline": "Daily"}', cwd=tmp_path, env=env)
        assert r.returncode == 0, r.err
        assert "s3://shop/adgen/uploads/capsules.jpg" in r.err
        client = server.client()
        assert client.get_object(Bucket="shop", Key="adgen/uploads/capsules.jpg")["Body"].read() == PHOTO.read_bytes()
        assert json.loads(client.get_object(Bucket="shop", Key="adgen/uploads/capsules.jpg.json")["Body"].read()) == {"headline": "Daily"}

        r = adgen("doctor", cwd=tmp_path, env=env)
        assert r.returncode == 0 and "s3, uploads at s3://shop/adgen/uploads (reachable)" in r.out, r.out + r.err
        r = adgen("doctor", cwd=tmp_path, env={**env, "ADGEN_STORE__BUCKET": "no-such-bucket"})
        assert r.returncode == 1 and "no-such-bucket" in r.err and "ADGEN_STORE__BUCKET" in r.err
    finally:
        server.stop()
