"""The fast path's decoder gives the reference's pixels, and names the file it cannot read."""

from __future__ import annotations

import io
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fer_multires.data.datamodule import probe_native_size
from fer_multires.data.datasets import BadImageError, decode_pil, decode_tensor
from fer_multires.inference.sources import read_image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(mode: str, size: tuple[int, int] = (37, 23), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    return Image.fromarray(rgba, "RGBA").convert(mode)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "JPEG"), ("L", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("P", "PNG")],
)
def test_fast_path_decoder_gives_the_reference_pixels(mode: str, fmt: str) -> None:
    data = encoded(noise(mode), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    fast = decode_tensor(data, "x")
    reference = torch.from_numpy(np.asarray(decode_pil(data, "x"))).permute(2, 0, 1)
    assert fast.dtype == torch.uint8 and fast.shape == (3, 23, 37) and fast.is_contiguous()
    assert torch.equal(fast, reference)


def test_exif_orientation_is_ignored_as_by_the_reference() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    data = encoded(noise("RGB"), "JPEG", quality=90, exif=exif.tobytes())
    fast = decode_tensor(data, "x")
    assert fast.shape == (3, 23, 37)
    assert torch.equal(fast, torch.from_numpy(np.asarray(decode_pil(data, "x"))).permute(2, 0, 1))


@pytest.mark.parametrize(
    ("cut", "message"),
    [(0, "the file is empty"), (60, "not a complete JPEG or PNG"), (-2, "not a complete")],
)
def test_unreadable_bytes_are_an_error_naming_the_file(cut: int, message: str) -> None:
    data = encoded(noise("RGB"), "JPEG", quality=90)
    with pytest.raises(BadImageError, match=f"^frames/a.jpg: cannot read image: {message}"):
        decode_tensor(data[:cut], "frames/a.jpg")
    with pytest.raises(BadImageError, match="^b.png: cannot read image"):
        decode_tensor(b"not an image at all", "b.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_sixteen_bit_png_keeps_its_high_byte_on_both_paths(channels: int, tmp_path) -> None:
    # a 16-bit grayscale PNG opens in PIL as I;16, whose RGB conversion clipped every value
    # above 255 (an almost white image); both paths must keep the high byte, as OpenCV does
    rng = np.random.default_rng(1)
    deep = rng.integers(0, 65536, (23, 37, channels), dtype=np.uint16)
    data = cv2.imencode(".png", deep if channels == 3 else deep[..., 0])[1].tobytes()
    expected = np.repeat(deep >> 8, 3 // channels, axis=2).astype(np.uint8)
    if channels == 3:
        expected = expected[..., ::-1]  # OpenCV wrote BGR
    assert np.array_equal(np.asarray(decode_pil(data, "x")), expected)
    assert np.array_equal(decode_tensor(data, "x").permute(1, 2, 0).numpy(), expected)
    (tmp_path / "deep.png").write_bytes(data)  # and predict's reader of photos
    assert np.array_equal(read_image(tmp_path / "deep.png"), expected)


def test_decompression_bomb_is_a_bad_image_on_both_paths(monkeypatch) -> None:
    data = encoded(noise("RGB", size=(100, 100)), "PNG")  # 10000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refused above 2000
    with pytest.raises(BadImageError, match=r"^frames/big.png: cannot read image: Image size"):
        decode_pil(data, "frames/big.png")
    with pytest.raises(BadImageError, match=r"^frames/big.png: cannot read image: 100x100"):
        decode_tensor(data, "frames/big.png")
    small = encoded(noise("RGB", size=(40, 40)), "PNG")  # 1600: read by both
    assert decode_pil(small, "x").size == (40, 40)
    assert decode_tensor(small, "x").shape == (3, 40, 40)


class _Frames:
    """What :func:`probe_native_size` reads of a dataset: its encoded images."""

    image_size = None
    split = SimpleNamespace(pixels=None, boxes=None)
    images_dir = "frames"

    def __init__(self, *images: bytes) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def read_bytes(self, index: int) -> bytes:
        return self.images[index]


def test_native_size_probe_passes_over_a_decompression_bomb(monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    big, small = (encoded(noise("RGB", size=s), "PNG") for s in ((100, 100), (30, 20)))
    assert probe_native_size(_Frames(big, small)) == (20, 30)
