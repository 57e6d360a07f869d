"""Running ``predict``: sources -> faces -> alignment -> batched classification -> outputs.

Frames are read one at a time; their face crops wait in one batch of ``predict.batch_size`` crops
until it is full, so memory holds at most one frame and one batch of crops, whatever the video's
length, and a batch gathers faces across frames. Each face with landmarks is aligned to the
training crops' template (``align``, :mod:`fer_multires.inference.align`), the others cropped
square with ``predict.margin``. In a video the detector runs on every ``predict.detect_every``-th
processed frame and the faces are followed between, linked into one track per person
(:mod:`fer_multires.inference.tracks`); with ``predict.smoothing`` > 1 each track's outputs
are smoothed over that many frames
(:func:`fer_multires.smoothing.smooth_probabilities`, the evaluation's smoothing, in frame
numbers, so ``every_n_frames`` does not change what the window spans): every head's continuous
outputs (class probabilities, valence and arousal, AU probabilities), before the AUs' decisions.

A model of any task (:mod:`fer_multires.tasks`) is run the same way; its heads decide the columns
(:mod:`fer_multires.inference.outputs`). The AU decision thresholds come from the evaluation
``expected_score`` is read from (:func:`fer_multires.inference.expected.load_au_thresholds`), or
are 0.5; the log and the summary say which.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from fer_multires.inference.classifier import Classifier, load_classifier, resolve_device
from fer_multires.inference.detect import (
    DEFAULT_MARGIN,
    Detector,
    Face,
    WholeImage,
    build_detector,
    check_margin,
    face_crop,
)
from fer_multires.inference.expected import (
    AuThresholds,
    ExpectedScore,
    load_au_thresholds,
    load_expected_score,
)
from fer_multires.inference.outputs import (
    PREDICTIONS_FILE,
    SOURCES_FILE,
    FaceTable,
    SourceStatus,
    annotate_source,
    annotated_paths,
    summary_table,
    write_predictions,
    write_sources,
)
from fer_multires.inference.sources import (
    FrameTally,
    Source,
    UnreadableSourceError,
    collect_sources,
    iter_frames,
)
from fer_multires.inference.tracks import FaceFollower, FaceTracker
from fer_multires.results import SCORE_NAMES
from fer_multires.runs import resolve_checkpoint, run_config_of
from fer_multires.smoothing import SMOOTHING_KINDS, smooth_probabilities
from fer_multires.utils.checkpoints import require_checkpoint
from fer_multires.utils.config import required
from fer_multires.utils.io import printable_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictSettings:
    """The ``predict`` node: its typed schema (``fer_multires/schemas.py``) and checked values.

    Attributes:
        margin: faces not aligned (``align=false``, ``detector=haar``): a square crop of
            (1 + 2 x margin) x the face box's side, from the full-resolution frame. 0.2 frames a
            face about as Aff-Wild2's 112 x 112 five-point aligned crops do: real faces aligned to
            that template measure 1.20-1.54 Haar box sides (margin 0.10-0.27, median 0.17),
            rounded towards the loose side (``python benchmarks/predict.py --only margin``).
            Change it to match how your training crops frame a face. ``expected_score`` is read
            at the crop's side, ``crop_px`` (face_px x (1 + 2 x margin); for an aligned face the
            template's 112 px measured in the source), the same measure as an evaluated
            resolution.
        batch_size: crops per forward pass.
        device: ``auto`` (cuda when present), ``cpu`` or ``cuda``.
        every_n_frames: videos: classify frames 0, n, 2n, ...
        detect_every: videos: run the detector on every k-th classified frame and follow the
            faces between (1: every frame).
        smoothing: videos: smooth each track's probabilities over this many frames (odd; 1 =
            off).
        smoothing_kind: ``mean`` or ``gaussian`` (the evaluation's smoothing).
        annotate: also write ``annotated/`` copies of the inputs.
        track_min_iou: a face and a track whose boxes overlap this much (IoU) may be linked ...
        track_max_shift: ... or whose landmarks (box centres) moved at most this many face
            sides.
        track_max_gap: a track unseen for more classified frames than this is closed.
        track_min_frames: a video track seen in fewer classified frames is dropped (counted in
            ``sources.csv``: ``short_tracks``).
        metrics: an evaluation's ``metrics.json`` (or its directory) for ``expected_score``;
            None: the model's run's own (``<run>/eval/metrics.json``), or the one stored in an
            ONNX file. ``expected_score`` is that evaluation's ``val_rest`` score interpolated (in
            log2 pixels) at ``crop_px``: an evaluated resolution r is the shorter side of a whole
            training frame, which frames the face with the margin, so a face of face_px pixels
            carries as much detail as a frame evaluated at face_px x (1 + 2 x margin).
    """

    margin: float = DEFAULT_MARGIN
    batch_size: int = 32
    device: str = "auto"
    every_n_frames: int = 1
    detect_every: int = 10
    smoothing: int = 1
    smoothing_kind: str = "mean"
    annotate: bool = False
    track_min_iou: float = 0.3
    track_max_shift: float = 0.5
    track_max_gap: int = 25
    track_min_frames: int = 3
    metrics: str | None = None


def positive_int(node: DictConfig, key: str) -> int:
    """Return ``predict.<key>`` if it is an integer >= 1.

    Raises:
        ValueError: naming the key.
    """
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"predict.{key}={value!r} must be an integer >= 1")
    return int(value)


def check_predict_node(node: DictConfig) -> PredictSettings:
    """Check the ``predict`` node.

    Raises:
        ValueError: for an invalid value, naming its key.
    """
    known = set(PredictSettings.__dataclass_fields__)
    unknown = sorted(set(node.keys()) - known)
    if unknown:
        raise ValueError(f"predict: unknown keys {', '.join(map(str, unknown))}")
    values: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    for key in ("batch_size", "every_n_frames", "detect_every", "smoothing", "track_min_frames"):
        values[key] = positive_int(node, key)
    if values["smoothing"] % 2 == 0:
        raise ValueError(
            f"predict.smoothing={values['smoothing']} must be odd (a centred window of frames)"
        )
    if values["smoothing_kind"] not in SMOOTHING_KINDS[1:]:
        raise ValueError(f"predict.smoothing_kind={values['smoothing_kind']!r} is not one of "
                         f"{', '.join(SMOOTHING_KINDS[1:])}")  # fmt: skip
    values["margin"] = check_margin(values["margin"])
    settings = PredictSettings(**values)
    FaceTracker(settings.track_min_iou, settings.track_max_shift, settings.track_max_gap)
    return settings


def check_align(value: Any) -> bool:
    """Validate ``align``: true or false.

    Raises:
        ValueError: naming ``align``.
    """
    if not isinstance(value, bool):
        raise ValueError(f"align={value!r} must be true or false")
    return value


def resolve_model_path(cfg: DictConfig, key: str = "ckpt_path") -> Path:
    """Return the checkpoint or ONNX file ``ckpt_path`` names (a run directory: its best).

    Raises:
        ValueError: if ``ckpt_path`` is not set.
        FileNotFoundError: naming the key and the path, if it does not exist.
    """
    usage = f"python -m fer_multires.predict {key}=RUN_DIR|FILE.ckpt|FILE.onnx input=PATH"
    path = Path(str(required(cfg, key, usage)))
    if path.suffix.lower() == ".onnx":
        return require_checkpoint(path, key)
    return resolve_checkpoint(path, key)


#: The landmarks of a face without any.
NO_LANDMARKS = np.full((5, 2), np.nan)


@dataclass
class _Pending:
    """Face crops waiting to be classified, and where their outputs go."""

    crops: list[np.ndarray] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


class FaceCollector:
    """Gathers faces and classifies them a batch at a time.

    Each face's outputs are kept as one row: its heads' outputs side by side, in
    :attr:`Classifier.head_sizes` order.
    """

    def __init__(self, classifier: Classifier, batch_size: int) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self.meta: list[tuple[str, int, int, int, int, int, int, int]] = []
        self.scores: list[float] = []
        self.landmarks: list[np.ndarray] = []
        self.outputs: list[np.ndarray | None] = []
        self.pending = _Pending()
        self.classify_seconds = 0.0

    def add(self, source: str, frame: int, track: int, face: Face, crop: np.ndarray) -> None:
        """Queue one face; classify the batch when it is full."""
        box = face.box
        self.meta.append(
            (source, frame, track, box.x, box.y, box.w, box.h, int(min(crop.shape[:2])))
        )
        self.scores.append(face.score)
        self.landmarks.append(NO_LANDMARKS if face.landmarks is None else face.landmarks)
        self.outputs.append(None)
        self.pending.crops.append(crop)
        self.pending.rows.append(len(self.meta) - 1)
        if len(self.pending.crops) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Classify the queued faces."""
        if not self.pending.crops:
            return
        start = time.perf_counter()
        heads = self.classifier.heads(self.pending.crops)
        self.classify_seconds += time.perf_counter() - start
        outputs = np.concatenate([heads[h] for h in self.classifier.head_sizes], axis=1)
        for row, values in zip(self.pending.rows, outputs, strict=True):
            self.outputs[row] = values
        self.pending = _Pending()

    def table(self) -> FaceTable:
        """Return every face classified so far."""
        self.flush()
        sizes = self.classifier.head_sizes
        meta = self.meta
        outputs = np.array(self.outputs, dtype=np.float64).reshape(-1, sum(sizes.values()))
        return FaceTable(
            class_names=self.classifier.class_names,
            source=np.array([m[0] for m in meta], dtype=object),
            frame=np.array([m[1] for m in meta], dtype=np.int64),
            track=np.array([m[2] for m in meta], dtype=np.int64),
            boxes=np.array([m[3:7] for m in meta], dtype=np.int64).reshape(-1, 4),
            crop_px=np.array([m[7] for m in meta], dtype=np.int64),
            scores=np.array(self.scores, dtype=np.float64),
            landmarks=np.array(self.landmarks, dtype=np.float64).reshape(-1, 5, 2),
            outputs=split_columns(outputs, sizes),
        )


