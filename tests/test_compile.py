"""model.compile: compiled and eager models agree, and checkpoints load either way (CPU).

The fast tests compile with the ``aot_eager`` backend (TorchDynamo graph capture and AOT autograd,
eager kernels: seconds); the one that generates kernels with ``inductor`` takes minutes on a
loaded 2-core CPU and is marked slow.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.models.module import FERModule
from fer_multires.utils.checkpoints import strip_compile_prefix

SIZE, BATCH = 32, 4
#: Compiled logits within this of the eager ones (float32; inductor fuses and reorders sums).
ATOL = RTOL = 1e-4


class Batches(Dataset):
    """Normalised images with labels, as the data module delivers them."""

    def __init__(self, count: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(count, 3, SIZE, SIZE, generator=generator)
        self.labels = torch.randint(0, 7, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i, "valid": True}


def module(compile: bool, backend: str = "aot_eager") -> FERModule:
    torch.manual_seed(0)
    return FERModule(
        "seresnet18", 7, EXPRESSIONS_7, compile=compile, compile_backend=backend
    )  # fmt: skip


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


def test_checkpoint_of_a_torch_compile_wrapper_loads(one_torch_thread) -> None:
    source = module(False)
    wrapped = torch.compile(source.model)  # OptimizedModule: keys under _orig_mod.
    state = {f"model.{k}": v for k, v in wrapped.state_dict().items()}
    state["loss_weights"] = source.loss_weights
    assert any(key.startswith("model._orig_mod.") for key in state)
    target = FERModule("seresnet18", 7, EXPRESSIONS_7)
    checkpoint = {"state_dict": state}
    target.on_load_checkpoint(checkpoint)
    target.load_state_dict(checkpoint["state_dict"])
    assert strip_compile_prefix(target.state_dict()).keys() == target.state_dict().keys()
    torch.testing.assert_close(target.model.conv1.weight, source.model.conv1.weight)


def test_bad_compile_mode_names_the_key() -> None:
    with pytest.raises(ValueError, match="model.compile_mode='fastest'"):
        FERModule("seresnet18", 7, EXPRESSIONS_7, compile=True, compile_mode="fastest")


@pytest.mark.slow
def test_inductor_logits_match_eager(one_torch_thread) -> None:
    """The real compiler: minutes on 2 loaded cores (147 s measured), so not in `make test`."""
    eager, compiled = module(False).eval(), module(True, backend="inductor").eval()
    compiled.compile_backbone()
    images = Batches(BATCH)[0:BATCH]["image"]
    with torch.no_grad():
        torch.testing.assert_close(compiled(images), eager(images), atol=ATOL, rtol=RTOL)


def test_evaluation_compiles_as_trained_unless_eval_compile_says_otherwise(tmp_path) -> None:
    # eval.compile: null follows the model's model.compile; true or false overrides it
    from fer_multires.data.batch_transforms import BatchTransform
    from fer_multires.data.transforms import Normalize
    from fer_multires.evaluation.module import EvalModule

    transform = BatchTransform(SIZE, SIZE, Normalize())
    for trained, setting, expected in (
        (True, None, True), (True, False, False), (False, None, False), (False, True, True)
    ):  # fmt: skip
        model = module(trained)
        EvalModule(model, transform, [8], tmp_path, compile=setting).configure_model()
        assert model.compiled is expected, (trained, setting)
