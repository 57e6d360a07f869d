"""Planning the videos: labels, expression segments and quirks of every video, and their counts.

The plan fixes everything but the pixels: which frames each video has, what each frame shows and
how it is labelled. The writer (:mod:`fer_multires.data.synthetic.writer`) draws it.

Besides its expression file, a video may have a valence-arousal and an action-unit file, one
line per label line, labelled from the drawn face (:mod:`~fer_multires.data.synthetic.affect`)
with a stretch of missing markers each; which videos lack which file, and the files' own quirks
(CRLF line ends, a marker in one column only, a file shorter than the frames), follow from the
video's position in its split (see :func:`_plan_affect`). The expression files and images do not
change: these draws use their own random stream.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_multires.data.labels import UNLABELLED
from fer_multires.data.synthetic import affect, faces
from fer_multires.data.synthetic.spec import (
    NUM_CLASSES,
    SKIP_KEYS,
    SPLITS,
    STREAM_AFFECT,
    STREAM_IDENTITY,
    STREAM_PLAN,
    SyntheticSpec,
    make_rng,
)
from fer_multires.tasks import AU_MISSING, AU_NAMES, VA_MISSING, VA_NAMES

log = logging.getLogger(__name__)

# RNG split id of the frame folder without an annotation file, after those of SPLITS.
_UNANNOTATED_SPLIT_ID = 2

# Quirk sizes.
_UNLABELLED_STRETCH = 4
_MISSING_MID = 3
_MISSING_END = 2
_BEYOND_LABELS = 3
_UNANNOTATED_FRAMES = 5
_NON_JPEG_NAME = "Thumbs.db"
_NON_JPEG_BYTES = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(56)

# Segment planning (in frames): labelled hold length, ramp lengths, neutral gap between segments.
_MIN_HOLD = 4
_MAX_HOLD = 24
_RAMPS = (2, 4, 6)
_MIN_GAP = 3

# The valence-arousal and action-unit files, by the video's position in its split (modulo 8):
# which positions have no such file; a stretch of missing markers of 1/25 of the lines (at least
# 2) in every file; every third video a line with the marker in one column only; every fifth
# video CRLF line ends. The right half of the two-person video's action-unit file stops
# _AU_SHORTER lines early (its last frames are past its labels).
_NO_VA = (2, 5)
_NO_AU = (3, 5)
_MISSING_SHARE = 25
_AU_SHORTER = 2


@dataclass
class Video:
    """Everything the writer needs to know about one video."""

    name: str
    split_id: int
    key: int  # RNG key of the video within its split
    labels: np.ndarray | None  # one per label line; None: no annotation file
    expression: np.ndarray  # expression drawn in each rendered frame
    intensity: np.ndarray  # its intensity
    missing: frozenset[int] = frozenset()  # 0-based frames whose JPEG is not written
    has_folder: bool = True
    extra_files: dict[str, bytes] = field(default_factory=dict)
    # the valence-arousal file's lines (VA_MISSING marks), the action-unit file's (AU_MISSING
    # marks); None: no such file
    va: np.ndarray | None = None
    au: np.ndarray | None = None
    crlf: bool = False  # the valence-arousal and action-unit files end their lines with CRLF


def _split_count(
    total: int, parts: int, low: int, high: int, rng: np.random.Generator
) -> list[int]:
    """Split ``total`` into ``parts`` random integers, each in [low, high] where possible."""
    low = min(low, total // parts)
    sizes = low + rng.multinomial(total - low * parts, np.full(parts, 1.0 / parts))
    overflow = int(np.maximum(sizes - high, 0).sum())
    sizes = np.minimum(sizes, high)
    i = 0
    while overflow > 0 and i < 100 * parts:
        if sizes[i % parts] < high:
            sizes[i % parts] += 1
            overflow -= 1
        i += 1
    sizes[0] += overflow  # only when high * parts < total, which the caller avoids
    return [int(v) for v in sizes]


def _plan_split(
    num_videos: int, frames: int, proportions: tuple[float, ...], rng: np.random.Generator
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Lay out the expression segments of a split's videos.

    The labelled frames of each class are allocated to match ``proportions`` over the split
    (at least one segment per class with a non-zero share), cut into segments, and packed into the
    videos with neutral gaps in between. Segment counts and ramp lengths shrink when the videos
    are short, so that the ramps and gaps (which are Neutral) do not crowd the expressions out.

    Returns:
        Per video, the expression (int8) and the intensity (float) of each frame; and the number
        of expression frames that did not fit (0 unless the videos are very short or the
        proportions leave little room for Neutral).
    """
    total = num_videos * frames
    max_hold = max(_MIN_HOLD + 2, min(_MAX_HOLD, frames // 5))
    classes = [c for c in range(1, NUM_CLASSES) if proportions[c] > 0]
    targets = {c: max(_MIN_HOLD, round(proportions[c] * total)) for c in classes}
    k_min = {c: math.ceil(targets[c] / max_hold) for c in classes}
    # Frames left for ramps and gaps once the first gap of each video and the holds are placed.
    slack = num_videos * (frames - _MIN_GAP) - sum(targets.values())
    spare = slack // (max(_RAMPS) + _MIN_GAP) - sum(k_min.values())
    counts = {}
    for c in classes:
        k_max = max(k_min[c], min(targets[c] // _MIN_HOLD, 2 * k_min[c]))
        extra = min(int(rng.integers(0, k_max - k_min[c] + 1)), max(spare, 0))
        spare -= extra
        counts[c] = k_min[c] + extra
    longest = max(slack // max(1, sum(counts.values())) - _MIN_GAP, _RAMPS[0])
    ramps = [r for r in _RAMPS if r <= longest]
    segments: list[tuple[int, int, int]] = []
    for c in classes:
        for hold in _split_count(targets[c], counts[c], _MIN_HOLD, max_hold, rng):
            segments.append((c, hold, int(rng.choice(ramps))))
    capacity = [frames - _MIN_GAP] * num_videos
    assigned: list[list[tuple[int, int, int]]] = [[] for _ in range(num_videos)]
    # Worst fit: each segment goes to the video with the most room left. A segment that does not
    # fit is cut; the rest goes back in the queue, so frames are only lost when all videos are full.
    queue = [segments[i] for i in rng.permutation(len(segments))]
    dropped = 0
    while queue:
        c, hold, ramp = queue.pop(0)
        v = int(np.argmax(capacity))
        if hold + ramp + _MIN_GAP > capacity[v]:
            ramp = _RAMPS[0]
            room = capacity[v] - ramp - _MIN_GAP
            if room < 1:
                dropped += hold
                continue
            queue.append((c, hold - room, int(rng.choice(ramps))))
            hold = room
        assigned[v].append((c, hold, ramp))
        capacity[v] -= hold + ramp + _MIN_GAP
    plans = []
    for v in range(num_videos):
        segs = [assigned[v][i] for i in rng.permutation(len(assigned[v]))]
        expression = np.zeros(frames, dtype=np.int8)
        intensity = np.zeros(frames)
        gaps = _MIN_GAP + rng.multinomial(capacity[v], np.full(len(segs) + 1, 1 / (len(segs) + 1)))
        pos = int(gaps[0])
        for (c, hold, ramp), gap in zip(segs, gaps[1:], strict=True):
            length = hold + ramp
            j = np.arange(length)
            expression[pos : pos + length] = c
            intensity[pos : pos + length] = np.minimum(
                1.0, np.minimum((j + 0.5) / ramp, (length - j - 0.5) / ramp)
            )
            pos += length + int(gap)
        plans.append((expression, intensity))
    return plans, dropped


def _labels_of(expression: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    return np.where(intensity >= 0.5, expression, 0).astype(np.int8)


def _quiet_frames(video: Video, exclude: set[int]) -> list[int]:
    """Frames at intensity 0 with a label line, not the last one, not in ``exclude``."""
    assert video.labels is not None
    n = len(video.labels)
    return [
        i
        for i in range(n - 1)
        if video.intensity[i] == 0 and video.labels[i] == 0 and i not in exclude
    ]


def _add_unlabelled_stretch(video: Video) -> None:
    """Label a short run of resting frames -1 (their images are still written)."""
    assert video.labels is not None
    quiet = set(_quiet_frames(video, set(video.missing)))
    best_start, best_len, start = -1, 0, None
    for i in range(len(video.labels) + 1):
        if i in quiet:
            start = i if start is None else start
            continue
        if start is not None and i - start > best_len:
            best_start, best_len = start, i - start
        start = None
    if best_len == 0:
        return
    length = min(_UNLABELLED_STRETCH, best_len)
    first = best_start + (best_len - length) // 2
    video.labels[first : first + length] = UNLABELLED


def plan_videos(spec: SyntheticSpec) -> list[Video]:
    """Every video of the dataset, quirks included, in writing order."""
    frames = spec.frames_per_video
    videos: list[Video] = []
    for split, _, split_id in SPLITS:
        count = spec.num_train_videos if split == "train" else spec.num_val_videos
        plan_rng = make_rng(spec.seed, split_id, 0, STREAM_PLAN)
        plans, dropped = _plan_split(count, frames, spec.class_proportions, plan_rng)
        if dropped:
            log.warning(
                "synthetic %s split: %d expression frames did not fit in %d videos of %d frames; "
                "they are Neutral (SYNTHETIC.json has the actual counts)",
                split,
                dropped,
                count,
                frames,
            )
        split_videos = []
        for v, (expression, intensity) in enumerate(plans):
            if split == "train":
                name = ("synth_train_000_left", "synth_train_000_right")[v] if v < 2 else None
                name = name or f"synth_train_{v - 1:03d}"
            else:
                name = f"synth_val_{v:03d}"
            video = Video(
                name, split_id, v, _labels_of(expression, intensity), expression, intensity
            )
            split_videos.append(video)
        if split == "train":
            # Missing faces mid-video in the right half of the two-person video.
            quiet = _quiet_frames(split_videos[1], set())
            if quiet:
                picks = np.linspace(0, len(quiet) - 1, _MISSING_MID + 2)[1:-1].round().astype(int)
                split_videos[1].missing = frozenset(quiet[i] for i in sorted(set(picks.tolist())))
            _add_unlabelled_stretch(split_videos[min(2, count - 1)])
            # Images past the last label line: the video goes on, resting, after its labels end.
            last = split_videos[-1]
            last.expression = np.concatenate([last.expression, np.zeros(_BEYOND_LABELS, np.int8)])
            last.intensity = np.concatenate([last.intensity, np.zeros(_BEYOND_LABELS)])
            split_videos[0].extra_files[_NON_JPEG_NAME] = _NON_JPEG_BYTES
        else:
            # Missing faces at the end of a video: its label file is longer than its frames.
            split_videos[0].missing = frozenset(range(frames - _MISSING_END, frames))
            _add_unlabelled_stretch(split_videos[1])
            # An annotation file without a frame folder.
            rng = make_rng(spec.seed, split_id, count, STREAM_PLAN)
            ((expression, intensity),), _ = _plan_split(1, frames, spec.class_proportions, rng)
            split_videos.append(
                Video(
                    f"synth_val_{count:03d}",
                    split_id,
                    count,
                    _labels_of(expression, intensity),
                    expression,
                    intensity,
                    has_folder=False,
                )
            )
        videos.extend(split_videos)
    for video in videos:
        _plan_affect(video, spec)
    # A frame folder without an annotation file, like a test-set video.
    videos.append(
        Video(
            "synth_test_000",
            _UNANNOTATED_SPLIT_ID,
            0,
            None,
            np.zeros(_UNANNOTATED_FRAMES, np.int8),
            np.zeros(_UNANNOTATED_FRAMES),
        )
    )
    return videos


def count(videos: list[Video]) -> dict[str, Any]:
    """The manifest's per-split counts, with the reader's definitions."""
    splits: dict[str, Any] = {}
    for split, _, split_id in SPLITS:
        per_class = [0] * NUM_CLASSES
        skipped = dict.fromkeys(SKIP_KEYS, 0)
        contributing = 0
        for video in videos:
            if video.split_id != split_id or video.labels is None:
                continue
            if not video.has_folder:
                skipped["videos_without_frames"] += 1
                continue
            n_labels = len(video.labels)
            included = 0
            for i in range(len(video.expression)):
                on_disk = i not in video.missing
                if i >= n_labels:
                    skipped["beyond_labels"] += on_disk
                elif video.labels[i] == UNLABELLED:
                    skipped["invalid_label"] += on_disk
                elif on_disk:
                    per_class[int(video.labels[i])] += 1
                    included += 1
                else:
                    skipped["missing_frame"] += 1
            contributing += included > 0
        splits[split] = {
            "videos": contributing,
            "frames": sum(per_class),
            "per_class": per_class,
            "skipped": skipped,
        }
    return splits


def _plan_affect(video: Video, spec: SyntheticSpec) -> None:
    """Give an annotated video its valence-arousal and action-unit files (or not), with quirks."""
    assert video.labels is not None
    position = video.key % 8
    n = len(video.labels)
    ident = faces.make_identity(make_rng(spec.seed, video.split_id, video.key, STREAM_IDENTITY))
    shapes = [
        faces.face_shape(ident, int(video.expression[i]), float(video.intensity[i]))
        for i in range(n)
    ]
    rng = make_rng(spec.seed, video.split_id, video.key, STREAM_AFFECT)
    stretch = max(2, n // _MISSING_SHARE)
    if position not in _NO_VA:
        va = np.array([affect.valence_arousal(shape) for shape in shapes], dtype=np.float64)
        start = int(rng.integers(0, n - stretch + 1))
        va[start : start + stretch] = VA_MISSING
        if video.key % 3 == 0:
            va[int(rng.integers(0, n)), int(rng.integers(0, len(VA_NAMES)))] = VA_MISSING
        video.va = va
    if position not in _NO_AU:
        au = np.stack([affect.action_units(shape) for shape in shapes])
        start = int(rng.integers(0, n - stretch + 1))
        au[start : start + stretch] = AU_MISSING
        if video.key % 3 == 1:
            au[int(rng.integers(0, n)), int(rng.integers(0, len(AU_NAMES)))] = AU_MISSING
        if video.split_id == SPLITS[0][2] and video.key == 1:
            au = au[: n - _AU_SHORTER]
        video.au = au
    video.crlf = video.key % 5 == 1


def annotated_lines(annotation_set: str, lines: np.ndarray) -> np.ndarray:
    """Which lines of a planned valence-arousal or action-unit file annotate their frame.

    The reader's definitions: no -5 in the line; at least one unit not -1.
    """
    if annotation_set == "va":
        return (lines != VA_MISSING).all(axis=1)
    return (lines != AU_MISSING).any(axis=1)


def count_affect(videos: list[Video]) -> dict[str, Any]:
    """The manifest's counts of the valence-arousal and action-unit files, as the reader counts.

    Returns:
        ``{"va": {split: {"videos", "frames", "skipped", "valence_mean", "arousal_mean"}},
        "au": {split: {"videos", "frames", "skipped", "au_positives"}}}``, where ``frames`` and
        ``videos`` count what ``task=va`` (``task=au``) keeps, and ``au_positives`` counts each
        unit's 1s in those frames.
    """
    counts: dict[str, Any] = {}
    for name in ("va", "au"):
        counts[name] = {}
        for split, _, split_id in SPLITS:
            skipped = dict.fromkeys(SKIP_KEYS, 0)
            kept: list[np.ndarray] = []
            contributing = 0
            for video in videos:
                lines = getattr(video, name)
                if video.split_id != split_id or lines is None:
                    continue
                if not video.has_folder:
                    skipped["videos_without_frames"] += 1
                    continue
                annotated = annotated_lines(name, lines)
                on_disk = np.array([i not in video.missing for i in range(len(video.expression))])
                within = on_disk[: len(lines)]
                skipped["beyond_labels"] += int(on_disk[len(lines) :].sum())
                skipped["invalid_label"] += int((within & ~annotated).sum())
                skipped["missing_frame"] += int((~within & annotated).sum())
                kept.append(lines[within & annotated])
                contributing += bool((within & annotated).any())
            width = len(VA_NAMES) if name == "va" else len(AU_NAMES)
            values = np.concatenate(kept) if kept else np.zeros((0, width))
            entry: dict[str, Any] = {"videos": contributing, "frames": len(values)}
            entry["skipped"] = skipped
            if name == "va":
                for column, column_name in enumerate(VA_NAMES):
                    mean = float(values[:, column].mean()) if len(values) else None
                    entry[f"{column_name}_mean"] = None if mean is None else round(mean, 6)
            else:
                entry["au_positives"] = [int(n) for n in (values == 1).sum(axis=0)]
            counts[name][split] = entry
    return counts
