"""The evaluation entry point, on a model trained for one epoch on generated data (CPU)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EVAL_ARGS, run_eval, run_train

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.synthetic import image_sets
from fer_multires.metrics import confusion_from_labels
from fer_multires.report import write_report
from fer_multires.results import SplitMetrics
from fer_multires.uncertainty import BootstrapSettings, PerVideoStats, VideoBootstrap, draw_videos

SPLITS = ("val_select", "val_rest", "val_full")

OUTPUTS = (
    "metrics.json",
    "per_video.npz",
    "predictions.csv",
    "resolution_robustness.csv",
    "resolution_robustness.png",
    "confusion_matrix.png",
    "report.md",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(shared_run, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The session's shared run: 45 validation frames (an odd number) in 5 videos, evaluated at
    the end of training (eval_after_fit) with the settings evaluate gets below."""
    return {"base": tmp_path_factory.mktemp("evaluate"), "data_root": shared_run.data_root,
            "ckpt": shared_run.ckpt, "train_metrics": shared_run.train_metrics,
            "run_dir": shared_run.run_dir, "eval_after_fit": shared_run.eval_after_fit}  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(trained) -> Path:
    out_dir = trained["base"] / "eval"
    run_eval(trained["ckpt"], out_dir)
    return out_dir


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_output_directory_shape(trained, evaluated) -> None:
    assert sorted(p.name for p in evaluated.iterdir() if p.is_file()) == sorted(OUTPUTS)
    assert not [p for p in evaluated.iterdir() if p.name.startswith(".eval")]
    metrics = json.loads((evaluated / "metrics.json").read_text())
    keys = ["native", "8", "16"]
    for split in SPLITS:
        assert sorted(metrics[split]) == sorted(keys)
        for key in keys:
            entry = metrics[split][key]
            assert set(entry) == {"accuracy", "f1_macro", "f1_per_class", "challenge_score", "n",
                                  "ci95"}  # fmt: skip
            for metric, (low, high) in entry["ci95"].items():
                assert low <= entry[metric] <= high, (split, key, metric)
            assert list(entry["f1_per_class"]) == list(EXPRESSIONS_7)
            assert entry["challenge_score"] == pytest.approx(
                0.33 * entry["accuracy"] + 0.67 * entry["f1_macro"]
            )
    assert [metrics[s]["native"]["n"] for s in SPLITS] == [18, 27, 45]
    # 32 px is not below the 24 px frames: nothing to degrade, so not evaluated
    assert metrics["skipped_images"] == {"val_select": 0, "val_rest": 0, "val_full": 0}
    assert metrics["resolutions"] == [8, 16]
    assert metrics["dataset"] == "affwild2" and metrics["excluded_classes"] == {}
    assert metrics["degradations"]["bilinear"]["val_rest"] == metrics["val_rest"]
    smoothing = metrics["smoothing"]
    assert smoothing["kind"] == "mean" and smoothing["windows"] == [1, 3, 5]
    assert smoothing["chosen_on"] == "val_select" and smoothing["chosen_window"] in (1, 3, 5)
    for split in SPLITS:
        assert smoothing["results"][split]["1"] == metrics[split]["native"]
    groups = {"val_select": 2, "val_rest": 3, "val_full": 5}
    assert metrics["bootstrap"] == {"samples": 2000, "seed": 0, "confidence": 0.95,
                                    "resampled": "video", "groups": groups}  # fmt: skip
    robustness = (evaluated / "resolution_robustness.csv").read_text().splitlines()
    assert robustness[0] == (
        "degradation,split,resolution,accuracy,f1_macro,challenge_score,n,score_ci_low,score_ci_high"
    )
    assert len(robustness) == 1 + 3 * 3 and robustness[-1].startswith("bilinear,val_full,native,")
    report = (evaluated / "report.md").read_text()
    for text in ("Table 3", "Table 4", "val_rest is the honest estimate", str(trained["ckpt"]),
                 "Few videos in val_select (2 videos), val_rest (3 videos), val_full (5 videos): "
                 "there the interval says little"):  # fmt: skip
        assert text in report
    for png in ("resolution_robustness.png", "confusion_matrix.png"):
        assert (evaluated / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_after_fit_writes_what_evaluate_writes(trained, evaluated) -> None:
    after_fit = trained["run_dir"] / "eval"
    assert sorted(p.name for p in after_fit.iterdir() if p.is_file()) == sorted(OUTPUTS)
    ours = json.loads((after_fit / "metrics.json").read_text())
    standalone = json.loads((evaluated / "metrics.json").read_text())
    assert ours["checkpoint"] == standalone["checkpoint"] == str(trained["ckpt"])
    assert ours["run_config"] == str(trained["run_dir"] / "config.yaml")
    for key in (*SPLITS, "smoothing", "resolutions", "skipped_images", "classes"):
        assert ours[key] == standalone[key], key
    assert trained["eval_after_fit"].to_json() == ours
    predictions = (after_fit / "predictions.csv").read_text()
    assert predictions == (evaluated / "predictions.csv").read_text()


def test_failed_eval_after_fit_keeps_the_checkpoint(trained, tmp_path, monkeypatch) -> None:
    from fer_multires.evaluation import runner
    from fer_multires.train import EvaluationAfterFitError

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(runner, "write_outputs", disk_full)
    run_dir = tmp_path / "run"
    with pytest.raises(EvaluationAfterFitError, match="No space left.*checkpoint is kept"):
        run_train(trained["data_root"], tmp_path, run_dir, "eval_after_fit=true", *EVAL_ARGS)
    training = json.loads((run_dir / "metrics.json").read_text())
    assert Path(training["checkpoint"]).is_file() and "val_select/score" in training["metrics"]
    assert (run_dir / "eval" / "error.txt").read_text() == "OSError: No space left on device\n"
    assert not (run_dir / "eval" / "metrics.json").exists()
    assert not list((run_dir / "eval").glob(".eval_raw*"))
    (job,) = write_report(run_dir)
    assert job.status == "eval failed: OSError: No space left on device"
    assert "Evaluation failed (the checkpoint is kept)" in (run_dir / "report.md").read_text()
    # evaluating it again by hand, into the same folder, clears the failure
    monkeypatch.undo()
    run_eval(Path(training["checkpoint"]), run_dir / "eval")
    assert not (run_dir / "eval" / "error.txt").exists()
    (job,) = write_report(run_dir)
    assert job.status == "ok" and job.eval_dir == (run_dir / "eval").resolve()
    # the report shows the evaluation's scores with their intervals
    entry = json.loads((run_dir / "eval" / "metrics.json").read_text())["val_rest"]["native"]
    low, high = entry["ci95"]["challenge_score"]
    cell = f"{entry['challenge_score']:.3f} [{low:.3f}, {high:.3f}]"
    assert cell in (run_dir / "report.md").read_text()


def test_predictions_csv_reproduces_metrics(evaluated) -> None:
    rows = read_predictions(evaluated / "predictions.csv")
    assert list(rows[0]) == ["split", "video", "frame", "label", "predicted",
                             *(f"p_{c}" for c in EXPRESSIONS_7)]  # fmt: skip
    assert [sum(r["split"] == s for r in rows) for s in ("val_select", "val_rest")] == [18, 27]
    keys = [(r["video"], int(r["frame"])) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == 45
    index = {c: i for i, c in enumerate(EXPRESSIONS_7)}
    labels = np.array([index[r["label"]] for r in rows])
    predicted = np.array([index[r["predicted"]] for r in rows])
    probs = np.array([[float(r[f"p_{c}"]) for c in EXPRESSIONS_7] for r in rows])
    assert probs.sum(axis=1) == pytest.approx(np.ones(45), abs=1e-4)
    # the predicted class has the highest probability (to the CSV's 6 significant digits)
    assert np.all(probs[np.arange(45), predicted] >= probs.max(axis=1) - 1e-5)
    metrics = json.loads((evaluated / "metrics.json").read_text())
    recomputed = SplitMetrics.from_confusion(
        confusion_from_labels(labels, predicted, 7), EXPRESSIONS_7
    ).to_json()
    assert recomputed == {k: v for k, v in metrics["val_full"]["native"].items() if k != "ci95"}


def frame_bootstrap(rows: list[dict[str, str]], split: str, stream: int) -> np.ndarray:
    """A plain bootstrap of predictions.csv, grouped by video, on the evaluation's draws."""
    rows = [r for r in rows if split == "val_full" or r["split"] == split]
    videos = sorted({r["video"] for r in rows})
    index = {c: i for i, c in enumerate(EXPRESSIONS_7)}
    by_video = {v: [r for r in rows if r["video"] == v] for v in videos}
    scores = []
    for sample in draw_videos(len(videos), 2000, seed=0, stream=stream):
        drawn = [r for g in sample for r in by_video[videos[g]]]
        confusion = confusion_from_labels([index[r["label"]] for r in drawn],
                                          [index[r["predicted"]] for r in drawn], 7)  # fmt: skip
        scores.append(SplitMetrics.from_confusion(confusion, EXPRESSIONS_7).challenge_score)
    return np.quantile(scores, [0.025, 0.975])


def test_native_intervals_equal_a_bootstrap_of_predictions_csv(evaluated) -> None:
    rows = read_predictions(evaluated / "predictions.csv")
    metrics = json.loads((evaluated / "metrics.json").read_text())
    for stream, split in enumerate(SPLITS):
        expected = frame_bootstrap(rows, split, stream)
        ours = metrics[split]["native"]["ci95"]["challenge_score"]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_per_video_file_adds_up_to_the_metrics_and_gives_their_intervals(evaluated) -> None:
    stats = PerVideoStats.load(evaluated)
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert stats.unit == "video" and len(stats.groups) == 5 and stats.classes == list(EXPRESSIONS_7)
    assert stats.points == ["native", "bilinear/8", "bilinear/16"]
    settings = BootstrapSettings(2000, 0, 0.95)
    boot = VideoBootstrap.create(stats, settings)
    for split in SPLITS:
        intervals = boot.intervals(split, stats.confusions)
        for p, key in enumerate(("native", "8", "16")):
            confusion = stats.confusions[stats.split_groups(split), p].sum(axis=0)
            entry = SplitMetrics.from_confusion(confusion, EXPRESSIONS_7)
            assert entry.challenge_score == metrics[split][key]["challenge_score"]
            for metric, bounds in intervals[p].items():
                assert list(bounds) == metrics[split][key]["ci95"][metric]


def test_native_metrics_equal_training_validation(trained, evaluated) -> None:
    logged = trained["train_metrics"]
    native = json.loads((evaluated / "metrics.json").read_text())
    for split in SPLITS:
        entry = native[split]["native"]
        assert entry["challenge_score"] == pytest.approx(logged[f"{split}/score"], abs=1e-6)
        assert entry["accuracy"] == pytest.approx(logged[f"{split}/acc"], abs=1e-6)
        assert entry["f1_macro"] == pytest.approx(logged[f"{split}/f1"], abs=1e-6)
    assert native["val_full"]["native"]["n"] == logged["val_full/n"]


def test_two_processes_give_the_same_metrics(trained, evaluated, tmp_path) -> None:
    """trainer=ddp_sim with 2 processes on 45 samples: exactly the numbers of one process."""
    run_eval(trained["ckpt"], tmp_path / "ddp", "trainer=ddp_sim", "trainer.devices=2")
    one = json.loads((evaluated / "metrics.json").read_text())
    two = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert two == one
    rows_one = read_predictions(evaluated / "predictions.csv")
    rows_two = read_predictions(tmp_path / "ddp" / "predictions.csv")
    assert [r["video"] + r["frame"] + r["predicted"] for r in rows_two] == [
        r["video"] + r["frame"] + r["predicted"] for r in rows_one
    ]
    assert not [p for p in (tmp_path / "ddp").iterdir() if p.name.startswith(".eval")]


def test_eval_compile_true_compiles_an_eager_checkpoint_with_the_same_results(
    trained, evaluated, tmp_path, caplog
) -> None:
    # the backend is the checkpoint's (aot_eager here: seconds); inductor is tested in
    # test_compile.py
    ckpt = torch.load(trained["ckpt"], map_location="cpu", weights_only=False)
    assert not ckpt["hyper_parameters"]["compile"]
    ckpt["hyper_parameters"]["compile_backend"] = "aot_eager"
    torch.save(ckpt, tmp_path / "eager.ckpt")
    shutil.copy(trained["run_dir"] / "config.yaml", tmp_path)  # the training's data config
    with caplog.at_level("INFO", logger="fer_multires.models.module"):
        run_eval(tmp_path / "eager.ckpt", tmp_path / "compiled", "eval.compile=true")
    assert "backbone compiled: torch.compile(backend='aot_eager'" in caplog.text
    compiled = read_predictions(tmp_path / "compiled" / "predictions.csv")
    eager = read_predictions(evaluated / "predictions.csv")
    assert [r["predicted"] for r in compiled] == [r["predicted"] for r in eager]
    for split in SPLITS:
        scores = [json.loads((d / "metrics.json").read_text())[split]["native"]["challenge_score"]
                  for d in (tmp_path / "compiled", evaluated)]  # fmt: skip
        assert scores[0] == scores[1], split


def test_run_directory_as_ckpt_path_uses_its_best_checkpoint(trained, evaluated, tmp_path) -> None:
    summary = run_eval(trained["ckpt"].parents[1], tmp_path / "out")
    one = json.loads((evaluated / "metrics.json").read_text())
    assert summary["checkpoint"] == one["checkpoint"] == str(trained["ckpt"])
    assert all(summary[split] == one[split] for split in SPLITS)
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="without a metrics.json naming"):
        run_eval(tmp_path / "unfinished", tmp_path / "out2")


def test_resolution_below_one_is_an_error_before_any_data_is_read(trained, tmp_path) -> None:
    with pytest.raises(ValueError, match="eval.resolutions: resolution 0 must be >= 1"):
        run_eval(trained["ckpt"], tmp_path / "out", "eval.resolutions=[0,8]",
                 f"data.root={tmp_path / 'missing'}")  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "message"),
    [("eval.degradations=[bilinear,nearest]", "eval.degradations: unknown nearest"),
     ("eval.jpeg_quality=0", "eval.jpeg_quality=0 must be an integer in 1..100")],
)  # fmt: skip
def test_bad_degradation_setting_is_an_error_before_any_data_is_read(
    trained, tmp_path, setting, message
) -> None:
    with pytest.raises(ValueError, match=message):
        run_eval(trained["ckpt"], tmp_path / "out", setting, f"data.root={tmp_path / 'missing'}")


