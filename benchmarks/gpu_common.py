"""Helpers of the GPU benchmarks: the run's environment, the synthetic set, timing, smoke sizes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from common import emit

from fer_multires.data.datamodule import FERDataModule
from fer_multires.data.synthetic import SyntheticSpec, ensure_synthetic_affwild2
from fer_multires.data.transforms import MultiResolution

CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
PAPER_MULTIRES = MultiResolution(p=1.0, min_res=8, max_res=128, sampling="pow2")
#: The benchmark's synthetic Aff-Wild2 set (112 px JPEGs) and the smoke mode's tiny one.
FULL_SPEC = SyntheticSpec(num_train_videos=80, num_val_videos=30, frames_per_video=100)
SMOKE_SPEC = SyntheticSpec(num_train_videos=4, num_val_videos=2, frames_per_video=40)


def on_gpu() -> bool:
    return torch.cuda.is_available()


def device() -> str:
    return "cuda" if on_gpu() else "cpu"


def synchronize() -> None:
    """Wait for the device (the only syncs a benchmark adds, at the edges of what it times)."""
    if on_gpu():
        torch.cuda.synchronize()


def now() -> float:
    """A timestamp after everything queued on the device has run."""
    synchronize()
    return time.perf_counter()


def environment() -> dict[str, Any]:
    """The GPU, torch and CUDA versions every printed line names."""
    return {
        "gpu": torch.cuda.get_device_name(0) if on_gpu() else None,
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_gpu() else None,
    }


def report(record: dict[str, Any]) -> None:
    """Print one JSON line with the environment and the machine."""
    emit({**record, **environment()})


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, sizes, compile and smoke options shared by the GPU benchmarks."""
    parser.add_argument("--backbone", default="seresnet50")
    parser.add_argument("--size", type=int, default=224, help="crop size (resize: size * 8/7)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--data", type=Path, default=Path("/tmp/fer_synth_gpu_check"))
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes on the CPU (seresnet18, 32 px, aot_eager): checks every code path",
    )


def apply_smoke(args: argparse.Namespace, **extra: Any) -> argparse.Namespace:
    """Shrink ``args`` to the smoke sizes (and ``extra``) when ``--smoke`` is given."""
    if args.smoke:
        sizes = dict(
            backbone="seresnet18", size=32, batch=8, workers=0, compile_backend="aot_eager"
        )
        for key, value in {**sizes, **extra}.items():
            setattr(args, key, value)
        args.data = args.data.with_name(args.data.name + "_smoke")
    return args


def precision() -> str:
    return "bf16-mixed" if on_gpu() else "32-true"


def synthetic_datamodule(args: argparse.Namespace, **options: Any) -> FERDataModule:
    """The fast path's data module on the synthetic set (generated under ``args.data`` once)."""
    ensure_synthetic_affwild2(args.data, SMOKE_SPEC if args.smoke else FULL_SPEC)
    dm = FERDataModule(
        root=str(args.data), batch_size=args.batch, num_workers=args.workers,
        pin_memory=on_gpu(), resize_size=args.size + args.size // 7, crop_size=args.size,
        multires=PAPER_MULTIRES, augment_on="device", **options,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    return dm


def setup_backends() -> None:
    """Turn on cuDNN autotuning and TF32 matmuls, as a GPU training run would use them."""
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
