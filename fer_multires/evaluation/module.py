"""The Lightning side of an evaluation: every resolution of each batch, one metric per pair.

Exact on any number of processes: the data module partitions the loaders across processes without
padding, each (split, resolution) has a :class:`~fer_multires.metrics.ChallengeScore` whose
confusion matrix is summed across processes, and the predictions (the native probabilities, the
predicted class at every point) are gathered on global rank 0, where the per-video confusion
matrices are counted from them.

No batch waits for the device (see :mod:`fer_multires.models.module`): unreadable samples are
counted on the host before the transfer, and the native predictions stay on the device until the
epoch ends.
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

from fer_multires.data.batch_transforms import TRAINING_KERNEL, BatchTransform
from fer_multires.data.datasets import readable_samples
from fer_multires.evaluation.classes import ClassMatch, match_classes
from fer_multires.metrics import ChallengeScore, SampleCount
from fer_multires.models.module import FERModule
from fer_multires.results import VAL_LOADERS
from fer_multires.utils.io import save_npz_atomic

#: Hidden file in which global rank 0 hands the gathered results to the main process.
RAW_RESULTS = ".eval_raw.npz"


#: One evaluated condition: ``(kernel, resolution)``, or ``(None, None)`` for the native images.
Point = tuple[str | None, int | None]


def metric_key(split: str, point_index: int) -> str:
    """Return the ``ModuleDict`` key of one (split, point) metric."""
    return f"{split}__{point_index}"


def evaluation_points(resolutions: Sequence[int], kernels: Sequence[str]) -> list[Point]:
    """Return the evaluated conditions: native first, then each kernel at each resolution."""
    return [(None, None), *((k, int(r)) for k in kernels for r in resolutions)]


class EvalModule(LightningModule):
    """Runs a classifier on every degradation of each batch; one metric per (split, point).

    Run with ``trainer.test(module, datamodule=...)``: the data module's test loaders are
    ``val_select`` and ``val_rest`` (:data:`VAL_LOADERS`) as uint8 images at their native size,
    partitioned across processes without padding. At the end of the test epoch,
    the confusion matrices (summed across processes) and the native-resolution predictions
    (gathered from every process) are saved by global rank 0 to ``<output_dir>/.eval_raw.npz``
    for :func:`load_raw_results`.

    Samples of a class the model does not know (``match``, cross-dataset evaluation) are left
    out before anything else, and the prediction is the argmax over the shared classes' logits.

    Args:
        model: the trained classifier.
        batch_transform: the data module's batched eval pipeline (degrade, resize, crop,
            normalise), applied here on the device at each resolution.
        resolutions: the degraded resolutions; the native one is evaluated first.
        output_dir: where rank 0 saves the raw results.
        kernels: the degradations (see :data:`~fer_multires.data.batch_transforms.DEGRADATIONS`)
            applied at each resolution.
        jpeg_quality: the JPEG quality of the ``jpeg`` degradation.
        match: the model's classes matched with the data's (default: the same classes).
        compile: compile the model's backbone (``torch.compile``) when the test starts; None:
            as the checkpoint was trained (its ``compile`` hyper-parameter).
    """

    def __init__(
        self,
        model: FERModule,
        batch_transform: BatchTransform,
        resolutions: Sequence[int],
        output_dir: str | Path,
        kernels: Sequence[str] = (TRAINING_KERNEL,),
        jpeg_quality: int = 30,
        match: ClassMatch | None = None,
        compile: bool | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.batch_transform = batch_transform
        self.points = evaluation_points(resolutions, kernels)
        self.jpeg_quality = jpeg_quality
        self.output_dir = str(output_dir)
        match = match or match_classes(model.class_names, model.class_names)
        self.register_buffer("label_map", torch.from_numpy(match.label_map), persistent=False)
        self.register_buffer(
            "logit_columns", torch.from_numpy(match.logit_columns), persistent=False
        )
        self.all_columns = match.is_identity
        num_classes = len(match.shared)
        self.scores = nn.ModuleDict(
            {
                metric_key(split, i): ChallengeScore(num_classes)
                for split in VAL_LOADERS
                for i in range(len(self.points))
            }
        )
        self.compile = model.hparams.get("compile", False) if compile is None else compile
        self.skipped = nn.ModuleDict({split: SampleCount() for split in VAL_LOADERS})
        self._rows: list[dict[str, torch.Tensor]] = []

    def configure_model(self) -> None:
        """Lightning hook before the test: compile the backbone if asked to (idempotent)."""
        if self.compile:
            self.model.compile_backbone()

    def on_test_epoch_start(self) -> None:
        """Start from empty metrics and no kept predictions."""
        for metric in [*self.scores.values(), *self.skipped.values()]:
            metric.reset()
        self._rows = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        """Score one uint8 batch at every point; keep the native predictions."""
        split = VAL_LOADERS[dataloader_idx]
        images, targets, dropped = readable_samples(self.known_classes(batch))
        labels, index = targets["expr"], targets["index"]
        self.skipped[split].add(dropped)
        if not len(labels):
            return
        predicted, native_logits = [], None
        for i, (kernel, resolution) in enumerate(self.points):
            x = self.batch_transform.eval(
                images, resolution, kernel or TRAINING_KERNEL, self.jpeg_quality
            )
            logits = self.model(x).float()
            if not self.all_columns:
                logits = logits[:, self.logit_columns]
            self.scores[metric_key(split, i)].update(logits, labels)
            predicted.append(logits.argmax(dim=1))
            if resolution is None:
                native_logits = logits
        self._keep(dataloader_idx, index, native_logits, torch.stack(predicted, dim=1))

    def known_classes(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Leave out samples of classes the model does not know; relabel to shared classes."""
        if self.all_columns:
            return batch
        mapped = self.label_map[batch["label"]]
        keep = mapped >= 0
        return {
            **{k: v[keep] for k, v in batch.items() if torch.is_tensor(v) and len(v) == len(keep)},
            "label": mapped[keep],
        }

    def _keep(
        self, split_id: int, index: torch.Tensor, logits: torch.Tensor, predicted: torch.Tensor
    ) -> None:
        """Keep the native probabilities and every point's predicted class on the device.

        Read back once, at the epoch's end; the predictions at every point give the per-video
        confusion matrices (:mod:`fer_multires.uncertainty`).
        """
        self._rows.append(
            {
                "split": torch.full_like(index, split_id, dtype=torch.int8),
                "index": index.long(),
                "predicted": predicted.to(torch.int16),
                "probs": F.softmax(logits, dim=1).float(),
            }
        )

    def _local_rows(self) -> dict[str, np.ndarray]:
        num_classes = len(self.logit_columns)
        empty = {
            "split": np.zeros(0, np.int8),
            "index": np.zeros(0, np.int64),
            "predicted": np.zeros((0, len(self.points)), np.int16),
            "probs": np.zeros((0, num_classes), np.float32),
        }
        if not self._rows:
            return empty
        return {
            key: torch.cat([r[key] for r in self._rows]).cpu().numpy().astype(like.dtype)
            for key, like in empty.items()
        }

    def on_test_epoch_end(self) -> None:
        """Sync the metrics, gather the predictions on rank 0, and save them there."""
        confusion = torch.stack(
            [
                torch.stack(
                    [
                        self.scores[metric_key(split, i)].compute()["confusion"]
                        for i in range(len(self.points))
                    ]
                )
                for split in VAL_LOADERS
            ]
        )
        skipped = torch.stack([self.skipped[split].total() for split in VAL_LOADERS])
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
