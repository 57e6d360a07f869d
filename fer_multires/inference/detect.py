"""Face detection, offline, and the square crops the classifier sees when faces are not aligned.

Three detectors, chosen by the Hydra group ``detector`` (``detector=NAME``; the options are
these settings classes, registered by :mod:`fer_multires.schemas`):

* ``mtcnn`` (the default): the MTCNN cascade (:mod:`fer_multires.inference.mtcnn`), which finds
  faces down to about 12 px and gives each a score and five landmarks, so the face can be aligned
  (:mod:`fer_multires.inference.align`).
* ``haar``: OpenCV's frontal-face Haar cascade, whose XML ships inside the
  ``opencv-python-headless`` wheel (4.x; 5.0 no longer ships it), run on the full-resolution
  frame. No score, no landmarks: its faces are cropped square.
* ``none`` takes each image as one face already cropped (e.g. Aff-Wild2's ``cropped_aligned``
  frames).

A face that is not aligned (``haar``, ``none``, or ``align=false``) is cropped square around the
detector's box, ``(1 + 2 * margin)`` times its side, from the full-resolution frame; the parts of
the square outside the frame are black, as in aligned face crops. The default margin, 0.2, makes
a crop frame a face about as the training frames do: Aff-Wild2's ``cropped_aligned`` frames are
112 x 112 five-point aligned crops (taken here to be the ArcFace template: eyes at (38.3, 51.7)
and (73.5, 51.5)). ``python benchmarks/predict.py --only margin`` aligns each real face photo
shipped in a wheel (scikit-image's astronaut, matplotlib's Grace Hopper) to that template by its
eyes (OpenCV's eye cascade) and measures the aligned crop's side in Haar box sides, two ways: the
photo's Haar box mapped into the crop (astronaut 1.54, Grace Hopper 1.20) and the cascade run again
on the aligned crop (1.43, 1.25). That is a margin of 0.10 to 0.27, median 0.17; 0.2 is that,
rounded towards the loose side, since a crop tighter than the training frames cuts off chin and
brows while a looser one only adds background. (The cascade on the synthetic Aff-Wild2-style
frames gives 1.21, a margin of 0.11: drawn faces, a check, not the reference.) Haar boxes vary by
face and pose by about as much as the spread above, which is why faces with landmarks are aligned
instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf

from fer_multires.inference.align import align_face
from fer_multires.inference.mtcnn import Detections, Mtcnn, MtcnnSettings, squared
from fer_multires.utils.config import require_numbers

#: ``detector`` group options (their schemas: :data:`fer_multires.schemas.DETECTOR_SCHEMAS`).
DETECTORS: tuple[str, ...] = ("mtcnn", "haar", "none")
#: The cascade used by ``haar``: OpenCV's frontal-face detector.
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
#: The default ``predict.margin`` (see the module's docstring for how it was chosen).
DEFAULT_MARGIN = 0.2
#: The five landmarks' names, in order (left and right as seen in the image).
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Box:
    """A face box in a frame's pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def from_corners(cls, x1: float, y1: float, x2: float, y2: float) -> Box:
        """Return the integer box of float corners (each rounded; at least one pixel a side)."""
        left, top = round(x1), round(y1)
        return cls(left, top, max(1, round(x2) - left), max(1, round(y2) - top))

    @property
    def face_px(self) -> int:
        """The box's shorter side, in the original pixels."""
        return min(self.w, self.h)

    @property
    def side(self) -> int:
        """The box's longer side."""
        return max(self.w, self.h)

    @property
    def corners(self) -> tuple[int, int, int, int]:
        """The box as ``x1, y1, x2, y2`` (right and bottom exclusive)."""
        return self.x, self.y, self.x + self.w, self.y + self.h

    @property
    def centre(self) -> tuple[float, float]:
        """The box's centre, ``x, y``."""
        return self.x + self.w / 2, self.y + self.h / 2

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when they do not overlap)."""
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def shifted(self, dx: int, dy: int) -> Box:
        """Return the box moved by ``dx, dy``."""
        return Box(self.x + dx, self.y + dy, self.w, self.h)


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: its box in the frame.
        score: the detector's confidence (NaN for a detector that gives none).
        landmarks: ``(5, 2)`` ``x, y`` of :data:`LANDMARK_NAMES` in the frame, or None.
    """

    box: Box
    score: float = math.nan
    landmarks: np.ndarray | None = None

    def shifted(self, dx: int, dy: int) -> Face:
        """Return the face moved by ``dx, dy`` (from a region's pixels to the frame's)."""
        marks = None if self.landmarks is None else self.landmarks + np.array([dx, dy])
        return Face(self.box.shifted(dx, dy), self.score, marks)


class Detector(Protocol):
    """Finds the faces of an ``(H, W, 3)`` uint8 RGB frame, left to right, and follows them."""

    def __call__(self, frame: np.ndarray, min_face_px: float | None = None) -> list[Face]:
        """Return the faces; ``min_face_px``: the smallest looked for, if not the configured."""
        ...

    def follow(self, frame: np.ndarray, faces: list[Face]) -> list[Face | None]:
        """Return each face of the previous frame as found in this one, or None if lost."""
        ...


