"""The Lightning side of an evaluation: every resolution of each batch, one metric per pair.

Exact on any number of processes: the data module partitions the loaders across processes without
padding, each (split, resolution) has one metric per head of the model's task, whose state is
summed across processes (:class:`~fer_multires.metrics.ChallengeScore`'s confusion matrix,
:class:`~fer_multires.task_metrics.ConcordanceScore`'s float64 sums,
:class:`~fer_multires.task_metrics.ActionUnitScore`'s integer counts at every grid threshold),
and the predictions are gathered on global rank 0, where the per-video statistics are computed
from them: the predicted class at every point and the native probabilities (expressions), the
valence and arousal at every point (VA), and each AU's probability at native resolution with
its step on the threshold grid at every point (``floor(32 p)``: ``p >= k/32`` exactly when the
step is ``>= k``, so the per-video counts at any grid threshold are those of the metric).

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
from fer_multires.task_metrics import AU_THRESHOLD_STEPS, ActionUnitScore, ConcordanceScore
from fer_multires.tasks import AU_NAMES, EXPR_MISSING, VA_NAMES
from fer_multires.utils.io import save_npz_atomic

#: Hidden file in which global rank 0 hands the gathered results to the main process. Its
#: arrays: ``skipped`` (per loader), the rows ``split``, ``index``; with an expression head
#: ``confusion`` ``(2, P, C, C)``, ``predicted`` ``(N, P)``, ``probs`` ``(N, C)``; with a VA
#: head ``va_sums`` ``(2, P, 2, 6)``, ``va_predicted`` ``(N, P, 2)``; with an AU head
#: ``au_tp``, ``au_fp``, ``au_fn`` ``(2, P, T, 12)``, ``au_steps`` ``(N, P, 12)`` and
#: ``au_probs`` ``(N, 12)``.
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
    """Runs a model on every degradation of each batch; one metric per (split, point, head).

    Run with ``trainer.test(module, datamodule=...)``: the data module's test loaders are
    ``val_select`` and ``val_rest`` (:data:`VAL_LOADERS`) as uint8 images at their native size,
    partitioned across processes without padding. At the end of the test epoch, the metrics'
    states (summed across processes) and the rows' predictions (gathered from every process) are
    saved by global rank 0 to ``<output_dir>/.eval_raw.npz`` (:data:`RAW_RESULTS`) for
    :func:`~fer_multires.evaluation.assembly.load_raw_results`.

    The heads are the model's task's (``model.heads``). With an expression head, samples of a
    class the model does not know (``match``, cross-dataset evaluation) are left out before
    anything else, and the prediction is the argmax over the shared classes' logits; frames
    without an expression (multi-task, :data:`~fer_multires.tasks.EXPR_MISSING`) stay, left out
    of the expression metrics only. Valence and arousal are the head's ``tanh`` outputs, AU
    probabilities the sigmoid of its logits, both in float32.

    Args:
        model: the trained model.
        batch_transform: the data module's batched eval pipeline (degrade, resize, crop,
            normalise), applied here on the device at each resolution.
        resolutions: the degraded resolutions; the native one is evaluated first.
        output_dir: where rank 0 saves the raw results.
        kernels: the degradations (see :data:`~fer_multires.data.batch_transforms.DEGRADATIONS`)
            applied at each resolution.
        jpeg_quality: the JPEG quality of the ``jpeg`` degradation.
        match: the model's classes matched with the data's (default: the same classes);
            ignored without an expression head.
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
        self.heads = tuple(model.heads)
        keys = [metric_key(split, i) for split in VAL_LOADERS for i in range(len(self.points))]
        num_classes = 0
        if "expr" in self.heads:
            match = match or match_classes(model.class_names, model.class_names)
            self.register_buffer("label_map", torch.from_numpy(match.label_map), persistent=False)
            self.register_buffer(
                "logit_columns", torch.from_numpy(match.logit_columns), persistent=False
            )
            self.all_columns = match.is_identity
            num_classes = len(match.shared)
        self.num_classes = num_classes
        self.scores = nn.ModuleDict(
            {key: ChallengeScore(num_classes) for key in keys if "expr" in self.heads}
        )
        self.va_scores = nn.ModuleDict(
            {key: ConcordanceScore() for key in keys if "va" in self.heads}
        )
        self.au_scores = nn.ModuleDict(
            {key: ActionUnitScore() for key in keys if "au" in self.heads}
        )
        self.compile = model.hparams.get("compile", False) if compile is None else compile
        self.skipped = nn.ModuleDict({split: SampleCount() for split in VAL_LOADERS})
        self._rows: list[dict[str, torch.Tensor]] = []

    def configure_model(self) -> None:
        """Lightning hook before the test: compile the backbone if asked to (idempotent)."""
        if self.compile:
            self.model.compile_backbone()

    def metrics(self) -> list[nn.Module]:
        """Every metric this module updates."""
        return [*self.scores.values(), *self.va_scores.values(), *self.au_scores.values(),
                *self.skipped.values()]  # fmt: skip

    def on_test_epoch_start(self) -> None:
        """Start from empty metrics and no kept predictions."""
        for metric in self.metrics():
            metric.reset()
        self._rows = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        """Score one uint8 batch at every point, every head; keep the rows' predictions."""
        split = VAL_LOADERS[dataloader_idx]
        images, targets, dropped = readable_samples(self.known_classes(batch))
        index = targets["index"]
        self.skipped[split].add(dropped)
        if not len(index):
            return
        kept: dict[str, list[torch.Tensor]] = {head: [] for head in self.heads}
        row: dict[str, torch.Tensor] = {}
        for i, (kernel, resolution) in enumerate(self.points):
            x = self.batch_transform.eval(
                images, resolution, kernel or TRAINING_KERNEL, self.jpeg_quality
            )
            heads = self.model.split_heads(self.model(x).float())
            key = metric_key(split, i)
            if "expr" in heads:
                logits = heads["expr"] if self.all_columns else heads["expr"][:, self.logit_columns]
                self.scores[key].update(logits, targets["expr"])
                kept["expr"].append(logits.argmax(dim=1))
                if resolution is None:
                    row["probs"] = F.softmax(logits, dim=1).float()
            if "va" in heads:
                self.va_scores[key].update(heads["va"], targets["va"])
                kept["va"].append(heads["va"])
            if "au" in heads:
                probs = torch.sigmoid(heads["au"])
                self.au_scores[key].update(probs, targets["au"])
                kept["au"].append((probs * AU_THRESHOLD_STEPS).floor().to(torch.int8))
                if resolution is None:
                    row["au_probs"] = probs
        if "expr" in kept:
            row["predicted"] = torch.stack(kept["expr"], dim=1).to(torch.int16)
        if "va" in kept:
            row["va_predicted"] = torch.stack(kept["va"], dim=1)
        if "au" in kept:
            row["au_steps"] = torch.stack(kept["au"], dim=1)
        self._keep(dataloader_idx, index, row)

    def known_classes(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Leave out samples of classes the model does not know; relabel to shared classes.

        Frames without an expression label keep it missing (-1), and stay.
        """
        if "expr" not in self.heads or self.all_columns:
            return batch
        label = batch["label"]
        missing = label == EXPR_MISSING
        mapped = torch.where(missing, EXPR_MISSING, self.label_map[label.clamp(min=0)])
        keep = (mapped >= 0) | missing
        return {
            **{k: v[keep] for k, v in batch.items() if torch.is_tensor(v) and len(v) == len(keep)},
            "label": mapped[keep],
        }

    def _keep(self, split_id: int, index: torch.Tensor, row: dict[str, torch.Tensor]) -> None:
        """Keep one batch's rows on the device: split, index and the heads' predictions.

        Read back once, at the epoch's end; they give the per-video statistics
        (:mod:`fer_multires.uncertainty`) and ``predictions.csv``.
        """
        self._rows.append(
            {"split": torch.full_like(index, split_id, dtype=torch.int8), "index": index.long(),
             **{key: value.float() if value.is_floating_point() else value
                for key, value in row.items()}}
        )  # fmt: skip

    def _empty_rows(self) -> dict[str, np.ndarray]:
        """The rows' arrays with no row: their names, dtypes and shapes."""
        points = len(self.points)
        empty = {"split": np.zeros(0, np.int8), "index": np.zeros(0, np.int64)}
        if "expr" in self.heads:
            empty["predicted"] = np.zeros((0, points), np.int16)
            empty["probs"] = np.zeros((0, self.num_classes), np.float32)
        if "va" in self.heads:
            empty["va_predicted"] = np.zeros((0, points, len(VA_NAMES)), np.float32)
        if "au" in self.heads:
            empty["au_steps"] = np.zeros((0, points, len(AU_NAMES)), np.int8)
            empty["au_probs"] = np.zeros((0, len(AU_NAMES)), np.float32)
        return empty

    def _local_rows(self) -> dict[str, np.ndarray]:
        empty = self._empty_rows()
        if not self._rows:
            return empty
        return {
            key: torch.cat([r[key] for r in self._rows]).cpu().numpy().astype(like.dtype)
            for key, like in empty.items()
        }

    def _summed_states(self) -> dict[str, np.ndarray]:
        """Every metric's state, summed across processes: ``(loader, point, ...)`` arrays."""

        def stacked(metrics: nn.ModuleDict, read: Any) -> torch.Tensor:
            return torch.stack([
                torch.stack([read(metrics[metric_key(split, i)].compute())
                             for i in range(len(self.points))])
                for split in VAL_LOADERS
            ])  # fmt: skip

        states: dict[str, np.ndarray] = {}
        if "expr" in self.heads:
            confusion = stacked(self.scores, lambda m: m["confusion"])
            states["confusion"] = confusion.cpu().numpy().astype(np.int64)
        if "va" in self.heads:
            sums = stacked(self.va_scores, lambda m: m["sums"])
            states["va_sums"] = sums.cpu().numpy().astype(np.float64)
        if "au" in self.heads:
            counts = [metrics.compute()["counts"] for metrics in self.au_scores.values()]
            shape = (len(VAL_LOADERS), len(self.points), *counts[0].tp.shape)
            for name in ("tp", "fp", "fn"):
                values = torch.stack([getattr(c, name) for c in counts]).cpu().numpy()
                states[f"au_{name}"] = values.astype(np.int64).reshape(shape)
        return states

    def on_test_epoch_end(self) -> None:
        """Sync the metrics, gather the predictions on rank 0, and save them there."""
        states = self._summed_states()
        skipped = torch.stack([self.skipped[split].total() for split in VAL_LOADERS])
        parts = gather_to_rank_zero(self._local_rows())
        if self.trainer.is_global_zero:
            rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
            save_npz_atomic(
                Path(self.output_dir) / RAW_RESULTS,
                **states,
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
