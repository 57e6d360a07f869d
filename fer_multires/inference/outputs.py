r"""What ``predict`` writes: ``predictions.csv``, ``sources.csv``, annotated copies, the summary.

``predictions.csv`` has one row per face: ``source``, ``frame`` (0 for images), ``track``, the box
``x``, ``y``, ``w``, ``h`` in the original pixels, ``face_px`` (the box's shorter side),
``crop_px`` (the side, in the original pixels, of the crop classified: the aligned crop, or the
square crop with its margin), ``score`` (the detector's confidence; empty for ``haar`` and
``none``), the five landmarks ``left_eye_x``, ``left_eye_y``, ``right_eye_x``, ... ``mouth_right_y``
in the original pixels (empty without landmarks), ``predicted``, ``confidence`` (its
probability), ``p_<Class>`` for each class and ``expected_score`` (empty without an evaluation,
or for a face smaller than the smallest evaluated resolution). ``sources.csv`` has one row per
input: ``source``, ``status`` (``ok``, ``no_face``, ``unreadable``), ``frames`` (frames
classified), ``faces``, ``short_tracks`` (a video's tracks seen in fewer than
``predict.track_min_frames`` processed frames, whose faces were dropped as detections that did
not persist) and ``reason`` (why it was unreadable; for a video that ended before the
frame count its container gives, a note saying so). Files are written atomically, as UTF-8; a
file name that is not UTF-8 is written with each such byte escaped as ``\xNN``
(:func:`~fer_multires.utils.io.printable_name`), as everywhere in the outputs.

An annotated copy is ``annotated/<source>`` when the source's format is written as it is (JPEG,
PNG, BMP images; ``.mp4`` videos), else ``annotated/<source>.png`` for an image and
``annotated/<source>.mp4`` for a video (``astro.tif`` -> ``astro.tif.png``, ``clip.avi`` ->
``clip.avi.mp4``), so no two sources share a copy; a name still taken by an earlier source (in
sorted order) gets ``~2``, ``~3``, ... before its suffix.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_multires.inference.detect import LANDMARK_NAMES
from fer_multires.inference.sources import Source, iter_frames, open_video
from fer_multires.utils.io import atomic_output
from fer_multires.utils.tables import markdown_table

PREDICTIONS_FILE = "predictions.csv"
SOURCES_FILE = "sources.csv"
#: Folder of the output directory that holds the annotated copies.
ANNOTATED_DIR = "annotated"
STATUSES: tuple[str, ...] = ("ok", "no_face", "unreadable")


@dataclass
class SourceStatus:
    """One input's line of ``sources.csv``.

    Attributes:
        source: the source's name.
        status: ``ok``, ``no_face`` or ``unreadable``.
        frames: frames classified.
        faces: faces found (and kept).
        short_tracks: tracks dropped for being seen in fewer than ``track_min_frames`` frames.
        reason: why it was unreadable, or a note (a video shorter than its container says).
        short: whether the video ended before its container's frame count (not a column).
    """

    source: str
    status: str = "ok"
    frames: int = 0
    faces: int = 0
    short_tracks: int = 0
    reason: str = ""
    short: bool = False


@dataclass
class FaceTable:
    """Every classified face, one row each (the rows of ``predictions.csv``).

    Attributes:
        source: per row, the source's name.
        frame: per row, the frame number (0 for images).
        track: per row, the track id within its source.
        boxes: ``(N, 4)`` ``x, y, w, h``.
        crop_px: per row, the crop's side in the original pixels.
        scores: per row, the detector's score (NaN where it gives none).
        landmarks: ``(N, 5, 2)`` landmarks (NaN where there are none).
        probs: ``(N, C)`` class probabilities (smoothed along each track if asked).
        expected: per row, the expected score, NaN where there is none.
    """

    class_names: list[str]
    source: np.ndarray
    frame: np.ndarray
    track: np.ndarray
    boxes: np.ndarray
    crop_px: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    probs: np.ndarray
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def face_px(self) -> np.ndarray:
        """Per row, the face box's shorter side."""
        return np.minimum(self.boxes[:, 2], self.boxes[:, 3])

    @property
    def predicted(self) -> np.ndarray:
        """Per row, the index of the most probable class."""
        return self.probs.argmax(axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    def rows_of(self, source: str) -> np.ndarray:
        """Return the row numbers of one source."""
        return np.flatnonzero(self.source == source)

    def subset(self, rows: np.ndarray) -> FaceTable:
        """Return the table of the given rows only, in their order."""
        expected = self.expected[rows] if len(self.expected) == len(self) else self.expected
        return FaceTable(self.class_names, self.source[rows], self.frame[rows], self.track[rows],
                         self.boxes[rows], self.crop_px[rows], self.scores[rows],
                         self.landmarks[rows], self.probs[rows], expected)  # fmt: skip


def prediction_header(class_names: Sequence[str]) -> list[str]:
    """Return the columns of ``predictions.csv``."""
    landmarks = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
    return ["source", "frame", "track", "x", "y", "w", "h", "face_px", "crop_px", "score",
            *landmarks, "predicted", "confidence", *(f"p_{c}" for c in class_names),
            "expected_score"]  # fmt: skip


def optional(value: float, digits: int) -> str:
    """Return a number with ``digits`` decimals, or an empty cell for NaN."""
    return "" if np.isnan(value) else f"{value:.{digits}f}"


def write_predictions(path: Path, table: FaceTable) -> None:
    """Write ``predictions.csv`` atomically (source names are :attr:`Source.name`, printable)."""
    predicted = table.predicted
    face_px = table.face_px
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(prediction_header(table.class_names))
        for i in range(len(table)):
            writer.writerow([
                table.source[i], int(table.frame[i]), int(table.track[i]),
                *(int(v) for v in table.boxes[i]), int(face_px[i]), int(table.crop_px[i]),
                optional(table.scores[i], 6), *(optional(v, 1) for v in table.landmarks[i].ravel()),
                table.class_names[predicted[i]], f"{table.probs[i, predicted[i]]:.6f}",
                *(f"{p:.6f}" for p in table.probs[i]), optional(table.expected[i], 6),
            ])  # fmt: skip


def write_sources(path: Path, statuses: Sequence[SourceStatus]) -> None:
    """Write ``sources.csv`` atomically (names and reasons are made printable where set)."""
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["source", "status", "frames", "faces", "short_tracks", "reason"])
        for s in statuses:
            writer.writerow([s.source, s.status, s.frames, s.faces, s.short_tracks, s.reason])


