"""`python -m fer_multires.stats`: the composed config run in this process, for every task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_entry, write_targets, write_video

from fer_multires.tasks import AU_NAMES, VA_NAMES


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


SYNTHETIC = (
    "data=synthetic",
    "data.synthetic.num_train_videos=3",
    "data.synthetic.num_val_videos=3",
    "data.synthetic.frames_per_video=40",
    "data.synthetic.image_size=48",
)


def read_columns(path: Path, names: tuple[str, ...]) -> np.ndarray:
    """A valence-arousal or action-unit file by numpy's own parser, columns in ``names`` order."""
    header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, encoding="utf-8-sig")
    return values[:, [header.index(name) for name in names]]


def files_oracle(root: Path, task_dir: str, split_dir: str, names: tuple[str, ...]) -> dict:
    """Per split: the annotated lines with an image, and the skip counts, from the files."""
    kept, videos = [], 0
    skipped = dict.fromkeys(["invalid_label", "missing_frame", "beyond_labels"], 0)
    for path in sorted((root / "annotations" / task_dir / split_dir).glob("*.txt")):
        folder = root / "cropped_aligned" / path.stem
        if not folder.is_dir():
            continue
        values = read_columns(path, names)
        annotated = (values != -5).all(axis=1) if names == VA_NAMES else (values != -1).any(axis=1)
        on_disk = np.array([(folder / f"{i:05d}.jpg").is_file() for i in range(1, len(values) + 1)])
        skipped["invalid_label"] += int((on_disk & ~annotated).sum())
        skipped["missing_frame"] += int((~on_disk & annotated).sum())
        skipped["beyond_labels"] += sum(int(p.stem) > len(values) for p in folder.glob("*.jpg"))
        kept.append(values[on_disk & annotated])
        videos += bool((on_disk & annotated).any())
    return {"values": np.concatenate(kept), "videos": videos, "skipped": skipped}


