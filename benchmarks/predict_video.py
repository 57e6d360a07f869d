"""``predict`` on a video end to end: frames per second of the old path and the new default.

    python benchmarks/predict_video.py [--clips 3] [--frames 125] [--detect-every 1 5 10 25]
                                       [--baseline-ref REF] [--backbone seresnet18 --size 64]

Each clip is 720p, 25 fps, ``--frames`` long, six real faces (scikit-image's astronaut and
matplotlib's Grace Hopper, 20 to 96 px wide, turned up to 15 degrees) drifting slowly (0.3 px a
frame) over a real background, one background per clip
(:func:`fer_multires.data.synthetic.real_faces.write_clip`), so where every face is in every
frame is known. On each clip, one after the other, each a fresh ``python -m
fer_multires.predict`` process timed from start to exit (interpreter, imports and model load
included, as a user waits for it):

* ``baseline``: the code before MTCNN came (``--baseline-ref``, extracted with ``git archive``;
  its default: Haar on every frame), as a user ran it then;
* ``haar_every_frame``: this code with ``detector=haar align=false predict.detect_every=1``;
* ``mtcnn_every_<k>``: this code's default path (MTCNN, aligned) with
  ``predict.detect_every=k`` for each ``--detect-every`` (the default k marked).

For each: wall seconds, frames per second, its speed-up over ``baseline``; the same command on
the clip's first frame alone (``start_s``: interpreter, imports, model and detector load, one
frame), and from the two the time per further frame (``ms_per_frame``, what a longer video costs
per frame) and its speed-up; the faces found per frame, tracks, recall (the share of the true
faces of every frame that a row of ``predictions.csv`` finds: its box's centre in the true box,
its shorter side within a factor of 2 of the face's) and the rows that match no face. The model
is a random-init ``--backbone`` at ``--size`` px (the demo's size by default): speed does not
depend on the weights.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit, write_random_run

from fer_multires.data.synthetic.real_faces import PlacedFace, match, write_clip
from fer_multires.inference.runner import PredictSettings

#: The six faces' widths, in pixels.
CLIP_FACES = [20, 28, 36, 48, 64, 96]
#: The code before MTCNN: the last commit whose ``predict`` ran Haar on every frame.
BASELINE_REF = "5cf9e60"
REPO = Path(__file__).resolve().parent.parent


def extract(ref: str, folder: Path) -> Path:
    """Extract the repository's tree at ``ref`` into ``folder`` (``git archive``); return it."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_predict(code: Path, ckpt: Path, clip: Path, out: Path, *overrides: str) -> float:
    """Run ``python -m fer_multires.predict`` from the package in ``code``; return wall seconds."""
    command = [sys.executable, "-m", "fer_multires.predict", f"ckpt_path={ckpt}",
               f"input={clip}", f"run_dir={out}", "predict.device=cpu", *overrides]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.run(command, cwd=code, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(code)})  # fmt: skip
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-3000:]}")
    return seconds


def quality(predictions: Path, truth: list[list[PlacedFace]]) -> dict[str, float]:
    """Compare ``predictions.csv`` with where the faces truly are, frame by frame."""
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    tracks = set()
    with predictions.open(newline="") as f:
        for row in csv.DictReader(f):
            x, y, w, h = (float(row[k]) for k in "xywh")
            boxes.setdefault(int(row["frame"]), []).append((x, y, x + w, y + h))
            tracks.add(row["track"])
    found = false = 0
    for number, faces in enumerate(truth):
        hits, wrong = match(faces, boxes.get(number, []))
        found += sum(hits)
        false += wrong
    true_faces = sum(len(faces) for faces in truth)
    return {"faces_per_frame": sum(map(len, boxes.values())) / len(truth), "tracks": len(tracks),
            "recall": found / true_faces, "rows_matching_no_face": false}  # fmt: skip


def bench_clip(args: argparse.Namespace, seed: int, tmp: Path, ckpt: Path, baseline: Path) -> None:
    """Time every path on one clip, one after the other."""
    clip = tmp / f"clip{seed}.mp4"
    truth = write_clip(clip, CLIP_FACES, args.frames, 1280, 720, speed=0.3, seed=seed)
    first = tmp / f"clip{seed}_first_frame.mp4"
    write_clip(first, CLIP_FACES, 1, 1280, 720, speed=0.3, seed=seed)
    paths: dict[str, tuple[Path, list[str]]] = {
        "baseline": (baseline, []),
        "haar_every_frame": (REPO, ["detector=haar", "align=false", "predict.detect_every=1"]),
    }
    for k in args.detect_every:
        paths[f"mtcnn_every_{k}"] = (REPO, [f"predict.detect_every={k}"])
    baseline: tuple[float, float] | None = None
    for name, (code, overrides) in paths.items():
        out = tmp / f"out{seed}_{name}"
        seconds = run_predict(code, ckpt, clip, out, *overrides)
        start = run_predict(code, ckpt, first, tmp / f"out{seed}_{name}_first", *overrides)
        fps, per_frame = args.frames / seconds, (seconds - start) / (args.frames - 1)
        baseline = baseline or (fps, per_frame)
        emit({"bench": "predict_video", "clip": seed, "frames": args.frames, "frame": "1280x720",
              "path": name, "overrides": " ".join(overrides),
              "default": name == f"mtcnn_every_{PredictSettings().detect_every}",
              "wall_s": seconds, "frames_per_s": fps, "speedup": fps / baseline[0],
              "start_s": start, "ms_per_frame": 1000 * per_frame,
              "speedup_per_frame": baseline[1] / per_frame,
              **quality(out / "predictions.csv", truth), "backbone": args.backbone,
              "size": args.size})  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=3, help="clips (backgrounds) to run")
    parser.add_argument("--frames", type=int, default=125, help="frames per clip (25 fps)")
    parser.add_argument("--detect-every", nargs="+", type=int, default=[1, 5, 10, 25])
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--backbone", default="seresnet18")
    parser.add_argument("--size", type=int, default=64, help="the model's crop size")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run every path on every clip."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        ckpt = write_random_run(tmp / "run", args.backbone, args.size + args.size // 16, args.size)
        baseline = extract(args.baseline_ref, tmp / "baseline")
        for seed in range(args.clips):
            bench_clip(args, seed, tmp, ckpt, baseline)


if __name__ == "__main__":
    main()