def summary_table(
    table: FaceTable, statuses: Sequence[SourceStatus], smallest: int | None
) -> list[str]:
    """Return the summary's Markdown lines: per source its faces and most frequent expression.

    Args:
        table: the classified faces.
        statuses: every source's status.
        smallest: the smallest evaluated resolution, or None without an evaluation; faces whose
            crop is smaller are counted in a ``below <N> px`` column.
    """
    header = ["source", "status", "frames", "faces", "tracks", "most frequent", "share"]
    if smallest is not None:
        header += ["mean expected_score", f"faces below {smallest} px"]
    predicted = table.predicted
    rows = []
    for s in statuses:
        idx = table.rows_of(s.source)
        row: list[object] = [s.source, s.status, s.frames, s.faces]
        if len(idx):
            name, count = Counter(predicted[idx].tolist()).most_common(1)[0]
            row += [len(np.unique(table.track[idx])), table.class_names[name],
                    f"{count / len(idx):.0%}"]  # fmt: skip
        else:
            row += [0, None, None]
        if smallest is not None:
            expected = table.expected[idx]
            known = expected[~np.isnan(expected)]
            row += [float(known.mean()) if len(known) else None,
                    int((table.crop_px[idx] < smallest).sum())]  # fmt: skip
        rows.append(row)
    return markdown_table(header, rows, digits=3)


