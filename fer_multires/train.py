"""Training entry point: ``python -m fer_multires.train +experiment=NAME [overrides]``.

Each run lives in its own directory (printed at start and end) with the resolved config
(``config.yaml``), ``checkpoints/last.ckpt`` and the best checkpoint on ``val_select/score``, CSV
logs and ``metrics.json`` (the best checkpoint's validation metrics). ``-m`` runs Hydra sweeps;
the entry point returns the optimised metric to the sweeper.

Resume: ``ckpt_path=last run_dir=<the run's directory>`` (or ``ckpt_path=<file>``) continues the
run: weights, optimiser, epoch, step, sampler order and augmentation draws.
"""

from __future__ import annotations

import logging
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

from fer_multires.data.datamodule import AffWild2DataModule
from fer_multires.models.backbone import detect_weights_format
from fer_multires.models.module import FERModule, check_checkpoint_classes
from fer_multires.utils.config import CONFIG_DIR
from fer_multires.utils.io import write_json_atomic, write_text_atomic
from fer_multires.utils.report import format_split_table, metrics_for_split

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """Turn ``ckpt_path`` (null, ``last`` or a path) into a checkpoint file to resume from.

    Raises:
        FileNotFoundError: if ``last`` finds nothing to resume in ``run_dir``, or the file is
            missing: resuming never silently becomes a fresh start.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last: nothing to resume, {path} does not exist. Pass the directory "
                "of the run to resume as run_dir=<dir> (its path is printed when a run starts)"
            )
        return str(path)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path: checkpoint {ckpt_path} does not exist")
    return str(ckpt_path)


def resolve_class_weights(setting: Any, datamodule: AffWild2DataModule) -> list[float] | None:
    """Turn ``model.class_weights`` (auto, a list, or null) into per-class weights.

    Raises:
        ValueError: for a list of the wrong length or another value.
    """
    if setting is None:
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
    """Train (or resume) a model as configured and validate its best checkpoint.

    Returns:
        The best checkpoint's validation metrics, and the objects built (datamodule, model,
        trainer).
    """
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    datamodule: AffWild2DataModule = hydra.utils.instantiate(cfg.data)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)
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
        class_weights=resolve_class_weights(cfg.model.class_weights, datamodule),
    )
    loggers: list[Logger] = instantiate_all(cfg.get("logger"))
    callbacks = without_logging_callbacks(instantiate_all(cfg.get("callbacks")), loggers)
    trainer: Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    if trainer.is_global_zero:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        log.info("run directory: %s", run_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    best = best_checkpoint(callbacks)
    results = trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics = {key: float(value) for key, value in results[0].items()} if results else {}
    if trainer.is_global_zero:
        write_json_atomic(
            run_dir / "metrics.json",
            {"checkpoint": best, "classes": list(datamodule.classes), "metrics": metrics},
        )
        print(format_split_table(metrics_for_split(metrics, "val_full"), datamodule.classes))
        print(f"best checkpoint: {best}\nrun directory: {run_dir}")
    objects = {"datamodule": datamodule, "model": model, "trainer": trainer}
    return metrics, objects


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
        metrics, _ = train(cfg)
    except Exception as err:
        overrides = " ".join(HydraConfig.get().overrides.task)
        log.error("sweep job failed (%s): %s: %s", overrides, type(err).__name__, err)
        write_text_atomic(run_dir / "error.txt", f"{overrides}\n{type(err).__name__}: {err}\n")
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
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return run_sweep_job(cfg)
    metrics, _ = train(cfg)
    return optimized_value(cfg, metrics)


if __name__ == "__main__":
    main()
