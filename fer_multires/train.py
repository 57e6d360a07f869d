"""Training entry point: ``python -m fer_multires.train +experiment=NAME [overrides]``.

Each run lives in its own directory (printed at start and end) with the resolved config
(``config.yaml``), ``checkpoints/last.ckpt`` and the best checkpoint on ``val_select/score``, CSV
logs and ``metrics.json`` (the best checkpoint's validation metrics). ``-m`` runs Hydra sweeps;
the entry point returns the optimised metric to the sweeper.

Resume: ``ckpt_path=last run_dir=<the run's directory>`` (or ``ckpt_path=<file>``) continues the
run: weights, optimiser, epoch, step, sampler order and augmentation draws.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.plugins import CheckpointIO

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.callbacks import Preempted
from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.config import EvalSettings, check_eval_node, check_trainer_node
from fer_multires.evaluation.outputs import format_compact_table
from fer_multires.evaluation.runner import evaluate_checkpoint
from fer_multires.models.backbone import detect_weights_format
from fer_multires.models.module import FERModule
from fer_multires.models.pretrained import record_initial_weights
from fer_multires.results import EvalResults, TrainingResults, load_training_results
from fer_multires.run_guard import is_launching_process, resolve_ckpt_path, run_dir_lock
from fer_multires.runs import METRICS_FILE, checkpoints_dir, config_file, error_file, eval_dir
from fer_multires.task_metrics import DEFAULT_AU_THRESHOLD
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, check_task
from fer_multires.utils.checkpoint_io import AtomicCheckpointIO, require_writable_dir
from fer_multires.utils.checkpoints import check_checkpoint_classes, check_checkpoint_fits
from fer_multires.utils.config import CONFIG_DIR, instantiate, rewrite_deprecated_overrides
from fer_multires.utils.io import write_json_atomic, write_text_atomic
from fer_multires.utils.locks import FolderBusyError
from fer_multires.utils.tables import format_split_table

log = logging.getLogger(__name__)


def resolve_class_weights(
    setting: Any, datamodule: FERDataModule, task: str = DEFAULT_TASK
) -> list[float] | None:
    """Turn ``model.class_weights`` (auto, a list, or null) into per-class weights.

    None for a task without an expression head (``va``, ``au``).

    Raises:
        ValueError: for a list of the wrong length or another value.
    """
    if setting is None or "expr" not in TASK_HEADS[task]:
        return None
    if setting == "auto":
        return [float(w) for w in datamodule.class_weights()]
    if OmegaConf.is_list(setting) or isinstance(setting, list | tuple):
        weights = [float(w) for w in setting]
        if len(weights) != datamodule.num_classes:
            raise ValueError(
                f"model.class_weights has {len(weights)} values; the data has "
                f"{datamodule.num_classes} classes ({', '.join(datamodule.classes)})"
            )
        return weights
    raise ValueError(f"model.class_weights={setting!r}: use auto, a list of weights, or null")


def resolve_au_pos_weights(
    setting: Any, datamodule: FERDataModule, task: str
) -> list[float] | None:
    """Return the AU loss's positive weights, or None.

    With ``model.class_weights=auto`` and an AU head: from each AU's training positive rate
    (:func:`~fer_multires.task_losses.au_pos_weights`).
    """
    if setting != "auto" or "au" not in TASK_HEADS[task]:
        return None
    return [float(w) for w in datamodule.au_pos_weights()]


def checkpoint_plugins(trainer_cfg: DictConfig) -> list[Any]:
    """The trainer's plugins with :class:`AtomicCheckpointIO` (unless one sets its own IO)."""
    plugins = list(hydra.utils.instantiate(trainer_cfg.get("plugins") or []))
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def instantiate_all(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a config group (callbacks, loggers)."""
    if not cfg:
        return []
    return [
        hydra.utils.instantiate(entry)
        for entry in cfg.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def warn_on_weight_normalisation_mismatch(cfg: DictConfig) -> None:
    """Warn when VGGFace2 weights are used with an input normalisation they were not trained on."""
    pretrained = cfg.model.get("pretrained")
    if (
        pretrained
        and cfg.data.normalization != "vggface2"
        and Path(pretrained).is_file()
        and detect_weights_format(pretrained) == "vggface2"
    ):
        log.warning(
            "model.pretrained=%s holds VGGFace2 weights, which expect BGR 0-255 "
            "mean-subtracted input; data.normalization=%s. Set data.normalization=vggface2.",
            pretrained,
            cfg.data.normalization,
        )


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train (or resume) a model, validate its best checkpoint and evaluate it (eval_after_fit).

    Returns:
        The best checkpoint's validation metrics, and the objects built (datamodule, model,
        trainer, and ``eval``: the evaluation's results when ``eval_after_fit`` is on).

    Raises:
        EvaluationAfterFitError: if training finished but its end-of-training evaluation failed.
    """
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    task = check_task(cfg.get("task", DEFAULT_TASK))
    check_run_numbers(cfg)
    require_some_training(cfg.trainer, cfg.get("ckpt_path"))
    require_writable_dir(checkpoints_dir(run_dir), "run_dir")
    eval_settings = check_eval_after_fit(cfg, run_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    datamodule: FERDataModule = instantiate(cfg.data, task=task)  # errors name their config key
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)
    record_initial_weights(cfg.model, run_dir)  # fetched on rank 0, checked, before any data
    warn_on_weight_normalisation_mismatch(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if ckpt_path:
        check_checkpoint_classes(ckpt_path, datamodule.classes)
    model: FERModule = hydra.utils.instantiate(
        cfg.model,
        _convert_="all",  # plain lists in the checkpoint's hyper-parameters
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.classes),
        class_weights=resolve_class_weights(cfg.model.class_weights, datamodule, task),
        task=task,
        au_pos_weights=resolve_au_pos_weights(cfg.model.class_weights, datamodule, task),
    )
    if ckpt_path:
        check_checkpoint_fits(ckpt_path, model)  # before config.yaml is replaced
    loggers: list[Logger] = instantiate_all(cfg.get("logger"))
    callbacks = without_logging_callbacks(instantiate_all(cfg.get("callbacks")), loggers)
    trainer: Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, plugins=checkpoint_plugins(cfg.trainer)
    )
    if trainer.is_global_zero:
        write_text_atomic(config_file(run_dir), OmegaConf.to_yaml(cfg, resolve=True))
        log.info("run directory: %s", run_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    train_skipped = int(trainer.callback_metrics.get("train/skipped_images", 0))
    best = best_checkpoint(callbacks)
    results = trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics = {key: float(value) for key, value in results[0].items()} if results else {}
    if trainer.is_global_zero:
        results = TrainingResults(best, list(datamodule.classes), metrics, task,
                                  training_au_thresholds(task))  # fmt: skip
        write_json_atomic(Path(run_dir) / METRICS_FILE, results.to_json())
        print(format_split_table(results.split_metrics("val_full"), datamodule.classes, task))
        val_skipped = int(metrics.get("val_full/skipped_images", 0))
        if skipped := skipped_images_line(val_skipped, train_skipped):
            print(skipped)
        print(f"best checkpoint: {best}\nrun directory: {run_dir}")
    objects = {"datamodule": datamodule, "model": model, "trainer": trainer}
    if eval_settings is not None:
        objects["eval"] = evaluate_after_fit(eval_settings, best, datamodule, trainer, run_dir)
    return metrics, objects


def training_au_thresholds(task: str) -> dict[str, float] | None:
    """Return the thresholds of training's AU F1s (all 0.5: validation chooses none), or None.

    An evaluation chooses them on ``val_select`` (``au_thresholds`` of its ``metrics.json``).
    """
    if "au" not in TASK_HEADS[task]:
        return None
    return dict.fromkeys(AU_NAMES, DEFAULT_AU_THRESHOLD)


def skipped_images_line(validation: int, training: int) -> str | None:
    """The summary's line on images skipped as unreadable, or None if none were.

    Args:
        validation: images of ``val_full`` skipped in the final validation.
        training: training images skipped in the last training epoch.
    """
    if not validation and not training:
        return None
    return (
        f"skipped as unreadable (data.on_bad_image=skip; the log names each file): {validation} "
        f"validation images, {training} training images in the last epoch"
    )


#: The ``trainer`` counts or fractions that Lightning types as unions (int or float), which the
#: schema leaves untyped: checked before any work. The others are typed by the schema.
TRAINER_NUMBERS = (
    "limit_train_batches", "limit_val_batches", "val_check_interval", "gradient_clip_val",
)  # fmt: skip


def check_run_numbers(cfg: DictConfig) -> None:
    """Check ``seed`` and the trainer's counts before any work (Lightning asserts on them).

    Raises:
        ValueError: naming the key and the value that is not a number.
    """
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed={seed!r} must be an integer (or null)")
    for key in TRAINER_NUMBERS:
        value = cfg.trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"trainer.{key}={value!r} must be a number (or null)")


