"""RAF-DB, FER2013, FERPlus, AffectNet and image folders: readers and the data module.

Every dataset is generated in its real layout (fer_multires.data.synthetic.image_sets), quirks
included, and read back.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from unit.test_image_datasets import (
    LAYOUTS,
    SMALL,
    generated,  # noqa: F401 (fixtures)
)

from fer_multires.data.datamodule import FERDataModule
from fer_multires.data.labels import EXPRESSIONS_CONTEMPT


@pytest.mark.parametrize(("layout", "dataset", "options"), LAYOUTS)
@pytest.mark.parametrize("augment_on", ["device", "cpu"])
def test_data_module_batches_every_dataset(generated, layout, dataset, options, augment_on) -> None:
    dm = FERDataModule(root=generated[layout]["root"], dataset=dataset, augment_on=augment_on,
                       image_size=64 if dataset == "affectnet" else None, **SMALL)  # fmt: skip
    dm.setup()
    val = dm.splits["val_full"]
    select, rest = dm.splits["val_select"], dm.splits["val_rest"]
    assert len(select) + len(rest) == len(val) and len(select) == round(0.3 * len(val))
    assert not set(select.paths.tolist()) & set(rest.paths.tolist())
    batch = next(iter(dm.train_dataloader()))
    images = (
        dm.batch_transform.train(batch["image"], batch)
        if augment_on == "device"
        else batch["image"]
    )
    assert images.shape == (4, 3, 24, 24) and images.dtype == torch.float32
    eval_batch = next(iter(dm.eval_dataloader("val_rest")))
    assert eval_batch["label"].max() < dm.num_classes
    assert ("test" in dm.splits) == (dataset in ("fer2013", "ferplus"))


def test_stats_cli_writes_the_same_shape_for_an_image_dataset(generated, tmp_path) -> None:
    out = tmp_path / "stats.json"
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.stats", "data=ferplus",
         f"data.root={generated['ferplus']['root']}", f"stats.json={out}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    assert stats["dataset"] == "ferplus" and stats["classes"] == list(EXPRESSIONS_CONTEMPT)
    assert set(stats["splits"]) == {"train", "val", "test"}
    train = stats["splits"]["train"]
    assert train["frames"] == sum(train["per_class"]) == 17 and train["videos"] is None
    assert train["skipped"] == {"not_face": 2, "unknown": 3, "contempt": 0}
    assert stats["skipped"] == {"not_face": 6, "unknown": 9, "contempt": 0}
    assert len(stats["class_weights"]) == 8
    assert "Samples per class (ferplus: fer2013new)" in result.stdout
