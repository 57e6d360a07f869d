"""The LightningModule: SE-ResNet classifier, class-weighted loss, Adam groups, exact metrics.

Validation runs two loaders, ``val_select`` and ``val_rest`` (see the data module). Each has a
:class:`~fer_multires.metrics.ChallengeScore` whose confusion matrix is summed across processes;
``val_full`` metrics come from the sum of the two matrices, exactly as if the whole validation
split had been run, without reading any frame twice.

No step waits for the device (on a GPU, a host sync stalls the queue of kernels): whether a batch
has unreadable samples is read from the host copy of ``valid`` before the transfer
(the data module's ``on_before_batch_transfer``), skip counts are Python integers summed
across processes once per epoch, and the step loss goes to the loggers every
``log_every_n_steps`` but not to the progress bar (Lightning turns each progress-bar value to a
float at every step).
``benchmarks/step_profile.py`` counts the syncs that remain.

``model.compile=true`` compiles the backbone with ``torch.compile`` (``nn.Module.compile``, in
place, so state-dict keys stay those of the eager model and checkpoints load either way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn import functional as F

from fer_multires.data.datasets import readable_samples
from fer_multires.metrics import ChallengeScore, UnreadableCount, metrics_from_confusion
from fer_multires.models.backbone import create_backbone
from fer_multires.results import VAL_LOADERS
from fer_multires.utils.checkpoints import strip_compile_prefix

log = logging.getLogger(__name__)

#: Names of the logged challenge metrics of each validation split.
SUMMARY_METRICS: tuple[str, ...] = ("acc", "f1", "score")
#: ``torch.compile`` modes accepted by ``model.compile_mode``.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_mode(mode: str) -> str:
    """Return ``mode`` if ``torch.compile`` accepts it.

    Raises:
        ValueError: naming ``model.compile_mode`` and the accepted modes.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"model.compile_mode={mode!r}: expected one of {', '.join(COMPILE_MODES)}")
    return mode


class FERModule(LightningModule):
    """Facial-expression classifier trained with the paper's recipe.

    Args:
        backbone: timm model name (``seresnet50`` for the paper, ``seresnet18`` for CPU demos).
        num_classes: number of expression classes (7 or 8, from the data).
        class_names: class names in label order (for per-class metric names).
        pretrained: local weights file (timm state dict or VGGFace2 ``.pkl``), a name in the
            Hugging Face cache (``timm:<model>.<tag>``, ``hf-hub:<org>/<repo>``), or None.
        class_weights: per-class loss weights, or None for an unweighted loss.
        optimizer: a partial optimizer (Hydra ``_partial_: true``), called with the parameter
            groups; defaults to Adam.
        head_lr: learning rate of the classifier head.
        backbone_lr: learning rate of everything else.
        weight_decay: weight decay of both groups.
        scheduler: a partial LR scheduler called with the optimizer, or None.
        channels_last: run the model in channels-last memory format (faster on GPUs).
        compile: compile the backbone with ``torch.compile`` when a ``Trainer`` starts
            (:meth:`configure_model`) or :meth:`compile_backbone` is called; plain use of a
            loaded module (predict, export) stays eager. Checkpoints are the same either way.
        compile_mode: the ``torch.compile`` mode: ``default`` (compiles fastest, any batch
            size), ``max-autotune-no-cudagraphs`` (longer compile, tuned kernels), or the CUDA
            graph modes ``reduce-overhead``/``max-autotune`` (for fixed shapes only).
        compile_backend: the ``torch.compile`` backend: ``inductor`` (generates kernels; the
            one that is faster), or ``aot_eager`` (graph capture and autograd tracing with eager
            kernels, compiles in seconds: for tests and for telling a compiler bug from a model
            bug). ``compile_mode`` applies to ``inductor`` only.
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
        compile: bool = False,
        compile_mode: str = "default",
        compile_backend: str = "inductor",
    ) -> None:
        super().__init__()
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(
                f"model.class_weights has {len(class_weights)} values for {num_classes} classes"
            )
        check_compile_mode(compile_mode)
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
        self.skipped = nn.ModuleDict({n: UnreadableCount() for n in ("fit", *VAL_LOADERS)})
        self.compiled = False

    def configure_model(self) -> None:
        """Lightning hook, in each process before the run: compile if ``compile`` is set."""
        if self.hparams.get("compile", False):
            self.compile_backbone()

    def compile_backbone(self, mode: str | None = None) -> None:
        """Compile the backbone in place (``nn.Module.compile``); again, a no-op.

        Compilation itself happens at the first batch of each new shape or mode (train/eval).
        """
        if self.compiled:
            return
        mode = check_compile_mode(mode or self.hparams.get("compile_mode", "default"))
        backend = self.hparams.get("compile_backend", "inductor")
        options = {"mode": mode} if backend == "inductor" else {}
        self.model.compile(backend=backend, **options)
        self.compiled = True
        log.info("backbone compiled: torch.compile(backend=%r, %s)", backend, options)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save eager state-dict keys, whatever wrapped the model."""
        checkpoint["state_dict"] = strip_compile_prefix(checkpoint["state_dict"])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Accept checkpoints of a ``torch.compile``-wrapped model (``_orig_mod.`` keys)."""
        checkpoint["state_dict"] = strip_compile_prefix(checkpoint["state_dict"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of normalised images ``(N, 3, H, W)``."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _readable_part(
        self, batch: dict[str, torch.Tensor], split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the images and labels of the readable samples; count the others."""
        images, labels, _, unreadable = readable_samples(batch)
        self.skipped[split].add(unreadable)
        return images, labels

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class-weighted cross-entropy on one batch."""
        images, labels = self._readable_part(batch, "fit")
        logits = self(images)
        loss = F.cross_entropy(logits, labels, weight=self.loss_weights)
        # Loggers read the step loss every log_every_n_steps; the progress bar would read it
        # (a host sync) at every step, so it shows the epoch mean.
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(labels))
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, logger=False,
                 batch_size=len(labels))  # fmt: skip
        return loss

    def on_train_epoch_end(self) -> None:
        """Log how many training images were skipped as unreadable this epoch."""
        self.log("train/skipped_images", self.skipped["fit"].total())

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
            skipped += float(self.skipped[split].total())
            self.val_metrics[split].reset()
        confusions["val_full"] = sum(confusions.values())
        self._check_samples_read(confusions["val_full"], skipped)
        for split, confusion in confusions.items():
            results = metrics_from_confusion(confusion)
            for name in SUMMARY_METRICS:
                self.log(f"{split}/{name}", results[name].float(), prog_bar=name == "score")
            if split == "val_full":
                for class_name, f1 in zip(self.class_names, results["f1_per_class"], strict=True):
                    self.log(f"val_full/f1_{class_name}", f1.float())
                self.log("val_full/n", results["n"].float())
        self.log("val_full/skipped_images", skipped)

    def _check_samples_read(self, confusion: torch.Tensor, skipped: float) -> None:
        """Refuse a validation in which no sample was read: a model chosen on nothing.

        Raises:
            RuntimeError: when every validation image was skipped as unreadable (not in the
                sanity check, which reads only the first batches).
        """
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        if int(confusion.sum()) == 0:  # one host sync per validation
            raise RuntimeError(
                f"val_full: none of its images could be read ({skipped:.0f} skipped as unreadable "
                "under data.on_bad_image=skip; the log names each file): there is nothing to "
                "measure or to select a model on"
            )

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
