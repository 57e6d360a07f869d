r"""What ``predict`` writes: ``predictions.csv``, ``sources.csv``, annotated copies, the summary.

``predictions.csv`` has one row per face: ``source``, ``frame`` (0 for images), ``track``, the box
``x``, ``y``, ``w``, ``h`` in the original pixels, ``face_px`` (the box's shorter side),
``crop_px`` (the side, in the original pixels, of the crop classified: the aligned crop, or the
square crop with its margin), ``score`` (the detector's confidence; empty for ``haar`` and
``none``), the five landmarks ``left_eye_x``, ``left_eye_y``, ``right_eye_x``, ... ``mouth_right_y``
in the original pixels (empty without landmarks), then each of the model's heads
(:data:`~fer_multires.tasks.TASK_HEADS`): expressions (``task=expr``, ``mtl``) ``predicted``,
``confidence`` (its probability) and ``p_<Class>`` for each class; valence-arousal (``va``,
``mtl``) ``valence`` and ``arousal`` in [-1, 1]; action units (``au``, ``mtl``) ``p_AU1`` ...
``p_AU26``, each AU's probability, then ``AU1`` ... ``AU26``, 1 where it is active: its
probability as written (6 decimals) at or above the AU's threshold (:attr:`FaceTable.au_active`);
and last ``expected_score`` (empty without an evaluation of the task's score, or for a face
smaller than the smallest evaluated resolution). ``sources.csv`` has one row per
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
from fer_multires.task_metrics import DEFAULT_AU_THRESHOLD
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, VA_NAMES
from fer_multires.utils.io import atomic_output
from fer_multires.utils.tables import markdown_table

PREDICTIONS_FILE = "predictions.csv"
SOURCES_FILE = "sources.csv"
#: Folder of the output directory that holds the annotated copies.
ANNOTATED_DIR = "annotated"
STATUSES: tuple[str, ...] = ("ok", "no_face", "unreadable")
#: Decimals of the probabilities and values written to ``predictions.csv``.
OUTPUT_DECIMALS = 6


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


def default_au_thresholds() -> np.ndarray:
    """Every AU's threshold without an evaluation's: ``DEFAULT_AU_THRESHOLD``."""
    return np.full(len(AU_NAMES), DEFAULT_AU_THRESHOLD)


@dataclass
class FaceTable:
    """Every classified face, one row each (the rows of ``predictions.csv``).

    Attributes:
        class_names: the expression classes (none for ``task=va``, ``au``).
        source: per row, the source's name.
        frame: per row, the frame number (0 for images).
        track: per row, the track id within its source.
        boxes: ``(N, 4)`` ``x, y, w, h``.
        crop_px: per row, the crop's side in the original pixels.
        scores: per row, the detector's score (NaN where it gives none).
        landmarks: ``(N, 5, 2)`` landmarks (NaN where there are none).
        outputs: per head of the task, ``(N, outputs)``: ``expr`` class probabilities, ``va``
            valence and arousal, ``au`` AU probabilities (smoothed along each track if asked).
        expected: per row, the expected score, NaN where there is none.
        au_thresholds: ``(12,)``, each AU's decision threshold.
    """

    class_names: list[str]
    source: np.ndarray
    frame: np.ndarray
    track: np.ndarray
    boxes: np.ndarray
    crop_px: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    outputs: dict[str, np.ndarray]
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0))
    au_thresholds: np.ndarray = field(default_factory=default_au_thresholds)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def task(self) -> str:
        """The task whose heads the table holds."""
        heads = tuple(self.outputs)
        return next((t for t, h in TASK_HEADS.items() if h == heads), DEFAULT_TASK)

    @property
    def probs(self) -> np.ndarray:
        """``(N, C)`` class probabilities (the ``expr`` head)."""
        return self.outputs["expr"]

    @property
    def face_px(self) -> np.ndarray:
        """Per row, the face box's shorter side."""
        return np.minimum(self.boxes[:, 2], self.boxes[:, 3])

    @property
    def predicted(self) -> np.ndarray:
        """Per row, the index of the most probable class."""
        return self.probs.argmax(axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    @property
    def au_active(self) -> np.ndarray:
        """``(N, 12)`` bool: each AU active, its probability as written at or above its threshold.

        The probability is taken as ``predictions.csv`` writes it (:data:`OUTPUT_DECIMALS`), so
        ``p_AU >= threshold`` read back from the file gives the ``AU`` column.
        """
        probs = np.asarray(self.outputs["au"], dtype=np.float64).reshape(-1, len(AU_NAMES))
        written = np.char.mod(f"%.{OUTPUT_DECIMALS}f", probs).astype(np.float64)
        return written >= self.au_thresholds

    def rows_of(self, source: str) -> np.ndarray:
        """Return the row numbers of one source."""
        return np.flatnonzero(self.source == source)

    def subset(self, rows: np.ndarray) -> FaceTable:
        """Return the table of the given rows only, in their order."""
        expected = self.expected[rows] if len(self.expected) == len(self) else self.expected
        outputs = {head: values[rows] for head, values in self.outputs.items()}
        return FaceTable(self.class_names, self.source[rows], self.frame[rows], self.track[rows],
                         self.boxes[rows], self.crop_px[rows], self.scores[rows],
                         self.landmarks[rows], outputs, expected,
                         self.au_thresholds)  # fmt: skip


def head_header(task: str, class_names: Sequence[str]) -> list[str]:
    """Return the columns of each head of ``task``, in ``predictions.csv`` order."""
    columns = {
        "expr": ["predicted", "confidence", *(f"p_{c}" for c in class_names)],
        "va": list(VA_NAMES),
        "au": [*(f"p_{au}" for au in AU_NAMES), *AU_NAMES],
    }
    return [c for head in TASK_HEADS[task] for c in columns[head]]


def prediction_header(class_names: Sequence[str], task: str = DEFAULT_TASK) -> list[str]:
    """Return the columns of ``predictions.csv`` for a model of ``task``."""
    landmarks = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
    return ["source", "frame", "track", "x", "y", "w", "h", "face_px", "crop_px", "score",
            *landmarks, *head_header(task, class_names), "expected_score"]  # fmt: skip


def optional(value: float, digits: int) -> str:
    """Return a number with ``digits`` decimals, or an empty cell for NaN."""
    return "" if np.isnan(value) else f"{value:.{digits}f}"


def head_cells(table: FaceTable) -> list[list[str]]:
    """Return each row's cells of the heads' columns (:func:`head_header`)."""
    n = OUTPUT_DECIMALS
    cells: list[list[str]] = [[] for _ in range(len(table))]
    if "expr" in table.outputs:
        predicted, probs = table.predicted, table.probs
        for i, row in enumerate(cells):
            row += [table.class_names[predicted[i]], f"{probs[i, predicted[i]]:.{n}f}",
                    *(f"{p:.{n}f}" for p in probs[i])]  # fmt: skip
    if "va" in table.outputs:
        for row, values in zip(cells, table.outputs["va"], strict=True):
            row += [f"{v:.{n}f}" for v in values]
    if "au" in table.outputs:
        active = table.au_active.astype(int)
        for row, probs, on in zip(cells, table.outputs["au"], active, strict=True):
            row += [*(f"{p:.{n}f}" for p in probs), *map(str, on)]
    return cells


def write_predictions(path: Path, table: FaceTable) -> None:
    """Write ``predictions.csv`` atomically (source names are :attr:`Source.name`, printable)."""
    face_px = table.face_px
    heads = head_cells(table)
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(prediction_header(table.class_names, table.task))
        for i in range(len(table)):
            writer.writerow([
                table.source[i], int(table.frame[i]), int(table.track[i]),
                *(int(v) for v in table.boxes[i]), int(face_px[i]), int(table.crop_px[i]),
                optional(table.scores[i], 6), *(optional(v, 1) for v in table.landmarks[i].ravel()),
                *heads[i], optional(table.expected[i], 6),
            ])  # fmt: skip


def write_sources(path: Path, statuses: Sequence[SourceStatus]) -> None:
    """Write ``sources.csv`` atomically (names and reasons are made printable where set)."""
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["source", "status", "frames", "faces", "short_tracks", "reason"])
        for s in statuses:
            writer.writerow([s.source, s.status, s.frames, s.faces, s.short_tracks, s.reason])


