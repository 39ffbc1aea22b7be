"""decode_upload: every kind of upload becomes an 8-bit RGB/RGBA image or one clear error."""

import numpy as np
import pytest
from PIL import Image

from adgen_dagster.imaging.decode import BadImageError, DecodeParams, decode_upload
from tests.imagegen import animated, encode, exif_rotated_jpeg, png_declaring, product_photo


def test_jpeg_roundtrip_keeps_size_and_content():
    src = product_photo((300, 200))
    out = decode_upload(encode(src, "JPEG", quality=95), "a.jpg")
    assert out.mode == "RGB" and out.size == (300, 200)
    assert np.abs(np.asarray(out, np.int16) - np.asarray(src, np.int16)).mean() < 3


def test_exif_orientation_is_applied():
    src = product_photo((200, 100))
    out = decode_upload(exif_rotated_jpeg(src, 6), "rot.jpg")
    assert out.size == (100, 200)
    # orientation 6 = rotate 90 CW for display: the source's left column is now the top row
    expected = src.transpose(Image.Transpose.ROTATE_270)
    assert np.abs(np.asarray(out, np.int16) - np.asarray(expected, np.int16)).mean() < 4


def test_cmyk_jpeg_becomes_rgb():
    src = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_upload(encode(src, "JPEG", quality=95), "cmyk.jpg")
    r, g, b = np.asarray(out).reshape(-1, 3).mean(axis=0)
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16bit_png_scales_instead_of_clipping():
    arr = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    src = Image.fromarray(arr)
    assert src.mode.startswith("I;16")
    out = decode_upload(encode(src, "PNG"), "deep.png")
    row = np.asarray(out)[0, :, 0]
    assert out.mode == "RGB" and row[0] < 5 and row[-1] > 250 and 100 < row[32] < 160


def test_palette_png_with_transparency_keeps_alpha():
    src = Image.new("P", (64, 64), 0)
    src.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    src.paste(1, (16, 16, 48, 48))
    out = decode_upload(encode(src, "PNG", transparency=0), "pal.png")
    a = np.asarray(out)[..., 3]
    assert out.mode == "RGBA" and a[0, 0] == 0 and a[32, 32] == 255


def test_opaque_alpha_is_dropped_and_grayscale_becomes_rgb():
    assert decode_upload(encode(Image.new("RGBA", (40, 40), (1, 2, 3, 255)), "PNG"), "o.png").mode == "RGB"
    assert decode_upload(encode(Image.new("L", (40, 40), 128), "PNG"), "g.png").mode == "RGB"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_give_first_frame(fmt):
    out = decode_upload(animated(fmt), f"anim.{fmt.lower()}")
    assert out.size == (64, 64)
    r, g, b = np.asarray(out.convert("RGB"))[32, 32]
    assert r < 20 and b > 180  # frame 0 colour (0, 100, 200)


def test_huge_image_is_downscaled_to_max_side():
    src = Image.new("RGB", (5000, 2500), (10, 200, 30))
    out = decode_upload(encode(src, "PNG"), "big.png", DecodeParams(max_side=1024))
    assert out.size == (1024, 512)


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"", "empty"),
        (b"hello, I am not a picture\n" * 10, "not an image"),
        (png_declaring(50000, 50000), "decompression bomb"),
        (encode(Image.new("RGB", (1, 1)), "PNG"), "1x1"),
    ],
    ids=["empty", "text", "bomb", "1x1"],
)
def test_bad_uploads_raise_one_readable_error(data, needle):
    with pytest.raises(BadImageError) as err:
        decode_upload(data, "shop/photo.jpg")
    msg = str(err.value)
    assert msg.startswith("shop/photo.jpg: ") and needle in msg and "\n" not in msg


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_fail_clearly(fmt):
    data = encode(product_photo((400, 300)), fmt)
    with pytest.raises(BadImageError, match=r"cut\.(jpeg|png): the image (data is truncated|cannot be decoded)"):
        decode_upload(data[: len(data) // 2], f"cut.{fmt.lower()}")
