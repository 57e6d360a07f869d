"""The fast path's decoder gives the reference's pixels, and names the file it cannot read."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fer_multires.data.datasets import BadImageError, decode_pil, decode_tensor


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