#: How many AUs the summary names per source (those active in the most faces).
SUMMARY_AUS = 3


def most_active_aus(active: np.ndarray) -> str:
    """Return the AUs active in the most of these faces, with their shares (``AU12 80%``)."""
    shares = active.mean(axis=0) if len(active) else np.zeros(len(AU_NAMES))
    order = [i for i in np.argsort(-shares, kind="stable")[:SUMMARY_AUS] if shares[i] > 0]
    return ", ".join(f"{AU_NAMES[i]} {shares[i]:.0%}" for i in order) or "none"


def head_summary(table: FaceTable, idx: np.ndarray, active: np.ndarray | None) -> list[object]:
    """Return one source's summary cells of each head (:func:`summary_table`).

    Args:
        table: the classified faces.
        idx: the source's rows.
        active: the table's :attr:`FaceTable.au_active`, or None without an AU head.
    """
    cells: list[object] = []
    if "expr" in table.outputs:
        if len(idx):
            name, count = Counter(table.predicted[idx].tolist()).most_common(1)[0]
            cells += [table.class_names[name], f"{count / len(idx):.0%}"]
        else:
            cells += [None, None]
    if "va" in table.outputs:
        means = table.outputs["va"][idx].mean(axis=0) if len(idx) else [None] * len(VA_NAMES)
        cells += [None if m is None else float(m) for m in means]
    if "au" in table.outputs:
        cells.append(most_active_aus(active[idx]) if len(idx) else None)
    return cells


