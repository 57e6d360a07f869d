"""Faces linked across video frames into tracks, by box overlap.

Each classified frame's faces are matched to the tracks seen in the last ``max_gap`` classified
frames, greedily by intersection over union (the best-overlapping pair first), a pair counting
only when its IoU is at least ``min_iou``. A face left unmatched starts a new track. Track ids
count from 0 within a source, in order of appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fer_multires.inference.detect import Box


@dataclass
class _Track:
    box: Box
    last_seen: int


@dataclass
class IoUTracker:
    """Link boxes across frames (see the module's docstring).

    Args:
        min_iou: the least overlap that links a face to a track.
        max_gap: a track unseen for more than this many classified frames is closed.
    """

    min_iou: float = 0.3
    max_gap: int = 5
    _tracks: dict[int, _Track] = field(default_factory=dict, repr=False)
    _step: int = field(default=0, repr=False)
    _next_id: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"predict.track_min_iou={self.min_iou} must be in (0, 1]")
        if self.max_gap < 0:
            raise ValueError(f"predict.track_max_gap={self.max_gap} must be >= 0")

    def update(self, boxes: list[Box]) -> list[int]:
        """Assign a track id to each box of the next classified frame.

        Returns:
            One track id per box, in the boxes' order.
        """
        self._step += 1
        self._tracks = {
            tid: t
            for tid, t in self._tracks.items()
            if self._step - t.last_seen <= self.max_gap + 1
        }
        pairs = sorted(
            (
                (box.iou(track.box), i, tid)
                for i, box in enumerate(boxes)
                for tid, track in self._tracks.items()
            ),
            key=lambda p: (-p[0], p[1], p[2]),
        )
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.min_iou:
                break
            if ids[i] is None and tid not in used:
                ids[i] = tid
                used.add(tid)
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
            self._tracks[ids[i]] = _Track(box, self._step)
        return [int(i) for i in ids]  # type: ignore[arg-type]
