from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_tree
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch.utils.data import default_collate

from fer_multires.data.datamodule import FERDataModule, split_val_videos
from fer_multires.data.datasets import BadImageError, PartitionSampler, collate_samples
from fer_multires.data.synthetic import SyntheticSpec
from fer_multires.data.transforms import MultiResolution
from fer_multires.utils.config import CONFIG_DIR, instantiate


def datamodule(root: Path, **overrides) -> FERDataModule:
    settings = dict(
        root=str(root), batch_size=4, num_workers=0, resize_size=28, crop_size=24,
        multires=MultiResolution(p=0.8, min_res=4, max_res=24, sampling="uniform"),
        val_select_fraction=0.4, seed=3,
    )  # fmt: skip
    settings.update(overrides)
    dm = FERDataModule(**settings)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("images") / "d")


def test_splits_are_disjoint_by_video_and_cover_val(image_tree: Path) -> None:
    dm = datamodule(image_tree)
    splits = dm.splits
    assert set(splits["train"].video_names).isdisjoint(splits["val_full"].video_names)
    assert set(splits["val_select"].video_names).isdisjoint(splits["val_rest"].video_names)
    assert sorted(splits["val_select"].video_names + splits["val_rest"].video_names) == sorted(
        splits["val_full"].video_names
    )
    assert len(splits["val_select"]) + len(splits["val_rest"]) == len(splits["val_full"])
    assert len(splits["val_select"].video_names) == 2  # 40% of 5 videos


def test_val_select_is_stable_under_a_fixed_seed() -> None:
    videos = [f"v{i:02d}" for i in range(40)]
    chosen = split_val_videos(videos, 0.15, seed=0)
    assert len(chosen) == 6
    assert split_val_videos(list(reversed(videos)), 0.15, seed=0) == chosen
    assert split_val_videos(videos, 0.15, seed=1) != chosen
    with pytest.raises(ValueError, match="at least two"):
        split_val_videos(["only"], 0.15, seed=0)


def test_train_class_counts_and_weights(image_tree: Path) -> None:
    dm = datamodule(image_tree)
    counts = dm.train_class_counts
    assert counts.sum() == len(dm.splits["train"]) == 27
    np.testing.assert_allclose(dm.class_weights(), 1 - counts / counts.sum())


def batches(dm: FERDataModule, epoch: int) -> list[dict]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("augment_on", ["device", "cpu"])
def test_augmented_batches_do_not_depend_on_worker_count(image_tree: Path, augment_on) -> None:
    serial = batches(datamodule(image_tree, num_workers=0, augment_on=augment_on), epoch=1)
    parallel = batches(datamodule(image_tree, num_workers=2, augment_on=augment_on), epoch=1)
    assert len(serial) == len(parallel) == 6  # 27 frames, batches of 4, last partial dropped
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys()  # images, labels, indices, valid and (device) the draws
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    other_epoch = batches(datamodule(image_tree, num_workers=0), epoch=2)
    assert not torch.equal(serial[0]["index"], other_epoch[0]["index"])


def test_validation_shards_cover_every_sample_once() -> None:
    for n in (0, 1, 7, 10):
        shards = [
            list(PartitionSampler(n, shuffle=False, num_replicas=3, rank=r)) for r in range(3)
        ]
        seen = sorted(i for shard in shards for i, _ in shard)
        assert seen == list(range(n))
        assert [len(s) for s in shards] == [
            len(PartitionSampler(n, False, 0, 3, r)) for r in range(3)
        ]


def test_training_shards_are_disjoint_and_equal_length() -> None:
    shards = [PartitionSampler(11, shuffle=True, seed=5, num_replicas=2, rank=r) for r in range(2)]
    for s in shards:
        s.set_epoch(4)
    a, b = ([i for i, _ in s] for s in shards)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    assert all(epoch == 4 for s in shards for _, epoch in s)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"multires": {"min_res": 32, "max_res": 16}}, "data.multires.min_res=32 must not exceed"),
        ({"multires": {"min_res": 0}}, "data.multires.min_res=0 must be >= 1"),
        ({"multires": {"p": 2}}, "data.multires.p=2"),
        ({"multires": {"sampling": "log2"}}, "data.multires.sampling"),
        ({"multires": {"max": 3}}, "data.multires: unknown key"),
        ({"synthetic": {"num_train_videos": 1}}, "data.synthetic.num_train_videos=1 must be >= 2"),
        ({"normalization": "x"}, "data.normalization 'x' is not one of imagenet, vggface2"),
        ({"grayscale_p": 2.0}, r"data.grayscale_p=2.0 must be in \[0, 1\]"),
        ({"val_select_fraction": 1.0}, "data.val_select_fraction"),
        ({"on_bad_image": "ignore"}, "data.on_bad_image"),
        ({"crop_size": 64}, "data.crop_size=64 must not exceed"),
    ],
)
def test_config_errors_come_before_any_work(tmp_path: Path, overrides: dict, message: str) -> None:
    # The root does not exist: the config error must come first, before data is touched.
    settings = dict(root=str(tmp_path / "absent"), resize_size=28, crop_size=24)
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        FERDataModule(**settings)


