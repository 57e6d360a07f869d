"""Face detection, offline, and the square crops the classifier sees.

The detector is OpenCV's frontal-face Haar cascade, whose XML ships inside the
``opencv-python-headless`` wheel (4.x; 5.0 no longer ships it), run on the full-resolution frame.
``predict.detector=none`` takes each image as one face already cropped (e.g. Aff-Wild2's
``cropped_aligned`` frames).

A face is cropped square around the detector's box, ``(1 + 2 * margin)`` times its side, from
the full-resolution frame; the parts of the square outside the frame are black, as in aligned
face crops. The default margin, 0.2, makes a crop frame a face about as the training frames do:
Aff-Wild2's ``cropped_aligned`` frames are 112 x 112 five-point aligned crops (taken here to be
the ArcFace template: eyes at (38.3, 51.7) and (73.5, 51.5)). ``python benchmarks/predict.py
--only margin`` aligns each real face photo shipped in a wheel (scikit-image's astronaut,
matplotlib's Grace Hopper) to that template by its eyes (OpenCV's eye cascade) and measures the
aligned crop's side in Haar box sides, two ways: the photo's Haar box mapped into the crop
(astronaut 1.54, Grace Hopper 1.20) and the cascade run again on the aligned crop (1.43, 1.25).
That is a margin of 0.10 to 0.27, median 0.17; 0.2 is that, rounded towards the loose side,
since a crop tighter than the training frames cuts off chin and brows while a looser one only
adds background. (The cascade on the synthetic Aff-Wild2-style frames gives 1.21, a margin of
0.11: drawn faces, a check, not the reference.) Haar boxes vary by face and pose by about as
much as the spread above, so a per-face alignment would frame better than any one margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: ``predict.detector`` values.
DETECTORS: tuple[str, ...] = ("haar", "none")
#: The cascade used by ``haar``: OpenCV's frontal-face detector.
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
#: The default ``predict.margin`` (see the module's docstring for how it was chosen).
DEFAULT_MARGIN = 0.2


@dataclass(frozen=True)
class Box:
    """A face box in a frame's pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def face_px(self) -> int:
        """The box's shorter side, in the original pixels."""
        return min(self.w, self.h)

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when they do not overlap)."""
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


def haar_cascade_path() -> Path:
    """Return where the ``opencv-python-headless`` wheel keeps :data:`HAAR_CASCADE`."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    return Path(folder) / HAAR_CASCADE


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on the full-resolution frame.

    Args:
        scale_factor: the image pyramid's step (``detectMultiScale``'s ``scaleFactor``).
        min_neighbors: detections a face needs to be kept (higher: fewer false faces).
        min_face_px: the smallest face searched for, in pixels (the cascade's window is 24).

    Raises:
        ValueError: for an invalid setting, named by its ``predict.*`` key.
        FileNotFoundError: if OpenCV's wheel ships no cascade (OpenCV 5).
    """

    def __init__(
        self, scale_factor: float = 1.1, min_neighbors: int = 5, min_face_px: int = 24
    ) -> None:
        if not scale_factor > 1.0:
            raise ValueError(f"predict.haar_scale_factor={scale_factor} must be > 1")
        if min_neighbors < 0:
            raise ValueError(f"predict.haar_min_neighbors={min_neighbors} must be >= 0")
        if min_face_px < 1:
            raise ValueError(f"predict.min_face_px={min_face_px} must be >= 1")
        path = haar_cascade_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"predict.detector=haar: {path} not found; install opencv-python-headless>=4.8,<5 "
                "(OpenCV 5 ships no Haar cascades)"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"predict.detector=haar: OpenCV cannot load {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_px = min_face_px

    def __call__(self, frame: np.ndarray) -> list[Box]:
        """Return the faces of an ``(H, W, 3)`` uint8 RGB frame, left to right."""
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face_px, self.min_face_px),
        )
        boxes = [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in np.reshape(found, (-1, 4))]
        return sorted(boxes, key=lambda b: (b.x, b.y))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale_factor={self.scale_factor}, "
            f"min_neighbors={self.min_neighbors}, min_face_px={self.min_face_px})"
        )


class WholeImage:
    """``predict.detector=none``: each image is one face, already cropped."""

    def __call__(self, frame: np.ndarray) -> list[Box]:
        """Return the whole frame as the one face."""
        return [Box(0, 0, int(frame.shape[1]), int(frame.shape[0]))]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def build_detector(
    name: str, scale_factor: float = 1.1, min_neighbors: int = 5, min_face_px: int = 24
) -> HaarDetector | WholeImage:
    """Return the detector ``predict.detector`` names.

    Raises:
        ValueError: naming ``predict.detector`` for an unknown detector.
    """
    if name == "haar":
        return HaarDetector(scale_factor, min_neighbors, min_face_px)
    if name == "none":
        return WholeImage()
    raise ValueError(f"predict.detector={name!r} is not one of {', '.join(DETECTORS)}")


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
