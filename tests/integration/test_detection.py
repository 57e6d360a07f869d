"""Face detection, alignment and following on real photographs composited at known places.

The faces are scikit-image's astronaut and matplotlib's Grace Hopper, the backgrounds
scikit-image's photos (``fer_multires.data.synthetic.real_faces``): the tests know where every
face truly is. The wheel's own MTCNN implementation (OpenCV DNN) is the oracle for the cascade.
"""

from __future__ import annotations

from unit.test_detection import (
    detector,  # noqa: F401 (fixtures)
    moving_frames,
    persistent,
    recall,
    track_of_each_face,
)

from fer_multires.data.synthetic.real_faces import (
    match,
)
from fer_multires.inference.detect import (
    Face,
    HaarDetector,
)
from fer_multires.inference.tracks import FaceFollower, FaceTracker


def test_mtcnn_finds_14_px_faces_that_haar_misses(detector) -> None:
    mtcnn_recall, mtcnn_false = recall(detector, 14, composites=8)
    haar_recall, _ = recall(HaarDetector(), 14, composites=8)
    assert mtcnn_recall >= 0.9, mtcnn_recall
    assert mtcnn_false == 0
    assert haar_recall <= 0.1


def follow_clip(detector, clip, detect_every: int) -> list[list[tuple[int, Face]]]:
    follower = FaceFollower(detector, FaceTracker(), detect_every)
    return persistent([follower(frame) for frame, _ in clip])


def test_six_moving_faces_are_six_tracks_and_the_same_faces_as_detecting_every_frame(
    detector,
) -> None:
    clip = moving_frames(20)
    every = follow_clip(detector, clip, detect_every=1)
    followed = follow_clip(detector, clip, detect_every=5)
    for found in (every, followed):
        assert all(len(ids) == 1 for ids in track_of_each_face(clip, found))  # one track a face
        assert len({tid for rows in found for tid, _ in rows}) == 6  # and no other
        for (_, truth), rows in zip(clip, found, strict=True):
            assert match(truth, [f.box.corners for _, f in rows]) == ([True] * 6, 0)
