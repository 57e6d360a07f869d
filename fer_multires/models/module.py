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
from fer_multires.metrics import ChallengeScore, SampleCount, metrics_from_confusion
from fer_multires.models.backbone import create_backbone
from fer_multires.results import VAL_LOADERS
from fer_multires.task_losses import au_bce_loss, ccc_loss, masked_cross_entropy
from fer_multires.task_metrics import (
    ActionUnitScore,
    ConcordanceScore,
    au_metrics_from_counts,
    mtl_score,
    va_metrics_from_sums,
)
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, head_slices, num_outputs
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
        task: ``expr``, ``va``, ``au`` or ``mtl`` (:mod:`fer_multires.tasks`): the heads trained,
            side by side on one output layer (:func:`~fer_multires.tasks.head_slices`).
        au_pos_weights: the action-unit loss's weight of each AU's positives, or None.
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
        task: str = DEFAULT_TASK,
        au_pos_weights: Sequence[float] | None = None,
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
        self.task = task
        self.heads = tuple(TASK_HEADS[task])
        self.slices = head_slices(task, num_classes)
        self.model = create_backbone(backbone, num_outputs(task, num_classes), pretrained)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        weights = torch.ones(num_classes) if class_weights is None else torch.tensor(class_weights)
        self.register_buffer("loss_weights", weights.float())
        positives = (
            torch.ones(len(AU_NAMES)) if au_pos_weights is None else torch.tensor(au_pos_weights)
        )
        self.register_buffer("au_pos_weights", positives.float(), persistent=False)
        self.class_names = tuple(class_names)
        self.val_metrics = nn.ModuleDict(
            {name: ChallengeScore(num_classes) for name in VAL_LOADERS}
        )
        self.va_metrics = nn.ModuleDict({name: ConcordanceScore() for name in VAL_LOADERS})
        self.au_metrics = nn.ModuleDict({name: ActionUnitScore() for name in VAL_LOADERS})
        # "fit", not "train": a ModuleDict key may not shadow nn.Module.train.
        self.skipped = nn.ModuleDict({n: SampleCount() for n in ("fit", *VAL_LOADERS)})
        self.read = nn.ModuleDict({n: SampleCount() for n in VAL_LOADERS})
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
        """Return the output layer for a batch of normalised images ``(N, 3, H, W)``.

        For ``task=expr``, the class logits; otherwise every head's outputs side by side
        (:meth:`split_heads`).
        """
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def split_heads(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return each head's part of the output layer.

        Expression and AU logits as they are; valence and arousal in [-1, 1] (``tanh``).
        """
        heads = {head: outputs[:, part] for head, part in self.slices.items()}
        if "va" in heads:
            heads["va"] = torch.tanh(heads["va"])
        return heads

    def _readable_part(
        self, batch: dict[str, torch.Tensor], split: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the images and targets (per head) of the readable samples; count the others."""
        images, targets, unreadable = readable_samples(batch)
        self.skipped[split].add(unreadable)
        return images, targets

    def task_loss(self, outputs: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss: the sum of its heads' losses, each over the frames it has a label for.

        ``expr``: cross-entropy weighted per class (``model.class_weights``); ``va``: 1 - mean
        CCC (:func:`~fer_multires.task_losses.ccc_loss`); ``au``: binary cross-entropy with
        each AU's positives weighted (``au_pos_weights``).
        """
        if self.task == "expr":  # every frame has its label
            return F.cross_entropy(outputs, targets["expr"], weight=self.loss_weights)
        heads = self.split_heads(outputs)
        losses = {
            "expr": lambda: masked_cross_entropy(heads["expr"], targets["expr"], self.loss_weights),
            "va": lambda: ccc_loss(heads["va"], targets["va"]),
            "au": lambda: au_bce_loss(heads["au"], targets["au"], self.au_pos_weights),
        }
        return sum((losses[head]() for head in self.heads), outputs.new_zeros(()))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The task's loss on one batch (class-weighted cross-entropy for expressions)."""
        images, targets = self._readable_part(batch, "fit")
        loss = self.task_loss(self(images), targets)
        size = len(images)
        # Loggers read the step loss every log_every_n_steps; the progress bar would read it
        # (a host sync) at every step, so it shows the epoch mean.
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=size)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, logger=False,
                 batch_size=size)  # fmt: skip
        return loss

    def on_train_epoch_end(self) -> None:
        """Log how many training images were skipped as unreadable this epoch."""
        self.log("train/skipped_images", self.skipped["fit"].total())

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Accumulate the metrics of ``val_select`` (idx 0) or ``val_rest`` (idx 1), per head."""
        split = VAL_LOADERS[dataloader_idx]
        images, targets = self._readable_part(batch, split)
        self.read[split].add(len(images))
        if not len(images):
            return
        heads = self.split_heads(self(images))
        if "expr" in heads:
            self.val_metrics[split].update(heads["expr"], targets["expr"])
        if "va" in heads:
            self.va_metrics[split].update(heads["va"], targets["va"])
        if "au" in heads:
            self.au_metrics[split].update(torch.sigmoid(heads["au"].float()), targets["au"])

    def on_validation_epoch_end(self) -> None:
        """Log ``val_select``, ``val_rest`` and ``val_full`` metrics, synced across processes.

        Every head's states (confusion matrix, VA sums, AU counts) of ``val_full`` are the sums of
        the two loaders'. ``<split>/score`` is the task's score, which the best checkpoint is
        chosen on: the challenge score (``expr``), the mean CCC (``va``), the mean AU F1 at 0.5
        (``au``), or their multi-task sum (``mtl``, :func:`~fer_multires.task_metrics.mtl_score`).
        """
        skipped = sum(float(self.skipped[split].total()) for split in VAL_LOADERS)
        read = sum(float(self.read[split].total()) for split in VAL_LOADERS)
        self._check_samples_read(read, skipped)
        for split, scores in self._split_scores().items():
            for name, value in scores.items():
                self.log(f"{split}/{name}", value.float(), prog_bar=name == "score")
        self.log("val_full/skipped_images", skipped)

    def _split_scores(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every head's metrics of each split (``val_full``: the per-head details too)."""
        states: dict[str, dict[str, Any]] = {split: {} for split in VAL_LOADERS}
        for split in VAL_LOADERS:
            for head, metrics, key in (("expr", self.val_metrics, "confusion"),
                                       ("va", self.va_metrics, "sums"),
                                       ("au", self.au_metrics, "counts")):  # fmt: skip
                if head in self.heads:
                    states[split][head] = metrics[split].compute()[key]
                metrics[split].reset()
        states["val_full"] = {
            h: states["val_select"][h] + states["val_rest"][h] for h in self.heads
        }
        return {
            split: self._head_scores(state, split == "val_full") for split, state in states.items()
        }

    def _head_scores(self, state: dict[str, Any], details: bool) -> dict[str, torch.Tensor]:
        """The logged metrics of one split from its heads' states."""
        scores: dict[str, torch.Tensor] = {}
        if "expr" in state:
            results = metrics_from_confusion(state["expr"])
            scores |= {name: results[name] for name in SUMMARY_METRICS}
            if details:
                scores |= {
                    f"f1_{c}": f1
                    for c, f1 in zip(self.class_names, results["f1_per_class"], strict=True)
                }
                scores["n"] = results["n"]
        if "va" in state:
            va = va_metrics_from_sums(state["va"])
            scores |= {
                name: torch.as_tensor(va[name])
                for name in ("ccc_valence", "ccc_arousal", "va_score")
            }
        if "au" in state:
            au = au_metrics_from_counts(state["au"])
            scores["au_score"] = torch.as_tensor(au["au_score"])
            if details:
                scores |= {f"f1_{name}": torch.as_tensor(au[f"f1_{name}"]) for name in AU_NAMES}
        scores["score"] = self._task_score(scores)
        return scores

    def _task_score(self, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's one score (:meth:`on_validation_epoch_end`)."""
        if self.task == "expr":
            return scores["score"]
        if self.task == "va":
            return scores["va_score"]
        if self.task == "au":
            return scores["au_score"]
        return torch.as_tensor(mtl_score(scores["ccc_valence"], scores["ccc_arousal"],
                                         scores["f1"], scores["au_score"]))  # fmt: skip

    def _check_samples_read(self, read: float, skipped: float) -> None:
        """Refuse a validation in which no sample was read: a model chosen on nothing.

        Raises:
            RuntimeError: when every validation image was skipped as unreadable (not in the
                sanity check, which reads only the first batches).
        """
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        if read == 0:
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
