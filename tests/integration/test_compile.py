"""model.compile: compiled and eager models agree, and checkpoints load either way (CPU).

The fast tests compile with the ``aot_eager`` backend (TorchDynamo graph capture and AOT autograd,
eager kernels: seconds); the one that generates kernels with ``inductor`` takes minutes on a
loaded 2-core CPU and is marked slow.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from unit.test_compile import Batches, module

from fer_multires.models.module import FERModule

SIZE, BATCH = 32, 4


def fit(model: FERModule, root, steps: int, ckpt_path=None) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, default_root_dir=root, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=1, val_check_interval=steps,
    )  # fmt: skip
    val = DataLoader(Batches(BATCH, seed=1), batch_size=BATCH)
    trainer.fit(
        model,
        train_dataloaders=DataLoader(Batches(BATCH * 4), batch_size=BATCH, drop_last=True),
        val_dataloaders=[val, val],
        ckpt_path=ckpt_path,
    )
    return trainer


def test_compiled_training_step_matches_eager(one_torch_thread) -> None:
    eager, compiled = module(False), module(True)
    compiled.compile_backbone()
    keys = list(eager.state_dict())
    batch = Batches(BATCH)[0:BATCH]
    for m in (eager, compiled):
        F.cross_entropy(m(batch["image"]), batch["label"]).backward()
    torch.testing.assert_close(compiled(batch["image"]), eager(batch["image"]), atol=1e-5, rtol=0)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert list(compiled.state_dict()) == keys
    assert not any("_orig_mod" in key for key in keys)


def test_checkpoints_load_compiled_and_eager(tmp_path, one_torch_thread) -> None:
    compiled = module(True)
    trainer = fit(compiled, tmp_path / "compiled", steps=1)
    assert compiled.compiled and compiled.model._compiled_call_impl is not None
    saved = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(saved)
    state = torch.load(saved, weights_only=False)["state_dict"]
    assert not any("_orig_mod" in key for key in state)
    eager = FERModule.load_from_checkpoint(saved, compile=False)
    assert not eager.compiled
    for key, value in compiled.state_dict().items():
        torch.testing.assert_close(eager.state_dict()[key], value, atol=0, rtol=0, msg=key)
    # Resume the compiled run eagerly, and an eager checkpoint compiled: both continue.
    trainer = fit(eager, tmp_path / "eager", steps=2, ckpt_path=saved)
    assert trainer.global_step == 2
    saved = tmp_path / "eager.ckpt"
    trainer.save_checkpoint(saved)
    again = module(True)
    trainer = fit(again, tmp_path / "again", steps=3, ckpt_path=saved)
    assert again.compiled and trainer.global_step == 3
    score = trainer.callback_metrics["val_full/score"]
    assert 0 <= float(score) <= 1 and float(trainer.callback_metrics["val_full/n"]) == 2 * BATCH