def compose_data(*overrides: str) -> DictConfig:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides)).data


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.multires.p=1.5"], r"^data.multires.p=1.5 must be in \[0, 1\]$"),
        (["data.multires.sampling=log"], "^data.multires.sampling 'log' is not one of"),
        (["data.multires.min_res=16", "data.multires.max_res=8"],
         "^data.multires.min_res=16 must not exceed max_res=8$"),
        (["data.normalization=foo"], "^data.normalization 'foo' is not one of imagenet, vggface2$"),
        (["data.crop_size=300"], "^data.crop_size=300 must not exceed resize_size=68$"),
        (["data.synthetic.image_size=4"], "^data.synthetic.image_size=4 must be >= "),
        (["data.batch_size=0"], "^data.batch_size=0 must be >= 1$"),
    ],
)  # fmt: skip
def test_config_errors_name_the_full_key(overrides: list[str], message: str) -> None:
    # Hydra builds data.multires and data.synthetic before the data module: the boundary
    # (utils.config.instantiate) names their keys; the data module names its own.
    cfg = compose_data("+experiment=demo_multires", "data.root=/absent", *overrides)
    with pytest.raises(ValueError, match=message):
        instantiate(cfg)


def test_config_nodes_are_instantiated(tmp_path: Path) -> None:
    dm = instantiate(compose_data("+experiment=demo_multires", f"data.root={tmp_path}"))
    assert isinstance(dm.multires, MultiResolution)
    assert (dm.multires.p, dm.multires.min_res, dm.multires.max_res) == (0.5, 8, 128)
    assert dm.synthetic == SyntheticSpec(
        num_train_videos=60, num_val_videos=14, frames_per_video=50, image_size=112, seed=0
    )
    assert dm.transforms.train.multires is dm.multires
    assert dm.batch_transform is dm.transforms.batch


@pytest.mark.parametrize("experiment", ["demo", "paper_baseline"])
def test_multires_null_gives_no_degradation(experiment: str, tmp_path: Path) -> None:
    cfg = compose_data(f"+experiment={experiment}", f"data.root={tmp_path}")
    assert cfg.multires is None
    dm = instantiate(cfg)
    assert dm.multires is None and dm.transforms.train.multires is None
    assert dm.batch_transform.resolutions == [0]
    assert {dm.transforms.train.draw(0, i, 112, 112).resolution for i in range(300)} == {0}


LEGACY = {"p": 0.8, "min_res": 4, "max_res": 24, "sampling": "uniform"}


def test_legacy_multires_dict_disabled_is_none_with_a_warning(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="fer_multires.data.datamodule"):
        dm = FERDataModule(root=str(tmp_path), multires={"enabled": False, **LEGACY})
    assert dm.multires is None and dm.batch_transform.resolutions == [0]
    (warning,) = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert "data.multires.enabled=false" in warning and "data.multires=null" in warning
    assert "_target_: fer_multires.data.transforms.MultiResolution" in warning


def test_legacy_multires_dict_enabled_is_a_multires(tmp_path: Path, caplog) -> None:
    # as an old run's config.yaml reaches it through Hydra (fer_multires.evaluate)
    old = OmegaConf.create({"data": {
        "_target_": "fer_multires.data.datamodule.FERDataModule", "root": str(tmp_path),
        "multires": {"enabled": True, **LEGACY},
        "synthetic": {"num_train_videos": 3, "num_val_videos": 2, "frames_per_video": 40},
    }})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="fer_multires.data.datamodule"):
        dm = hydra_instantiate(old.data)
    assert repr(dm.multires) == repr(MultiResolution(**LEGACY))
    assert dm.transforms.train.multires is dm.multires
    assert "data.multires.enabled=true" in caplog.text and "deprecated" in caplog.text
    assert dm.synthetic == SyntheticSpec(num_train_videos=3, num_val_videos=2, frames_per_video=40)