#: A face is followed by looking for it in a square this many of its sides wide around its
#: last box ...
FOLLOW_REGION_SIDES = 3.0
#: ... among faces at least this fraction of its last size.
FOLLOW_MIN_SIZE = 0.6


def look_near(detector: Detector, frame: np.ndarray, face: Face) -> Face | None:
    """Run the detector around where ``face`` was; return the face found nearest, or None.

    The region is :data:`FOLLOW_REGION_SIDES` of the face's sides wide, and only faces of at
    least :data:`FOLLOW_MIN_SIZE` of its size are looked for (for MTCNN, a few small pyramid
    levels instead of the whole frame's).
    """
    height, width = frame.shape[:2]
    centre_x, centre_y = face.box.centre
    half = face.box.side * FOLLOW_REGION_SIDES / 2
    left, top = max(0, math.floor(centre_x - half)), max(0, math.floor(centre_y - half))
    right, bottom = min(width, math.ceil(centre_x + half)), min(height, math.ceil(centre_y + half))
    if right - left < 2 or bottom - top < 2:
        return None
    region = np.ascontiguousarray(frame[top:bottom, left:right])
    near = [f.shifted(left, top) for f in detector(region, face.box.side * FOLLOW_MIN_SIZE)]
    return min(near, default=None,
               key=lambda f: math.dist(f.box.centre, (centre_x, centre_y)))  # fmt: skip


def left_to_right(faces: list[Face]) -> list[Face]:
    """Return the faces sorted by their boxes' left, then top, edges."""
    return sorted(faces, key=lambda f: (f.box.x, f.box.y))


def haar_cascade_path() -> Path:
    """Return where the ``opencv-python-headless`` wheel keeps :data:`HAAR_CASCADE`."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    return Path(folder) / HAAR_CASCADE


@dataclass(frozen=True)
class HaarSettings:
    """The ``detector`` node of ``detector=haar`` (its schema, typed).

    OpenCV's frontal-face Haar cascade (ships in the ``opencv-python-headless`` wheel): no
    score, no landmarks (faces are cropped square with ``predict.margin``, not aligned); misses
    faces under about 24 px.

    Attributes:
        min_face_size: the smallest face looked for, in pixels (the cascade's window is 24).
        scale_factor: the image pyramid's step (> 1).
        min_neighbors: detections a face needs to be kept (higher: fewer false faces).
    """

    min_face_size: int = 24
    scale_factor: float = 1.1
    min_neighbors: int = 5

    def __post_init__(self) -> None:
        """Check every value's range.

        Raises:
            ValueError: naming the ``detector.*`` key.
        """
        require_numbers(self, "detector")
        if not self.scale_factor > 1.0:
            raise ValueError(f"detector.scale_factor={self.scale_factor} must be > 1")
        if int(self.min_neighbors) != self.min_neighbors or self.min_neighbors < 0:
            raise ValueError(f"detector.min_neighbors={self.min_neighbors} must be an integer >= 0")
        if not self.min_face_size >= 1:
            raise ValueError(f"detector.min_face_size={self.min_face_size} must be >= 1")


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on the full-resolution frame.

    Args:
        settings: the pyramid's step (``detectMultiScale``'s ``scaleFactor``), the detections a
            face needs to be kept, the smallest face (the cascade's window is 24 px).

    Raises:
        FileNotFoundError: if OpenCV's wheel ships no cascade (OpenCV 5).
    """

    def __init__(self, settings: HaarSettings | None = None) -> None:
        self.settings = settings or HaarSettings()
        path = haar_cascade_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"detector=haar: {path} not found; install opencv-python-headless>=4.8,<5 "
                "(OpenCV 5 ships no Haar cascades)"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"detector=haar: OpenCV cannot load {path}")

    def __call__(self, frame: np.ndarray, min_face_px: float | None = None) -> list[Face]:
        """Return the faces of an ``(H, W, 3)`` uint8 RGB frame, left to right."""
        side = max(1, round(min_face_px or self.settings.min_face_size))
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(
            gray,
            scaleFactor=self.settings.scale_factor,
            minNeighbors=int(self.settings.min_neighbors),
            minSize=(side, side),
        )
        return left_to_right(
            [Face(Box(int(x), int(y), int(w), int(h))) for x, y, w, h in np.reshape(found, (-1, 4))]
        )

    def follow(self, frame: np.ndarray, faces: list[Face]) -> list[Face | None]:
        """Look for each face near its last box (:func:`look_near`)."""
        return [look_near(self, frame, face) for face in faces]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


