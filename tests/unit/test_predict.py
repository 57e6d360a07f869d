"""``predict`` on real photos (scikit-image's astronaut), folders and videos written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_entry

from fer_multires.data.transforms_factory import create_transforms
from fer_multires.inference.classifier import CropPreprocessor
from fer_multires.inference.detect import (
    DEFAULT_MARGIN,
    Box,
    Face,
    HaarDetector,
    crop_square,
)
from fer_multires.inference.outputs import annotated_paths
from fer_multires.inference.runner import PredictSettings
from fer_multires.inference.sources import Source
from fer_multires.inference.tracks import FaceTracker
from fer_multires.runs import ModelInput

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def no_face_image() -> np.ndarray:
    """A smooth colour gradient: nothing the cascade could take for a face."""
    ramp = np.linspace(0, 255, 320, dtype=np.float64)
    return np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0 + 0 * ramp[None, :]),
                    axis=-1).astype(np.uint8)  # fmt: skip


def test_preprocessor_groups_sizes_and_keeps_order() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (30, 50, 30, 64)]
    prep = CropPreprocessor(ModelInput(28, 24, "imagenet"))
    batch = prep(crops, torch.device("cpu"))
    transform = create_transforms(resize_size=28, crop_size=24).batch
    for crop, got in zip(crops, batch, strict=True):
        want = transform.eval(torch.from_numpy(crop).permute(2, 0, 1)[None])[0]
        torch.testing.assert_close(got, want)


def test_default_margin_is_the_documented_one() -> None:
    cfg = compose_entry("predict", ["ckpt_path=x", "input=y"], Path("."))
    assert cfg.predict.margin == DEFAULT_MARGIN == PredictSettings().margin


def test_haar_finds_no_face_in_a_gradient() -> None:
    assert HaarDetector()(no_face_image()) == []


def test_crop_square_pads_outside_the_frame_with_black() -> None:
    frame = np.full((100, 120, 3), 200, dtype=np.uint8)
    crop = crop_square(frame, Box(90, -10, 20, 20), margin=0.5)
    assert crop.shape == (40, 40, 3)
    # the square spans x 80..120 and y -20..20: its top half is above the frame
    assert (crop[:20] == 0).all() and (crop[20:] == 200).all()
    whole = crop_square(frame, Box(0, 0, 120, 100), margin=0.0)
    assert whole.shape == frame.shape


def test_tracker_links_by_overlap_and_closes_lost_tracks() -> None:
    tracker = FaceTracker(min_iou=0.3, max_shift=0.2, max_gap=1)

    def update(*boxes: Box) -> list[int]:
        tracker.next_frame()
        return tracker.assign([Face(b) for b in boxes])

    assert update(Box(0, 0, 50, 50), Box(200, 0, 50, 50)) == [0, 1]
    assert update(Box(205, 2, 50, 50), Box(4, 0, 50, 50)) == [1, 0]
    assert update(Box(8, 0, 50, 50)) == [0]  # track 1 unseen for 1 frame
    assert update(Box(12, 0, 50, 50)) == [0]  # track 1 unseen for 2 frames: closed
    assert update(Box(205, 2, 50, 50), Box(400, 0, 50, 50)) == [2, 3]
    assert update(Box(12, 0, 100, 100), Box(400, 0, 50, 50)) == [4, 3]  # twice the size: new


def test_tracker_links_small_faces_by_landmarks_when_boxes_barely_overlap() -> None:
    """A 12 px face moved 5 px: IoU 0.41, under min_iou, but its landmarks moved 0.42 sides."""
    marks = np.array([[3.0, 4], [9, 4], [6, 7], [4, 10], [8, 10]])
    tracker = FaceTracker(min_iou=0.5, max_shift=0.5, max_gap=2)
    tracker.next_frame()
    assert tracker.assign([Face(Box(0, 0, 12, 12), 0.9, marks)]) == [0]
    moved = Face(Box(5, 0, 12, 12), 0.9, marks + np.array([5, 0]))
    assert moved.box.iou(Box(0, 0, 12, 12)) < 0.5
    tracker.next_frame()
    assert tracker.assign([moved]) == [0]
    far = Face(
        Box(14, 0, 12, 12), 0.9, marks + np.array([14, 0])
    )  # moved 9 px = 0.75 sides: another face
    tracker.next_frame()
    assert tracker.assign([far]) == [1]


def test_annotated_paths_are_unique_even_for_a_name_taken_by_the_rule(tmp_path) -> None:
    sources = [Source(tmp_path / n, n, False) for n in ("astro.tif", "astro.tif.png", "b.JPG")]
    paths = annotated_paths(tmp_path, sources)
    assert [p.relative_to(tmp_path / "annotated").as_posix() for p in paths] == [
        "astro.tif.png", "astro.tif~2.png", "b.JPG"]  # fmt: skip
