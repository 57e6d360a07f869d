"""Faces followed through a video: detection every k-th frame, one track per person.

:class:`FaceFollower` runs the detector on every ``detect_every``-th processed frame. On the
frames between, it follows each face tracked in the previous frame (the detector's ``follow``:
for MTCNN, the O-Net re-run on the last boxes in one batch, the whole cascade around a box it
loses; for Haar, the cascade around each last box). A face it does not find is missed in that
frame; a face the detector misses on a detection frame is followed the same way, so one missed
detection does not break a track. A followed face that is not linkable to its track (see below),
or that overlaps a detected one by more than :data:`DUPLICATE_IOU`, is dropped.

:class:`FaceTracker` links the faces of each frame to the tracks seen in the last ``max_gap``
processed frames (the patience window). A face and a track can be linked when their sizes
differ by at most :data:`MAX_SIZE_RATIO` and their boxes overlap by at least ``min_iou`` or the
face moved at most ``max_shift`` face sides (measured on the five landmarks when both have them,
else on the boxes' centres). Pairs are linked greedily, the least displacement first; a face
left unlinked starts a new track. Track ids count from 0 within a source, in order of appearance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fer_multires.inference.detect import Detector, Face

#: A followed face overlapping a detected one by more than this is the detected one.
DUPLICATE_IOU = 0.5
#: The most two sides of one face may differ between two frames, as a ratio.
MAX_SIZE_RATIO = 1.5


def displacement(face: Face, other: Face) -> float:
    """Return how far a face moved from ``other``, in face sides (landmarks if both have them)."""
    side = (face.box.side + other.box.side) / 2
    if face.landmarks is not None and other.landmarks is not None:
        moved = float(np.linalg.norm(face.landmarks - other.landmarks, axis=1).mean())
    else:
        (x, y), (ox, oy) = face.box.centre, other.box.centre
        moved = math.hypot(x - ox, y - oy)
    return moved / side


@dataclass
class _Track:
    face: Face
    last_seen: int


@dataclass
class FaceTracker:
    """Link faces across frames (see the module's docstring).

    Args:
        min_iou: boxes overlapping at least this much can be linked.
        max_shift: faces that moved at most this many face sides can be linked.
        max_gap: a track unseen for more than this many processed frames is closed.
    """

    min_iou: float = 0.3
    max_shift: float = 0.5
    max_gap: int = 25
    _tracks: dict[int, _Track] = field(default_factory=dict, repr=False)
    _step: int = field(default=0, repr=False)
    _next_id: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"predict.track_min_iou={self.min_iou} must be in (0, 1]")
        if not self.max_shift >= 0:
            raise ValueError(f"predict.track_max_shift={self.max_shift} must be >= 0")
        if self.max_gap < 0:
            raise ValueError(f"predict.track_max_gap={self.max_gap} must be >= 0")

    @property
    def frames(self) -> int:
        """How many processed frames have started (:meth:`next_frame`)."""
        return self._step

    def next_frame(self) -> None:
        """Start the next processed frame: close the tracks unseen for longer than ``max_gap``."""
        self._step += 1
        self._tracks = {tid: t for tid, t in self._tracks.items()
                        if self._step - t.last_seen <= self.max_gap + 1}  # fmt: skip

    def linkable(self, face: Face, track: Face) -> bool:
        """Whether a face may be the tracked one (see the module's docstring)."""
        ratio = face.box.side / track.box.side
        if not 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
            return False
        overlaps = face.box.iou(track.box) >= self.min_iou
        return overlaps or displacement(face, track) <= self.max_shift

    def assign(self, faces: list[Face]) -> list[int]:
        """Link the detected faces of this frame to tracks, or start new ones.

        Returns:
            One track id per face, in the faces' order.
        """
        open_tracks = {tid: t for tid, t in self._tracks.items() if t.last_seen < self._step}
        pairs = sorted(
            (displacement(face, track.face), i, tid)
            for i, face in enumerate(faces)
            for tid, track in open_tracks.items()
            if self.linkable(face, track.face)
        )
        ids: list[int | None] = [None] * len(faces)
        for _, i, tid in pairs:
            if ids[i] is None and tid not in ids:
                ids[i] = tid
        for i, face in enumerate(faces):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
            self.keep(int(ids[i]), face)  # type: ignore[arg-type]
        return [int(i) for i in ids]  # type: ignore[arg-type]

    def keep(self, track_id: int, face: Face) -> None:
        """Record a track's face in this frame (a followed face keeps its track)."""
        self._tracks[track_id] = _Track(face, self._step)

    def seen_last_frame(self) -> list[tuple[int, Face]]:
        """Return the tracks seen in the previous processed frame, with their faces there."""
        return [(tid, t.face) for tid, t in self._tracks.items() if t.last_seen == self._step - 1]


class FaceFollower:
    """A video's faces frame by frame: detection every ``detect_every`` frames, following between.

    Args:
        detector: the face detector.
        tracker: links the faces into tracks.
        detect_every: run the full detector on processed frames 0, k, 2k, ...
    """

    def __init__(self, detector: Detector, tracker: FaceTracker, detect_every: int = 1) -> None:
        self.detector = detector
        self.tracker = tracker
        self.detect_every = detect_every

    def __call__(self, frame: np.ndarray) -> list[tuple[int, Face]]:
        """Return the ``(track id, face)`` pairs of the next processed frame, left to right."""
        self.tracker.next_frame()
        previous = self.tracker.seen_last_frame()
        found: list[tuple[int, Face]] = []
        if (self.tracker.frames - 1) % self.detect_every == 0:  # frames 0, k, 2k, ...
            faces = self.detector(frame)
            found = list(zip(self.tracker.assign(faces), faces, strict=True))
        linked = {tid for tid, _ in found}
        lost = [(tid, face) for tid, face in previous if tid not in linked]
        again = self.detector.follow(frame, [face for _, face in lost])
        for (tid, face), now in zip(lost, again, strict=True):
            if (now is not None and self.tracker.linkable(now, face)
                    and all(now.box.iou(f.box) <= DUPLICATE_IOU for _, f in found)):  # fmt: skip
                self.tracker.keep(tid, now)
                found.append((tid, now))
        return sorted(found, key=lambda pair: (pair[1].box.x, pair[1].box.y))