def test_every_degradation_is_evaluated_and_reported(trained, evaluated, tmp_path) -> None:
    out = tmp_path / "out"
    summary = run_eval(trained["ckpt"], out, "eval.degradations=[area,jpeg,blur,bicubic]")
    kernels = summary["degradations"]
    assert list(kernels) == ["bilinear", "area", "jpeg", "blur", "bicubic"]
    one = json.loads((evaluated / "metrics.json").read_text())
    for split in SPLITS:  # the training kernel's results are the usual ones
        assert kernels["bilinear"][split] == summary[split] == one[split]
        for by_split in kernels.values():
            assert by_split[split]["native"] == one[split]["native"]
            assert sorted(by_split[split]) == ["16", "8", "native"]
    assert summary["jpeg_quality"] == 30
    rows = (out / "resolution_robustness.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 3 * 3 and {r.split(",")[0] for r in rows[1:]} == set(kernels)
    report = (out / "report.md").read_text()
    assert "## Degradations (val_rest challenge score) (JPEG quality 30)" in report
    assert "| resolution | bilinear | area | jpeg | blur | bicubic |" in report


def predictions_by_frame(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as f:
        return {(row["video"], row["frame"]): row for row in csv.DictReader(f)}


def renamed_checkpoint(trained, tmp_path: Path, names: list[str]) -> Path:
    """A copy of the trained checkpoint (and its run config) whose classes have other names."""
    ckpt = torch.load(trained["ckpt"], map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["class_names"] = names
    path = tmp_path / "run" / "checkpoints" / "renamed.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    shutil.copy(trained["ckpt"].parents[1] / "config.yaml", tmp_path / "run" / "config.yaml")
    return path


def test_checkpoint_sharing_no_class_with_the_data_is_an_error(trained, tmp_path) -> None:
    bad = renamed_checkpoint(trained, tmp_path, [f"class{i}" for i in range(7)])
    with pytest.raises(ValueError, match="ckpt_path: .*share none"):
        run_eval(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_classes_the_model_does_not_know_are_left_out_and_counted(trained, evaluated, tmp_path):
    # The model calls its Fear output "Contempt": the data's Fear frames are unknown to it.
    names = [("Contempt" if c == "Fear" else c) for c in EXPRESSIONS_7]
    out = tmp_path / "out"
    summary = run_eval(renamed_checkpoint(trained, tmp_path, names), out)
    shared = [c for c in EXPRESSIONS_7 if c != "Fear"]
    assert summary["classes"] == shared and summary["model_classes"] == names
    truth = predictions_by_frame(evaluated / "predictions.csv")
    fear = sum(row["label"] == "Fear" for row in truth.values())
    assert fear > 0 and summary["excluded_classes"] == {"Fear": fear}
    assert summary["val_full"]["native"]["n"] == len(truth) - fear
    mine = predictions_by_frame(out / "predictions.csv")
    assert set(mine) == {key for key, row in truth.items() if row["label"] != "Fear"}
    assert {row["predicted"] for row in mine.values()} <= set(shared)
    # the argmax over the shared classes: where the model's own top class is shared, unchanged
    for key, row in mine.items():
        if truth[key]["predicted"] != "Fear":
            assert row["predicted"] == truth[key]["predicted"]
    report = (out / "report.md").read_text()
    assert (
        f"Fear ({fear} samples)" in report
        and "model classes the data does not have: Contempt" in report
    )


def test_demo_trained_on_affwild2_evaluated_on_generated_ferplus(trained, tmp_path) -> None:
    # 8 FERPlus classes against a 7-class model: Contempt is left out, counted and reported.
    ferplus = image_sets.write_ferplus(tmp_path / "ferplus", per_class=3)
    val = ferplus["counts"]["val"]
    out = tmp_path / "out"
    summary = run_eval(trained["ckpt"], out, "data=ferplus", f"data.root={ferplus['root']}",
                       "data.num_workers=0")  # fmt: skip
    assert summary["dataset"] == "ferplus" and summary["classes"] == list(EXPRESSIONS_7)
    assert summary["excluded_classes"] == {"Contempt": val["Contempt"]} and val["Contempt"] > 0
    native = summary["val_full"]["native"]
    assert native["n"] == sum(val.values()) - val["Contempt"]
    assert summary["native_size"] == [48, 48] and summary["resolutions"] == [8, 16, 32]
    rows = read_predictions(out / "predictions.csv")
    assert len(rows) == native["n"] and "Contempt" not in {row["label"] for row in rows}
    report = (out / "report.md").read_text()
    assert f"Contempt ({val['Contempt']} samples)" in report and "still images" in report


def test_image_folder_with_non_ascii_and_non_utf8_names_is_evaluated(trained, tmp_path) -> None:
    # names are kept as the file system's bytes; predictions.csv names them readably
    folder = image_sets.write_folder(tmp_path / "faces", per_class=2, image_size=32)
    happy = Path(folder["root"]) / "val" / folder["folders"]["Happiness"]
    first, second = sorted(p for p in happy.iterdir() if p.suffix != ".txt")[:2]
    first.rename(happy / f"été{first.suffix}")
    with contextlib.suppress(OSError, UnicodeError):  # a file system of UTF-8 names only
        second.rename(happy / os.fsdecode(b"caf\xe9" + os.fsencode(second.suffix)))
    out = tmp_path / "out"
    summary = run_eval(trained["ckpt"], out, "data=folder", f"data.root={folder['root']}",
                       "data.num_workers=0")  # fmt: skip
    assert summary["val_full"]["native"]["n"] == sum(folder["counts"]["val"].values())
    images = {row["image"] for row in read_predictions(out / "predictions.csv")}
    assert f"val/{happy.name}/été{first.suffix}" in images
    if (happy / os.fsdecode(b"caf\xe9" + os.fsencode(second.suffix))).exists():
        assert f"val/{happy.name}/caf\\xe9{second.suffix}" in images  # the byte, escaped


def test_checkpoint_without_run_config_needs_the_data_config(trained, evaluated, tmp_path) -> None:
    lone = tmp_path / "lone.ckpt"
    shutil.copy(trained["ckpt"], lone)
    with pytest.raises(ValueError, match=r"no config.yaml next to .*lone\.ckpt.*data.root=PATH"):
        run_eval(lone, tmp_path / "out")
    # with the training's data settings on the command line, the same numbers
    summary = run_eval(lone, tmp_path / "out", f"data.root={trained['data_root']}",
                       "data.resize_size=28", "data.crop_size=24", "data.val_select_fraction=0.4",
                       "data.num_workers=0", "data.eval_batch_size=16")  # fmt: skip
    assert summary["run_config"] is None
    one = json.loads((evaluated / "metrics.json").read_text())
    assert all(summary[split] == one[split] for split in SPLITS)


def test_unreadable_image_is_skipped_and_counted_under_a_data_root_override(
    trained, tmp_path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained["data_root"], copy)
    (copy / "cropped_aligned" / "val_001" / "00004.jpg").write_bytes(b"not a jpeg")
    summary = run_eval(trained["ckpt"], tmp_path / "out", f"data.root={copy}",
                       "data.on_bad_image=skip")  # fmt: skip
    assert summary["data_root"] == str(copy)
    assert summary["skipped_images"]["val_full"] == 1
    assert summary["val_full"]["native"]["n"] == summary["val_full"]["8"]["n"] == 44
    rows = read_predictions(tmp_path / "out" / "predictions.csv")
    assert len(rows) == 44 and ("val_001", "4") not in {(r["video"], r["frame"]) for r in rows}


def test_evaluation_with_every_image_unreadable_is_an_error(trained, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained["data_root"], copy)
    for image in (copy / "cropped_aligned").glob("val_*/*.jpg"):
        image.write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match="val_full: none of its 45 samples was evaluated"):
        run_eval(trained["ckpt"], tmp_path / "out", f"data.root={copy}", "data.on_bad_image=skip")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_honours_a_data_root_override(trained, evaluated, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained["data_root"], copy)
    (copy / "cropped_aligned" / "val_002" / "00005.jpg").unlink()  # only the copy lacks it
    out_dir = tmp_path / "cli"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.evaluate", f"ckpt_path={trained['ckpt']}",
         f"run_dir={out_dir}", f"data.root={copy}", *EVAL_ARGS],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {out_dir / 'report.md'}" in result.stdout
    assert "challenge score" in result.stdout
    cli = json.loads((out_dir / "metrics.json").read_text())
    assert cli["data_root"] == str(copy)
    assert cli["val_full"]["native"]["n"] == 44
    expected = [r for r in read_predictions(evaluated / "predictions.csv")
                if (r["video"], r["frame"]) != ("val_002", "5")]  # fmt: skip
    assert read_predictions(out_dir / "predictions.csv") == expected
    # the same model on one frame fewer: compare refuses, naming both files
    refused = run_compare(evaluated, out_dir, tmp_path / "cmp")
    assert refused.returncode == 1
    assert (
        f"{evaluated / 'metrics.json'} and {out_dir / 'metrics.json'} evaluate different data"
        in (refused.stderr)
    )


def run_compare(a: Path, b: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "fer_multires.compare", str(a), str(b), "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def paired_reference(a: list[dict], b: list[dict], split: str, samples: int) -> np.ndarray:
    """The paired interval of the native score difference, from two predictions.csv files."""
    a = [r for r in a if split in ("val_full", r["split"])]
    b = [r for r in b if split in ("val_full", r["split"])]
    assert [(r["video"], r["frame"]) for r in a] == [(r["video"], r["frame"]) for r in b]
    videos = sorted({r["video"] for r in a})
    index = {c: i for i, c in enumerate(EXPRESSIONS_7)}

    def score(rows: list[dict]) -> float:
        confusion = confusion_from_labels([index[r["label"]] for r in rows],
                                          [index[r["predicted"]] for r in rows], 7)  # fmt: skip
        return SplitMetrics.from_confusion(confusion, EXPRESSIONS_7).challenge_score

    differences = []
    for sample in draw_videos(len(videos), samples, seed=0, stream=SPLITS.index(split)):
        rows = [i for g in sample for i, r in enumerate(a) if r["video"] == videos[g]]
        differences.append(score([a[i] for i in rows]) - score([b[i] for i in rows]))
    return np.quantile(differences, [0.025, 0.975])


def test_compare_cli_pairs_two_models_on_the_same_videos(trained, evaluated, tmp_path) -> None:
    ckpt = torch.load(trained["ckpt"], map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for value in ckpt["state_dict"].values():  # another model: perturbed weights
        if value.is_floating_point():
            value.add_(
                0.5 * value.std().nan_to_num() * torch.randn(value.shape, generator=generator)
            )
    other_ckpt = tmp_path / "run" / "checkpoints" / "other.ckpt"
    other_ckpt.parent.mkdir(parents=True)
    torch.save(ckpt, other_ckpt)
    shutil.copy(trained["run_dir"] / "config.yaml", tmp_path / "run" / "config.yaml")
    other = tmp_path / "other"
    run_eval(other_ckpt, other)
    result = run_compare(evaluated, other, tmp_path / "cmp", "--samples", "300")
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = ("beyond the interval", "the data cannot tell multires and baseline apart")
    assert any(v in result.stdout for v in verdicts)
    with (tmp_path / "cmp" / "comparison.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3  # splits x (8, 16, native)
    mine, theirs = (read_predictions(d / "predictions.csv") for d in (evaluated, other))
    for split in ("val_rest", "val_full"):
        (row,) = [r for r in rows if r["split"] == split and r["resolution"] == "native"]
        expected = paired_reference(mine, theirs, split, 300)
        np.testing.assert_allclose([float(row["ci_low"]), float(row["ci_high"])], expected,
                                   atol=1e-6)  # fmt: skip
    # an evaluation written before per_video.npz existed: compared without intervals, and said
    (other / "per_video.npz").unlink()
    result = run_compare(evaluated, other, tmp_path / "cmp_old")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{other / 'metrics.json'} has no per_video.npz" in result.stdout


def test_eval_after_fit_under_ddp_equals_one_process(trained, tmp_path) -> None:
    """Training with 2 processes evaluates on them, exactly as evaluate does on one."""
    run_dir = tmp_path / "ddp_run"
    run_train(trained["data_root"], tmp_path, run_dir, "trainer=ddp_sim", "trainer.devices=2",
              "eval_after_fit=true", *EVAL_ARGS)  # fmt: skip
    after_fit = json.loads((run_dir / "eval" / "metrics.json").read_text())
    standalone = run_eval(Path(after_fit["checkpoint"]), tmp_path / "one")
    assert after_fit["val_full"]["native"]["n"] == 45
    for key in (*SPLITS, "smoothing"):
        assert after_fit[key] == standalone[key], key
