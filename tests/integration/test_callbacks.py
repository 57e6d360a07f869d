"""The checkpoint callbacks of ``conf/callbacks/default.yaml`` against Lightning's behaviour."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, TensorDataset

from fer_multires.train import best_checkpoint, instantiate_all, without_logging_callbacks
from fer_multires.utils.config import CONFIG_DIR


class ConstantScoreModel(pl.LightningModule):
    """A linear model whose validation score never improves after the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        (x,) = batch
        return self.layer(x).sum()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_select/score", 0.5)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def default_callbacks(run_dir: Path) -> list[pl.Callback]:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=demo", f"paths.output_dir={run_dir}"])
    # no logger here, so no learning-rate monitor
    return without_logging_callbacks(instantiate_all(cfg.callbacks), [])


def fit(run_dir: Path, max_epochs: int, ckpt_path: str | None = None) -> list[pl.Callback]:
    callbacks = default_callbacks(run_dir)
    trainer = pl.Trainer(
        max_epochs=max_epochs, callbacks=callbacks, logger=False, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    data = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
    trainer.fit(ConstantScoreModel(), data, data, ckpt_path=ckpt_path)
    return callbacks


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_last_checkpoint_holds_the_last_epoch_when_the_score_does_not_improve(tmp_path) -> None:
    """Lightning >= 2.6 only refreshes ``save_last`` when a top-k checkpoint is saved too."""
    callbacks = fit(tmp_path, max_epochs=3)
    last = load(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 6)
    # the best checkpoint is still the first epoch's (later ties are not better)
    assert best_checkpoint(callbacks) == str(tmp_path / "checkpoints" / "best_epoch000.ckpt")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best_epoch000.ckpt",
        "last.ckpt",
    ]


def test_resumed_run_keeps_refreshing_last_checkpoint(tmp_path) -> None:
    fit(tmp_path, max_epochs=1)
    callbacks = fit(tmp_path, max_epochs=3, ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    last = load(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 6)
    assert best_checkpoint(callbacks) == str(tmp_path / "checkpoints" / "best_epoch000.ckpt")
    assert not list((tmp_path / "checkpoints").glob("last-v*.ckpt"))