class MtcnnDetector:
    """The MTCNN cascade: faces with a score and five landmarks.

    Raises:
        MtcnnWeightsError: if its networks cannot be found or loaded.
    """

    def __init__(self, settings: MtcnnSettings | None = None) -> None:
        self.mtcnn = Mtcnn(settings)

    def __call__(self, frame: np.ndarray, min_face_px: float | None = None) -> list[Face]:
        """Return the faces of an ``(H, W, 3)`` uint8 RGB frame, left to right."""
        return left_to_right(self.faces(self.mtcnn.detect(frame, min_face_px)))

    @staticmethod
    def faces(found: Detections) -> list[Face]:
        """Return the cascade's detections as faces, in their order."""
        return [Face(Box.from_corners(*box), float(score), marks)
                for box, score, marks in zip(found.boxes, found.scores, found.landmarks,
                                             strict=True)]  # fmt: skip

    def follow(self, frame: np.ndarray, faces: list[Face]) -> list[Face | None]:
        """Re-run the O-Net on each face's last box, all in one batch; look near the lost ones.

        The O-Net scores the last box again and regresses it onto the face where it is now, with
        new landmarks: one small batched call for all faces, for motion up to about a quarter
        of a face side between processed frames. A face it scores under ``onet_threshold`` is
        looked for with the whole cascade around its last box (:func:`look_near`).
        """
        if not faces:
            return []
        last = np.array([f.box.corners for f in faces], dtype=np.float64)
        again = self.faces(self.mtcnn.output(frame, squared(last)))
        threshold = self.mtcnn.settings.onet_threshold
        return [now if now.score >= threshold else look_near(self, frame, face)
                for face, now in zip(faces, again, strict=True)]  # fmt: skip

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mtcnn.settings})"


class WholeImage:
    """``detector=none``: each image is one face, already cropped."""

    def __call__(self, frame: np.ndarray, min_face_px: float | None = None) -> list[Face]:
        """Return the whole frame as the one face."""
        return [Face(Box(0, 0, int(frame.shape[1]), int(frame.shape[0])))]

    def follow(self, frame: np.ndarray, faces: list[Face]) -> list[Face | None]:
        """The whole frame again, for each face."""
        return [self(frame)[0] for _ in faces]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def detector_settings(node: DictConfig | dict[str, Any], kind: type) -> Any:
    """Return a detector's settings dataclass from its ``detector`` node (less ``name``).

    Raises:
        ValueError: naming ``detector.<key>`` for an unknown key or a bad value.
    """
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    values = {k: v for k, v in dict(values).items() if k != "name"}  # type: ignore[arg-type]
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"detector: unknown keys {', '.join(f'detector.{k}' for k in unknown)} "
                         f"(known: {', '.join(sorted(known))})")  # fmt: skip
    return kind(**values)


@dataclass(frozen=True)
class NoSettings:
    """``detector=none`` has no settings.

    Each image (or video frame) is one face, already cropped (e.g. Aff-Wild2's
    ``cropped_aligned`` frames), classified whole: no margin, no alignment.
    """


def build_detector(node: DictConfig | dict[str, Any]) -> Detector:
    """Return the detector a ``detector`` node names (``detector.name``), checked.

    Raises:
        ValueError: naming ``detector.name`` for an unknown detector, or the key of a bad value.
    """
    name = node.get("name")
    if name == "mtcnn":
        return MtcnnDetector(detector_settings(node, MtcnnSettings))
    if name == "haar":
        return HaarDetector(detector_settings(node, HaarSettings))
    if name == "none":
        detector_settings(node, NoSettings)
        return WholeImage()
    raise ValueError(f"detector.name={name!r} is not one of {', '.join(DETECTORS)} "
                     "(choose one with detector=NAME)")  # fmt: skip


def check_margin(margin: float) -> float:
    """Validate ``predict.margin``: a number >= 0 (a fraction of the box's side, on each side).

    Raises:
        ValueError: naming ``predict.margin``.
    """
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
        raise ValueError(f"predict.margin={margin!r} must be a number >= 0")
    return float(margin)


def crop_square(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """Crop the square of side ``(1 + 2 * margin) * max(w, h)`` centred on ``box``.

    Parts of the square outside the frame are black. With a box that is the whole frame and a
    margin of 0 (``detector=none``) the frame itself is returned, not squared: it is already a
    face crop, and the evaluation's resize and centre crop apply to it as they do in evaluation.

    Returns:
        The ``(S, S, 3)`` uint8 crop.
    """
    height, width = frame.shape[:2]
    if margin == 0 and (box.x, box.y, box.w, box.h) == (0, 0, width, height):
        return frame
    side = max(1, round(max(box.w, box.h) * (1 + 2 * margin)))
    left = round(box.x + box.w / 2 - side / 2)
    top = round(box.y + box.h / 2 - side / 2)
    crop = np.zeros((side, side, 3), dtype=np.uint8)
    src_left, src_top = max(0, left), max(0, top)
    src_right, src_bottom = min(width, left + side), min(height, top + side)
    if src_right > src_left and src_bottom > src_top:
        crop[src_top - top : src_bottom - top, src_left - left : src_right - left] = frame[
            src_top:src_bottom, src_left:src_right
        ]
    return crop


def face_crop(frame: np.ndarray, face: Face, align: bool, margin: float) -> np.ndarray:
    """Return what the classifier sees of a face.

    Args:
        frame: the frame.
        face: the face.
        align: align a face that has landmarks to the template (:func:`align_face`).
        margin: for a face not aligned, the square crop's margin (:func:`crop_square`).
    """
    if align and face.landmarks is not None:
        return align_face(frame, face.landmarks)
    return crop_square(frame, face.box, margin)
