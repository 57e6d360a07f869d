"""``predict``'s costs: face detection, classification (PyTorch eager vs ONNX Runtime), memory.

    python benchmarks/predict.py [--only margin classify memory] [--device cpu|cuda]

Sections (each prints JSON lines naming the machine):

* ``margin``: how a Haar box sits in a five-point aligned face crop, the framing of Aff-Wild2's
  ``cropped_aligned`` frames (the ArcFace 112 x 112 template). On each real photo shipped in a
  wheel (scikit-image's astronaut, matplotlib's Grace Hopper) the face is aligned to the
  template by its eyes (OpenCV's eye cascade), then measured two ways: the Haar box mapped into
  the aligned crop, and the cascade run again on the aligned crop itself. Each gives the crop's
  side in box sides, ``1 + 2 * margin``. The cascade on the synthetic Aff-Wild2-style frames is
  reported too (drawn faces: a check, not the reference).
* ``classify``: classified faces per second of seresnet18 and seresnet50 (random init) at the
  evaluation size (``data.crop_size``, 224), batch 1 and 32: the network's forward pass on a
  prepared batch, PyTorch eager (inference mode) against ONNX Runtime on the same exported
  graph (the file ``python -m fer_multires.export`` writes), with the session ``predict``
  opens and with tuned session options. Median of ``--repeats`` timed calls after warm-up.
* ``memory``: peak RSS of ``python -m fer_multires.predict`` (its own process, read with
  ``os.wait4``) on a generated 25 fps 640x480 video of the astronaut moving around, a long one
  (``--long-seconds``, 120) against a short one (``--short-seconds``), with a random-init model.

Nothing downloads; the models are random-init (speed and memory do not depend on the weights).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from common import CLASSES, emit, write_random_run

from fer_multires.inference.align import ARCFACE_TEMPLATE, TEMPLATE_SIDE
from fer_multires.inference.detect import Box, HaarDetector
from fer_multires.inference.onnx_export import INPUT_NAME, OUTPUT_NAME
from fer_multires.models.module import FERModule

SECTIONS = ("margin", "classify", "memory")
#: Detection (MTCNN and Haar, recall and speed): benchmarks/detection.py.

#: The ArcFace 112 x 112 template's eye centres (insightface's ``arcface_dst``), x right, y down.
TEMPLATE_EYES = ARCFACE_TEMPLATE[:2].astype(np.float32)
#: OpenCV's eye cascades, tried in turn (the second also finds eyes behind glasses).
EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")


# ------------------------------------------------------------------------------ helpers


def astronaut() -> np.ndarray:
    """scikit-image's public-domain photo of a face (512 x 512 RGB, in its wheel)."""
    from skimage import data

    return data.astronaut()


