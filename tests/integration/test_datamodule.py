from __future__ import annotations

from pathlib import Path

import torch
from unit.test_datamodule import (
    batches,
    datamodule,
    image_tree,  # noqa: F401 (fixtures)
)


def test_fast_path_batch_carries_the_reference_draws(image_tree: Path) -> None:
    dm = datamodule(image_tree)
    # its loaders let the dataset make each batch (decoded in place, drawn at once)
    assert dm.train_dataloader().dataset.fetch_batches
    assert dm.eval_dataloader("val_rest").dataset.fetch_batches
    (batch, *_) = batches(dm, epoch=3)
    assert batch["image"].dtype == torch.uint8 and batch["image"].is_contiguous()
    assert batch["image"].shape == (4, 3, 24, 24)
    for key in ("label", "index", "resolution", "crop_top", "crop_left"):
        assert batch[key].dtype == torch.int64, key
    assert batch["grayscale"].dtype == batch["valid"].dtype == torch.bool
    for k, index in enumerate(batch["index"].tolist()):
        draws = dm.transforms.train.draw(3, index, 24, 24)  # what the reference path applies
        assert batch["resolution"][k] == draws.resolution
        assert batch["crop_top"][k] == draws.crop_top and batch["crop_left"][k] == draws.crop_left
        assert bool(batch["grayscale"][k]) == draws.grayscale
    assert dm.batch_transform.train(batch["image"], batch).shape == (4, 3, 24, 24)
