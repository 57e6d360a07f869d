"""The evaluation entry point, on a model trained for one epoch on generated data (CPU)."""

from __future__ import annotations

import pytest
from conftest import run_eval
from omegaconf import OmegaConf

from fer_multires.evaluation.config import anchor_relative_root, apply_data_overrides

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_missing_checkpoint_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ckpt_path: checkpoint .*nope.ckpt does not exist"):
        run_eval(tmp_path / "nope.ckpt", tmp_path / "out")


def test_data_overrides_apply_on_top_of_the_run_config(tmp_path) -> None:
    run_data = OmegaConf.create({"root": "/a", "num_workers": 8, "multires": {"p": 1.0, "x": 1}})
    task = ["ckpt_path=x", "data.root=/b", "data.multires.p=0.5", "~data.multires.x",
            "+data.eval_batch_size=4", "data=synthetic", "eval.resolutions=[8]"]  # fmt: skip
    cfg = OmegaConf.create({"data": {"root": "/b", "multires": {"p": 0.5}, "eval_batch_size": 4}})
    applied = apply_data_overrides(run_data, cfg, task)
    assert applied == ["data.root=/b", "data.multires.p=0.5", "~data.multires.x",
                       "+data.eval_batch_size=4"]  # fmt: skip
    assert OmegaConf.to_container(run_data) == {
        "root": "/b", "num_workers": 8, "multires": {"p": 0.5}, "eval_batch_size": 4,
    }  # fmt: skip


def test_relative_data_root_is_read_from_the_training_directory(tmp_path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    cwd: /somewhere\n")
    run_data = OmegaConf.create({"root": "./data/set"})
    anchor_relative_root(run_data, run / "config.yaml")
    assert run_data.root == "/somewhere/data/set"
    absolute = OmegaConf.create({"root": "/elsewhere"})
    anchor_relative_root(absolute, run / "config.yaml")
    assert absolute.root == "/elsewhere"
