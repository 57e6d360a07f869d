"""Face detection, MTCNN against Haar side by side: recall by face size and time per frame.

    python benchmarks/detection.py [--only recall speed] [--sizes 10 12 14 ...] [--composites 12]

Sections (each prints JSON lines naming the machine):

* ``recall``: real faces (scikit-image's astronaut, matplotlib's Grace Hopper) composited at
  known sizes, mirrored and turned by up to 15 degrees, on real backgrounds (scikit-image's
  coffee, rocket, immunohistochemistry) at 640 x 480
  (:mod:`fer_multires.data.synthetic.real_faces`). Per size, the share of faces each detector
  finds (a box whose centre lies in the true box, its shorter side within a factor of 2 of the
  face's), and its detections that are no face. A face's size is its box's width, as
  ``predict``'s ``face_px`` measures it. Both detectors see the same composites, with the
  ``detector`` group's defaults.
* ``speed``: milliseconds per frame of each detector on composites of six faces (16 to 64 px)
  at 640 x 480 and 1280 x 720, the two interleaved, median of ``--repeats``.
* ``backend``: the P-Net, which takes most of MTCNN's time, on the first pyramid level of a
  1280 x 720 and a 640 x 480 frame: the shipped ONNX file with ONNX Runtime (what ``predict``
  runs) against the same weights converted to a torch module (eager, inference mode, torch's
  threads), the two interleaved, median of ``--repeats``; their outputs must agree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import emit

from fer_multires.data.synthetic.real_faces import composite, match
from fer_multires.inference import mtcnn
from fer_multires.inference.detect import Detector, HaarDetector, MtcnnDetector

SECTIONS = ("recall", "speed", "backend")
#: Six faces of mixed sizes, for the speed section.
SPEED_SIZES = [16, 20, 28, 36, 48, 64]


def faces_per_composite(size: int) -> int:
    """Return how many faces of one size a 640 x 480 composite holds comfortably."""
    return 4 if size <= 40 else 2 if size <= 80 else 1


def bench_recall(args: argparse.Namespace, detectors: dict[str, Detector]) -> None:
    """Recall and false detections by face size, both detectors on the same composites."""
    for size in args.sizes:
        found = dict.fromkeys(detectors, 0)
        false = dict.fromkeys(detectors, 0)
        total = 0
        for seed in range(args.composites):
            frame, faces = composite([size] * faces_per_composite(size), 640, 480, seed=seed)
            total += len(faces)
            for name, detector in detectors.items():
                hits, wrong = match(faces, [f.box.corners for f in detector(frame)])
                found[name] += sum(hits)
                false[name] += wrong
        emit({"bench": "recall", "face_px": size, "faces": total, "frame": "640x480",
              **{f"{name}_recall": found[name] / total for name in detectors},
              **{f"{name}_false": false[name] for name in detectors}})  # fmt: skip


def bench_speed(args: argparse.Namespace, detectors: dict[str, Detector]) -> None:
    """Milliseconds per frame at 640 x 480 and 1280 x 720, the detectors interleaved."""
    for width, height in ((640, 480), (1280, 720)):
        frames = [composite(SPEED_SIZES, width, height, seed=seed)[0] for seed in range(3)]
        times: dict[str, list[float]] = {name: [] for name in detectors}
        for detector in detectors.values():
            detector(frames[0])  # warm-up
        for _ in range(args.repeats):
            for name, detector in detectors.items():
                start = time.perf_counter()
                for frame in frames:
                    detector(frame)
                times[name].append((time.perf_counter() - start) / len(frames))
        found = {n: sum(len(d(f)) for f in frames) / len(frames) for n, d in detectors.items()}
        emit({"bench": "speed", "frame": f"{width}x{height}", "true_faces": len(SPEED_SIZES),
              **{f"{n}_ms": 1000 * statistics.median(t) for n, t in times.items()},
              **{f"{n}_faces_found": found[n] for n in detectors},
              "repeats": args.repeats})  # fmt: skip


def torch_pnet() -> torch.nn.Module:
    """Return the shipped P-Net's weights in a torch module (NCHW in, both outputs NCHW)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(mtcnn.network_path("pnet.onnx")))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in model.graph.initializer}  # fmt: skip

    def conv(name: str) -> torch.nn.Conv2d:
        kernel, bias = weights[f"{name}/kernel:0"], weights[f"{name}/bias:0"]
        layer = torch.nn.Conv2d(kernel.shape[1], kernel.shape[0], kernel.shape[2])
        layer.weight.data, layer.bias.data = kernel, bias
        return layer

    def prelu(name: str) -> torch.nn.PReLU:
        slope = weights[name].flatten()
        layer = torch.nn.PReLU(len(slope))
        layer.weight.data = slope
        return layer

    class PNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                conv("conv2d"), prelu("p_re_lu_initializer_8"),
                torch.nn.MaxPool2d(2, 2, ceil_mode=True),  # ONNX: SAME_UPPER
                conv("conv2d_1"), prelu("p_re_lu_1_initializer_6"),
                conv("conv2d_2"), prelu("p_re_lu_2_initializer_3"),
            )  # fmt: skip
            self.boxes, self.faces = conv("conv2d_4"), conv("conv2d_3")

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(x)
            return self.boxes(features), torch.softmax(self.faces(features), dim=1)

    return PNet().eval()


def bench_backend(args: argparse.Namespace, detectors: dict[str, Detector]) -> None:
    """The P-Net on a frame's first pyramid level: ONNX Runtime against torch."""
    network = detectors["mtcnn"].mtcnn.pnet  # type: ignore[attr-defined]
    module = torch_pnet()
    for width, height in ((640, 480), (1280, 720)):
        frame = composite(SPEED_SIZES, width, height, seed=0)[0]
        level = mtcnn.transposed(mtcnn.normalised(frame)[None])  # scale 1: min_face_size 12
        nchw = torch.from_numpy(level).permute(0, 3, 1, 2).contiguous()

        def run_torch(nchw: torch.Tensor = nchw) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.inference_mode():
                return module(nchw)

        calls = {"onnxruntime": lambda level=level: network(level), "torch": run_torch}
        times: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            call()
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        ours = network(level)["softmax"]
        theirs = run_torch()[1].permute(0, 2, 3, 1).numpy()
        emit({"bench": "backend", "network": "pnet", "level": f"{width}x{height}",
              **{f"{n}_ms": 1000 * statistics.median(t) for n, t in times.items()},
              "max_abs_difference": float(abs(ours - theirs).max()),
              "torch_threads": torch.get_num_threads(), "repeats": args.repeats})  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", nargs="+", type=int,
                        default=[10, 12, 14, 16, 20, 24, 30, 40, 60, 80, 120])  # fmt: skip
    parser.add_argument("--composites", type=int, default=12, help="composites per face size")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections."""
    args = parse_args(argv)
    detectors: dict[str, Detector] = {"mtcnn": MtcnnDetector(), "haar": HaarDetector()}
    benches = {"recall": bench_recall, "speed": bench_speed, "backend": bench_backend}
    for section in args.only:
        benches[section](args, detectors)


if __name__ == "__main__":
    main()
