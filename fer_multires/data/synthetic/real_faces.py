"""Real faces composited at known sizes and places on real backgrounds, for detector checks.

Face detection is measured on photographs that no one here made, shipped offline in wheels:
scikit-image's astronaut (Eileen Collins, public domain) and matplotlib's Grace Hopper for the
faces, scikit-image's coffee, rocket and immunohistochemistry photos (no face in them) for the
backgrounds. Each face photo carries its face's box and five landmarks at full resolution
(:data:`FACE_PHOTOS`: MTCNN's at full resolution, where faces are 100-250 px and it is exact,
checked by eye). A composite pastes each face, with its head and a little of its surroundings
(an ellipse :data:`HEAD_SIDES` face widths wide, its edge feathered), scaled so that the face
box's shorter side is the asked size, mirrored or not, turned in the image plane by up to
``max_angle`` degrees, at a random free place. The true box and landmarks of every face in the
composite are known exactly, so recall by face size is measured, not guessed.

A face's size is its box's shorter side, its width, as ``predict`` measures a face (``face_px``):
a "14 px face" is 14 px wide and, brow to chin, about 18 px tall.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: The face of each photo at full resolution: box ``x, y, w, h`` and the five landmarks
#: (left eye, right eye, nose, left and right mouth corners, as seen in the image).
FACE_PHOTOS: dict[str, tuple[tuple[int, int, int, int], tuple[tuple[float, float], ...]]] = {
    "astronaut": ((180, 63, 86, 110),
                  ((204, 101), (247, 103), (225, 129), (202, 139), (245, 142))),
    "grace_hopper": ((171, 106, 191, 243),
                     ((220, 192), (307, 187), (267, 237), (232, 281), (306, 277))),
}  # fmt: skip
#: The background photos (scikit-image ``data`` names): none shows a face.
BACKGROUNDS: tuple[str, ...] = ("coffee", "rocket", "immunohistochemistry")
#: The pasted head region is an ellipse this many face widths wide (and as much taller as the face).
HEAD_SIDES = 2.0


@functools.lru_cache(maxsize=len(FACE_PHOTOS))
def face_photo(name: str) -> np.ndarray:
    """Return one of :data:`FACE_PHOTOS` as an ``(H, W, 3)`` uint8 RGB array (from its wheel)."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    if name == "grace_hopper":
        import matplotlib
        from PIL import Image

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    raise ValueError(f"no face photo named {name!r} (one of {', '.join(FACE_PHOTOS)})")


