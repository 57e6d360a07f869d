"""fer_multires/schemas.py: the typed configs (issue 25)."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035 - the annotations OmegaConf reads

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from pytorch_lightning import Trainer

from fer_multires import schemas
from fer_multires.data.datamodule import FERDataModule
from fer_multires.inference.mtcnn import MtcnnSettings
from fer_multires.inference.runner import PredictSettings
from fer_multires.utils.config import CONFIG_DIR, field_type

TRAIN = ["+experiment=demo"]
PREDICT = ["ckpt_path=model.ckpt", "input=face.jpg"]


def composed(config_name: str, overrides: list[str]):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides)


def composition_error(config_name: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigCompositionException) as info:
        composed(config_name, overrides)
    return f"{info.value} {info.value.__cause__}"


@pytest.mark.parametrize(
    ("config_name", "override", "key"),
    [
        ("train", "trainer.max_epochs=abc", "trainer.max_epochs"),
        ("train", "data.batch_size=eight", "data.batch_size"),
        ("train", "data.pin_memory=maybe", "data.pin_memory"),
        ("train", "model.head_lr=fast", "model.head_lr"),
        ("train", "eval.jpeg_quality=high", "eval.jpeg_quality"),
        ("train", "eval.bootstrap.samples=many", "eval.bootstrap.samples"),
        ("eval", "eval.resolutions=[8,small]", "eval.resolutions"),
        ("eval", "eval.compile=maybe", "eval.compile"),
        ("predict", "predict.batch_size=x", "predict.batch_size"),
        ("predict", "detector.scale_factor=big", "detector.scale_factor"),
    ],
)
def test_a_wrong_type_stops_at_start_naming_the_key(config_name, override, key) -> None:
    base = (
        PREDICT
        if config_name == "predict"
        else ["ckpt_path=m.ckpt"]
        if config_name == "eval"
        else TRAIN
    )
    assert key in composition_error(config_name, [*base, override])


@pytest.mark.parametrize(
    ("config_name", "override", "key"),
    [
        ("train", "data.batchsize=3", "batchsize"),
        ("train", "trainer.max_epoch=3", "max_epoch"),
        ("train", "model.lr=0.1", "lr"),
        ("train", "eval.resolution=[8]", "resolution"),
        ("predict", "predict.batchsize=4", "batchsize"),
        ("predict", "detector.min_face=20", "min_face"),
        ("predict", "detector.min_neighbors=3", "min_neighbors"),  # haar's, not mtcnn's
    ],
)
def test_an_unknown_key_stops_at_start_naming_it(config_name, override, key) -> None:
    base = PREDICT if config_name == "predict" else TRAIN
    message = composition_error(config_name, [*base, override])
    assert f"Key '{key}' not in" in message or f"'{key}'" in message


def test_a_detector_takes_its_own_keys() -> None:
    cfg = composed("predict", [*PREDICT, "detector=haar", "detector.min_neighbors=3"])
    assert (cfg.detector.name, cfg.detector.min_neighbors, cfg.detector.scale_factor) == (
        "haar",
        3,
        1.1,
    )


def defaults_of(target: Any) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(target).parameters.items()
            if p.default is not inspect.Parameter.empty}  # fmt: skip


@pytest.mark.parametrize(
    ("group", "target"),
    [("data", FERDataModule), ("model", schemas.FERModule), ("trainer", Trainer)],
)
def test_the_yaml_files_hold_only_what_differs_from_the_python_defaults(group, target) -> None:
    """A default lives once: no group file repeats a value its schema already has."""
    defaults = defaults_of(target)
    repeated = {}
    for path in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))  # not resolved
        for key, value in raw.items():
            if key != "defaults" and key in defaults and value == defaults[key]:
                repeated[f"{path.name}: {key}"] = value
    assert repeated == {}


def test_the_defaults_are_the_python_ones_where_no_yaml_sets_them() -> None:
    cfg = composed("predict", [*PREDICT])
    assert OmegaConf.to_container(cfg.predict) == dataclasses.asdict(PredictSettings())
    assert {k: v for k, v in cfg.detector.items() if k != "name"} == dataclasses.asdict(
        MtcnnSettings()
    )
    data = composed("train", [*TRAIN]).data
    defaults = defaults_of(FERDataModule)
    assert data.val_select_fraction == defaults["val_select_fraction"]
    assert data.on_bad_image == defaults["on_bad_image"]


def test_a_composed_config_pickles_for_the_cluster_launchers() -> None:
    """submitit pickles each job's config: every schema class must be importable by name."""
    cfg = composed("train", [*TRAIN])
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    cfg = composed("predict", [*PREDICT, "detector=none"])
    assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (int, int),
        (int | None, Optional[int]),  # noqa: UP045
        (list[str] | None, Optional[List[str]]),  # noqa: UP006, UP045
        (float | int | None, Any),  # a 10 must stay 10 (batches), not become 10.0 (a fraction)
        (str | Path, Any),
        (dict[str, int], Any),
    ],
)
def test_field_types_keep_plain_types_only(hint, expected) -> None:
    assert field_type(hint) == expected