def summary_table(
    table: FaceTable, statuses: Sequence[SourceStatus], smallest: int | None
) -> list[str]:
    """Return the summary's Markdown lines: per source its faces and what its heads say.

    Per head of the model's task: the most frequent expression and its share (``expr``); the
    mean valence and arousal (``va``); the AUs active in the most faces, with their shares
    (``au``).

    Args:
        table: the classified faces.
        statuses: every source's status.
        smallest: the smallest evaluated resolution, or None without an evaluation; faces whose
            crop is smaller are counted in a ``below <N> px`` column.
    """
    heads = {"expr": ["most frequent", "share"], "va": ["mean valence", "mean arousal"],
             "au": ["most active AUs"]}  # fmt: skip
    header = ["source", "status", "frames", "faces", "tracks",
              *(c for head in table.outputs for c in heads[head])]  # fmt: skip
    if smallest is not None:
        header += ["mean expected_score", f"faces below {smallest} px"]
    active = table.au_active if "au" in table.outputs else None
    rows = []
    for s in statuses:
        idx = table.rows_of(s.source)
        row: list[object] = [s.source, s.status, s.frames, s.faces,
                             len(np.unique(table.track[idx])),
                             *head_summary(table, idx, active)]  # fmt: skip
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


def face_labels(table: FaceTable, tracks: bool) -> list[list[str]]:
    """Return each face's label lines, one per head.

    ``Happiness 0.83`` (the expression and its probability), ``V +0.42 A -0.10`` (valence and
    arousal), ``AU6 AU12`` (the active AUs, or ``no AU``); with ``tracks``, the first line starts
    with the face's track (``#0``).
    """
    lines: list[list[str]] = [[] for _ in range(len(table))]
    if "expr" in table.outputs:
        predicted, probs = table.predicted, table.probs
        for i, row in enumerate(lines):
            row.append(f"{table.class_names[predicted[i]]} {probs[i, predicted[i]]:.2f}")
    if "va" in table.outputs:
        for row, (valence, arousal) in zip(lines, table.outputs["va"], strict=True):
            row.append(f"V {valence:+.2f} A {arousal:+.2f}")
    if "au" in table.outputs:
        for row, on in zip(lines, table.au_active, strict=True):
            row.append(" ".join(np.asarray(AU_NAMES)[on]) or "no AU")
    if tracks:
        for track, row in zip(table.track, lines, strict=True):
            row[0] = f"#{int(track)} {row[0]}"
    return lines


def draw_faces(frame: np.ndarray, table: FaceTable, rows: np.ndarray, smallest: int | None,
               labels: list[list[str]]) -> np.ndarray:  # fmt: skip
    """Return a copy of an RGB frame with each face's box and label lines drawn above it.

    Args:
        frame: the RGB frame.
        table: the classified faces.
        rows: the rows of the faces in this frame.
        smallest: the smallest evaluated resolution (a face below it is drawn orange), or None.
        labels: every row's label lines (:func:`face_labels`).
    """
    out = np.ascontiguousarray(frame).copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    scale = max(0.4, min(out.shape[:2]) / 900)
    for i in rows:
        x, y, w, h = (int(v) for v in table.boxes[i])
        small = smallest is not None and table.crop_px[i] < smallest
        color = COLOR_SMALL if small else COLOR_OK
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        for mark_x, mark_y in table.landmarks[i]:
            if not np.isnan(mark_x):
                cv2.circle(out, (round(mark_x), round(mark_y)), thickness + 1, color, cv2.FILLED)
        sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness) for t in labels[i]]
        # above the box, or from the frame's top down where there is no room above it
        top = max(0, y - sum(th + base + 2 for (_, th), base in sizes))
        for label, ((tw, th), base) in zip(labels[i], sizes, strict=True):
            cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 2), color, cv2.FILLED)
            cv2.putText(out, label, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), thickness, cv2.LINE_AA)  # fmt: skip
            top += th + base + 2
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
    faces = table.subset(table.rows_of(source.name))
    labels = face_labels(faces, tracks=False)
    drawn = draw_faces(frame, faces, np.arange(len(faces)), smallest, labels)
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
    faces = table.subset(table.rows_of(source.name))
    labels = face_labels(faces, tracks=True)
    by_frame = {int(f): np.flatnonzero(faces.frame == f) for f in np.unique(faces.frame)}
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
            drawn = draw_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), faces, current, smallest,
                               labels)  # fmt: skip
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
