"""The run directory: one module names its files and finds what a run holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import compose_entry
from hydra import compose, initialize_config_dir

import fer_multires
from fer_multires import runs
from fer_multires.evaluation.config import check_settings
from fer_multires.export import export
from fer_multires.inference.runner import predict
from fer_multires.utils.config import CONFIG_DIR

PACKAGE = Path(fer_multires.__file__).parent

#: The run directory's names, as string literals.
NAMES = (
    runs.CONFIG_FILE, runs.HYDRA_DIR, runs.HYDRA_OVERRIDES, runs.HYDRA_SETTINGS,
    runs.CHECKPOINTS_DIR, runs.LAST_CHECKPOINT, runs.METRICS_FILE, runs.ERROR_FILE, runs.LOCK_FILE,
)  # fmt: skip


def test_no_other_module_spells_a_run_directory_name() -> None:
    literal = re.compile("|".join(rf"[\"']{re.escape(name)}[\"']" for name in NAMES))
    spelled = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "runs.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert spelled == []


def test_model_input_defaults_are_the_data_configs() -> None:
    """A run config without the keys (an older run) falls back on what a data config holds."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        common = compose("train", overrides=["data=affwild2", "data.root=x"]).data
    default = runs.ModelInput()
    assert (default.resize_size, default.crop_size, default.normalization, default.image_size) == (
        common.resize_size, common.crop_size, common.normalization, common.image_size)  # fmt: skip


def test_model_input_of_a_run_reads_its_data_node(tmp_path) -> None:
    run = tmp_path / "run"
    (run / runs.CHECKPOINTS_DIR).mkdir(parents=True)
    ckpt = run / runs.CHECKPOINTS_DIR / "best.ckpt"
    ckpt.write_bytes(b"")
    runs.config_file(run).write_text("data:\n  resize_size: 68\n  crop_size: 64\n")
    model_input, config = runs.model_input_of_run(ckpt)
    assert model_input == runs.ModelInput(68, 64, "imagenet", None)
    assert config == runs.config_file(run).resolve()
    runs.config_file(run).unlink()
    with pytest.raises(ValueError, match=r"ckpt_path: no config.yaml next to .*best.ckpt"):
        runs.model_input_of_run(ckpt)


def test_checkpoint_of_a_run_directory_even_when_moved(tmp_path) -> None:
    run = tmp_path / "moved"
    (run / runs.CHECKPOINTS_DIR).mkdir(parents=True)
    best = run / runs.CHECKPOINTS_DIR / "best_epoch003.ckpt"
    best.write_bytes(b"x")
    recorded = {"checkpoint": "/elsewhere/run/checkpoints/best_epoch003.ckpt", "classes": ["a"],
                "metrics": {"val_select/score": 0.5}}  # fmt: skip
    runs.metrics_file(run).write_text(json.dumps(recorded))
    assert runs.resolve_checkpoint(run) == best
    assert runs.resolve_checkpoint(best) == best
    best.unlink()
    with pytest.raises(FileNotFoundError, match=r"ckpt_path: .*moved is a directory without a"):
        runs.resolve_checkpoint(run)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: nothing to resume"):
        runs.last_checkpoint(run)


def test_saved_config_is_the_resolved_one_else_hydras(tmp_path) -> None:
    assert [p.relative_to(tmp_path).as_posix() for p in runs.config_files(tmp_path)] == [
        "config.yaml", ".hydra/config.yaml"]  # fmt: skip
    assert runs.hydra_record(tmp_path, "job", "name") is None
    runs.hydra_file(tmp_path, runs.HYDRA_SETTINGS).parent.mkdir()
    runs.hydra_file(tmp_path, runs.HYDRA_SETTINGS).write_text("hydra:\n  job:\n    name: train\n")
    assert runs.hydra_record(tmp_path, "job", "name") == "train"
    assert runs.is_run_dir(tmp_path) and not runs.is_run_dir(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("entry", "run"),
    [("eval", check_settings), ("export", export),
     ("predict", lambda cfg: predict(cfg, Path("unused")))],
)  # fmt: skip
def test_every_entry_point_says_ckpt_path_is_required_one_way(entry, run, tmp_path) -> None:
    cfg = compose_entry(entry, [f"paths.root_dir={tmp_path}"], tmp_path)
    command = "evaluate" if entry == "eval" else entry
    with pytest.raises(
        ValueError, match=rf"^ckpt_path is required: python -m fer_multires\.{command} ckpt_path="
    ):
        run(cfg)
    cfg = compose_entry(entry, [f"paths.root_dir={tmp_path}", "ckpt_path=null"], tmp_path)
    with pytest.raises(ValueError, match=r"^ckpt_path is required"):
        run(cfg)
