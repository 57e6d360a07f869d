"""Evaluation throughput: images per second over every default resolution, eager and compiled.

    python benchmarks/eval_throughput.py [--compile both] [--repeats 2]
    python benchmarks/eval_throughput.py --smoke          # tiny, on the CPU

Runs the evaluation's Lightning module (:class:`~fer_multires.evaluation.module.EvalModule`) with
``trainer.test`` on the synthetic set's validation split: each uint8 batch is degraded on the
device to the native size and every resolution of ``eval.resolutions`` (``EvalConfig``), classified,
``bf16-mixed`` on a GPU. The first run includes cuDNN autotuning (and compilation); the figure
is the best of the later runs. Prints JSON lines naming the GPU, torch and CUDA.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
from gpu_common import (
    CLASSES,
    add_common_arguments,
    apply_smoke,
    precision,
    report,
    setup_backends,
    synthetic_datamodule,
)
from omegaconf import OmegaConf

from fer_multires.evaluation.module import EvalModule
from fer_multires.models.module import FERModule
from fer_multires.utils.config import CONFIG_DIR


def default_resolutions() -> list[int]:
    """``eval.resolutions`` of the default evaluation config."""
    return list(OmegaConf.load(Path(CONFIG_DIR) / "eval" / "default.yaml").resolutions)


def timed_test(module: EvalModule, dm, out: Path) -> float:
    trainer = pl.Trainer(
        accelerator="auto", devices=1, precision=precision(), logger=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        default_root_dir=out,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.test(module, datamodule=dm, verbose=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--compile", default="both", choices=["eager", "compiled", "both"])
    parser.add_argument("--repeats", type=int, default=2, help="runs after the first")
    args = apply_smoke(parser.parse_args(), repeats=1)
    setup_backends()
    resolutions = default_resolutions()
    dm = synthetic_datamodule(args, eval_batch_size=2 * args.batch)
    frames = len(dm.splits["val_full"])
    for compiled in {"eager": [False], "compiled": [True], "both": [False, True]}[args.compile]:
        model = FERModule(
            args.backbone, len(CLASSES), CLASSES, channels_last=True, compile=compiled,
            compile_mode=args.compile_mode, compile_backend=args.compile_backend,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            module = EvalModule(model, dm.batch_transform, resolutions, tmp)
            first = timed_test(module, dm, Path(tmp))
            best = min(timed_test(module, dm, Path(tmp)) for _ in range(args.repeats))
        points = len(module.points)
        report({"benchmark": "evaluation", "compiled": compiled, "frames": frames,
                "points": points, "resolutions": resolutions,
                "img_per_s": frames * points / best, "frames_per_s": frames / best,
                "first_run_s": first, "steady_run_s": best, "backbone": args.backbone,
                "size": args.size, "eval_batch": 2 * args.batch, "precision": precision(),
                "compile_mode": args.compile_mode, "compile_backend": args.compile_backend,
                "smoke": args.smoke})  # fmt: skip


if __name__ == "__main__":
    main()
