"""Where the Lightning step waits on the device: every host sync of training and validation.

    python benchmarks/step_profile.py [--backbone seresnet18] [--size 32] [--batch 8]

Runs FERModule through a real ``Trainer.fit`` (CSV logger, progress bar, the project's checkpoint
callbacks, two validation loaders) on the CPU twice:

1. under a dispatch mode that records every operator that blocks the host on a GPU:
   ``aten::_local_scalar_dense`` (``.item()``, ``bool(tensor)``, ``float(tensor)``),
   ``aten::nonzero`` (boolean-mask indexing), ``aten::bincount`` (its CUDA kernel reads the
   input's maximum back) and ``aten::_unique2``, with the source line that caused it (the
   innermost frame of fer_multires, Lightning or torchmetrics) and its count per training or
   validation step. These operators go through the same Python lines on any device, so a CPU
   run finds them all. ``torch.optim`` reading its step counters is listed apart: those live on
   the host on a GPU too (no sync);
2. under Lightning's ``SimpleProfiler``: the wall time of each hook, so the epoch boundary
   (validation, checkpoint saving, metric computation) shows next to the steps.

Prints JSON lines.
"""

from __future__ import annotations

import argparse
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from common import emit
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.profilers import SimpleProfiler
from torch.utils._python_dispatch import TorchDispatchMode
from train_overhead import CLASSES, InMemoryBatches

from fer_multires.callbacks import LastCheckpoint
from fer_multires.models.module import FERModule

_aten = torch.ops.aten
#: Operators that wait for the device to finish (a host sync) when run on a GPU.
SYNC_OPS = {
    _aten._local_scalar_dense.default: "item/bool",
    _aten.nonzero.default: "nonzero",
    _aten.bincount.default: "bincount",
    _aten._unique2.default: "unique",
}
#: (phase, a file or function name on the stack that marks it); the innermost frame decides.
PHASES = (
    ("optimizer_host_counters", "torch/optim/"),
    ("validation_step", "validation_step"),
    ("training_step", "training_step"),
    ("val_epoch_end", "on_validation_epoch_end"),
    ("train_epoch_end", "on_train_epoch_end"),
    ("val_loop", "evaluation_loop.py"),
    ("train_loop", "training_epoch_loop.py"),
)
#: Source trees whose lines are reported (the innermost such frame of each sync).
OWNERS = ("fer_multires/", "pytorch_lightning/", "lightning_fabric/", "torchmetrics/")


class SyncCounter(TorchDispatchMode):
    """Counts the host-syncing operators by (operator, phase, source line)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        if func in SYNC_OPS:
            stack = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()]
            self.counts[(SYNC_OPS[func], phase(stack), where(stack))] += 1
        return func(*args, **(kwargs or {}))


def where(stack: list[str]) -> str:
    """Return the innermost frame of the stack that belongs to one of :data:`OWNERS`."""
    frames = [f for f in reversed(stack) if any(owner in f for owner in OWNERS)]
    # A helper (to_item, apply_to_collection) says little; name its caller too.
    shown = [f.split("site-packages/")[-1].split("/work/main/")[-1] for f in frames[:3]]
    return " < ".join(shown) if shown else "?"


def phase(stack: list[str]) -> str:
    """Tell a training step from a validation step, an epoch end or the loop around them."""
    for frame in reversed(stack):
        for name, marker in PHASES:
            if marker in frame:
                return name
    return "other"


def fit(args: argparse.Namespace, out: Path, profiler: SimpleProfiler | None = None) -> None:
    """Train ``args.epochs`` epochs with validation, as a configured run does."""
    torch.manual_seed(0)
    module = FERModule(args.backbone, len(CLASSES), CLASSES)
    train = InMemoryBatches(args.batch * args.steps, args.size)
    val = InMemoryBatches(args.batch * args.val_batches, args.size, seed=1)
    loader = torch.utils.data.DataLoader
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=args.epochs, default_root_dir=out,
        logger=CSVLogger(out), log_every_n_steps=args.log_every, num_sanity_val_steps=0,
        enable_model_summary=False, profiler=profiler,
        callbacks=[
            ModelCheckpoint(out / "ckpt", monitor="val_select/score", mode="max"),
            LastCheckpoint(out / "ckpt", filename="last", every_n_minutes=10),
        ],
    )  # fmt: skip
    trainer.fit(
        module,
        train_dataloaders=loader(train, batch_size=args.batch, drop_last=True),
        val_dataloaders=[loader(val, batch_size=args.batch)] * 2,
    )


def report_syncs(args: argparse.Namespace, counts: Counter) -> None:
    """Print one line per sync site and a total per step and per epoch."""
    train_steps, val_steps = args.steps * args.epochs, 2 * args.val_batches * args.epochs
    steps = {"training_step": train_steps, "train_loop": train_steps,
             "validation_step": val_steps, "val_loop": val_steps}  # fmt: skip
    total: Counter = Counter()
    for (op, name, line), count in sorted(counts.items(), key=lambda kv: -kv[1]):
        total[name] += count
        per_step = count / steps[name] if name in steps else None
        emit({"benchmark": "host_syncs", "op": op, "phase": name, "where": line,
              "count": count, "per_step": per_step})  # fmt: skip
    per_step = {f"{name}_per_step": total[name] / n for name, n in steps.items()}
    per_epoch = {k: v / args.epochs for k, v in total.items() if k not in steps}
    emit({"benchmark": "host_syncs_total", "train_steps": train_steps, "val_steps": val_steps,
          **per_step, "per_epoch": per_epoch, "log_every_n_steps": args.log_every,
          "epochs": args.epochs})  # fmt: skip


def report_hooks(profiler: SimpleProfiler, top: int) -> None:
    """Print the hooks that took the most wall time in total."""
    rows = sorted(profiler.recorded_durations.items(), key=lambda kv: -sum(kv[1]))
    for action, durations in rows[:top]:
        total = sum(durations)
        emit({"benchmark": "hook_time", "action": action, "calls": len(durations),
              "total_s": total, "mean_ms": 1e3 * total / len(durations)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="seresnet18")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="training steps per epoch")
    parser.add_argument("--val-batches", type=int, default=3, help="per validation loader")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--top", type=int, default=15, help="hooks listed by wall time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counter = SyncCounter()
        with counter:
            fit(args, Path(tmp) / "syncs")
        report_syncs(args, counter.counts)
        profiler = SimpleProfiler()
        fit(args, Path(tmp) / "hooks", profiler)
        report_hooks(profiler, args.top)


if __name__ == "__main__":
    main()
