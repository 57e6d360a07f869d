"""Training-step throughput on a GPU: the bare model, and Lightning fed by the fast input path.

    python benchmarks/gpu_train_step.py [--feeds bare,bare_fast_path,lightning] [--compile both]
    python benchmarks/gpu_train_step.py --smoke          # every path, tiny, on the CPU

Feeds (``--feeds``), each eager and compiled (``--compile eager|compiled|both``):

``bare``
    A plain PyTorch loop on one in-memory batch (bf16 autocast, channels_last, Adam, class
    weighted loss): the ceiling set by the model. Compiled, also the compile time (first step
    minus a steady step) and the compiled/eager ratio.
``bare_fast_path``
    The same loop fed by the data module (JPEG decoding in workers, pinned batches copied with
    ``non_blocking``, augmentation batched on the GPU): the bare model in Lightning's
    configuration.
``lightning``
    ``Trainer.fit`` (``bf16-mixed``) on the same data module, with validation and the project's
    checkpoint callbacks, over ``--epochs`` epochs: steady-state images/s (steps only), the
    epoch boundary (validation, checkpoints, loader restart) in seconds, and images/s over a
    whole epoch including its boundary. Targets: steady state >= 90% of ``bare_fast_path``.

``--devices 2`` runs the ``lightning`` feed with DDP on two GPUs (Lightning starts the second
process by running this script again). Every line printed is JSON naming the GPU, torch and CUDA.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from gpu_common import (
    CLASSES,
    add_common_arguments,
    apply_smoke,
    device,
    now,
    on_gpu,
    precision,
    report,
    setup_backends,
    synthetic_datamodule,
)
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch.nn import functional as F

from fer_multires.callbacks import LastCheckpoint
from fer_multires.models.module import FERModule

#: Lightning steady state over the bare model fed the same way: the issue's target.
LIGHTNING_TARGET = 0.90


class EpochClock(Callback):
    """Device-synchronised timestamps at the edges of each epoch's steps and validation.

    Adds three syncs per epoch (none per step): at the first timed step, when validation
    starts and when the next epoch's first step starts.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.fit_start = 0.0
        self.epochs: list[dict[str, float]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.fit_start = now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.epochs.append({"first_step": now()})
        if batch_idx == self.warmup:
            self.epochs[-1]["timed_from"] = now()

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self.epochs:
            self.epochs[-1]["val_start"] = now()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self.epochs:
            self.epochs[-1]["val_end"] = now()


def build_module(args: argparse.Namespace, compiled: bool) -> FERModule:
    torch.manual_seed(0)
    return FERModule(
        args.backbone, len(CLASSES), CLASSES, class_weights=[0.4] + [0.9] * 6,
        channels_last=True, compile=compiled, compile_mode=args.compile_mode,
        compile_backend=args.compile_backend,
    )  # fmt: skip


def train_step(module: FERModule, optimizer, images, labels) -> None:
    """One step as Lightning runs it: autocast forward, weighted loss, backward, Adam."""
    with torch.autocast(device(), dtype=torch.bfloat16, enabled=on_gpu()):
        loss = F.cross_entropy(module(images), labels, weight=module.loss_weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def prepared_module(args: argparse.Namespace, compiled: bool) -> tuple[FERModule, Any]:
    module = build_module(args, compiled).to(device())
    if compiled:
        module.compile_backbone()
    return module, module.configure_optimizers()["optimizer"]


def bare(args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    """The model alone on one in-memory batch; the first step's extra time is compile time."""
    module, optimizer = prepared_module(args, compiled)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device())
    labels = torch.randint(0, len(CLASSES), (args.batch,), device=device())
    start = now()
    train_step(module, optimizer, images, labels)
    first = now() - start
    for _ in range(args.warmup - 1):
        train_step(module, optimizer, images, labels)
    start = now()
    for _ in range(args.steps):
        train_step(module, optimizer, images, labels)
    seconds = now() - start
    return {"img_per_s": args.steps * args.batch / seconds,
            "first_step_s": first, "compile_s": first - seconds / args.steps}  # fmt: skip


def device_batches(args: argparse.Namespace, dm):
    """The fast path's training batches on the device, augmented, epoch after epoch."""
    epoch = 0
    while True:
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            batch = {k: v.to(device(), non_blocking=True) if torch.is_tensor(v) else v
                     for k, v in batch.items()}  # fmt: skip
            yield dm.batch_transform.train(batch["image"], batch), batch["label"]
        epoch += 1


def bare_fast_path(args: argparse.Namespace, dm, compiled: bool) -> dict[str, Any]:
    """The bare loop fed by the data module exactly as Lightning feeds the model."""
    module, optimizer = prepared_module(args, compiled)
    batches = device_batches(args, dm)
    for _ in range(args.warmup):
        train_step(module, optimizer, *next(batches))
    start = now()
    for _ in range(args.steps):
        train_step(module, optimizer, *next(batches))
    return {"img_per_s": args.steps * args.batch / (now() - start)}


def lightning(args: argparse.Namespace, dm, compiled: bool, out: Path) -> dict[str, Any]:
    """``Trainer.fit`` over ``args.epochs`` epochs with validation and checkpoints."""
    module = build_module(args, compiled)
    clock = EpochClock(args.warmup)
    trainer = pl.Trainer(
        accelerator="auto", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
        precision=precision(), max_epochs=args.epochs, logger=False, default_root_dir=out,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        limit_train_batches=args.epoch_steps or 1.0, num_sanity_val_steps=2,
        callbacks=[
            clock, ModelCheckpoint(out, monitor="val_select/score", mode="max"),
            LastCheckpoint(out, filename="last", every_n_minutes=10),
        ],
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    if not trainer.is_global_zero:
        return {}
    return epoch_figures(clock, trainer.num_training_batches, args.batch * args.devices)


def epoch_figures(clock: EpochClock, steps: int, images_per_step: int) -> dict[str, Any]:
    """Steady state, epoch boundary and whole-epoch rates from the clock of a finished fit."""
    epochs = clock.epochs
    last, before = epochs[-1], epochs[-2]
    timed = steps - clock.warmup
    steady = timed * images_per_step / (last["val_start"] - last["timed_from"])
    boundaries = [nxt["first_step"] - e["val_start"] for e, nxt in itertools.pairwise(epochs)]
    validation = [e["val_end"] - e["val_start"] for e in epochs]
    whole = steps * images_per_step / (last["val_start"] - before["val_start"])
    return {"img_per_s": steady, "img_per_s_with_epoch_boundary": whole,
            "epoch_boundary_s": boundaries, "validation_s": validation,
            "first_epoch_start_s": epochs[0]["timed_from"] - clock.fit_start,
            "steps_per_epoch": steps}  # fmt: skip


def run_feed(args: argparse.Namespace, feed: str, compiled: bool, dm, out: Path) -> dict:
    if feed == "bare":
        return bare(args, compiled)
    if feed == "bare_fast_path":
        return bare_fast_path(args, dm, compiled)
    return lightning(args, dm, compiled, out / f"{feed}_{compiled}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--feeds", default="bare,bare_fast_path,lightning")
    parser.add_argument("--compile", default="both", choices=["eager", "compiled", "both"])
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=60, help="timed steps of the bare loops")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-steps", type=int, default=0, help="0: the whole split")
    parser.add_argument("--devices", type=int, default=1)
    args = apply_smoke(parser.parse_args(), warmup=1, steps=2, epochs=2, epoch_steps=4)
    setup_backends()
    modes = {"eager": [False], "compiled": [True], "both": [False, True]}[args.compile]
    setup = {"backbone": args.backbone, "size": args.size, "batch": args.batch,
             "precision": precision(), "channels_last": True, "devices": args.devices,
             "compile_mode": args.compile_mode, "compile_backend": args.compile_backend,
             "smoke": args.smoke}  # fmt: skip
    feeds = args.feeds.split(",")
    dm = synthetic_datamodule(args) if feeds != ["bare"] else None
    rates: dict[tuple[str, bool], float] = {}
    compile_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for feed in feeds:
            for compiled in modes:
                start = time.perf_counter()
                figures = run_feed(args, feed, compiled, dm, Path(tmp))
                if not figures:  # a DDP process other than rank 0
                    continue
                rates[(feed, compiled)] = figures["img_per_s"]
                if feed == "bare" and compiled:
                    compile_s = figures["compile_s"]
                report({"benchmark": "train_step", "feed": feed, "compiled": compiled,
                        **figures, "wall_s": time.perf_counter() - start,
                        "workers": args.workers, **setup})  # fmt: skip
    report_targets(rates, setup)
    report_break_even(rates, compile_s, args.batch, setup)


def report_break_even(rates: dict, compile_s: float, batch: int, setup: dict) -> None:
    """Training steps after which compiling has paid for itself (bare model figures)."""
    if ("bare", True) not in rates or ("bare", False) not in rates:
        return
    saved = batch / rates[("bare", False)] - batch / rates[("bare", True)]
    steps = compile_s / saved if saved > 0 else None
    report({"benchmark": "compile_break_even", "compile_s": compile_s,
            "saved_ms_per_step": 1e3 * saved, "break_even_steps": steps,
            "break_even_images": steps * batch if steps else None,
            "rule": "compile pays off when a run trains more than break_even_steps steps "
            "(the compile is paid once per process; validation adds one eval-mode compile)",
            **setup})  # fmt: skip


def report_targets(rates: dict[tuple[str, bool], float], setup: dict) -> None:
    """Print the ratios the issue sets targets for, next to the targets."""
    for compiled in (False, True):
        bare_rate = rates.get(("bare", compiled))
        fed = rates.get(("bare_fast_path", compiled))
        lit = rates.get(("lightning", compiled))
        if lit and fed:
            ratio = lit / fed
            report({"benchmark": "target", "what": "lightning / bare_fast_path",
                    "compiled": compiled, "ratio": ratio, "target": f">= {LIGHTNING_TARGET}",
                    "met": ratio >= LIGHTNING_TARGET, **setup})  # fmt: skip
        if lit and bare_rate:
            report({"benchmark": "target", "what": "lightning / bare (in-memory batch)",
                    "compiled": compiled, "ratio": lit / bare_rate, "target": "for reference",
                    **setup})  # fmt: skip
    for feed in ("bare", "bare_fast_path", "lightning"):
        if (feed, True) in rates and (feed, False) in rates:
            ratio = rates[(feed, True)] / rates[(feed, False)]
            report({"benchmark": "target", "what": f"{feed} compiled / eager", "ratio": ratio,
                    "target": "> 1", "met": ratio > 1, **setup})  # fmt: skip


if __name__ == "__main__":
    main()