def background(name: str, width: int, height: int) -> np.ndarray:
    """Return a scikit-image photo resized and centre-cropped to cover ``width`` x ``height``."""
    from skimage import data

    image = getattr(data, name)()[..., :3]
    scale = max(width / image.shape[1], height / image.shape[0])
    size = (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


@dataclass(frozen=True)
class PlacedFace:
    """A face in a composite: where it truly is.

    Attributes:
        photo: which of :data:`FACE_PHOTOS`.
        size: its box's shorter side (its width), in composite pixels.
        box: ``x1, y1, x2, y2`` (the photo's face box, mapped; axis-aligned around it if turned).
        landmarks: ``(5, 2)`` the five landmarks in the composite (left and right as seen).
    """

    photo: str
    size: float
    box: tuple[float, float, float, float]
    landmarks: np.ndarray

    @property
    def centre(self) -> tuple[float, float]:
        """The box's centre."""
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def placement(photo: str, size: float, centre: tuple[float, float], angle: float,
              mirror: bool) -> np.ndarray:  # fmt: skip
    """Return the ``(2, 3)`` map from the photo to a composite putting its face as asked."""
    (x, y, w, h), _ = FACE_PHOTOS[photo]
    scale = size / min(w, h)
    turn = math.radians(angle)
    cos, sin = scale * math.cos(turn), scale * math.sin(turn)
    flip = -1.0 if mirror else 1.0
    linear = np.array([[cos * flip, -sin], [sin * flip, cos]])
    origin = np.array([x + w / 2, y + h / 2])
    return np.hstack([linear, (np.array(centre) - linear @ origin)[:, None]])


def place_face(canvas: np.ndarray, photo: str, size: float, centre: tuple[float, float],
               angle: float = 0.0, mirror: bool = False) -> PlacedFace:  # fmt: skip
    """Paste a photo's face (``size``: its box's shorter side) into ``canvas``; say where."""
    image = face_photo(photo)
    (x, y, w, h), marks = FACE_PHOTOS[photo]
    matrix = placement(photo, size, centre, angle, mirror)
    # warp and blend only the square around the head region
    reach = math.ceil(head_reach(size))
    left, top = max(0, round(centre[0]) - reach), max(0, round(centre[1]) - reach)
    right = min(canvas.shape[1], round(centre[0]) + reach)
    bottom = min(canvas.shape[0], round(centre[1]) + reach)
    local = matrix.copy()
    local[:, 2] -= (left, top)
    warped = cv2.warpAffine(image, local, (right - left, bottom - top), flags=cv2.INTER_AREA,
                            borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    mask = np.zeros(warped.shape[:2], dtype=np.float32)
    axes = (max(1, round(size * HEAD_SIDES / 2)), max(1, round(size * h / w * HEAD_SIDES / 2)))
    centre_local = (round(centre[0]) - left, round(centre[1]) - top)
    cv2.ellipse(mask, centre_local, axes, 0, 0, 360, 1.0, cv2.FILLED)
    feather = max(1, round(size * 0.15)) * 2 + 1
    mask = cv2.GaussianBlur(mask, (feather, feather), 0)[..., None]
    region = canvas[top:bottom, left:right]
    region[:] = np.round(warped * mask + region * (1 - mask)).astype(np.uint8)
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    landmarks = np.array(marks, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    if mirror:  # the photo's left eye is now on the right: keep "as seen in the image"
        landmarks = landmarks[[1, 0, 2, 4, 3]]
    box = (*mapped.min(axis=0), *mapped.max(axis=0))
    return PlacedFace(photo, float(size), tuple(float(v) for v in box), landmarks)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FaceSpec:
    """Where a face goes in a composite: which photo, its size, centre, turn and mirroring."""

    photo: str
    size: float
    centre: tuple[float, float]
    angle: float
    mirror: bool
    velocity: tuple[float, float] = (0.0, 0.0)

    def at(self, frame: int) -> tuple[float, float]:
        """Return the centre in a clip's frame (it moves by ``velocity`` pixels a frame)."""
        return (
            self.centre[0] + self.velocity[0] * frame,
            self.centre[1] + self.velocity[1] * frame,
        )


def head_reach(size: float) -> float:
    """Return how far a face's pasted head region reaches from its centre, at most."""
    return size * HEAD_SIDES * 0.65 + 2


def layout(sizes: list[float], width: int, height: int, seed: int = 0, max_angle: float = 15.0,
           travel: float = 0.0) -> list[FaceSpec]:  # fmt: skip
    """Return random free places for faces of the given sizes.

    Faces alternate between the photos, are mirrored at random and turned by up to
    ``max_angle`` degrees; their head regions never overlap each other or the frame's edge,
    even after each moves ``travel`` pixels in its own random direction.

    Raises:
        ValueError: if the faces do not fit in the frame.
    """
    rng = np.random.default_rng(seed)
    photos = list(FACE_PHOTOS)
    specs: dict[int, FaceSpec] = {}
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):  # the largest placed first
        size = sizes[i]
        reach = head_reach(size) + travel
        for _ in range(1000):
            centre = (float(rng.uniform(reach, width - reach)),
                      float(rng.uniform(reach, height - reach)))  # fmt: skip
            if all(math.dist(centre, s.centre) > reach + head_reach(s.size) + travel
                   for s in specs.values()):  # fmt: skip
                break
        else:
            raise ValueError(f"faces of sizes {sizes} do not fit in {width} x {height}")
        direction = float(rng.uniform(0, 2 * math.pi))
        specs[i] = FaceSpec(photos[i % len(photos)], float(size), centre,
                            float(rng.uniform(-max_angle, max_angle)), bool(rng.integers(2)),
                            (math.cos(direction), math.sin(direction)))  # fmt: skip
    return [specs[i] for i in range(len(sizes))]


def render(scene: np.ndarray, specs: list[FaceSpec], frame: int = 0
           ) -> tuple[np.ndarray, list[PlacedFace]]:  # fmt: skip
    """Return a copy of the background with the faces pasted where they are in ``frame``."""
    canvas = scene.copy()
    placed = [place_face(canvas, s.photo, s.size, s.at(frame), s.angle, s.mirror) for s in specs]
    return canvas, placed


def composite(sizes: list[float], width: int = 640, height: int = 480, seed: int = 0,
              max_angle: float = 15.0) -> tuple[np.ndarray, list[PlacedFace]]:  # fmt: skip
    """Return a real background with real faces of the given sizes at random free places."""
    scene = background(BACKGROUNDS[seed % len(BACKGROUNDS)], width, height)
    return render(scene, layout(sizes, width, height, seed, max_angle))


def write_clip(path: Path, sizes: list[float], frames: int, width: int = 640, height: int = 480,
               speed: float = 0.5, fps: float = 25.0,
               seed: int = 0) -> list[list[PlacedFace]]:  # fmt: skip
    """Write an mp4 of faces moving ``speed`` pixels a frame over a still background.

    Returns:
        Per frame, where each face truly is (in the order of ``sizes``).
    """
    specs = [
        FaceSpec(s.photo, s.size, s.centre, s.angle, s.mirror,
                 (s.velocity[0] * speed, s.velocity[1] * speed))
        for s in layout(sizes, width, height, seed, travel=speed * frames)
    ]  # fmt: skip
    scene = background(BACKGROUNDS[seed % len(BACKGROUNDS)], width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video")
    truth = []
    try:
        for number in range(frames):
            canvas, placed = render(scene, specs, number)
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            truth.append(placed)
    finally:
        writer.release()
    return truth


def found(face: PlacedFace, box: tuple[float, float, float, float]) -> bool:
    """Whether a detected box ``x1, y1, x2, y2`` is this face.

    Its centre must lie in the true box and its shorter side be within a factor of 2 of the
    face's size (detectors differ in how loosely they frame a face).
    """
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = min(box[2] - box[0], box[3] - box[1])
    inside = face.box[0] <= x <= face.box[2] and face.box[1] <= y <= face.box[3]
    return inside and face.size / 2 <= side <= face.size * 2


def match(faces: list[PlacedFace], boxes: list[tuple[float, float, float, float]]
          ) -> tuple[list[bool], int]:  # fmt: skip
    """Return, per true face, whether a detection found it, and the detections that found none."""
    hits = [any(found(f, b) for b in boxes) for f in faces]
    false = sum(not any(found(f, b) for f in faces) for b in boxes)
    return hits, false
