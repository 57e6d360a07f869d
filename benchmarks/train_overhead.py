"""Lightning's training step against a plain PyTorch loop: same model, data, batch size.

    python benchmarks/train_overhead.py [--backbone seresnet18] [--size 64] [--batch 32]

Both train FERModule's network with the same Adam parameter groups and class-weighted loss on
the same in-memory batches (so neither data loading nor augmentation is measured), and time
``--steps`` steps after ``--warmup`` steps. Prints one JSON line per loop and one with the ratio
(target: Lightning within 10% of the plain loop).
"""

from __future__ import annotations

import argparse
import time

import pytorch_lightning as pl
import torch
from common import emit
from pytorch_lightning.callbacks import Callback
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from fer_multires.models.module import FERModule

CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]


class InMemoryBatches(Dataset):
    """A fixed set of normalised images and labels, as the data module would deliver them."""

    def __init__(self, count: int, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(count, 3, size, size, generator=generator)
        self.labels = torch.randint(0, len(CLASSES), (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i, "valid": True}


class StepTimer(Callback):
    """Wall time from the end of the warm-up steps to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()


def build_module(args: argparse.Namespace) -> FERModule:
    torch.manual_seed(0)
    return FERModule(args.backbone, len(CLASSES), CLASSES, class_weights=[0.4] + [0.9] * 6)


def run_lightning(args: argparse.Namespace, data: Dataset) -> float:
    module = build_module(args)
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=args.warmup + args.steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[timer], limit_val_batches=0, num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True)
    trainer.fit(module, train_dataloaders=loader)
    return args.steps * args.batch / (timer.end - timer.start)


def run_plain(args: argparse.Namespace, data: Dataset) -> float:
    module = build_module(args)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]
    loader = DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True)
    step, start = 0, 0.0
    while step < args.warmup + args.steps:
        for batch in loader:
            if step == args.warmup:
                start = time.perf_counter()
            if step == args.warmup + args.steps:
                break
            loss = F.cross_entropy(
                module(batch["image"]), batch["label"], weight=module.loss_weights
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="seresnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = InMemoryBatches(args.batch * 8, args.size)
    plain, lightning = [], []
    for _ in range(args.repeats):  # interleaved, best of N: robust to background load
        plain.append(run_plain(args, data))
        lightning.append(run_lightning(args, data))
    setup = {"backbone": args.backbone, "size": args.size, "batch": args.batch, "steps": args.steps}
    emit({"benchmark": "train_step", "loop": "plain_pytorch", "img_per_s": max(plain), **setup})
    emit({"benchmark": "train_step", "loop": "lightning", "img_per_s": max(lightning), **setup})
    emit({"benchmark": "train_step", "lightning_over_plain": max(lightning) / max(plain), **setup})


if __name__ == "__main__":
    main()
