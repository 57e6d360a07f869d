"""Running an evaluation: a checkpoint on a data module, every resolution, all outputs written.

:func:`evaluate_checkpoint` is the one implementation: ``python -m fer_multires.evaluate`` calls it
through :func:`evaluate`, and training calls it on its best checkpoint at the end of a run
(``eval_after_fit``), on the training's own devices.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning import Trainer

from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.assembly import build_results, load_raw_results
from fer_multires.evaluation.classes import ClassMatch, match_classes
from fer_multires.evaluation.config import EvalSettings, check_settings, resolve_data_config
from fer_multires.evaluation.module import RAW_RESULTS, EvalModule
from fer_multires.evaluation.outputs import format_compact_table, write_outputs
from fer_multires.models.hub import load_trained, trained_class_names, trained_task
from fer_multires.results import EvalResults
from fer_multires.runs import error_file
from fer_multires.tasks import TASK_HEADS
from fer_multires.utils.checkpoint_io import require_writable_dir
from fer_multires.utils.config import instantiate

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    settings: EvalSettings,
    datamodule: FERDataModule,
    trainer: Trainer,
    output_dir: Path,
    run_config: Path | None = None,
) -> EvalResults | None:
    """Evaluate ``settings.ckpt_path`` on ``datamodule`` and write the outputs into ``output_dir``.

    Exact on any number of processes (see :class:`EvalModule`).

    Args:
        settings: the checked evaluation settings.
        datamodule: the data module, after ``setup()``.
        trainer: the trainer to test with (its devices and strategy are used).
        output_dir: where ``metrics.json``, ``report.md`` and the rest are written.
        run_config: the training run's ``config.yaml`` the data config came from, if any.

    Returns:
        The results on global rank 0; None on the other processes.

    Raises:
        ValueError: if the checkpoint's classes and the data's share none, or the data module
            reads another task's annotations than the checkpoint's.
    """
    require_writable_dir(output_dir, "run_dir")  # before the work, not at its end
    model = load_trained(settings.ckpt_path)  # a checkpoint or a Hub folder
    task = model.task
    if datamodule.task != task:
        raise ValueError(
            f"ckpt_path: {settings.ckpt_path} was trained for task={task}, but the data module "
            f"reads task={datamodule.task}'s annotations"
        )
    match = class_match(settings.ckpt_path, datamodule) if "expr" in TASK_HEADS[task] else None
    settings = below_native(settings, datamodule.native_size)
    module = EvalModule(
        model,
        datamodule.batch_transform,
        settings.resolutions,
        output_dir,
        kernels=settings.degradations,
        jpeg_quality=settings.jpeg_quality,
        match=match,
        compile=settings.compile,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    seconds = time.perf_counter() - start
    frames = len(datamodule.splits["val_full"])
    log.info("read and classified %d samples at %d resolutions in %.1f s (%.0f samples/s)",
             frames, len(settings.resolutions) + 1, seconds, frames / seconds)  # fmt: skip
    raw_path = output_dir / RAW_RESULTS
    try:
        raw = load_raw_results(raw_path, datamodule, settings, match, task)
        if excluded := sum(raw.excluded["val_full"].values()):
            log.info("%d of them, of classes the model does not know, are left out of the "
                     "metrics: %s", excluded, dict(raw.excluded["val_full"]))  # fmt: skip
        results = build_results(raw, settings, datamodule, run_config, match)
        write_outputs(output_dir, results, raw, settings.plots)
    finally:
        raw_path.unlink(missing_ok=True)  # the hand-over file, never an output
    error_file(output_dir).unlink(missing_ok=True)  # an earlier failure, now outdated
    return results


def class_match(ckpt_path: Path, datamodule: FERDataModule) -> ClassMatch:
    """Match the checkpoint's classes with the data's by name, and say what is left out.

    Raises:
        ValueError: if they share no class.
    """
    trained = trained_class_names(ckpt_path, "ckpt_path")
    try:
        match = match_classes(trained, datamodule.classes)
    except ValueError as err:
        raise ValueError(f"ckpt_path: {ckpt_path}: {err}") from None
    if not match.is_identity:
        log.info(
            "cross-dataset evaluation on the shared classes %s; samples of %s are left out and "
            "counted; the model's %s are ignored",
            ", ".join(match.shared),
            ", ".join(match.excluded) or "no class",
            ", ".join(match.unused) or "no class",
        )
    return match


def below_native(settings: EvalSettings, native_size: tuple[int, int]) -> EvalSettings:
    """Drop the resolutions that are not below the images' native size (nothing to degrade)."""
    kept = tuple(r for r in settings.resolutions if r < min(native_size))
    if len(kept) < len(settings.resolutions):
        dropped = [r for r in settings.resolutions if r not in kept]
        log.info("resolutions %s are not below the native size %s: not evaluated", dropped,
                 tuple(native_size))  # fmt: skip
    return dataclasses.replace(settings, resolutions=kept)


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Evaluate a checkpoint as the ``eval`` config says (the work of the evaluate entry point).

    Returns:
        The contents of ``metrics.json`` on global rank 0; None on the other processes.

    Raises:
        FileNotFoundError: for a missing checkpoint.
        ValueError: for a bad setting (naming its key), or a checkpoint trained for another
            class list than the data's; all before any image is read.
    """
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    settings = check_settings(cfg)
    data_cfg, run_config = resolve_data_config(cfg, settings.ckpt_path, hydra_cfg.overrides.task)
    task = trained_task(settings.ckpt_path)  # the checkpoint's: the annotations to read
    datamodule: FERDataModule = instantiate(data_cfg, task=task)
    datamodule.prepare_data()
    datamodule.setup("test")
    trainer: Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[]
    )
    results = evaluate_checkpoint(settings, datamodule, trainer, output_dir, run_config)
    if results is None:
        return None
    print(format_compact_table(results))
    print(f"report: {output_dir / 'report.md'}\noutput directory: {output_dir}")
    return results.to_json()