def require_some_training(trainer: DictConfig, ckpt_path: Any) -> None:
    """Refuse, before any work, a fresh run that would train nothing (and report a random model).

    With ``ckpt_path`` (a trained checkpoint to resume) a run that trains no further is allowed:
    it validates that checkpoint.

    Raises:
        ValueError: naming ``trainer.max_epochs``, ``trainer.max_steps`` or
            ``trainer.limit_train_batches`` when it is 0 and no checkpoint is given.
    """
    if ckpt_path:
        return
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        value = trainer.get(key)
        if value is not None and not isinstance(value, bool) and value == 0:
            raise ValueError(
                f"trainer.{key}={value}: the run would train nothing and report an untrained "
                "model's scores; set it above 0 (max_epochs/max_steps: -1 for no limit), or "
                "give the trained checkpoint to validate as ckpt_path"
            )


def check_eval_after_fit(cfg: DictConfig, run_dir: Path) -> EvalSettings | None:
    """Check the end-of-training evaluation before training, or return None if it is off.

    Its settings, and that ``<run dir>/eval`` can be written: found after the training, either
    would cost the whole run's evaluation.

    Raises:
        ValueError: for an invalid ``eval.*`` value or ``trainer.use_distributed_sampler``.
        PermissionError: naming ``eval_after_fit`` and the folder, if it cannot be written.
    """
    if not cfg.get("eval_after_fit", False):
        return None
    check_trainer_node(cfg.trainer)
    settings = check_eval_node(cfg.eval, Path())  # the checkpoint is known after training
    require_writable_dir(eval_dir(run_dir), "eval_after_fit")
    return settings


