"""The LightningModule: SE-ResNet classifier, class-weighted loss, Adam groups, exact metrics.

Validation runs two loaders, ``val_select`` and ``val_rest`` (see the data module). Each has a
:class:`~fer_multires.metrics.ChallengeScore` whose confusion matrix is summed across processes;
``val_full`` metrics come from the sum of the two matrices, exactly as if the whole validation
split had been run, without reading any frame twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn import functional as F
from torchmetrics import SumMetric

from fer_multires.data.datasets import readable_part
from fer_multires.metrics import ChallengeScore, metrics_from_confusion
from fer_multires.models.backbone import create_backbone
from fer_multires.results import VAL_LOADERS

log = logging.getLogger(__name__)

#: Names of the logged challenge metrics of each validation split.
SUMMARY_METRICS: tuple[str, ...] = ("acc", "f1", "score")


class FERModule(LightningModule):
    """Facial-expression classifier trained with the paper's recipe.

    Args:
        backbone: timm model name (``seresnet50`` for the paper, ``seresnet18`` for CPU demos).
        num_classes: number of expression classes (7 or 8, from the data).
        class_names: class names in label order (for per-class metric names).
        pretrained: local weights file (timm state dict or VGGFace2 ``.pkl``), or None.
        class_weights: per-class loss weights, or None for an unweighted loss.
        optimizer: a partial optimizer (Hydra ``_partial_: true``), called with the parameter
            groups; defaults to Adam.
        head_lr: learning rate of the classifier head.
        backbone_lr: learning rate of everything else.
        weight_decay: weight decay of both groups.
        scheduler: a partial LR scheduler called with the optimizer, or None.
        channels_last: run the model in channels-last memory format (faster on GPUs).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        class_names: Sequence[str],
        pretrained: str | None = None,
        class_weights: Sequence[float] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        head_lr: float = 1e-3,
        backbone_lr: float = 1e-4,
        weight_decay: float = 1e-4,
        scheduler: Callable[..., Any] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(
                f"model.class_weights has {len(class_weights)} values for {num_classes} classes"
            )
        # The weights file is needed only to initialise; a checkpoint already holds the weights.
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "pretrained"])
        self.model = create_backbone(backbone, num_classes, pretrained)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        weights = torch.ones(num_classes) if class_weights is None else torch.tensor(class_weights)
        self.register_buffer("loss_weights", weights.float())
        self.class_names = tuple(class_names)
        self.val_metrics = nn.ModuleDict(
            {name: ChallengeScore(num_classes) for name in VAL_LOADERS}
        )
        # "fit", not "train": a ModuleDict key may not shadow nn.Module.train.
        self.skipped = nn.ModuleDict({name: SumMetric() for name in ("fit", *VAL_LOADERS)})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of normalised images ``(N, 3, H, W)``."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _readable_part(
        self, batch: dict[str, torch.Tensor], split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the images and labels of the readable samples; count the others."""
        images, labels, _, dropped = readable_part(batch)
        self.skipped[split].update(dropped)
        return images, labels

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class-weighted cross-entropy on one batch."""
        images, labels = self._readable_part(batch, "fit")
        logits = self(images)
        loss = F.cross_entropy(logits, labels, weight=self.loss_weights)
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(labels)
        )
        return loss

    def on_train_epoch_end(self) -> None:
        """Log how many training images were skipped as unreadable this epoch."""
        self.log("train/skipped_images", self.skipped["fit"].compute())
        self.skipped["fit"].reset()

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Accumulate the confusion matrix of ``val_select`` (idx 0) or ``val_rest`` (idx 1)."""
        split = VAL_LOADERS[dataloader_idx]
        images, labels = self._readable_part(batch, split)
        if len(labels):
            self.val_metrics[split].update(self(images), labels)

    def on_validation_epoch_end(self) -> None:
        """Log ``val_select``, ``val_rest`` and ``val_full`` metrics, synced across processes."""
        confusions = {}
        skipped = 0.0
        for split in VAL_LOADERS:
            confusions[split] = self.val_metrics[split].compute()["confusion"]
            skipped += float(self.skipped[split].compute())
            self.val_metrics[split].reset()
            self.skipped[split].reset()
        confusions["val_full"] = sum(confusions.values())
        for split, confusion in confusions.items():
            results = metrics_from_confusion(confusion)
            for name in SUMMARY_METRICS:
                self.log(f"{split}/{name}", results[name].float(), prog_bar=name == "score")
            if split == "val_full":
                for class_name, f1 in zip(self.class_names, results["f1_per_class"], strict=True):
                    self.log(f"val_full/f1_{class_name}", f1.float())
                self.log("val_full/n", results["n"].float())
        self.log("val_full/skipped_images", skipped)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (or the configured optimizer) with named ``head`` and ``backbone`` groups."""
        head = list(self.model.get_classifier().parameters())
        head_ids = {id(p) for p in head}
        body = [p for p in self.model.parameters() if id(p) not in head_ids]
        groups = [
            {"params": body, "lr": self.hparams.backbone_lr, "name": "backbone"},
            {"params": head, "lr": self.hparams.head_lr, "name": "head"},
        ]
        factory = self.optimizer_factory or torch.optim.Adam
        optimizer = factory(groups, weight_decay=self.hparams.weight_decay)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
