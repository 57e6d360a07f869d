"""The Hub-ready folder's format (issue 26): timm's preprocessing config, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from conftest import timm_repo_files, write_hub_repo
from huggingface_hub import constants
from timm.data import resolve_data_config

from fer_multires.data.transforms import VGGFACE2_MEAN_BGR
from fer_multires.models.hub import (
    hub_heads,
    is_hub_folder,
    read_hub_model,
    resolve_hub_folder,
    timm_data_config,
)
from fer_multires.runs import ModelInput


def test_timm_preprocessing_says_what_the_evaluation_does() -> None:
    config = timm_data_config(ModelInput(256, 224, "imagenet"))
    model = timm.create_model("test_resnet", pretrained=False)
    resolved = resolve_data_config(config, model=model)  # timm reads it as its own
    assert resolved["input_size"] == (3, 224, 224) and resolved["crop_pct"] == 0.875
    assert resolved["interpolation"] == "bilinear" and resolved["crop_mode"] == "center"
    assert resolved["mean"] == timm.data.IMAGENET_DEFAULT_MEAN
    assert resolved["std"] == timm.data.IMAGENET_DEFAULT_STD
    vgg = timm_data_config(ModelInput(128, 112, "vggface2"))
    assert vgg["mean"] == pytest.approx(tuple(m / 255 for m in reversed(VGGFACE2_MEAN_BGR)))


def write_folder(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    files = timm_repo_files(timm.create_model("test_resnet", num_classes=2), "test_resnet")
    (folder / "model.safetensors").write_bytes(files["model.safetensors"])
    return folder


FIELDS = {
    "classes": ["Neutral", "Happiness"],
    "model_input": {"resize_size": 28, "crop_size": 24, "normalization": "imagenet"},
}


def test_a_folder_loads_with_its_classes_and_image_settings(tmp_path) -> None:
    config = {"architecture": "test_resnet", "num_classes": 2, "fer_multires": FIELDS}
    folder = write_folder(tmp_path / "m", config)
    assert is_hub_folder(folder) and not is_hub_folder(tmp_path)
    hub = read_hub_model(folder)
    assert hub.class_names == ["Neutral", "Happiness"] and hub.task == "expr"  # no task: expr
    assert hub.model_input == ModelInput(28, 24, "imagenet")
    module = hub.load_module()
    assert module.model.fc.out_features == 2 and not module.training


@pytest.mark.parametrize(
    "config, words",
    [
        ({"architecture": "test_resnet", "num_classes": 2},
         "ckpt_path: {folder}/config.json is not the config of a model exported"),
        ({"architecture": "test_resnet", "num_classes": 3, "fer_multires": FIELDS},
         "ckpt_path: {folder}/config.json: num_classes=3 but 2 classes"),
        ({"architecture": "resnet10t", "num_classes": 2, "fer_multires": FIELDS},
         "{folder}/model.safetensors does not fit resnet10t with 2 classes"),
    ],
)  # fmt: skip
def test_a_folder_export_did_not_write_is_refused_naming_the_key(tmp_path, config, words) -> None:
    folder = write_folder(tmp_path / "m", config)
    with pytest.raises(ValueError) as err:
        read_hub_model(folder).load_module()
    assert words.format(folder=folder) in str(err.value)


def test_an_hf_hub_model_must_be_safetensors(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "hub"
    model = timm.create_model("test_resnet")
    files = timm_repo_files(model, "test_resnet")
    path = tmp_path / "w.bin"
    torch.save(model.state_dict(), path)
    files = {"config.json": files["config.json"], "pytorch_model.bin": path.read_bytes()}
    write_hub_repo(cache, "me/bin", files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="ckpt_path=hf-hub:me/bin: the repository has "
                       "pytorch_model.bin, not model.safetensors"):  # fmt: skip
        resolve_hub_folder("hf-hub:me/bin")
    assert resolve_hub_folder(str(tmp_path)) is None  # not a folder export wrote


def write_task_folder(folder: Path, config: dict, outputs: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    files = timm_repo_files(timm.create_model("test_resnet", num_classes=outputs), "test_resnet")
    (folder / "model.safetensors").write_bytes(files["model.safetensors"])
    return folder


def test_a_task_folder_loads_as_a_model_of_its_task(tmp_path) -> None:
    fields = {**FIELDS, "classes": [], "task": "au", "heads": hub_heads("au", [])}
    config = {"architecture": "test_resnet", "num_classes": 12, "fer_multires": fields}
    hub = read_hub_model(write_task_folder(tmp_path / "m", config, 12))
    assert (hub.task, hub.class_names) == ("au", [])
    module = hub.load_module()
    assert module.task == "au" and module.model.fc.out_features == 12
    assert fields["heads"]["au"]["columns"] == [0, 12]
    assert fields["heads"]["au"]["names"][6] == "AU12"
    assert (
        read_hub_model(
            write_folder(
                tmp_path / "old",
                {"architecture": "test_resnet", "num_classes": 2, "fer_multires": FIELDS},
            )
        ).task
        == "expr"
    )


@pytest.mark.parametrize(
    "fields, outputs, words",
    [
        ({"task": "va"}, 12, "num_classes=12 but task va with 0 classes has 2 outputs"),
        ({"task": "au", "heads": hub_heads("va", [])}, 12,
         "fer_multires.heads={.*} is not the layout of task au"),
        ({"task": "pose"}, 12, "fer_multires.task='pose' is not a task"),
    ],
)  # fmt: skip
def test_a_task_folder_that_does_not_fit_is_refused(tmp_path, fields, outputs, words) -> None:
    config = {"architecture": "test_resnet", "num_classes": outputs,
              "fer_multires": {**FIELDS, "classes": [], **fields}}  # fmt: skip
    folder = write_task_folder(tmp_path / "m", config, outputs)
    with pytest.raises(ValueError, match=rf"ckpt_path: .*{words}"):
        read_hub_model(folder)
