"""Training-step throughput on a GPU: the model alone, and fed by the fast input path.

    python benchmarks/gpu_train_step.py [--backbone seresnet50] [--batch 128] [--workers 12]

1. ``model_only``: a plain PyTorch loop on one in-memory batch (bf16 autocast, channels_last,
   Adam): the ceiling set by the model.
2. ``lightning_fast_path``: Lightning (``precision=bf16-mixed``, ``channels_last``) fed by the
   data module reading real JPEG files (the synthetic Aff-Wild2 set, 112x112), workers only
   decoding, augmentation (multi-resolution 8..128, resize 256, crop 224, grayscale) batched on
   the GPU.
3. ``lightning_cpu_path`` (``--with-cpu-path``): the same with the per-image PIL reference
   augmentation in the workers, for comparison.

Prints one JSON line per measurement, naming the GPU. Runs on the CPU too (slowly), for checks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import emit
from pytorch_lightning.callbacks import Callback
from torch.nn import functional as F

from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.data.synthetic import SyntheticSpec, ensure_synthetic_affwild2
from fer_multires.data.transforms import MultiResolution
from fer_multires.models.module import FERModule

CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
PAPER_MULTIRES = MultiResolution(p=1.0, min_res=8, max_res=128, sampling="pow2")


class Throughput(Callback):
    """Images per second over the steps after the warm-up."""

    def __init__(self, warmup: int, batch: int) -> None:
        self.warmup, self.batch = warmup, batch
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.steps += 1

    def on_train_end(self, trainer, pl_module) -> None:
        synchronize()
        self.end = time.perf_counter()

    def img_per_s(self) -> float:
        return self.steps * self.batch / (self.end - self.start)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_only(args: argparse.Namespace) -> float:
    module = FERModule(args.backbone, 7, CLASSES, channels_last=True).to(device())
    optimizer = module.configure_optimizers()["optimizer"]
    images = torch.randn(args.batch, 3, args.size, args.size, device=device())
    labels = torch.randint(0, 7, (args.batch,), device=device())
    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            synchronize()
            start = time.perf_counter()
        with torch.autocast(device(), dtype=torch.bfloat16):
            loss = F.cross_entropy(module(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize()
    return args.steps * args.batch / (time.perf_counter() - start)


def lightning_run(args: argparse.Namespace, augment_on: str) -> float:
    dm = AffWild2DataModule(
        root=str(args.data), batch_size=args.batch, num_workers=args.workers,
        pin_memory=torch.cuda.is_available(), resize_size=args.size + args.size // 7,
        crop_size=args.size, multires=PAPER_MULTIRES, augment_on=augment_on,
    )  # fmt: skip
    module = FERModule(args.backbone, 7, CLASSES, channels_last=True)
    timer = Throughput(args.warmup, args.batch)
    trainer = pl.Trainer(
        accelerator="auto", devices=1, precision="bf16-mixed" if device() == "cuda" else "32",
        max_steps=args.warmup + args.steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return timer.img_per_s()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="seresnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--data", type=Path, default=Path("/tmp/fer_synthetic"))
    parser.add_argument("--with-cpu-path", action="store_true")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    setup = {"backbone": args.backbone, "size": args.size, "batch": args.batch,
             "precision": "bf16-mixed", "channels_last": True}  # fmt: skip
    emit({"benchmark": "train_step", "feed": "model_only", "img_per_s": model_only(args), **setup})
    ensure_synthetic_affwild2(args.data, SyntheticSpec(num_train_videos=60, frames_per_video=100))
    for augment_on in ("device", "cpu") if args.with_cpu_path else ("device",):
        rate = lightning_run(args, augment_on)
        emit({"benchmark": "train_step", "feed": f"lightning_{augment_on}_path",
              "workers": args.workers, "img_per_s": rate, **setup})  # fmt: skip


if __name__ == "__main__":
    main()
