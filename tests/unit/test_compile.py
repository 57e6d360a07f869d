"""model.compile: compiled and eager models agree, and checkpoints load either way (CPU).

The fast tests compile with the ``aot_eager`` backend (TorchDynamo graph capture and AOT autograd,
eager kernels: seconds); the one that generates kernels with ``inductor`` takes minutes on a
loaded 2-core CPU and is marked slow.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

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
