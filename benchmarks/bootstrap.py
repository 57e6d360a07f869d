"""What the intervals add to an evaluation: an Aff-Wild2-sized validation set, on the CPU.

    python benchmarks/bootstrap.py [--videos 70] [--frames 400000] [--samples 2000]
    python benchmarks/bootstrap.py --smoke          # tiny

Builds the gathered predictions an evaluation of ``--frames`` validation frames in ``--videos``
videos would have (frames of one video share its expression; every default resolution under
each of ``--kernels`` ways of degrading: 6 gives 1 + 8 x 6 points; three splits), then times
the work after the model on them, as ``evaluation/assembly.py`` does it (best of ``--repeats``):

* ``per_video_s``: counting the per-video confusion matrices at every point;
* ``assembly_s``: ``build_results`` without intervals (``eval.bootstrap.samples=0``): the scores
  of every point and split, and the smoothing windows;
* ``assembly_with_bootstrap_s``: the same with the bootstrap (intervals on every score, the
  smoothed ones included);
* ``save_s``: writing ``per_video.npz``;
* ``intervals_s``: the draws and the intervals of every point of the three splits alone (timed
  directly, not as a difference of two noisy times).

``bootstrap_added_s`` = per_video + (with - without) + save: what the intervals add. The model's
pass over the frames (``benchmarks/eval_throughput.py``) comes on top of ``assembly_s``. Prints
one JSON line with the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from common import CLASSES, emit

from fer_multires.data.batch_transforms import DEGRADATIONS
from fer_multires.evaluation.assembly import PointState, Predictions, RawResults, build_results
from fer_multires.evaluation.classes import match_classes
from fer_multires.evaluation.config import EvalConfig, EvalSettings
from fer_multires.evaluation.module import evaluation_points
from fer_multires.results import EVAL_SPLITS, NATIVE, VAL_LOADERS
from fer_multires.uncertainty import (
    BootstrapSettings,
    VideoBootstrap,
    per_video_stats,
    point_name,
)


def simulated_predictions(videos: int, frames: int, points: int, seed: int = 0) -> Predictions:
    """Frames of ``videos`` videos (a third in val_select), predicted at every point."""
    rng = np.random.default_rng(seed)
    video = np.sort(rng.integers(0, videos, frames))
    frame = np.arange(frames) - np.searchsorted(video, video)
    expression = rng.integers(0, len(CLASSES), videos)
    label = np.where(rng.random(frames) < 0.8, expression[video], rng.integers(0, 7, frames))
    logits = rng.normal(size=(frames, len(CLASSES))).astype(np.float32)
    logits[np.arange(frames), label] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    noise = rng.random((frames, points)) < np.linspace(0.1, 0.8, points)
    point_predicted = np.where(noise, rng.integers(0, 7, (frames, points)), label[:, None])
    point_predicted[:, 0] = probs.argmax(axis=1)
    split = np.where(np.arange(videos)[video] % 3 == 0, VAL_LOADERS[0], VAL_LOADERS[1])
    names = np.array([f"video_{v:03d}" for v in range(videos)])[video]
    return Predictions(split, names, frame, label, point_predicted[:, 0], probs,
                       point_predicted.astype(np.int64))  # fmt: skip


def raw_results(predictions: Predictions, kernels: tuple[str, ...], resolutions: list[int]):
    """The :class:`RawResults` the evaluation would load, and how long counting took."""
    points = evaluation_points(resolutions, kernels)
    names = [point_name(k, NATIVE if r is None else str(r)) for k, r in points]
    start = time.perf_counter()
    per_video = per_video_stats(predictions.video, predictions.split, predictions.label,
                                predictions.point_predicted, names, CLASSES, "video")  # fmt: skip
    seconds = time.perf_counter() - start
    degradations = {}
    for kernel in kernels:
        keys = {NATIVE: 0, **{str(r): names.index(point_name(kernel, str(r))) for r in resolutions}}
        degradations[kernel] = {
            split: {k: PointState(per_video.confusions[per_video.split_groups(split), p].sum(0))
                    for k, p in keys.items()}
            for split in EVAL_SPLITS
        }  # fmt: skip
    skipped = dict.fromkeys(EVAL_SPLITS, 0)
    excluded = {split: {} for split in EVAL_SPLITS}
    raw = RawResults(degradations[kernels[0]], degradations, skipped, excluded, predictions,
                     per_video)  # fmt: skip
    return raw, seconds


def timed_build(raw: RawResults, settings: EvalSettings) -> float:
    datamodule = SimpleNamespace(root=".", native_size=(112, 112), index=None, eval_split="val")
    start = time.perf_counter()
    build_results(raw, settings, datamodule, None, match_classes(CLASSES, CLASSES))
    return time.perf_counter() - start


def timed_intervals(raw: RawResults, samples: int) -> float:
    """Time the draws and the intervals of every point of every split (smoothing aside)."""
    start = time.perf_counter()
    bootstrap = VideoBootstrap.create(raw.per_video, BootstrapSettings(samples))
    for split in EVAL_SPLITS:
        bootstrap.intervals(split, raw.per_video.confusions)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=70)
    parser.add_argument("--frames", type=int, default=400_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="each time is the best of these")
    parser.add_argument("--kernels", type=int, default=6, help="degradations (points per res)")
    parser.add_argument("--smoke", action="store_true", help="10 videos, 5,000 frames")
    args = parser.parse_args()
    if args.smoke:
        args.videos, args.frames = 10, 5000
    defaults = EvalConfig()  # the schema holds the defaults (conf/eval/default.yaml: none)
    resolutions = sorted(defaults.resolutions)
    # the evaluation's kernels, and more names up to --kernels (the work depends on the count)
    kernels = (*DEGRADATIONS, *(f"kernel{i}" for i in range(len(DEGRADATIONS), args.kernels)))
    points = 1 + len(resolutions) * len(kernels)
    predictions = simulated_predictions(args.videos, args.frames, points)
    raw, per_video_s = raw_results(predictions, kernels, resolutions)
    per_video_s = min([per_video_s, *(raw_results(predictions, kernels, resolutions)[1]
                                      for _ in range(args.repeats - 1))])  # fmt: skip
    base = EvalSettings(Path("model.ckpt"), tuple(resolutions), defaults.smoothing,
                        tuple(defaults.smoothing_windows), False, kernels)  # fmt: skip
    without, with_intervals = float("inf"), float("inf")
    for _ in range(args.repeats):  # alternated, so that the machine's load hits both alike
        off = timed_build(raw, replace(base, bootstrap=BootstrapSettings(samples=0)))
        on = timed_build(raw, replace(base, bootstrap=BootstrapSettings(args.samples)))
        without, with_intervals = min(without, off), min(with_intervals, on)
    intervals_s = min(timed_intervals(raw, args.samples) for _ in range(args.repeats))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        path = raw.per_video.save(out)
        save_s = time.perf_counter() - start
        size = path.stat().st_size
    emit({
        "benchmark": "bootstrap", "videos": args.videos, "frames": args.frames,
        "kernels": len(kernels), "points": points, "splits": len(EVAL_SPLITS),
        "samples": args.samples, "repeats": args.repeats,
        "smoothing_windows": list(defaults.smoothing_windows),
        "per_video_s": round(per_video_s, 3), "assembly_s": round(without, 3),
        "assembly_with_bootstrap_s": round(with_intervals, 3), "save_s": round(save_s, 3),
        "intervals_s": round(intervals_s, 3),
        "per_video_npz_bytes": size,
        "bootstrap_added_s": round(per_video_s + with_intervals - without + save_s, 3),
    })  # fmt: skip


if __name__ == "__main__":
    main()
