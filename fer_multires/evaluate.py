"""Evaluation entry point: ``python -m fer_multires.evaluate ckpt_path=PATH [overrides]``.

Evaluates a checkpoint (or a training run directory: its best checkpoint) on ``val_select``,
``val_rest`` and ``val_full`` at the native resolution and at every resolution in
``eval.resolutions`` (the training degradation with a fixed resolution: down to it, back up),
from one decode of each batch. It also scores temporal
smoothing of the native-resolution probabilities within each video, with the window chosen on
``val_select``.

The data settings are those of the checkpoint's run (``<run dir>/config.yaml``, the run directory
being the parent of ``checkpoints/``), with any ``data.*`` key given on the command line applied on
top (e.g. ``data.root=/other/copy``). A checkpoint without a run config needs the data config on
the command line.

Exact on any number of processes: the data module shards the loaders without padding, each
(split, resolution) has a :class:`~fer_multires.metrics.ChallengeScore` whose confusion matrix is
summed across processes, and ``val_full`` is the sum of the ``val_select`` and ``val_rest``
matrices. Outputs, in the Hydra run directory: ``metrics.json``, ``predictions.csv``,
``resolution_robustness.{csv,png}``, ``confusion_matrix.png`` and ``report.md``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import LightningModule, Trainer
from torch import nn
from torch.nn import functional as F
from torchmetrics import SumMetric

from fer_multires.data.datamodule import EVAL_SPLITS, VAL_LOADERS, AffWild2DataModule
from fer_multires.metrics import ChallengeScore, metrics_from_confusion
from fer_multires.models.module import FERModule, check_checkpoint_classes
from fer_multires.smoothing import (
    GAUSSIAN_WINDOW_SIGMAS,
    check_smoothing,
    choose_window,
    smooth_probabilities,
)
from fer_multires.utils.config import CONFIG_DIR
from fer_multires.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

#: Key of the undegraded input in the outputs.
NATIVE = "native"
#: Hidden file in which global rank 0 hands the gathered results to the main process.
RAW_RESULTS = ".eval_raw.npz"
HONESTY_NOTE = (
    "val_select was used for model selection (and to choose the smoothing window), so val_rest "
    "is the honest estimate; val_full = val_select + val_rest is what the paper reports."
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvalSettings:
    """The checked ``eval`` settings.

    Attributes:
        ckpt_path: the checkpoint file.
        resolutions: degraded resolutions, ascending, without duplicates.
        smoothing: ``none``, ``mean`` or ``gaussian``.
        windows: smoothing windows to try (window 1, no smoothing, is always scored too).
        plots: whether to draw the PNG figures.
    """

    ckpt_path: Path
    resolutions: tuple[int, ...]
    smoothing: str
    windows: tuple[int, ...]
    plots: bool


def check_resolutions(values: Any) -> tuple[int, ...]:
    """Validate ``eval.resolutions``: a list of integers >= 1.

    Returns:
        The resolutions, ascending, without duplicates.

    Raises:
        ValueError: naming ``eval.resolutions``.
    """
    if not (OmegaConf.is_list(values) or isinstance(values, list | tuple)):
        raise ValueError(f"eval.resolutions={values!r} must be a list of integers >= 1")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"eval.resolutions: {value!r} is not an integer")
        if value < 1:
            raise ValueError(f"eval.resolutions: resolution {value} must be >= 1 (pixels)")
    return tuple(sorted(set(int(v) for v in values)))


def resolve_checkpoint(path: Path) -> Path:
    """Return the checkpoint file to evaluate: ``path``, or a run directory's best checkpoint.

    A training run directory names its best checkpoint (on ``val_select``) in its
    ``metrics.json``.

    Raises:
        FileNotFoundError: if the file does not exist, or the run directory names no checkpoint
            that exists.
    """
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"ckpt_path: checkpoint {path} does not exist")
    recorded = None
    if (path / "metrics.json").is_file():
        recorded = json.loads((path / "metrics.json").read_text()).get("checkpoint")
    if recorded:
        for candidate in (path / "checkpoints" / Path(recorded).name, Path(recorded)):
            if candidate.is_file():
                log.info("ckpt_path: %s is a run directory; its best checkpoint: %s", path,
                         candidate)  # fmt: skip
                return candidate
    raise FileNotFoundError(
        f"ckpt_path: {path} is a directory without a metrics.json naming an existing best "
        "checkpoint (an unfinished run?); pass a checkpoint file, e.g. "
        f"{path / 'checkpoints' / 'last.ckpt'}"
    )


def check_settings(cfg: DictConfig) -> EvalSettings:
    """Check the checkpoint and the ``eval`` node before any data is read.

    Raises:
        ValueError: for a missing ``ckpt_path`` or an invalid ``eval.*`` value, naming the key.
        FileNotFoundError: if the checkpoint does not exist.
    """
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") is None:
        raise ValueError("ckpt_path is required: python -m fer_multires.evaluate ckpt_path=PATH")
    ckpt_path = resolve_checkpoint(Path(str(cfg.ckpt_path)))
    windows = list(cfg.eval.get("smoothing_windows") or [])
    check_smoothing(cfg.eval.smoothing, windows)
    if cfg.trainer.get("use_distributed_sampler"):
        raise ValueError(
            "trainer.use_distributed_sampler=true would pad the evaluation shards and count "
            "samples twice; fer_multires shards the data itself: set it to false"
        )
    plots = bool(cfg.eval.get("plots", True))
    if plots and importlib.util.find_spec("matplotlib") is None:
        raise ValueError(
            "eval.plots=true needs matplotlib (pip install matplotlib); or set eval.plots=false"
        )
    return EvalSettings(
        ckpt_path=ckpt_path,
        resolutions=check_resolutions(cfg.eval.resolutions),
        smoothing=cfg.eval.smoothing,
        windows=tuple(sorted(set(windows))),
        plots=plots,
    )


def find_run_config(ckpt_path: Path) -> Path | None:
    """Return the ``config.yaml`` of the run a checkpoint belongs to, or None.

    Looked for in the parent of the checkpoint's folder (``<run>/checkpoints/x.ckpt``), then in
    the checkpoint's own folder.
    """
    folder = ckpt_path.resolve().parent
    for candidate in (folder.parent / "config.yaml", folder / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def apply_data_overrides(
    run_data: DictConfig, cfg: DictConfig, task_overrides: Sequence[str]
) -> list[str]:
    """Apply the ``data.*`` keys overridden on the command line to a run's data config.

    The values are taken from the composed ``cfg`` (so interpolations are resolved there).

    Args:
        run_data: the run's ``data`` node, changed in place.
        cfg: the evaluation's composed config.
        task_overrides: the command-line overrides (``HydraConfig.get().overrides.task``).

    Returns:
        The overrides applied.
    """
    applied = []
    for override in OverridesParser.create().parse_overrides(list(task_overrides)):
        key = override.key_or_group
        if key == "data":
            log.warning(
                "%s is ignored: the data config comes from the checkpoint's run; "
                "override its keys as data.<key>=VALUE",
                override.input_line,
            )
            continue
        if not key.startswith("data."):
            continue
        sub_key = key[len("data.") :]
        if override.is_delete():
            parent_key, _, leaf = sub_key.rpartition(".")
            parent = OmegaConf.select(run_data, parent_key) if parent_key else run_data
            if parent is not None and leaf in parent:
                del parent[leaf]
        else:
            value = OmegaConf.select(cfg, key)
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(run_data, sub_key, value, merge=False, force_add=True)
        applied.append(override.input_line)
    return applied


def anchor_relative_root(run_data: DictConfig, run_config: Path) -> None:
    """Make a relative ``data.root`` of a run config absolute, against the training's cwd.

    Training resolves ``data.root`` against its working directory (``./data/...`` by default),
    which Hydra records in ``<run dir>/.hydra/hydra.yaml``; the evaluation may run elsewhere.
    """
    root = run_data.get("root")
    if root is None or Path(str(root)).is_absolute():
        return
    hydra_yaml = run_config.parent / ".hydra" / "hydra.yaml"
    cwd = None
    if hydra_yaml.is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd")
    if cwd is None:
        log.warning("data.root=%s in %s is relative: read from the current directory", root,
                    run_config)  # fmt: skip
        return
    run_data.root = os.path.normpath(Path(cwd) / str(root))
    log.info("data.root=%s in %s is relative to the training's directory: %s", root, run_config,
             run_data.root)  # fmt: skip


def resolve_data_config(
    cfg: DictConfig, ckpt_path: Path, task_overrides: Sequence[str]
) -> tuple[DictConfig, Path | None]:
    """Return the data config to evaluate on, and the run config it came from (or None).

    Raises:
        ValueError: if the checkpoint has no run config and ``data.root`` was not given.
    """
    run_config = find_run_config(ckpt_path)
    if run_config is None:
        if OmegaConf.is_missing(cfg.data, "root"):
            folder = ckpt_path.resolve().parent
            raise ValueError(
                f"data.root: no config.yaml next to the checkpoint (looked in {folder.parent} "
                f"and {folder}), so the data config must come from the command line: "
                "data.root=PATH (data=affwild2 by default) and the training's data.resize_size, "
                "data.crop_size and data.normalization"
            )
        log.warning(
            "no config.yaml next to %s: the data config comes from the command line "
            "(resize %s, crop %s, normalization %s); they must match the training's",
            ckpt_path,
            cfg.data.get("resize_size"),
            cfg.data.get("crop_size"),
            cfg.data.get("normalization"),
        )
        return cfg.data, None
    run_data = OmegaConf.load(run_config).get("data")
    if run_data is None:
        raise ValueError(f"{run_config} has no data node; pass the data config on the command line")
    anchor_relative_root(run_data, run_config)
    applied = apply_data_overrides(run_data, cfg, task_overrides)
    log.info("data config from %s%s", run_config, f", with {' '.join(applied)}" if applied else "")
    return run_data, run_config


# --------------------------------------------------------------------------- the Lightning part


def metric_key(split: str, resolution_index: int) -> str:
    """Return the ``ModuleDict`` key of one (split, resolution) metric."""
    return f"{split}__{resolution_index}"


class EvalModule(LightningModule):
    """Runs a classifier on every resolution of each batch; one metric per (split, resolution).

    Test loaders are ``val_select`` and ``val_rest`` (:data:`VAL_LOADERS`) as uint8 images at
    their native size, sharded by the data module without padding. At the end of the test epoch,
    the confusion matrices (summed across processes) and the native-resolution predictions
    (gathered from every process) are saved by global rank 0 to ``<output_dir>/.eval_raw.npz``
    for :func:`load_raw_results`.

    Args:
        model: the trained classifier.
        datamodule: the data module, after ``setup()``.
        resolutions: the degraded resolutions; the native one is evaluated first.
        output_dir: where rank 0 saves the raw results.
    """

    def __init__(
        self,
        model: FERModule,
        datamodule: AffWild2DataModule,
        resolutions: Sequence[int],
        output_dir: str | Path,
    ) -> None:
        super().__init__()
        self.model = model
        self.data = datamodule
        self.resolutions: tuple[int | None, ...] = (None, *resolutions)
        self.output_dir = str(output_dir)
        num_classes = len(model.class_names)
        self.scores = nn.ModuleDict(
            {
                metric_key(split, i): ChallengeScore(num_classes)
                for split in VAL_LOADERS
                for i in range(len(self.resolutions))
            }
        )
        self.skipped = nn.ModuleDict({split: SumMetric() for split in VAL_LOADERS})
        self._rows: list[dict[str, np.ndarray]] = []

    def test_dataloader(self) -> list[Any]:
        """``[val_select, val_rest]`` as uint8 batches, this process's shard of each."""
        # The data module shards by its trainer's rank and world size; Lightning attaches a
        # trainer only to a data module passed to trainer.test, and ours has no test loader.
        self.data.trainer = self.trainer
        return [self.data.eval_dataloader(split, augment_on="device") for split in VAL_LOADERS]

    def on_test_epoch_start(self) -> None:
        """Start from empty metrics and no kept predictions."""
        for metric in [*self.scores.values(), *self.skipped.values()]:
            metric.reset()
        self._rows = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        """Score one uint8 batch at every resolution; keep the native predictions."""
        split = VAL_LOADERS[dataloader_idx]
        valid = batch["valid"].bool()
        self.skipped[split].update((~valid).sum())
        if not bool(valid.any()):
            return
        images, labels = batch["image"][valid], batch["label"][valid]
        for i, resolution in enumerate(self.resolutions):
            logits = self.model(self.data.batch_transform.eval(images, resolution)).float()
            self.scores[metric_key(split, i)].update(logits, labels)
            if resolution is None:
                self._keep(dataloader_idx, batch["index"][valid], logits)

    def _keep(self, split_id: int, index: torch.Tensor, logits: torch.Tensor) -> None:
        self._rows.append(
            {
                "split": np.full(len(index), split_id, dtype=np.int8),
                "index": index.cpu().numpy().astype(np.int64),
                "predicted": logits.argmax(dim=1).cpu().numpy().astype(np.int64),
                "probs": F.softmax(logits, dim=1).cpu().numpy().astype(np.float32),
            }
        )

    def _local_rows(self) -> dict[str, np.ndarray]:
        num_classes = len(self.model.class_names)
        empty = {
            "split": np.zeros(0, np.int8),
            "index": np.zeros(0, np.int64),
            "predicted": np.zeros(0, np.int64),
            "probs": np.zeros((0, num_classes), np.float32),
        }
        rows = [empty, *self._rows]
        return {key: np.concatenate([r[key] for r in rows]) for key in empty}

    def on_test_epoch_end(self) -> None:
        """Sync the metrics, gather the predictions on rank 0, and save them there."""
        confusion = torch.stack(
            [
                torch.stack(
                    [
                        self.scores[metric_key(split, i)].compute()["confusion"]
                        for i in range(len(self.resolutions))
                    ]
                )
                for split in VAL_LOADERS
            ]
        )
        skipped = torch.stack([self.skipped[split].compute() for split in VAL_LOADERS])
        parts = gather_to_rank_zero(self._local_rows())
        if self.trainer.is_global_zero:
            rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
            save_npz_atomic(
                Path(self.output_dir) / RAW_RESULTS,
                confusion=confusion.cpu().numpy().astype(np.int64),
                skipped=skipped.cpu().numpy().astype(np.int64),
                **rows,
            )
        self.trainer.strategy.barrier("eval_results_saved")
        self._rows = []