# --------------------------------------------------------------------------- annotated copies

#: Box colours (RGB): a face within the evaluated resolutions, and one below them.
COLOR_OK = (0, 220, 0)
COLOR_SMALL = (255, 140, 0)


def draw_faces(frame: np.ndarray, table: FaceTable, rows: np.ndarray, smallest: int | None,
               tracks: bool) -> np.ndarray:  # fmt: skip
    """Return a copy of an RGB frame with each face's box, label and confidence drawn."""
    out = np.ascontiguousarray(frame).copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    scale = max(0.4, min(out.shape[:2]) / 900)
    predicted = table.predicted
    for i in rows:
        x, y, w, h = (int(v) for v in table.boxes[i])
        small = smallest is not None and table.crop_px[i] < smallest
        color = COLOR_SMALL if small else COLOR_OK
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        for mark_x, mark_y in table.landmarks[i]:
            if not np.isnan(mark_x):
                cv2.circle(out, (round(mark_x), round(mark_y)), thickness + 1, color, cv2.FILLED)
        label = f"{table.class_names[predicted[i]]} {table.probs[i, predicted[i]]:.2f}"
        if tracks:
            label = f"#{int(table.track[i])} {label}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 2)
        cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 2), color, cv2.FILLED)
        cv2.putText(out, label, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)  # fmt: skip
    return out


def annotated_name(source: Source) -> Path:
    """Return a source's annotated copy, relative to ``annotated/`` (see the module's doc)."""
    name = Path(source.name)
    if source.is_video:
        written = ".mp4"
    elif name.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"):
        written = name.suffix
    else:
        written = ".png"
    return name if name.suffix.lower() == written.lower() else Path(f"{name}{written}")


def annotated_paths(output_dir: Path, sources: Sequence[Source]) -> list[Path]:
    """Return where each source's annotated copy goes, one distinct path per source."""
    taken: set[Path] = set()
    paths = []
    for source in sources:
        name = base = annotated_name(source)
        number = 1
        while name in taken:
            number += 1
            name = base.with_name(f"{base.stem}~{number}{base.suffix}")
        taken.add(name)
        paths.append(output_dir / ANNOTATED_DIR / name)
    return paths


def annotate_image(path: Path, source: Source, table: FaceTable, smallest: int | None) -> None:
    """Write an image source with its faces drawn, atomically."""
    _, frame = next(iter_frames(source))
    drawn = draw_faces(frame, table, table.rows_of(source.name), smallest, tracks=False)
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: OpenCV cannot encode the annotated image")
    with atomic_output(path, binary=True) as f:
        f.write(encoded.tobytes())


def annotate_video(path: Path, source: Source, table: FaceTable, smallest: int | None) -> None:
    """Write a video source with its faces drawn, at its frame rate, streamed, atomically.

    A frame that was not classified (``every_n_frames``) shows the faces of the last one that was.
    """
    capture, info = open_video(source.path)
    rows = table.rows_of(source.name)
    by_frame: dict[int, np.ndarray] = {}
    for f in np.unique(table.frame[rows]):
        by_frame[int(f)] = rows[table.frame[rows] == f]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), info.fps,
                             (info.width, info.height))  # fmt: skip
    try:
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write an mp4v video")
        current = np.zeros(0, dtype=np.int64)
        number = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            current = by_frame.get(number, current)
            drawn = draw_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), table, current, smallest,
                               tracks=True)  # fmt: skip
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            number += 1
        writer.release()
        os.replace(tmp, path)
    finally:
        writer.release()
        capture.release()
        tmp.unlink(missing_ok=True)


def annotate_source(path: Path, source: Source, table: FaceTable, smallest: int | None) -> None:
    """Write a source's annotated copy to ``path`` (one of :func:`annotated_paths`)."""
    if source.is_video:
        annotate_video(path, source, table, smallest)
    else:
        annotate_image(path, source, table, smallest)