@pytest.fixture(scope="module")
def synthetic_stats(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The statistics of a small synthetic set for every task (generated once)."""
    tmp_path = tmp_path_factory.mktemp("stats")
    root = tmp_path / "synth"
    return root, {
        task: stats_in_process(tmp_path, *SYNTHETIC, f"data.root={root}", f"task={task}")
        for task in ("expr", "va", "au", "mtl")
    }


def test_va_stats_match_numpy_on_the_files(synthetic_stats: tuple[Path, dict]) -> None:
    root, stats = synthetic_stats
    va = stats["va"]
    assert va["task"] == "va" and "classes" not in va and "class_weights" not in va
    assert va["va_histogram_edges"] == pytest.approx(np.linspace(-1, 1, 11).tolist())
    for split, split_dir in (("train", "Train_Set"), ("val", "Validation_Set")):
        oracle = files_oracle(root, "VA_Estimation_Challenge", split_dir, VA_NAMES)
        values, part = oracle["values"], va["splits"][split]
        assert part["frames"] == part["va_frames"] == len(values) > 0
        assert part["videos"] == oracle["videos"]
        assert {k: part["skipped"][k] for k in oracle["skipped"]} == oracle["skipped"]
        for column, name in enumerate(VA_NAMES):
            assert part[f"{name}_mean"] == pytest.approx(values[:, column].mean(), abs=2e-6)
            # bins by hand: floor((x + 1) / 0.2), with 1 in the last bin
            bins = np.minimum(np.floor((values[:, column] + 1) / 0.2 + 1e-9), 9).astype(int)
            assert part[f"{name}_histogram"] == np.bincount(bins, minlength=10).tolist()


def test_au_stats_match_numpy_on_the_files(synthetic_stats: tuple[Path, dict]) -> None:
    root, stats = synthetic_stats
    au = stats["au"]
    assert au["task"] == "au" and au["au_names"] == list(AU_NAMES)
    for split, split_dir in (("train", "Train_Set"), ("val", "Validation_Set")):
        oracle = files_oracle(root, "AU_Detection_Challenge", split_dir, AU_NAMES)
        values, part = oracle["values"], au["splits"][split]
        assert part["frames"] == part["au_frames"] == len(values) > 0
        assert part["videos"] == oracle["videos"]
        assert {k: part["skipped"][k] for k in oracle["skipped"]} == oracle["skipped"]
        assert part["au_positives"] == (values == 1).sum(axis=0).tolist()
        assert part["au_annotated"] == (values >= 0).sum(axis=0).tolist()
        rate = (values == 1).sum(axis=0) / (values >= 0).sum(axis=0)
        np.testing.assert_allclose(part["au_rate"], rate, atol=1e-6)


def test_mtl_stats_hold_each_task_s_sections(synthetic_stats: tuple[Path, dict]) -> None:
    _, stats = synthetic_stats
    mtl = stats["mtl"]
    # every frame one set annotates is kept, so each section is that set's own
    assert mtl["classes"] == stats["expr"]["classes"]
    assert mtl["class_weights"] == stats["expr"]["class_weights"]
    for split, part in mtl["splits"].items():
        assert part["per_class"] == stats["expr"]["splits"][split]["per_class"]
        for task in ("va", "au"):
            alone = stats[task]["splits"][split]
            for key in alone:
                if key not in ("videos", "frames", "skipped"):
                    assert part[key] == alone[key], (split, key)
            for name, count in alone["skipped"].items():
                if name != "unrecognised_name":
                    assert part["skipped"][f"{task}.{name}"] == count
        assert part["frames"] >= max(sum(part["per_class"]), part["va_frames"], part["au_frames"])


def test_expr_stats_have_no_task_sections(synthetic_stats: tuple[Path, dict]) -> None:
    _, stats = synthetic_stats
    expr = stats["expr"]
    assert list(expr) == ["dataset", "classes", "layout", "splits", "class_weights", "skipped",
                          "videos_without_frames"]  # fmt: skip
    assert list(expr["splits"]["train"]) == ["videos", "frames", "per_class", "skipped"]


def test_va_and_au_printouts(tmp_path: Path, capsys) -> None:
    root = tmp_path / "aw2"
    write_targets(root, "va", "train", "a", ["1,-1", "0.95,-0.05", "-5,-5"])
    write_targets(root, "va", "val", "b", ["0.1,0.1"])
    stats_in_process(tmp_path, "data=affwild2", f"data.root={root}", "task=va")
    printed = capsys.readouterr().out
    assert "Frames (affwild2: VA_Estimation_Challenge, task=va)" in printed
    assert "train: 2 frames; valence mean 0.975, arousal mean -0.525" in printed
    rows = [line for line in printed.splitlines() if line.startswith("  [")]
    assert len(rows) == 20 and rows[0].startswith("  [-1.0, -0.8)")
    # train: valence 1 and 0.95 in the last bin (closed at 1); arousal -1 in the first, -0.05
    assert rows[0].split()[-3:] == ["0", "#" * 12, "1"]
    assert rows[4].split()[-3:] == ["0", "#" * 12, "1"]
    assert rows[9].startswith("  [+0.8, +1.0]") and rows[9].split()[-3:] == ["#" * 24, "2", "0"]
    write_targets(root, "au", "train", "a", [[1] * 12, [0] * 11 + [-1]])
    write_targets(root, "au", "val", "b", [[0] * 12])
    stats = stats_in_process(tmp_path, "data=affwild2", f"data.root={root}", "task=au")
    assert stats["splits"]["train"]["au_rate"] == [0.5] * 11 + [1.0]
    printed = capsys.readouterr().out
    assert "train rate" in printed and "100.0%" in printed and "AU26" in printed


def test_the_task_key_is_checked_before_any_data_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task='vad' is not a task; choose one of"):
        stats_in_process(tmp_path, "data=affwild2", f"data.root={tmp_path / 'absent'}", "task=vad")
    (tmp_path / "faces").mkdir()
    with pytest.raises(ValueError, match="task=au: data.dataset=folder has expression labels only"):
        stats_in_process(tmp_path, "data=folder", f"data.root={tmp_path / 'faces'}", "task=au")
