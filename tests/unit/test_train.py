"""Training through the real entry point's code path, on generated data, on the CPU."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir

from fer_multires.utils.config import CONFIG_DIR, rewrite_deprecated_overrides


def test_experiment_override_composes() -> None:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        for name in ("demo", "demo_multires", "paper_multires", "paper_baseline"):
            cfg = compose("train", overrides=[f"+experiment={name}"])
            assert cfg.task_name == name
    assert cfg.model.backbone == "seresnet50" and cfg.data.multires is None


#: dataset -> (resolution draws' max_res, max_epochs) of its experiments
DATASET_EXPERIMENTS = {"rafdb": (128, 40), "fer2013": (64, 30), "ferplus": (64, 30),
                       "affectnet": (256, 10)}  # fmt: skip


@pytest.mark.parametrize("dataset", DATASET_EXPERIMENTS)
def test_dataset_experiments_keep_the_paper_recipe(dataset: str) -> None:
    max_res, epochs = DATASET_EXPERIMENTS[dataset]
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        multires = compose("train", overrides=[f"+experiment={dataset}_multires"])
        baseline = compose("train", overrides=[f"+experiment={dataset}_baseline"])
    assert multires.data.dataset == baseline.data.dataset == dataset
    assert multires.task_name == f"{dataset}_multires" and baseline.data.multires is None
    assert (multires.data.multires.min_res, multires.data.multires.max_res) == (8, max_res)
    for cfg in (multires, baseline):
        assert cfg.trainer.max_epochs == epochs and cfg.model.backbone == "seresnet50"
        assert (cfg.data.resize_size, cfg.data.crop_size, cfg.data.batch_size) == (256, 224, 128)


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_task_experiments_are_the_paper_recipe_on_that_task(task: str) -> None:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        paper = compose("train", overrides=["+experiment=paper_multires"])
        multires = compose("train", overrides=[f"+experiment={task}_multires"])
        baseline = compose("train", overrides=[f"+experiment={task}_baseline"])
    assert (multires.task, baseline.task, paper.task) == (task, task, "expr")
    assert baseline.data.multires is None and multires.data.multires == paper.data.multires
    for key in ("model", "trainer"):
        assert multires[key] == baseline[key] == paper[key]
    assert multires.data.dataset == "affwild2" and multires.optimized_metric == "val_select/score"


def test_an_unknown_task_is_refused_before_any_work(tmp_path) -> None:
    from conftest import compose_train, train_overrides

    from fer_multires.train import train

    cfg = compose_train([*train_overrides(tmp_path, tmp_path), "task=valence"], tmp_path / "run")
    with pytest.raises(ValueError, match="task='valence' is not a task; choose one of expr, va"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_long_sweep_job_names_are_cut_and_stay_unique() -> None:
    from fer_multires.utils.config import MAX_JOB_DIRNAME, job_dirname

    short = job_dirname(3, "data.multires.min_res=8")
    assert short == "3_data.multires.min_res=8"
    a = job_dirname(0, "x" * 300 + ",a=1")
    b = job_dirname(0, "x" * 300 + ",a=2")
    assert len(a) == MAX_JOB_DIRNAME and a != b


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["data.multires.enabled=false"], ["data.multires=null"]),
        (["data.multires.enabled=False", "x=1"], ["data.multires=null", "x=1"]),
        (["data.multires.enabled=true", "data.multires.p=0.5"], ["data.multires.p=0.5"]),
        # after the other data.multires overrides, which would not apply to null
        (["data.multires.enabled=false", "data.multires.p=0.5", "--cfg", "job"],
         ["data.multires.p=0.5", "data.multires=null", "--cfg", "job"]),
        (["++data.multires.enabled=false", "data.multires.enabled=true"], []),  # the last wins
        (["data.multires.enabled=true,false"], ["data.multires.enabled=true,false"]),  # Hydra's
        (["data.multires=null", "data.root=/d"], ["data.multires=null", "data.root=/d"]),
    ],
)  # fmt: skip
def test_deprecated_multires_overrides_are_rewritten(argv, expected, caplog) -> None:
    line = ["train.py", *argv]
    with caplog.at_level("WARNING", logger="fer_multires.utils.config"):
        assert rewrite_deprecated_overrides(line) is line
    assert line == ["train.py", *expected]
    deprecated = any("enabled" in arg for arg in argv)
    assert ("data.multires.enabled" in caplog.text and "deprecated" in caplog.text) == deprecated


@pytest.mark.parametrize(
    "override",
    ["trainer.max_epochs=0", "trainer.limit_train_batches=0", "trainer.limit_train_batches=0.0",
     "trainer.max_steps=0"],
)  # fmt: skip
def test_a_run_that_would_train_nothing_is_refused_before_any_work(override, tmp_path) -> None:
    """It used to exit 0 and write the scores of a random model, with no checkpoint behind them."""
    from conftest import compose_train, train_overrides

    from fer_multires.train import train

    run_dir = tmp_path / "run"
    cfg = compose_train([*train_overrides(tmp_path / "data", tmp_path), f"run_dir={run_dir}",
                         override], run_dir)  # fmt: skip
    key = override.split("=")[0].lstrip("+")
    with pytest.raises(
        ValueError, match=rf"^{re.escape(key)}=0(\.0)?: the run would train nothing"
    ):
        train(cfg)
    assert not run_dir.exists()
