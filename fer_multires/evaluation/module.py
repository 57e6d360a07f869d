"""The Lightning side of an evaluation: every resolution of each batch, one metric per pair.

Exact on any number of processes: the data module partitions the loaders across processes without
padding, each (split, resolution) has a :class:`~fer_multires.metrics.ChallengeScore` whose
confusion matrix is summed across processes, and the native-resolution predictions are gathered
on global rank 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn import functional as F
from torchmetrics import SumMetric

from fer_multires.data.batch_transforms import BatchTransform
from fer_multires.data.datasets import readable_part
from fer_multires.metrics import ChallengeScore
from fer_multires.models.module import FERModule
from fer_multires.results import VAL_LOADERS
from fer_multires.utils.io import save_npz_atomic

#: Hidden file in which global rank 0 hands the gathered results to the main process.
RAW_RESULTS = ".eval_raw.npz"


def metric_key(split: str, resolution_index: int) -> str:
    """Return the ``ModuleDict`` key of one (split, resolution) metric."""
    return f"{split}__{resolution_index}"


class EvalModule(LightningModule):
    """Runs a classifier on every resolution of each batch; one metric per (split, resolution).

    Run with ``trainer.test(module, datamodule=...)``: the data module's test loaders are
    ``val_select`` and ``val_rest`` (:data:`VAL_LOADERS`) as uint8 images at their native size,
    partitioned across processes without padding. At the end of the test epoch,
    the confusion matrices (summed across processes) and the native-resolution predictions
    (gathered from every process) are saved by global rank 0 to ``<output_dir>/.eval_raw.npz``
    for :func:`load_raw_results`.

    Args:
        model: the trained classifier.
        batch_transform: the data module's batched eval pipeline (degrade, resize, crop,
            normalise), applied here on the device at each resolution.
        resolutions: the degraded resolutions; the native one is evaluated first.
        output_dir: where rank 0 saves the raw results.
    """

    def __init__(
        self,
        model: FERModule,
        batch_transform: BatchTransform,
        resolutions: Sequence[int],
        output_dir: str | Path,
    ) -> None:
        super().__init__()
        self.model = model
        self.batch_transform = batch_transform
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

    def on_test_epoch_start(self) -> None:
        """Start from empty metrics and no kept predictions."""
        for metric in [*self.scores.values(), *self.skipped.values()]:
            metric.reset()
        self._rows = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        """Score one uint8 batch at every resolution; keep the native predictions."""
        split = VAL_LOADERS[dataloader_idx]
        images, labels, index, dropped = readable_part(batch)
        self.skipped[split].update(dropped)
        if not len(labels):
            return
        for i, resolution in enumerate(self.resolutions):
            logits = self.model(self.batch_transform.eval(images, resolution)).float()
            self.scores[metric_key(split, i)].update(logits, labels)
            if resolution is None:
                self._keep(dataloader_idx, index, logits)

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