def test_legacy_multires_draws_are_the_new_draws(tmp_path: Path) -> None:
    legacy = FERDataModule(root=str(tmp_path), multires={"enabled": True, **LEGACY}, seed=2)
    node = FERDataModule(root=str(tmp_path), multires=MultiResolution(**LEGACY), seed=2)
    draws = [legacy.transforms.train.draw(1, i, 112, 112) for i in range(300)]
    assert draws == [node.transforms.train.draw(1, i, 112, 112) for i in range(300)]


def test_missing_root_names_the_key(tmp_path: Path) -> None:
    dm = FERDataModule(root=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="data.root"):
        dm.prepare_data()


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    root = make_image_tree(tmp_path / "d", train_videos=1, val_videos=2, frames=2)
    for jpg in (root / "cropped_aligned" / "train_000").iterdir():
        jpg.unlink()
    with pytest.raises(ValueError, match="the train split of .* has no usable samples"):
        datamodule(root)


def corrupt_one_frame(root: Path) -> Path:
    victim = root / "cropped_aligned" / "val_001" / "00002.jpg"
    victim.write_bytes(victim.read_bytes()[:60])  # truncated JPEG
    return victim


def test_corrupt_jpeg_error_names_the_file(tmp_path: Path) -> None:
    root = make_image_tree(tmp_path / "d", val_videos=2)
    victim = corrupt_one_frame(root)
    dm = datamodule(root, val_select_fraction=0.5)
    with pytest.raises(BadImageError, match=str(victim)):
        list(dm.eval_dataloader("val_full"))


def test_corrupt_jpeg_can_be_skipped_and_counted(tmp_path: Path) -> None:
    root = make_image_tree(tmp_path / "d", val_videos=2)
    corrupt_one_frame(root)
    dm = datamodule(root, val_select_fraction=0.5, on_bad_image="skip")
    valid = torch.cat([batch["valid"] for batch in dm.eval_dataloader("val_full")])
    assert valid.numel() == 18 and int((~valid).sum()) == 1


def test_fast_path_batch_skips_a_corrupt_image_as_the_samples_do(tmp_path: Path) -> None:
    root = make_image_tree(tmp_path / "d", val_videos=2)
    victim = corrupt_one_frame(root)
    data = datamodule(root, val_select_fraction=0.5, on_bad_image="skip").dataset("val_full")
    data.fetch_batches = True  # as the data module's loaders set it
    keys = [(i, 0) for i in range(len(data))]
    made = data.__getitems__(keys)
    assert isinstance(made, dict) and collate_samples(made) is made  # made by the dataset
    expected = default_collate([data[key] for key in keys])
    for key, value in expected.items():
        assert made[key].dtype == value.dtype and torch.equal(made[key], value), key
    (blank,) = torch.nonzero(~made["valid"]).flatten().tolist()
    assert data.image_file(made["index"][blank].item()) == str(victim)
    assert not made["image"][blank].any()
    strict = datamodule(root, val_select_fraction=0.5).dataset("val_full")
    strict.fetch_batches = True
    with pytest.raises(BadImageError, match=str(victim)):
        strict.__getitems__(keys)


def test_fast_path_image_of_another_size_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    # a readable image of the wrong size is not a bad image to skip: the batch cannot hold it
    root = make_image_tree(tmp_path / "d", val_videos=2)
    odd = root / "cropped_aligned" / "val_001" / "00003.jpg"
    Image.new("RGB", (30, 20)).save(odd)
    data = datamodule(root, val_select_fraction=0.5, on_bad_image="skip").dataset("val_full")
    data.fetch_batches = True
    keys = list(range(len(data)))
    message = rf"{odd}: image is \(20, 30\), the first \(24, 24\); .*data.image_size=N"
    with pytest.raises(BadImageError, match=message):
        data.__getitems__(keys)
    with pytest.raises(BadImageError, match=message):
        [data[key] for key in keys]


def test_a_task_other_than_expressions_needs_affwild2(tmp_path) -> None:
    with pytest.raises(ValueError, match="task=va: data.dataset=rafdb has expression labels only"):
        FERDataModule(root=str(tmp_path), dataset="rafdb", task="va")
    with pytest.raises(ValueError, match="task='arousal' is not a task"):
        FERDataModule(root=str(tmp_path), task="arousal")
