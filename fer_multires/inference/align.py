"""Five-point face alignment to the template of the training crops, by a similarity transform.

Aff-Wild2's ``cropped_aligned`` frames, which the models are trained on, are 112 x 112 crops
that the ABAW organisers aligned on five facial landmarks by a similarity transform. Their exact
template is not published; the 112 x 112 five-point template that such pipelines use is
insightface's ArcFace one, :data:`ARCFACE_TEMPLATE`, taken here (as the crop margin's measurement
already took it, :mod:`fer_multires.inference.detect`): the eyes at (38.3, 51.7) and (73.5, 51.5),
the nose tip at (56.0, 71.7), the mouth corners at (41.5, 92.4) and (70.7, 92.2). It frames a face
brows to chin with a little background on each side, upright, as the training frames show it, so
an aligned face reaches the classifier framed and rotated as its training frames were.

A face is aligned by the least-squares similarity transform (rotation, uniform scale,
translation; Umeyama, 1991) that takes its five landmarks onto the template. The crop keeps
the face's own detail: its side is the template's 112 pixels measured in the source, ``112 / s``
for the transform's scale ``s`` (``crop_px``), so a small face stays small and the classifier's
preprocessing resizes it as the evaluation resizes a low-resolution frame. Parts of the crop
outside the frame are black, as in the training frames.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The side of the template's square, in pixels.
TEMPLATE_SIDE = 112
#: The ArcFace template (insightface's ``arcface_dst``): left eye, right eye, nose tip, left and
#: right mouth corners, ``x, y`` in a 112 x 112 crop (left and right as seen in the image).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]],
    dtype=np.float64,
)  # fmt: skip


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the least-squares similarity transform from ``source`` points onto ``target``.

    Umeyama's closed form (rotation, uniform scale and translation; no reflection).

    Args:
        source: ``(N, 2)`` points, N >= 2, not all equal.
        target: ``(N, 2)`` points.

    Returns:
        The ``(2, 3)`` matrix ``M`` with ``target ~ M @ [x, y, 1]``.

    Raises:
        ValueError: if the source points are all equal (no transform is defined).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    centred_s, centred_t = source - mean_s, target - mean_t
    variance = (centred_s**2).sum() / len(source)
    if variance <= 0:
        raise ValueError("the landmarks are all at one point: no alignment is defined")
    covariance = centred_t.T @ centred_s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (d * sign).sum() / variance
    translation = mean_t - scale * rotation @ mean_s
    return np.hstack([scale * rotation, translation[:, None]])


def transform_scale(matrix: np.ndarray) -> float:
    """Return the uniform scale of a similarity transform's ``(2, 3)`` matrix."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def aligned_crop_side(landmarks: np.ndarray) -> int:
    """Return the side, in source pixels, of the aligned crop of a face (``crop_px``)."""
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    return max(1, round(TEMPLATE_SIDE / transform_scale(matrix)))


def align_face(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Return the face warped onto the template, at the face's own resolution.

    Args:
        frame: the ``(H, W, 3)`` uint8 frame.
        landmarks: the face's ``(5, 2)`` landmarks in the frame (the template's order).

    Returns:
        The ``(S, S, 3)`` uint8 aligned crop, ``S`` = :func:`aligned_crop_side`.
    """
    side = aligned_crop_side(landmarks)
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE * (side / TEMPLATE_SIDE))
    return cv2.warpAffine(frame, matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