def split_columns(values: np.ndarray, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Split ``(N, sum of sizes)`` columns into ``{head: (N, size)}``, in ``sizes`` order."""
    bounds = np.cumsum([0, *sizes.values()])
    return {head: values[:, bounds[k] : bounds[k + 1]] for k, head in enumerate(sizes)}


@dataclass
class PredictResult:
    """What ``predict`` did.

    Attributes:
        output_dir: where the outputs are.
        table: every classified face.
        statuses: every source's status.
        expected: the expected scores used, or None.
        not_read: entries of the input folder that are neither images nor videos.
        au_thresholds: the AU thresholds used (a model with an AU head), or None.
    """

    output_dir: Path
    table: FaceTable
    statuses: list[SourceStatus]
    expected: ExpectedScore | None
    not_read: int = 0
    au_thresholds: AuThresholds | None = None

    @property
    def unreadable(self) -> int:
        """How many inputs were unreadable."""
        return sum(s.status == "unreadable" for s in self.statuses)

    @property
    def short_videos(self) -> int:
        """How many videos ended before their container's frame count."""
        return sum(s.short for s in self.statuses)


@dataclass(frozen=True)
class FaceFinding:
    """How faces are found and prepared: the detector, alignment and video following.

    Attributes:
        detector: the face detector.
        align: align faces with landmarks to the template.
        settings: the checked ``predict`` node (margin, detection interval, tracker).
    """

    detector: Detector
    align: bool
    settings: PredictSettings

    @property
    def margin(self) -> float:
        """The square crop's margin (0 for ``detector=none``: already a face crop)."""
        return 0.0 if isinstance(self.detector, WholeImage) else self.settings.margin

    def follower(self) -> FaceFollower:
        """Return a new follower for one video."""
        s = self.settings
        tracker = FaceTracker(s.track_min_iou, s.track_max_shift, s.track_max_gap)
        # detector=none takes the whole frame: nothing to gain by following it
        every = 1 if isinstance(self.detector, WholeImage) else s.detect_every
        return FaceFollower(self.detector, tracker, every)


def process_source(source: Source, finding: FaceFinding, collector: FaceCollector) -> SourceStatus:
    """Detect, crop, track and queue the faces of one source; return its status."""
    status = SourceStatus(source.name)
    follower = finding.follower()
    tally = FrameTally()
    try:
        for frame_number, frame in iter_frames(source, finding.settings.every_n_frames, tally):
            faces = follower(frame) if source.is_video else enumerate(finding.detector(frame))
            found = 0
            for track, face in faces:
                crop = face_crop(frame, face, finding.align, finding.margin)
                collector.add(source.name, frame_number, track, face, crop)
                found += 1
            status.frames += 1
            status.faces += found
    except UnreadableSourceError as err:
        status.status, status.reason = "unreadable", printable_name(str(err))
        log.error("%s: unreadable: %s", source.name, status.reason)
        return status
    if tally.short:
        status.short, status.reason = True, tally.note()
        log.warning("%s: %s", source.name, status.reason)
    if status.faces == 0:
        status.status = "no_face"
        log.warning("%s: no face found in %d frames", source.name, status.frames)
    return status


def drop_short_tracks(
    table: FaceTable, sources: list[Source], statuses: list[SourceStatus], min_frames: int
) -> FaceTable:
    """Drop the faces of video tracks seen in fewer than ``min_frames`` frames; count them.

    A detection that does not persist over a few frames is most often no face at all (a
    pattern the detector takes for one for a moment); images are never filtered. Each source's
    ``faces`` and ``short_tracks`` are updated, and its status is ``no_face`` if none is left.
    """
    keep = np.ones(len(table), dtype=bool)
    for source, status in zip(sources, statuses, strict=True):
        rows = table.rows_of(source.name)
        if not source.is_video or min_frames <= 1 or not len(rows):
            continue
        tracks, counts = np.unique(table.track[rows], return_counts=True)
        short = set(tracks[counts < min_frames].tolist())
        dropped = rows[np.isin(table.track[rows], list(short))]
        keep[dropped] = False
        status.short_tracks, status.faces = len(short), status.faces - len(dropped)
        if short:
            log.info("%s: %d tracks seen in fewer than %d frames dropped (%d faces)",
                     source.name, len(short), min_frames, len(dropped))  # fmt: skip
        if status.faces == 0 and status.status == "ok":
            status.status = "no_face"
    return table.subset(np.flatnonzero(keep))


def smooth_tracks(table: FaceTable, window: int, kind: str) -> None:
    """Smooth each track's outputs over ``window`` frames, in place: every head's at once."""
    if window <= 1 or not len(table):
        return
    keys = [f"{s}\0{t}" for s, t in zip(table.source, table.track, strict=True)]
    track_ids = np.unique(np.array(keys), return_inverse=True)[1]
    sizes = {head: values.shape[1] for head, values in table.outputs.items()}
    values = np.concatenate(list(table.outputs.values()), axis=1)
    smoothed = smooth_probabilities(values, track_ids, table.frame, window, kind)
    table.outputs = split_columns(smoothed, sizes)


def expected_scores_for(
    classifier: Classifier, model_path: Path, settings: PredictSettings
) -> ExpectedScore | None:
    """Return the expected scores: ``predict.metrics``, else those of the model's run."""
    if settings.metrics is None and classifier.expected_scores is not None:
        return ExpectedScore.from_json(classifier.expected_scores)  # an ONNX file's own
    return load_expected_score(settings.metrics, model_run_dir(model_path), task=classifier.task)


def model_run_dir(model_path: Path) -> Path | None:
    """Return the training run of a checkpoint (None for an ONNX file or a Hub folder)."""
    run_config = run_config_of(model_path) if model_path.suffix != ".onnx" else None
    return run_config.parent if run_config is not None else None


def au_thresholds_for(
    classifier: Classifier, model_path: Path, settings: PredictSettings
) -> AuThresholds | None:
    """Return the AU thresholds of a model with an AU head (None without one).

    ``predict.metrics``'s, else those stored with the model (an ONNX file, a Hub folder), else its
    run's evaluation's, else 0.5 for every AU.
    """
    if "au" not in classifier.head_sizes:
        return None
    if settings.metrics is None and classifier.au_thresholds is not None:
        return AuThresholds.from_json(classifier.au_thresholds, str(classifier.source))
    return load_au_thresholds(settings.metrics, model_run_dir(model_path))


def expected_column(expected: ExpectedScore | None, crop_px: np.ndarray) -> np.ndarray:
    """Return each face's expected score, NaN where there is none."""
    values = [None if expected is None else expected.at(float(c)) for c in crop_px]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def predict(cfg: DictConfig, output_dir: Path) -> PredictResult:
    """Run ``predict`` as the config says, writing the outputs into ``output_dir``.

    Raises:
        FileNotFoundError: for a missing checkpoint or input, before any work.
        ValueError: for a bad setting (naming its key) or an input folder without images or
            videos, before any work.
    """
    model_path = resolve_model_path(cfg)
    inputs = collect_sources(
        str(required(cfg, "input", "an image, a folder or a video (input=PATH)"))
    )
    sources = inputs.sources
    settings = check_predict_node(cfg.predict)
    align = check_align(cfg.get("align"))
    device = resolve_device(settings.device)
    finding = FaceFinding(build_detector(cfg.detector), align, settings)
    classifier = load_classifier(model_path, device)
    expected = expected_scores_for(classifier, model_path, settings)
    thresholds = au_thresholds_for(classifier, model_path, settings)
    log.info(
        "model %s (%s, task %s) on %s; %d sources; detector %r, align %s, margin %g, detect "
        "every %d", model_path, type(classifier).__name__, classifier.task, device, len(sources),
        finding.detector, align, finding.margin, settings.detect_every,
    )  # fmt: skip
    if thresholds is not None:
        log.info("AU thresholds: %s", thresholds.describe())
    collector = FaceCollector(classifier, settings.batch_size)
    start = time.perf_counter()
    statuses = [process_source(s, finding, collector) for s in sources]
    table = drop_short_tracks(collector.table(), sources, statuses, settings.track_min_frames)
    seconds = time.perf_counter() - start
    smooth_tracks(table, settings.smoothing, settings.smoothing_kind)
    table.expected = expected_column(expected, table.crop_px)
    if thresholds is not None:
        table.au_thresholds = thresholds.array
    output_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(output_dir / PREDICTIONS_FILE, table)
    write_sources(output_dir / SOURCES_FILE, statuses)
    smallest = expected.smallest if expected is not None else None
    if settings.annotate:
        paths = annotated_paths(output_dir, sources)
        for source, status, path in zip(sources, statuses, paths, strict=True):
            if status.status != "unreadable":
                annotate_source(path, source, table, smallest)
    frames = sum(s.frames for s in statuses)
    log.info("%d faces in %d frames of %d sources in %.1f s (classification %.1f s) on %s",
             len(table), frames, len(sources), seconds, collector.classify_seconds,
             device)  # fmt: skip
    return PredictResult(output_dir, table, statuses, expected, inputs.not_read, thresholds)


def format_summary(result: PredictResult) -> str:
    """Return the printed summary: the per-source table, flags and where the outputs are."""
    smallest = result.expected.smallest if result.expected is not None else None
    lines = summary_table(result.table, result.statuses, smallest)
    if smallest is not None:
        below = int((result.table.crop_px < smallest).sum())
        if below:
            lines.append(
                f"\n{below} faces are smaller than the smallest evaluated resolution "
                f"({smallest} px crops): no expected_score, treat their predictions with care"
            )
        lines.append(
            f"expected_score: {result.expected.split} "
            f"{SCORE_NAMES[result.expected.task]} of {result.expected.origin}"
        )
    else:
        lines.append("\nno evaluation of this model: no expected_score")
    if result.au_thresholds is not None:
        lines.append(f"AU thresholds: {result.au_thresholds.describe()}")
    if result.unreadable:
        lines.append(f"{result.unreadable} inputs were unreadable (see {SOURCES_FILE} and the log)")
    short_tracks = sum(s.short_tracks for s in result.statuses)
    if short_tracks:
        lines.append(f"{short_tracks} tracks seen in too few frames were dropped as passing "
                     f"false detections (predict.track_min_frames; short_tracks in "
                     f"{SOURCES_FILE})")  # fmt: skip
    if result.short_videos:
        lines.append(f"{result.short_videos} videos ended before the frame count their container "
                     f"gives: cut off? (see the reason column of {SOURCES_FILE})")  # fmt: skip
    if result.not_read:
        lines.append(f"{result.not_read} entries of the input folder are neither images nor "
                     "videos: not read")  # fmt: skip
    lines.append(f"output directory: {result.output_dir}")
    return "\n".join(lines)