def gather_to_rank_zero(obj: Any) -> list[Any]:
    """Return every process's ``obj`` on global rank 0 (and ``[obj]`` elsewhere)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered if dist.get_rank() == 0 else [obj]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Save arrays as ``.npz`` through a temporary file and an atomic rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- results


@dataclass
class Predictions:
    """Native-resolution predictions of ``val_full``, sorted by (video, frame).

    Attributes:
        split: per row, ``val_select`` or ``val_rest``.
        video: per row, the video name.
        frame: per row, the frame number.
        label: per row, the true class index.
        predicted: per row, the predicted class index (argmax of the logits).
        probs: ``(N, C)`` class probabilities (softmax of the logits).
    """

    split: np.ndarray
    video: np.ndarray
    frame: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray

    def mask(self, split: str) -> np.ndarray:
        """Return the rows of ``split`` (all rows for ``val_full``)."""
        if split == "val_full":
            return np.ones(len(self.frame), dtype=bool)
        return self.split == split


@dataclass
class RawResults:
    """What the test epoch produced: confusion matrices, skip counts and native predictions."""

    confusions: dict[str, dict[str, np.ndarray]]
    skipped: dict[str, int]
    predictions: Predictions


def load_raw_results(
    path: Path, datamodule: AffWild2DataModule, resolutions: Sequence[int]
) -> RawResults:
    """Read the file saved by :class:`EvalModule` and check that every sample counted once.

    Raises:
        RuntimeError: if a sample was counted twice.
    """
    with np.load(path) as raw:
        data = {key: raw[key] for key in raw.files}
    keys = [NATIVE, *(str(r) for r in resolutions)]
    confusions = {
        split: dict(zip(keys, data["confusion"][s], strict=True))
        for s, split in enumerate(VAL_LOADERS)
    }
    confusions["val_full"] = {k: sum(confusions[s][k] for s in VAL_LOADERS) for k in keys}
    skipped = {split: int(data["skipped"][s]) for s, split in enumerate(VAL_LOADERS)}
    skipped["val_full"] = sum(skipped.values())
    predictions = build_predictions(data, datamodule, skipped)
    return RawResults(confusions, skipped, predictions)


def build_predictions(
    data: Mapping[str, np.ndarray], datamodule: AffWild2DataModule, skipped: Mapping[str, int]
) -> Predictions:
    """Turn gathered (split, index) rows into named, sorted ``val_full`` predictions."""
    names, videos, frames, labels = [], [], [], []
    for s, split in enumerate(VAL_LOADERS):
        index = datamodule.splits[split]
        rows = data["index"][data["split"] == s]
        check_coverage(split, rows, len(index), skipped[split])
        names.append(np.full(len(rows), split))
        videos.append(np.asarray(index.videos, dtype=object)[index.video[rows]])
        frames.append(index.frame[rows].astype(np.int64))
        labels.append(index.label[rows].astype(np.int64))
    video = np.concatenate(videos)
    frame = np.concatenate(frames)
    order = np.lexsort((frame, np.unique(video.astype(str), return_inverse=True)[1]))
    split_rows = np.concatenate([np.flatnonzero(data["split"] == s) for s in range(2)])
    return Predictions(
        split=np.concatenate(names)[order],
        video=video[order],
        frame=frame[order],
        label=np.concatenate(labels)[order],
        predicted=data["predicted"][split_rows][order],
        probs=data["probs"][split_rows][order],
    )


def check_coverage(split: str, rows: np.ndarray, size: int, skipped: int) -> None:
    """Check that each sample of a split was evaluated at most once, and say if any was not.

    Raises:
        RuntimeError: if a sample was evaluated twice (e.g. a padding sampler).
    """
    if np.unique(rows).size != rows.size:
        raise RuntimeError(
            f"{split}: {rows.size - np.unique(rows).size} samples were evaluated twice; keep "
            "trainer.use_distributed_sampler=false"
        )
    if rows.size + skipped != size:
        log.warning(
            "%s: %d of its %d frames were evaluated (%d skipped as unreadable); "
            "is trainer.limit_test_batches set?",
            split,
            rows.size,
            size,
            skipped,
        )


def confusion_from_labels(label: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the ``C x C`` confusion matrix (rows = true class) of two label arrays."""
    pairs = np.asarray(label, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def metric_entry(confusion: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Return the JSON metrics of one confusion matrix."""
    m = metrics_from_confusion(confusion)
    return {
        "accuracy": float(m["acc"]),
        "f1_macro": float(m["f1"]),
        "f1_per_class": {c: float(f) for c, f in zip(classes, m["f1_per_class"], strict=True)},
        "challenge_score": float(m["score"]),
        "n": int(m["n"]),
    }


def smoothing_results(
    predictions: Predictions, kind: str, windows: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """Score temporal smoothing for each window; choose the window on ``val_select``.

    Window 1 (no smoothing, the argmax of the logits) is always scored, so smoothing is only
    chosen when it helps on ``val_select``.

    Returns:
        ``{"kind", "windows", "chosen_window", "chosen_on", "results": {split: {window: metrics}}}``
        (plus ``gaussian_sigma`` for the Gaussian); ``{"kind": "none"}`` without smoothing.
    """
    if kind == "none":
        return {"kind": "none"}
    video_ids = np.unique(predictions.video.astype(str), return_inverse=True)[1]
    all_windows = sorted({1, *windows})
    results: dict[str, dict[str, Any]] = {split: {} for split in EVAL_SPLITS}
    for window in all_windows:
        predicted = predictions.predicted
        if window > 1:
            smoothed = smooth_probabilities(
                predictions.probs, video_ids, predictions.frame, window, kind
            )
            predicted = smoothed.argmax(axis=1)
        for split in EVAL_SPLITS:
            rows = predictions.mask(split)
            confusion = confusion_from_labels(
                predictions.label[rows], predicted[rows], len(classes)
            )
            results[split][str(window)] = metric_entry(confusion, classes)
    chosen = choose_window(
        {w: results["val_select"][str(w)]["challenge_score"] for w in all_windows}
    )
    out: dict[str, Any] = {
        "kind": kind,
        "windows": all_windows,
        "chosen_window": chosen,
        "chosen_on": "val_select",
        "results": results,
    }
    if kind == "gaussian":
        out["gaussian_sigma"] = f"window / {GAUSSIAN_WINDOW_SIGMAS:g}"
    return out


# --------------------------------------------------------------------------- writing


def predictions_csv(predictions: Predictions, classes: Sequence[str]) -> str:
    """Render ``predictions.csv``: video, frame, label, predicted, ``p_<Class>`` per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video", "frame", "label", "predicted", *(f"p_{c}" for c in classes)])
    names = np.asarray(classes, dtype=object)
    probs = np.char.mod("%.6g", predictions.probs)
    rows = zip(
        predictions.video,
        predictions.frame.tolist(),
        names[predictions.label],
        names[predictions.predicted],
        probs.tolist(),
        strict=True,
    )
    writer.writerows([video, frame, label, pred, *p] for video, frame, label, pred, p in rows)
    return buffer.getvalue()


def robustness_csv(metrics: Mapping[str, Any], resolutions: Sequence[int]) -> str:
    """Render ``resolution_robustness.csv``: one row per (split, resolution)."""
    lines = ["split,resolution,accuracy,f1_macro,challenge_score,n"]
    for split in EVAL_SPLITS:
        for key in [*(str(r) for r in resolutions), NATIVE]:
            m = metrics[split][key]
            lines.append(
                f"{split},{key},{m['accuracy']:.6f},{m['f1_macro']:.6f},"
                f"{m['challenge_score']:.6f},{m['n']}"
            )
    return "\n".join(lines) + "\n"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def native_tables(summary: Mapping[str, Any], classes: Sequence[str]) -> list[str]:
    """Render the paper's Table 3 (per-class F1) and Table 4 for val_full and val_rest."""
    splits = ("val_full", "val_rest")
    native = {split: summary[split][NATIVE] for split in splits}
    per_class = [[s, *(native[s]["f1_per_class"][c] for c in classes)] for s in splits]
    summary_rows = [
        [s, *(native[s][k] for k in ("accuracy", "f1_macro", "challenge_score", "n"))]
        for s in splits
    ]
    return [
        "## Table 3: per-class F1 (native resolution)",
        "",
        *_md_table(["split", *classes], per_class),
        "",
        "## Table 4: accuracy, macro F1 and challenge score (native resolution)",
        "",
        *_md_table(["split", "accuracy", "macro F1", "challenge score", "n"], summary_rows),
        "",
    ]


def resolution_table(summary: Mapping[str, Any]) -> list[str]:
    """Render the challenge score per resolution (rows) and split (columns)."""
    rows = []
    for key in [*(str(r) for r in summary["resolutions"]), NATIVE]:
        rest = summary["val_rest"][key]
        scores = [summary[s][key]["challenge_score"] for s in EVAL_SPLITS]
        rows.append([key, *scores, rest["accuracy"], rest["f1_macro"]])
    header = ["resolution", *EVAL_SPLITS, "val_rest accuracy", "val_rest macro F1"]
    return ["## Resolution robustness (challenge score)", "", *_md_table(header, rows), ""]


def format_report(summary: Mapping[str, Any], classes: Sequence[str], plots: bool) -> str:
    """Render ``report.md``: the paper's Tables 3 and 4, resolution and smoothing tables."""
    counts = ", ".join(f"{s} {summary[s][NATIVE]['n']}" for s in EVAL_SPLITS)
    source = f" (data config from `{summary['run_config']}`)" if summary["run_config"] else ""
    lines = [
        "# Evaluation report",
        "",
        f"- checkpoint: `{summary['checkpoint']}`",
        f"- data root: `{summary['data_root']}`{source}",
        f"- frames evaluated: {counts}; "
        f"unreadable images skipped: {summary['skipped_images']['val_full']}",
        "",
        f"> {HONESTY_NOTE}",
        "",
        *native_tables(summary, classes),
        *resolution_table(summary),
    ]
    if plots:
        lines += ["![resolution robustness](resolution_robustness.png)", ""]
    lines += format_smoothing_section(summary["smoothing"])
    if plots:
        lines += ["## Confusion matrix (val_full, native)", ""]
        lines += ["![confusion matrix](confusion_matrix.png)"]
    return "\n".join(lines) + "\n"


def format_smoothing_section(smoothing: Mapping[str, Any]) -> list[str]:
    """Render the temporal-smoothing part of the report."""
    if smoothing["kind"] == "none":
        return ["## Temporal smoothing", "", "Not evaluated (eval.smoothing=none).", ""]
    results, chosen = smoothing["results"], smoothing["chosen_window"]
    rows = []
    for window in smoothing["windows"]:
        key = str(window)
        name = ("1 (none)" if window == 1 else key) + (" **chosen**" if window == chosen else "")
        rest = results["val_rest"][key]
        rows.append(
            [
                name,
                results["val_select"][key]["challenge_score"],
                rest["accuracy"],
                rest["f1_macro"],
                rest["challenge_score"],
                results["val_full"][key]["challenge_score"],
            ]
        )
    header = ["window (frames)", "val_select score", "val_rest accuracy", "val_rest macro F1"]
    header += ["val_rest score", "val_full score"]
    rest, rest_raw = results["val_rest"][str(chosen)], results["val_rest"]["1"]
    return [
        f"## Temporal smoothing ({smoothing['kind']}, native resolution)",
        "",
        "Class probabilities averaged over a centred window of frame numbers within each video "
        "(missing frames are left out, not filled in).",
        "",
        *_md_table(header, rows),
        "",
        f"Chosen on val_select: window {chosen}. On val_rest its challenge score is "
        f"{rest['challenge_score']:.4f} (unsmoothed {rest_raw['challenge_score']:.4f}).",
        "",
    ]


def format_compact_table(summary: Mapping[str, Any]) -> str:
    """Render the challenge score per resolution and split as plain text."""
    lines = [f"{'resolution':>10}" + "".join(f"{s:>12}" for s in EVAL_SPLITS)]
    for key in [*(str(r) for r in summary["resolutions"]), NATIVE]:
        scores = "".join(f"{summary[s][key]['challenge_score']:>12.4f}" for s in EVAL_SPLITS)
        lines.append(f"{key:>10}{scores}")
    return "\n".join(["challenge score", *lines])


def write_outputs(
    output_dir: Path,
    summary: dict[str, Any],
    raw: RawResults,
    classes: Sequence[str],
    plots: bool,
) -> None:
    """Write metrics.json, predictions.csv, the robustness table and figures, and report.md."""
    write_json_atomic(output_dir / "metrics.json", summary)
    write_text_atomic(output_dir / "predictions.csv", predictions_csv(raw.predictions, classes))
    write_text_atomic(
        output_dir / "resolution_robustness.csv", robustness_csv(summary, summary["resolutions"])
    )
    if plots:
        from fer_multires.plots import plot_confusion_matrix, plot_resolution_robustness

        plot_resolution_robustness(
            {s: summary[s] for s in EVAL_SPLITS},
            summary["resolutions"],
            output_dir / "resolution_robustness.png",
        )
        plot_confusion_matrix(
            raw.confusions["val_full"][NATIVE],
            classes,
            output_dir / "confusion_matrix.png",
            title="val_full, native resolution",
        )
    write_text_atomic(output_dir / "report.md", format_report(summary, classes, plots))


# --------------------------------------------------------------------------- entry point


def build_summary(
    raw: RawResults,
    settings: EvalSettings,
    datamodule: AffWild2DataModule,
    run_config: Path | None,
) -> dict[str, Any]:
    """Assemble ``metrics.json``: ``{split: {resolution: metrics}}`` plus context and smoothing."""
    classes = list(datamodule.classes)
    summary: dict[str, Any] = {
        "checkpoint": os.path.abspath(settings.ckpt_path),
        "data_root": os.path.abspath(datamodule.root),
        "run_config": str(run_config) if run_config else None,
        "classes": classes,
        "native_size": list(datamodule.native_size),
        "resolutions": list(settings.resolutions),
        "skipped_images": raw.skipped,
    }
    for split in EVAL_SPLITS:
        summary[split] = {
            key: metric_entry(confusion, classes)
            for key, confusion in raw.confusions[split].items()
        }
    summary["smoothing"] = smoothing_results(
        raw.predictions, settings.smoothing, settings.windows, classes
    )
    return summary


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Evaluate a checkpoint as configured and write the outputs (on global rank 0).

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
    datamodule: AffWild2DataModule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("test")
    check_checkpoint_classes(settings.ckpt_path, datamodule.classes)
    too_high = [r for r in settings.resolutions if r >= min(datamodule.native_size)]
    if too_high:
        log.info("resolutions %s are not below the native size %s: unchanged", too_high,
                 datamodule.native_size)  # fmt: skip
    model = FERModule.load_from_checkpoint(settings.ckpt_path, pretrained=None, map_location="cpu")
    module = EvalModule(model, datamodule, settings.resolutions, output_dir)
    trainer: Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[]
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trainer.test(module, verbose=False)
    if not trainer.is_global_zero:
        return None
    seconds = time.perf_counter() - start
    frames = len(datamodule.splits["val_full"])
    log.info("evaluated %d frames at %d resolutions in %.1f s (%.0f frames/s)", frames,
             len(settings.resolutions) + 1, seconds, frames / seconds)  # fmt: skip
    raw_path = output_dir / RAW_RESULTS
    raw = load_raw_results(raw_path, datamodule, settings.resolutions)
    summary = build_summary(raw, settings, datamodule, run_config)
    write_outputs(output_dir, summary, raw, datamodule.classes, settings.plots)
    raw_path.unlink()
    print(format_compact_table(summary))
    print(f"report: {output_dir / 'report.md'}\noutput directory: {output_dir}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Entry point."""
    torch.set_float32_matmul_precision("high")
    evaluate(cfg)


if __name__ == "__main__":
    main()