def evaluate_after_fit(
    settings: EvalSettings,
    best: str | None,
    datamodule: FERDataModule,
    trainer: Trainer,
    run_dir: Path,
) -> EvalResults | None:
    """Evaluate the best checkpoint into ``<run dir>/eval/``, as ``evaluate`` would.

    Runs on the training's trainer, so on its devices and exactly under DDP. A failure leaves the
    trained checkpoint and ``metrics.json`` as they are; it is recorded in ``eval/error.txt``
    (the sweep report lists the job as ``eval failed``) and raised as
    :class:`EvaluationAfterFitError`.

    Returns:
        The results on global rank 0; None elsewhere, or when no checkpoint was saved.
    """
    out = eval_dir(run_dir)
    if best is None:
        log.warning("eval_after_fit: no best checkpoint was saved, so nothing is evaluated")
        return None
    try:
        results = evaluate_checkpoint(
            replace(settings, ckpt_path=Path(best)),
            datamodule,
            trainer,
            out,
            config_file(run_dir),
        )
    except Exception as err:
        message = f"{type(err).__name__}: {err}"
        write_text_atomic(error_file(out), message + "\n")
        raise EvaluationAfterFitError(
            f"eval_after_fit: the evaluation of {best} failed ({message}); the checkpoint is "
            f"kept: rerun it with python -m fer_multires.evaluate ckpt_path={run_dir} "
            f"run_dir={out}"
        ) from err
    if results is not None:
        print(format_compact_table(results))
        print(f"evaluation report: {out / 'report.md'}")
    return results


class EvaluationAfterFitError(RuntimeError):
    """Training finished and saved its checkpoints, but the end-of-training evaluation failed."""


def without_logging_callbacks(callbacks: list[Callback], loggers: list[Logger]) -> list[Callback]:
    """Drop the learning-rate monitor when there is no logger (``logger=none``) to log to."""
    if loggers:
        return callbacks
    return [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def best_checkpoint(callbacks: list[Callback]) -> str | None:
    """Return the best checkpoint's path on a monitored metric, or None when none was saved.

    Checkpoint callbacks without a monitor (``last.ckpt``) are not candidates.
    """
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return None


def run_sweep_job(cfg: DictConfig) -> float | None:
    """Run one job of a multirun sweep; a failing job is recorded, not fatal to the sweep.

    The error goes to the log and to ``error.txt`` in the job's directory (so reports list the
    job as failed), and the sweep goes on with the next job.
    """
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with run_dir_lock(run_dir) if is_launching_process() else contextlib.nullcontext():
            metrics, _ = train(cfg)
    except FolderBusyError as err:
        # the directory is another training's: its error.txt is not this job's to write
        log.error("sweep job not run: %s", err)
        return None
    except EvaluationAfterFitError as err:
        # trained and checkpointed; the report lists the job as "eval failed"
        log.error("sweep job's evaluation failed: %s", err)
        return optimized_value(cfg, load_training_results(run_dir).metrics)
    except Exception as err:
        overrides = " ".join(HydraConfig.get().overrides.task)
        log.error("sweep job failed (%s): %s: %s", overrides, type(err).__name__, err)
        write_text_atomic(error_file(run_dir), f"{overrides}\n{type(err).__name__}: {err}\n")
        return None
    return optimized_value(cfg, metrics)


def optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """Return the metric named by ``optimized_metric``, or None if it was not logged."""
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point; returns ``optimized_metric`` for Hydra sweepers."""
    torch.set_float32_matmul_precision("high")
    try:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return run_sweep_job(cfg)
        metrics, _ = train(cfg)
    except Preempted as stop:
        log.warning("training %s", stop)
        raise
    except Exception:
        # Hydra prints the error to the terminal only; train.log gets it too
        log.exception("training failed")
        raise
    return optimized_value(cfg, metrics)


if __name__ == "__main__":
    rewrite_deprecated_overrides()  # data.multires.enabled=... (deprecated)
    main()