def real_photos() -> dict[str, np.ndarray]:
    """The photos of real faces that ship in installed wheels."""
    photos = {"astronaut": astronaut()}
    try:
        import matplotlib
        from PIL import Image

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        photos["grace_hopper"] = np.asarray(Image.open(path).convert("RGB"))
    except (ImportError, OSError):
        pass
    return photos


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Return the median wall time of ``call`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------------------- margin


def eye_centres(image: np.ndarray, box: Box) -> np.ndarray | None:
    """Return the two eye centres (left, right in the image) in the box's upper part, or None."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    roi = gray[box.y : box.y + box.h * 6 // 10, box.x : box.x + box.w]
    for name in EYE_CASCADES:
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
        found = cascade.detectMultiScale(roi, 1.05, 3, minSize=(box.w // 8, box.w // 8))
        eyes = sorted(np.reshape(found, (-1, 4)).tolist(), key=lambda e: -e[2])[:2]
        if len(eyes) == 2:
            break
    else:
        return None
    centres = sorted((box.x + x + w / 2, box.y + y + h / 2) for x, y, w, h in eyes)
    return np.array(centres, dtype=np.float32)


def frame_per_box(image: np.ndarray, detector: HaarDetector) -> dict[str, float] | None:
    """Measure an aligned crop's side in Haar box sides, two ways, on one photo's largest face."""
    boxes = [face.box for face in detector(image)]
    if not boxes:
        return None
    box = max(boxes, key=lambda b: b.w)
    eyes = eye_centres(image, box)
    if eyes is None:
        return None
    matrix, _ = cv2.estimateAffinePartial2D(eyes, TEMPLATE_EYES)
    scale = math.hypot(matrix[0, 0], matrix[0, 1])
    aligned = cv2.warpAffine(image, matrix, (TEMPLATE_SIDE, TEMPLATE_SIDE))
    upscaled = cv2.resize(aligned, (4 * TEMPLATE_SIDE,) * 2, interpolation=cv2.INTER_CUBIC)
    again = [face.box for face in detector(upscaled)]
    return {
        "box_px": box.w,
        "eye_distance_over_box": float(np.linalg.norm(eyes[1] - eyes[0]) / box.w),
        "mapped_box": TEMPLATE_SIDE / (box.w * scale),
        "haar_on_aligned": 4 * TEMPLATE_SIDE / max(b.w for b in again) if again else math.nan,
    }


def bench_margin(args: argparse.Namespace) -> None:
    """Measure the margin that makes a crop frame a face as an aligned training crop does."""
    detector = HaarDetector()
    ratios = []
    for name, image in real_photos().items():
        measured = frame_per_box(image, detector)
        if measured is None:
            emit({"bench": "margin", "photo": name, "error": "no face or no eyes found"})
            continue
        for method in ("mapped_box", "haar_on_aligned"):
            if not math.isnan(measured[method]):
                ratios.append(measured[method])
        margins = {f"margin_{m}": (measured[m] - 1) / 2 for m in ("mapped_box", "haar_on_aligned")}
        emit({"bench": "margin", "photo": name, **measured, **margins})
    emit({"bench": "margin", "photo": "synthetic_affwild2", **synthetic_box_share(detector)})
    if ratios:
        ratio = statistics.median(ratios)
        emit({"bench": "margin", "summary": "median over real photos and methods",
              "crop_over_box": ratio, "margin": (ratio - 1) / 2,
              "measurements": len(ratios)})  # fmt: skip


def synthetic_box_share(detector: HaarDetector, count: int = 40) -> dict[str, float]:
    """Run the cascade on synthetic Aff-Wild2-style frames (448 px); return the box's share."""
    from fer_multires.data.synthetic.faces import render_face

    shares = []
    for seed in range(count):
        frame = np.asarray(render_face(seed, seed % len(CLASSES), image_size=448))
        boxes = [face.box for face in detector(frame)]
        if boxes:
            shares.append(max(b.w for b in boxes) / 448)
    if not shares:
        return {"found": 0, "frames": count}
    ratio = 1 / statistics.median(shares)
    return {"found": len(shares), "frames": count, "crop_over_box": ratio,
            "margin": (ratio - 1) / 2}  # fmt: skip


# ----------------------------------------------------------------------------- classify


def random_model(backbone: str) -> torch.nn.Module:
    """Return a random-init fer_multires network, in eval mode."""
    torch.manual_seed(0)
    return FERModule(backbone, len(CLASSES), CLASSES).model.eval()


def export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    """Export as ``python -m fer_multires.export`` does: one file, dynamic batch."""
    example = torch.randn(2, 3, size, size)
    torch.onnx.export(
        model, (example,), str(path), dynamo=True, external_data=False,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: "batch"},), verbose=False,
    )  # fmt: skip


def ort_sessions(path: Path, device: str, threads: int) -> dict[str, object]:
    """Return ONNX Runtime sessions: as ``predict`` opens one, and with tuned options."""
    import onnxruntime as ort

    from fer_multires.inference.classifier import onnx_providers

    providers = onnx_providers(device)
    sessions = {"ort_predict": ort.InferenceSession(str(path), providers=providers)}
    if device == "cpu":
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        sessions["ort_tuned"] = ort.InferenceSession(str(path), options, providers=providers)
    return sessions


def eager_call(model: torch.nn.Module, batch: torch.Tensor, device: str) -> Callable[[], object]:
    """Return a call of the model on ``batch`` that waits for the device."""

    def call() -> object:
        with torch.inference_mode():
            out = model(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return call


def interleaved_medians(calls: dict[str, Callable[[], object]], repeats: int,
                        warmup: int = 2) -> dict[str, float]:  # fmt: skip
    """Return each call's median wall time, the calls taking turns (fair on a busy machine)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_classify(args: argparse.Namespace) -> None:
    """Faces per second, eager against ONNX Runtime, per backbone and batch size."""
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            model = random_model(backbone)
            path = Path(tmp) / f"{backbone}.onnx"
            export_onnx(model, args.size, path)
            model = model.to(args.device)
            sessions = ort_sessions(path, args.device, torch.get_num_threads())
            for batch_size in args.batches:
                batch = torch.randn(batch_size, 3, args.size, args.size)
                feed = {INPUT_NAME: batch.numpy()}
                calls = {"eager": eager_call(model, batch.to(args.device), args.device)}
                for name, session in sessions.items():
                    calls[name] = lambda s=session, f=feed: s.run([OUTPUT_NAME], f)
                seconds = interleaved_medians(calls, args.repeats)
                record = {"bench": "classify", "backbone": backbone, "size": args.size,
                          "batch": batch_size, "device": args.device}  # fmt: skip
                for name, value in seconds.items():
                    record[f"{name}_faces_per_s"] = batch_size / value
                    if name != "eager":
                        record[f"{name}_over_eager"] = seconds["eager"] / value
                emit({**record, "repeats": args.repeats})


# ------------------------------------------------------------------------------- memory


def write_video(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (640, 480)):
    """Write a ``size`` mp4 of the astronaut photo (scaled to 400 px) moving around the frame."""
    width, height = size
    side = 400
    photo = cv2.cvtColor(cv2.resize(astronaut(), (side, side)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    frames = round(seconds * fps)
    for i in range(frames):
        phase = 2 * math.pi * i / (fps * 8)
        left = int((width - side) / 2 * (1 + math.sin(phase)))
        top = int((height - side) / 2 * (1 + math.sin(2 * phase)))
        frame = np.full((height, width, 3), 90, dtype=np.uint8)
        frame[top : top + side, left : left + side] = photo
        writer.write(frame)
    writer.release()
    return frames


def peak_rss_of_predict(ckpt: Path, video: Path, out: Path, device: str,
                        every_n_frames: int = 1) -> dict[str, float]:  # fmt: skip
    """Run ``python -m fer_multires.predict`` on a video; return its peak RSS and wall time."""
    command = [sys.executable, "-m", "fer_multires.predict", f"ckpt_path={ckpt}",
               f"input={video}", f"run_dir={out}", f"predict.device={device}",
               f"predict.every_n_frames={every_n_frames}"]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": seconds}


def bench_memory(args: argparse.Namespace) -> None:
    """Peak RSS of predict on a long generated video against a short one."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_random_run(Path(tmp) / "run", args.memory_backbone,
                                args.size + args.size // 7, args.size)  # fmt: skip
        for seconds in (args.short_seconds, args.long_seconds):
            video = Path(tmp) / f"video_{seconds:g}s.mp4"
            frames = write_video(video, seconds)
            frame_mb = 640 * 480 * 3 / 2**20
            out = Path(tmp) / f"out_{seconds:g}"
            measured = peak_rss_of_predict(ckpt, video, out, args.device, args.every_n_frames)
            emit({"bench": "memory", "video_s": seconds, "frames": frames, "frame": "640x480",
                  "every_n_frames": args.every_n_frames,
                  "backbone": args.memory_backbone, "size": args.size, "batch": 32,
                  "one_batch_of_frames_mb": 32 * frame_mb,
                  "whole_video_decoded_mb": frames * frame_mb, **measured})  # fmt: skip


# --------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backbones", nargs="+", default=["seresnet18", "seresnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--size", type=int, default=224, help="the evaluation's crop size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of torch and of the tuned ORT session "
                             "(default: torch's); the predict session keeps ORT's")  # fmt: skip
    parser.add_argument("--memory-backbone", default="seresnet18")
    parser.add_argument("--short-seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=120.0)
    parser.add_argument("--every-n-frames", type=int, default=1,
                        help="memory: predict.every_n_frames (all frames decoded)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    benches = {"margin": bench_margin, "classify": bench_classify, "memory": bench_memory}
    for section in args.only:
        benches[section](args)


if __name__ == "__main__":
    main()
