"""The Hub-ready folder (issue 26): written by export, read by predict, evaluate and timm itself.

Uses the shared trained and evaluated run (``trained_run``). The ``hf-hub:`` names are read from
a Hugging Face cache written in the layout ``hf_hub_download`` leaves, offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import astronaut, compose_entry, write_hub_repo
from huggingface_hub import constants
from omegaconf import OmegaConf
from PIL import Image
from safetensors import safe_open

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.export import export
from fer_multires.inference.classifier import TorchClassifier
from fer_multires.inference.expected import ExpectedScore
from fer_multires.inference.onnx_export import parity_batch
from fer_multires.models.hub import TASK_TITLES, load_trained, read_hub_model
from fer_multires.models.pretrained import NotCachedError
from fer_multires.results import SCORE_NAMES, load_eval_results
from fer_multires.runs import ModelInput, resolve_checkpoint
from fer_multires.tasks import AU_NAMES
from integration.test_predict import (
    AU_THRESHOLDS,
    TASK_LAYOUT,
    copy_with_evaluation,
    read_csv,
    run_predict,
    task_classes,
    task_inputs,  # noqa: F401 - the fixture
)

CLASSES = list(EXPRESSIONS_7)
COMMIT = "3" * 40

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def hub_folder(trained_run, tmp_path_factory) -> Path:
    """The run exported as a Hub folder only (no ONNX), in this process."""
    out = tmp_path_factory.mktemp("hub") / "fer-seresnet18"
    overrides = [f"ckpt_path={trained_run}", "export.onnx=false", "export.hub=true",
                 f"export.hub_out={out}"]  # fmt: skip
    exported = export(compose_entry("export", overrides, out.parent))
    assert exported.onnx is None and exported.hub == out
    return out


@pytest.fixture
def hub_cache(hub_folder, tmp_path, monkeypatch) -> Path:
    """An offline Hugging Face cache holding the folder as the repository me/fer."""
    cache = tmp_path / "hf" / "hub"
    files = {p.name: p.read_bytes() for p in hub_folder.iterdir()}
    write_hub_repo(cache, "me/fer", files, COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_folder_holds_weights_config_and_model_card(trained_run, hub_folder) -> None:
    assert sorted(p.name for p in hub_folder.parent.iterdir()) == [hub_folder.name]  # no temp
    assert sorted(p.name for p in hub_folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]  # fmt: skip
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["architecture"] == "seresnet18" and config["num_classes"] == 7
    assert config["label_names"] == CLASSES
    fields = config["fer_multires"]
    assert fields["task"] == "expr" and fields["classes"] == CLASSES
    assert ModelInput.from_json(fields["model_input"]) == ModelInput(28, 24, "imagenet")
    run_data = OmegaConf.load(trained_run / "config.yaml").data
    assert (fields["multires"]["min_res"], fields["multires"]["max_res"]) == (
        run_data.multires.min_res, run_data.multires.max_res)  # fmt: skip
    assert fields["initial_weights"] == {**fields["initial_weights"], "kind": "none"}
    evaluation = load_eval_results(trained_run / "eval")
    assert ExpectedScore.from_json(fields["expected_scores"]).scores == (
        ExpectedScore.from_results(evaluation).scores)  # fmt: skip
    card = (hub_folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n")
    assert "## Resolution robustness" in card and ", ".join(CLASSES) in card
    val_rest_native = evaluation.splits["val_rest"]["native"].challenge_score
    assert f"{val_rest_native:.3f} [" in card  # the score with its interval
    # timm's preprocessing config says what the evaluation does: 28 px shorter side, 24 crop
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 24, 24] and cfg["crop_pct"] == pytest.approx(24 / 28)
    assert cfg["mean"] == list(timm.data.IMAGENET_DEFAULT_MEAN)


def test_weights_are_the_checkpoints_in_safetensors(trained_run, hub_folder) -> None:
    expected = load_trained(resolve_checkpoint(trained_run)).model.state_dict()
    with safe_open(hub_folder / "model.safetensors", "pt") as f:
        assert sorted(f.keys()) == sorted(expected)
        for key in expected:
            assert torch.equal(f.get_tensor(key), expected[key]), key


def test_timm_builds_the_same_classifier_from_the_folder(trained_run, hub_folder) -> None:
    model = timm.create_model(f"local-dir:{hub_folder}", pretrained=True).eval()  # timm's reader
    reference = load_trained(resolve_checkpoint(trained_run)).eval()
    batch = parity_batch(ModelInput(28, 24, "imagenet"), 4)
    with torch.inference_mode():
        assert torch.equal(model(batch), reference(batch))


def test_predict_with_the_folder_gives_the_checkpoints_predictions(
    trained_run, hub_folder, tmp_path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut()).save(folder / "astronaut.jpg")
    rng = np.random.default_rng(5)
    for i in range(4):  # random faces: predictions that differ from one another
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run_predict(trained_run, folder, tmp_path / "ckpt", "detector=none")
    run_predict(hub_folder, folder, tmp_path / "hub", "detector=none")
    by_ckpt = read_csv(tmp_path / "ckpt" / "predictions.csv")
    by_hub = read_csv(tmp_path / "hub" / "predictions.csv")
    assert len(by_ckpt) == 5 and by_hub == by_ckpt  # every column, expected_score included


def test_hf_hub_name_is_read_from_the_cache_offline(trained_run, hub_cache) -> None:
    folder = resolve_checkpoint("hf-hub:me/fer")
    assert folder == hub_cache / "models--me--fer" / "snapshots" / COMMIT
    hub = read_hub_model(folder)
    assert hub.class_names == CLASSES
    by_name = TorchClassifier(folder, torch.device("cpu"))
    by_ckpt = TorchClassifier(resolve_checkpoint(trained_run), torch.device("cpu"))
    crops = [np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
             for i in range(3)]  # fmt: skip
    np.testing.assert_array_equal(by_name.probabilities(crops), by_ckpt.probabilities(crops))
    assert by_name.expected_scores == by_ckpt_expected(trained_run)


def by_ckpt_expected(run: Path) -> dict:
    return ExpectedScore.from_results(load_eval_results(run / "eval"), str(run / "eval" /
                                      "metrics.json")).to_json()  # fmt: skip


def test_hf_hub_name_not_cached_says_what_to_run(hub_cache) -> None:
    with pytest.raises(NotCachedError, match="ckpt_path=hf-hub:me/other") as err:
        resolve_checkpoint("hf-hub:me/other")
    assert "python -m fer_multires.weights fetch hf-hub:me/other" in str(err.value)


def test_evaluate_the_hf_hub_name_gives_the_runs_scores(trained_run, hub_folder, tmp_path) -> None:
    home = tmp_path / "hf_home"
    files = {p.name: p.read_bytes() for p in hub_folder.iterdir()}
    write_hub_repo(home / "hub", "me/fer", files, COMMIT)
    data_root = OmegaConf.load(trained_run / "config.yaml").data.root
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = tmp_path / "eval"
    # the data as the training split it (train_overrides' val_select_fraction)
    args = ["ckpt_path=hf-hub:me/fer", "data=affwild2", f"data.root={data_root}",
            "data.val_select_fraction=0.4",
            "eval.resolutions=[8,16]", "eval.plots=false", "trainer.enable_progress_bar=false",
            f"run_dir={out}"]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "fer_multires.evaluate", *args],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    by_name = load_eval_results(out)
    by_run = load_eval_results(trained_run / "eval")
    for split in ("val_select", "val_rest", "val_full"):
        assert by_name.scores(split) == by_run.scores(split), split
    assert by_name.initial_weights == by_run.initial_weights

    no_data = subprocess.run([sys.executable, "-m", "fer_multires.evaluate", *args[:1]],
                             capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert no_data.returncode != 0
    assert "data.root: ckpt_path is a Hub folder" in no_data.stderr


def test_export_errors(trained_run, hub_folder, tmp_path) -> None:
    with pytest.raises(ValueError, match="is an exported Hub folder"):
        export(compose_entry("export", [f"ckpt_path={hub_folder}", "export.hub=true"], tmp_path))
    nothing = [f"ckpt_path={trained_run}", "export.onnx=false"]
    with pytest.raises(ValueError, match="nothing to export"):
        export(compose_entry("export", nothing, tmp_path))
    with pytest.raises(ValueError, match="export.hub='yes' must be true or false"):
        export(compose_entry("export", [*nothing, "export.hub=yes"], tmp_path))


# ------------------------------------------------------------- valence-arousal, AUs, multi-task


@pytest.fixture(scope="module")
def task_hub(task_runs, tmp_path_factory):
    """A function ``task -> (run, Hub folder)``: a copy of the task's run with an evaluation,
    exported as a Hub folder only (once per task)."""
    done: dict[str, tuple[Path, Path]] = {}

    def folder_of(task: str) -> tuple[Path, Path]:
        if task not in done:
            base = tmp_path_factory.mktemp(f"hub_{task}")
            run = copy_with_evaluation(task_runs(task), base / "run", task)
            out = base / f"fer-{task}"
            overrides = [f"ckpt_path={run}", "export.onnx=false", "export.hub=true",
                         f"export.hub_out={out}"]  # fmt: skip
            assert export(compose_entry("export", overrides, base)).hub == out
            done[task] = (run, out)
        return done[task]

    return folder_of


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_task_folder_carries_its_task_heads_and_scores(task_hub, task) -> None:
    run, folder = task_hub(task)
    config = json.loads((folder / "config.json").read_text())
    columns = {"expr": CLASSES, "va": ["valence", "arousal"], "au": list(AU_NAMES)}
    names = [n for head in TASK_LAYOUT[task] for n in columns[head]]
    assert config["num_classes"] == len(names) and config["label_names"] == names
    fields = config["fer_multires"]
    assert (fields["task"], fields["classes"], fields["format_version"]) == (
        task, task_classes(task), 2)  # fmt: skip
    assert {h: slice(*m["columns"]) for h, m in fields["heads"].items()} == TASK_LAYOUT[task]
    assert fields["heads"].get("va", {"activation": "tanh"})["activation"] == "tanh"
    assert ExpectedScore.from_json(fields["expected_scores"]).scores == (0.1, 0.3, 0.4)
    assert (fields["au_thresholds"] or {}).get("values") == (
        None if task == "va" else AU_THRESHOLDS)  # fmt: skip
    card = (folder / "README.md").read_text()
    assert f"(task `{task}`)" in card and TASK_TITLES[task] in card
    assert f"## Resolution robustness ({SCORE_NAMES[task]}, val_rest)" in card
    assert "| 16 | 0.300 |" in card
    hub = read_hub_model(folder)
    assert hub.task == task and load_trained(folder).task == task
    reference = load_trained(resolve_checkpoint(run)).eval()
    batch = parity_batch(ModelInput(28, 24, "imagenet"), 4)
    with torch.inference_mode():
        assert torch.equal(hub.load_module()(batch), reference(batch))


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_predict_with_the_task_folder_gives_the_checkpoints_predictions(
    task_hub, task_inputs, task, tmp_path
) -> None:
    run, folder = task_hub(task)
    run_predict(run, task_inputs, tmp_path / "ckpt", "detector=none")
    result = run_predict(folder, task_inputs, tmp_path / "hub", "detector=none")
    by_ckpt = read_csv(tmp_path / "ckpt" / "predictions.csv")
    assert len(by_ckpt) == 7 and read_csv(tmp_path / "hub" / "predictions.csv") == by_ckpt
    if task != "va":  # the folder's own thresholds, not its run's evaluation
        assert result.au_thresholds.values == tuple(AU_THRESHOLDS.values())
