"""`python -m fer_multires.stats` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import write_video

from fer_multires.data.synthetic import SyntheticSpec, generate_synthetic_affwild2


def run_stats(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fer_multires.stats", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_stats_json_reports_an_affwild2_tree_exactly(tmp_path: Path) -> None:
    root = tmp_path / "aw2"
    write_video(root, "abaw2", "train", "a", [0, 0, 4, -1, 6], frames=[1, 2, 3, 4, 6, 7])
    write_video(root, "abaw2", "train", "b_left", [5, 5])
    write_video(root, "abaw2", "val", "c", [1, 2, 3], frames=[1, 2])
    write_video(root, "abaw2", "val", "d", [0], frames=[])
    out = tmp_path / "stats.json"
    result = run_stats("data=affwild2", f"data.root={root}", f"stats.json={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    assert stats["classes"] == ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness",
                                "Surprise"]  # fmt: skip
    assert stats["splits"]["train"]["videos"] == 2
    assert stats["splits"]["train"]["frames"] == 5
    assert stats["splits"]["train"]["per_class"] == [2, 0, 0, 0, 1, 2, 0]
    assert stats["splits"]["val"]["videos"] == 1
    assert stats["splits"]["val"]["per_class"] == [0, 1, 1, 0, 0, 0, 0]
    assert stats["class_weights"] == [0.6, 1.0, 1.0, 1.0, 0.8, 0.6, 1.0]
    assert stats["skipped"] == {
        "invalid_label": 1, "missing_frame": 2, "beyond_labels": 2,
        "videos_without_frames": 1, "unrecognised_name": 0,
    }  # fmt: skip
    # the printed tables
    assert "Neutral" in result.stdout and "Class weights" in result.stdout
    assert "val videos without frames: d" in result.stdout


def test_stats_of_the_synthetic_set_match_its_manifest(tmp_path: Path) -> None:
    spec = SyntheticSpec(num_train_videos=3, num_val_videos=2, frames_per_video=40)
    manifest = generate_synthetic_affwild2(tmp_path / "synth", spec)
    out = tmp_path / "stats.json"
    result = run_stats("data=synthetic", f"data.root={tmp_path / 'synth'}",
                       "data.synthetic.num_train_videos=3", "data.synthetic.num_val_videos=2",
                       "data.synthetic.frames_per_video=40", f"stats.json={out}",
                       cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    for split in ("train", "val"):
        for key in ("videos", "frames", "per_class"):
            assert stats["splits"][split][key] == manifest["splits"][split][key]
    for key, value in manifest["skipped"].items():
        assert stats["skipped"][key] == value


def test_stats_without_root_names_the_key(tmp_path: Path) -> None:
    result = run_stats("data=affwild2", cwd=tmp_path)
    assert result.returncode != 0
    assert "data.root" in result.stderr
