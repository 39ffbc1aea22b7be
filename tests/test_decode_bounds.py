"""Issue 14: decoding work and memory are bounded before the decoder runs.

- Progressive JPEG scan bombs (thousands of tiny end-of-band scans, or real scans
  repeated) are refused by counting scans first, in well under a second, with one line;
  scans x pixels is bounded too. JPEG inside TIFF goes through libtiff, which stops at
  100 scans itself.
- zlib bombs in PNG text and ICC chunks stay refused (Pillow's chunk limit).
- Peak memory while decoding is at most `MAX_BYTES_PER_PIXEL` (4) bytes per pixel of the
  upload plus 100 MB, measured in a fresh process (VmHWM: the peak resident size of that
  process's own memory; ru_maxrss would carry the parent's peak across exec) for the
  kinds that used to need several copies: 16-bit grey (the issue's 9400x9400 example),
  8-bit RGB, palette with transparency, RGBA and 32-bit grey.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import zlib

import pytest

from adgen_dagster.imaging.decode import MAX_BYTES_PER_PIXEL, BadImageError, DecodeParams, decode_upload
from adgen_dagster.imaging.jpeg_scans import count_scans
from tests.bombs import _chunk, big_png, big_tiff_int32, eob_scan_bomb, jpeg_in_tiff, progressive, repeated_scans
from tests.conftest import REPO
from tests.imagegen import encode, product_photo

pytestmark = pytest.mark.timeout(60)


def refused(data: bytes, name: str, params: DecodeParams | None = None) -> tuple[str, float]:
    t = time.process_time()
    with pytest.raises(BadImageError) as err:
        decode_upload(data, name, params)
    msg = str(err.value)
    assert msg.startswith(f"{name}: ") and "\n" not in msg
    return msg, time.process_time() - t


def test_ordinary_progressive_and_baseline_jpegs_pass_with_their_scan_counts():
    assert count_scans(progressive()) == 10
    assert count_scans(encode(product_photo((64, 48)), "JPEG")) == 1
    assert count_scans(b"not a jpeg") == 0
    out = decode_upload(progressive((640, 480)), "p.jpg")
    assert out.size == (640, 480)
    # an EXIF thumbnail (a whole JPEG inside APP1) is skipped by length, not counted
    thumb = encode(product_photo((160, 120)), "JPEG")
    exif = b"Exif\x00\x00" + b"\x00" * 8 + thumb
    data = progressive()
    with_app1 = data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:]
    assert count_scans(with_app1) == 10


@pytest.mark.parametrize("size,scans", [((1024, 1024), 2000), ((4000, 3000), 2000), ((512, 512), 16000)])
def test_end_of_band_scan_bombs_are_refused_before_decoding(size, scans):
    data = eob_scan_bomb(size, scans)
    assert len(data) < 300_000 and count_scans(data) == 10 + scans
    msg, cpu = refused(data, "bomb.jpg")
    assert "a JPEG with more than 100 scans (possible decoder bomb" in msg
    assert cpu < 1.0, cpu  # decoded, the 4000x3000 one costs seconds of CPU and 16000 scans minutes


def test_repeated_real_scans_and_scans_times_pixels_are_bounded():
    msg, _ = refused(repeated_scans(extra=150), "again.jpg")
    assert "more than 100 scans" in msg
    # 80 extra scans are under the count, but not under a (lowered) bound on scans x pixels
    data = eob_scan_bomb((1000, 1000), 80)
    assert decode_upload(data, "ok.jpg").size == (1000, 1000)
    msg, _ = refused(data, "work.jpg", DecodeParams(max_jpeg_scan_pixels=50_000_000))
    assert "a 1000x1000 JPEG with 90 scans is over the decoding limit of 50 megapixel-scans" in msg


def test_a_scan_bomb_inside_a_tiff_is_stopped_by_libtiff():
    ok = jpeg_in_tiff(progressive((256, 256)), (256, 256))
    assert decode_upload(ok, "ok.tif").size == (256, 256)
    msg, cpu = refused(jpeg_in_tiff(eob_scan_bomb((2048, 2048), 2000), (2048, 2048)), "bomb.tif")
    assert "the image cannot be decoded" in msg and cpu < 1.0


@functools.lru_cache(maxsize=1)
def zlib_bomb() -> bytes:
    return zlib.compress(b"\0" * (128 << 20), 1)  # 128 MB of zeros in about 0.5 MB


@pytest.mark.parametrize("kind,head", [(b"zTXt", b"Comment\0\0"), (b"iTXt", b"Comment\0\1\0\0\0"), (b"iCCP", b"icc\0\0")])
def test_zlib_bombs_in_png_text_and_icc_chunks_are_refused(kind, head):
    png = encode(product_photo((64, 48)), "PNG")
    bomb = zlib_bomb()
    data = png[:33] + _chunk(kind, head + bomb) + png[33:]
    msg, cpu = refused(data, "z.png")
    assert "decompressed data too large" in msg and cpu < 1.0


_CHILD = """
import sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
from adgen_dagster.imaging.decode import decode_upload
data = open(sys.argv[1], "rb").read()
before = hwm()
im = decode_upload(data, "big")
print(hwm() - before, im.width, im.height, im.mode)
"""


def peak_decoding(path) -> tuple[int, tuple[int, int], str]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak, w, h, mode = proc.stdout.split()
    return int(peak), (int(w), int(h)), mode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
@pytest.mark.timeout(300)
def test_peak_memory_per_megapixel(tmp_path):
    cases = [("I;16", 9400, 9400, "RGB"), ("RGB", 9400, 9400, "RGB"), ("P", 6000, 6000, "RGBA"), ("RGBA", 6000, 6000, "RGBA"),
             ("I", 4000, 4000, "RGB")]
    peaks = {}
    for mode, w, h, out_mode in cases:
        path = tmp_path / f"{mode.replace(';', '')}.img"
        big_tiff_int32(path, w, h) if mode == "I" else big_png(path, mode, w, h)
        peak, size, got_mode = peak_decoding(path)
        assert size == (2048, 2048) and got_mode == out_mode
        bound = MAX_BYTES_PER_PIXEL * w * h + 100 * 2**20
        assert peak <= bound, f"{mode} {w}x{h}: {peak / 2**20:.0f} MB > {bound / 2**20:.0f} MB"
        peaks[mode] = peak
    # The case: the 16-bit grey picture no longer needs more than the same picture in 8-bit RGB.
    assert peaks["I;16"] <= peaks["RGB"]
