"""`python -m fer_multires.stats` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import compose_entry, write_video


def stats_in_process(tmp_path: Path, *overrides: str) -> dict:
    """``run_stats`` on the composed config, in this process (no interpreter start)."""
    from fer_multires.stats import run_stats as stats_of

    return stats_of(compose_entry("stats", [*overrides, f"paths.root_dir={tmp_path}"], tmp_path))


def test_stats_of_a_set_without_usable_training_frames_print_why(tmp_path: Path, capsys) -> None:
    # the moment a user needs the counts: training would refuse this set
    root = tmp_path / "aw2"
    write_video(root, "abaw2", "train", "a", [0, 1, 2], frames=[])
    write_video(root, "abaw2", "val", "c", [1, 2, 3], frames=[1, 2])
    stats = stats_in_process(tmp_path, "data=affwild2", f"data.root={root}")
    assert stats["splits"]["train"]["frames"] == 0 and stats["class_weights"] is None
    assert stats["skipped"]["videos_without_frames"] == 1
    printed = capsys.readouterr().out
    assert "none: the training split has no usable sample (see Skipped)" in printed
    assert "train videos without frames: a" in printed


def test_synthetic_class_proportions_is_a_config_key(tmp_path: Path) -> None:
    stats = stats_in_process(tmp_path, "data=synthetic", f"data.root={tmp_path / 'synth'}",
                             "data.synthetic.class_proportions=[0.4,0.1,0.1,0.1,0.1,0.1,0.1]",
                             "data.synthetic.num_train_videos=3",
                             "data.synthetic.num_val_videos=2",
                             "data.synthetic.frames_per_video=40")  # fmt: skip
    manifest = json.loads((tmp_path / "synth" / "SYNTHETIC.json").read_text())
    assert manifest["spec"]["class_proportions"] == [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    train = stats["splits"]["train"]["per_class"]
    assert train[0] < 0.6 * sum(train)  # fewer Neutral frames than the default 60%
