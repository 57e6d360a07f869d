"""Evaluating valence-arousal, action-unit and multi-task models, through the entry points.

Every test reads the session's task runs (``conftest.task_runs``: one epoch on noise frames with
random annotations, evaluated at the end of training into ``<run>/eval``). Their scores are near
chance: what is checked is that every number is the one its definition gives, recomputed from
``predictions.csv`` with numpy, on one process and on two.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_eval

from fer_multires.compare import main as compare_main
from fer_multires.evaluation.outputs import robustness_columns
from fer_multires.metrics import confusion_from_labels, metrics_from_confusion
from fer_multires.report import write_report
from fer_multires.task_metrics import AU_THRESHOLDS, au_f1_at
from fer_multires.tasks import AU_NAMES, TASK_HEADS
from fer_multires.uncertainty import PerVideoStats, draw_videos

SPLITS = ("val_select", "val_rest", "val_full")
TASKS = ("va", "au", "mtl")
KEYS = ("native", "8", "16")

EXPR_KEYS = {"accuracy", "f1_macro", "f1_per_class", "challenge_score"}
VA_KEYS = {"ccc_valence", "ccc_arousal", "va_score"}
AU_KEYS = {"f1_per_au", "au_score"}
#: Each task's entry keys (besides ``ci95``) and the metrics with an interval.
ENTRY_KEYS = {
    "va": VA_KEYS | {"n"},
    "au": AU_KEYS | {"n"},
    "mtl": EXPR_KEYS | VA_KEYS | AU_KEYS | {"mtl_score", "n", "n_expr", "n_va", "n_au"},
}
INTERVAL_KEYS = {
    "va": VA_KEYS,
    "au": {"au_score"},
    "mtl": {"challenge_score", "accuracy", "f1_macro", *VA_KEYS, "au_score", "mtl_score"},
}
SCORE = {"va": "va_score", "au": "au_score", "mtl": "mtl_score"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def metrics_of(eval_dir: Path) -> dict:
    return json.loads((eval_dir / "metrics.json").read_text())


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def in_split(rows: list[dict[str, str]], split: str) -> list[dict[str, str]]:
    return [r for r in rows if split == "val_full" or r["split"] == split]


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """ABAW's CCC, two-pass in numpy (np.cov with population moments); 0 where it is undefined
    (no frame: a resample of videos without a valence-arousal annotation), as defined."""
    if not len(x):
        return 0.0
    cov = np.cov(x, y, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))


def csv_scores(rows: list[dict[str, str]], task: str, thresholds: dict | None, classes: list):
    """Every head's metrics of some predictions.csv rows, recomputed from the file alone."""
    out: dict[str, float] = {}
    heads = TASK_HEADS[task]
    if "expr" in heads:
        index = {c: i for i, c in enumerate(classes)}
        labelled = [r for r in rows if r["label"]]
        confusion = confusion_from_labels([index[r["label"]] for r in labelled],
                                          [index[r["predicted"]] for r in labelled],
                                          len(classes))  # fmt: skip
        m = metrics_from_confusion(confusion)
        out |= {"accuracy": float(m["acc"]), "f1_macro": float(m["f1"]),
                "challenge_score": float(m["score"])}  # fmt: skip
    if "va" in heads:
        annotated = [r for r in rows if r["valence"]]
        for name in ("valence", "arousal"):
            x = np.array([float(r[f"pred_{name}"]) for r in annotated])
            y = np.array([float(r[name]) for r in annotated])
            out[f"ccc_{name}"] = ccc(x, y)
        out["va_score"] = (out["ccc_valence"] + out["ccc_arousal"]) / 2
    if "au" in heads:
        probs = np.array([[float(r[f"p_{a}"]) for a in AU_NAMES] for r in rows])
        target = np.array([[int(r[a]) for a in AU_NAMES] for r in rows])
        f1 = au_f1_at(probs.reshape(-1, len(AU_NAMES)), target.reshape(-1, len(AU_NAMES)),
                      [thresholds[a] for a in AU_NAMES])  # fmt: skip
        out |= {f"f1_{a}": float(v) for a, v in zip(AU_NAMES, f1, strict=True)}
        out["au_score"] = float(np.mean(f1))
    if task == "mtl":
        out["mtl_score"] = out["va_score"] + out["f1_macro"] + out["au_score"]
    return out


def assert_same(a, b, where: str = "", tolerance: float = 0.0) -> None:
    """Equal JSON; floats to ``tolerance``."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}", tolerance)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]", tolerance)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=0, abs=tolerance), where
    else:
        assert a == b, where


@pytest.mark.parametrize("task", TASKS)
def test_outputs_and_metrics_json_shape(task_runs, task: str) -> None:
    run = task_runs(task)
    eval_dir = run / "eval"
    files = {"metrics.json", "per_video.npz", "predictions.csv", "resolution_robustness.csv",
             "resolution_robustness.png", "report.md"}  # fmt: skip
    if task == "mtl":
        files.add("confusion_matrix.png")
    assert {p.name for p in eval_dir.iterdir() if p.is_file()} == files
    metrics = metrics_of(eval_dir)
    assert metrics["task"] == task and metrics["resolutions"] == [8, 16]
    assert ("au_thresholds" in metrics) == ("au" in TASK_HEADS[task])
    assert metrics["classes"] == ([] if task != "mtl" else metrics["model_classes"])
    for split in SPLITS:
        assert sorted(metrics[split]) == sorted(KEYS)
        assert metrics["degradations"]["bilinear"][split] == metrics[split]
        for key in KEYS:
            entry = metrics[split][key]
            assert set(entry) == ENTRY_KEYS[task] | {"ci95"}, (split, key)
            assert set(entry["ci95"]) == INTERVAL_KEYS[task]
            if "va_score" in entry:
                mean = (entry["ccc_valence"] + entry["ccc_arousal"]) / 2
                assert entry["va_score"] == pytest.approx(mean, abs=1e-12)
            if "au_score" in entry:
                assert list(entry["f1_per_au"]) == list(AU_NAMES)
                mean = np.mean(list(entry["f1_per_au"].values()))
                assert entry["au_score"] == pytest.approx(mean, abs=1e-12)
            if task == "mtl":
                parts = entry["va_score"] + entry["f1_macro"] + entry["au_score"]
                assert entry["mtl_score"] == pytest.approx(parts, abs=1e-12)
                assert entry["n"] >= max(entry["n_expr"], entry["n_va"], entry["n_au"])
    n = {s: metrics[s]["native"]["n"] for s in SPLITS}
    assert n["val_full"] == n["val_select"] + n["val_rest"] > 0
    smoothing = metrics["smoothing"]
    assert smoothing["windows"] == [1, 3, 5] and smoothing["chosen_on"] == "val_select"
    for split in SPLITS:
        assert smoothing["results"][split]["1"] == metrics[split]["native"]
        assert set(smoothing["results"][split]["3"]) == ENTRY_KEYS[task] | {"ci95"}
    robustness = (eval_dir / "resolution_robustness.csv").read_text().splitlines()
    assert robustness[0] == ",".join(robustness_columns(task)) and len(robustness) == 1 + 3 * 3
    report = (eval_dir / "report.md").read_text()
    assert f"## Resolution robustness ({SCORE[task]}" in report
    for head, heading in (("expr", "## Table 4"), ("va", "## Valence-arousal"),
                          ("au", "## Action units: F1 per AU")):  # fmt: skip
        assert (heading in report) == (head in TASK_HEADS[task]), heading
    stats = PerVideoStats.load(eval_dir)
    assert stats.task == task and stats.points == ["native", "bilinear/8", "bilinear/16"]
    assert (stats.va_sums is not None) == ("va" in TASK_HEADS[task])
    assert (stats.au_counts is not None) == ("au" in TASK_HEADS[task])
    assert (stats.confusions is not None) == (task == "mtl")
    assert int(stats.frames.sum()) == n["val_full"]
    training = json.loads((run / "metrics.json").read_text())
    assert training["task"] == task
    assert training.get("au_thresholds") == (
        dict.fromkeys(AU_NAMES, 0.5) if "au" in TASK_HEADS[task] else None
    )
    assert training["metrics"]["val_select/score"] == pytest.approx(
        training["metrics"][f"val_select/{SCORE[task]}"]
        if task != "mtl"
        else training["metrics"]["val_select/va_score"] + training["metrics"]["val_select/f1"]
        + training["metrics"]["val_select/au_score"], abs=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_predictions_csv_recomputes_metrics_json(task_runs, task: str) -> None:
    eval_dir = task_runs(task) / "eval"
    metrics = metrics_of(eval_dir)
    rows = read_rows(eval_dir / "predictions.csv")
    header = list(rows[0])
    va_columns = ["valence", "arousal", "pred_valence", "pred_arousal"]
    au_columns = [*AU_NAMES, *(f"p_{a}" for a in AU_NAMES)]
    expected = {"va": va_columns, "au": au_columns}.get(task)
    if task == "mtl":
        expr = ["label", "predicted", *(f"p_{c}" for c in metrics["classes"])]
        expected = [*expr, *va_columns, *au_columns]
    assert header == ["split", "video", "frame", *expected]
    keys = [(r["video"], int(r["frame"])) for r in rows]
    assert (
        keys == sorted(keys) and len(set(keys)) == len(rows) == metrics["val_full"]["native"]["n"]
    )
    for split in SPLITS:
        entry = metrics[split]["native"]
        recomputed = csv_scores(in_split(rows, split), task, metrics.get("au_thresholds"),
                                metrics["classes"])  # fmt: skip
        for name, value in recomputed.items():
            stored = entry["f1_per_au"][name[3:]] if name.startswith("f1_AU") else entry[name]
            assert stored == pytest.approx(value, rel=0, abs=1e-6), (split, name)


@pytest.mark.parametrize("task", ["au", "mtl"])
def test_au_thresholds_are_chosen_on_val_select_and_applied_everywhere(task_runs, task) -> None:
    eval_dir = task_runs(task) / "eval"
    metrics = metrics_of(eval_dir)
    rows = in_split(read_rows(eval_dir / "predictions.csv"), "val_select")
    probs = np.array([[float(r[f"p_{a}"]) for a in AU_NAMES] for r in rows])
    target = np.array([[int(r[a]) for a in AU_NAMES] for r in rows])
    # every grid threshold's F1 on val_select; the best, ties to the nearest 0.5, then the lower
    f1 = np.stack([au_f1_at(probs, target, t) for t in AU_THRESHOLDS])  # (T, 12)
    for a, name in enumerate(AU_NAMES):
        best = max(f1[:, a])
        candidates = [t for t, v in zip(AU_THRESHOLDS, f1[:, a], strict=True) if v == best]
        chosen = min(candidates, key=lambda t: (abs(t - 0.5), t))
        assert metrics["au_thresholds"][name] == chosen, name
    # applied unchanged to the other splits and the degraded points: val_rest at 8 px from the
    # per-video counts at those thresholds (the recomputation at native is the test above)
    stats = PerVideoStats.load(eval_dir)
    assert list(stats.au_thresholds) == [metrics["au_thresholds"][a] for a in AU_NAMES]
    rest = stats.au_counts[stats.split_groups("val_rest"), stats.point_index("bilinear", "8")]
    tp, fp, fn = rest.sum(axis=0)
    f1_rest = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    assert metrics["val_rest"]["8"]["au_score"] == pytest.approx(f1_rest.mean(), abs=1e-12)


@pytest.mark.parametrize("task", TASKS)
def test_native_intervals_equal_a_bootstrap_of_predictions_csv(task_runs, task: str) -> None:
    """The task score's interval: whole videos of predictions.csv resampled on the same draws."""
    eval_dir = task_runs(task) / "eval"
    metrics = metrics_of(eval_dir)
    rows = read_rows(eval_dir / "predictions.csv")
    for stream, split in enumerate(SPLITS):
        chosen = in_split(rows, split)
        videos = sorted({r["video"] for r in chosen})
        by_video = {v: [r for r in chosen if r["video"] == v] for v in videos}
        scores = [
            csv_scores([r for g in sample for r in by_video[videos[g]]], task,
                       metrics.get("au_thresholds"), metrics["classes"])[SCORE[task]]
            for sample in draw_videos(len(videos), 2000, seed=0, stream=stream)
        ]  # fmt: skip
        expected = np.quantile(scores, [0.025, 0.975])
        ours = metrics[split]["native"]["ci95"][SCORE[task]]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9, err_msg=split)


@pytest.mark.parametrize("task", ["va", "mtl"])
def test_native_ccc_equals_training_validation(task_runs, task: str) -> None:
    run = task_runs(task)
    logged = json.loads((run / "metrics.json").read_text())["metrics"]
    metrics = metrics_of(run / "eval")
    for split in SPLITS:
        for name in ("ccc_valence", "ccc_arousal", "va_score"):
            assert metrics[split]["native"][name] == pytest.approx(
                logged[f"{split}/{name}"], abs=1e-6
            )


@pytest.mark.parametrize("task", TASKS)
def test_two_processes_give_the_same_metrics(task_runs, task: str, tmp_path: Path) -> None:
    """trainer=ddp_sim with 2 processes: the numbers of one process (the end-of-training
    evaluation's), each frame's outputs and every metric.

    Expression and AU metrics exactly. Valence and arousal to 1e-6: a frame's outputs differ in
    their last float32 bits with the batch it is in (the CPU's convolution kernels depend on the
    batch size; 18 frames in batches of 16 and 2 here, 9 per process there), and the CCC of an
    untrained model's nearly constant predictions magnifies that; the metric itself is exact on
    any number of processes (``tests/integration/test_task_metrics.py``).
    """
    run = task_runs(task)
    ckpt = Path(json.loads((run / "metrics.json").read_text())["checkpoint"])
    two = run_eval(ckpt, tmp_path / "ddp", "trainer=ddp_sim", "trainer.devices=2")
    one = metrics_of(run / "eval")
    va = "va" in TASK_HEADS[task]
    for key in (*SPLITS, "smoothing", "degradations", "task", "au_thresholds", "bootstrap"):
        assert_same(one.get(key), two.get(key), key, tolerance=1e-6 if va else 0.0)
    rows = [read_rows(d / "predictions.csv") for d in (run / "eval", tmp_path / "ddp")]
    assert [list(r) for r in rows[0]] == [list(r) for r in rows[1]]  # the same columns
    for one_row, two_row in zip(*rows, strict=True):
        for column, value in one_row.items():
            if column.startswith(("pred_", "p_")):
                # 2e-6: the expression probabilities are written with 6 digits
                assert float(two_row[column]) == pytest.approx(float(value), abs=2e-6), column
            else:  # split, video, frame, labels, the predicted class
                assert two_row[column] == value, column
    if "au" in TASK_HEADS[task]:
        for split in SPLITS:
            assert one[split]["8"]["f1_per_au"] == two[split]["8"]["f1_per_au"]
    assert not [p for p in (tmp_path / "ddp").iterdir() if p.name.startswith(".eval")]


def perturbed_checkpoint(run: Path, tmp_path: Path) -> Path:
    """Another model: the run's best checkpoint with noise on its weights, its config beside."""
    ckpt_path = Path(json.loads((run / "metrics.json").read_text())["checkpoint"])
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for value in ckpt["state_dict"].values():
        if value.is_floating_point():
            value.add_(
                0.5 * value.std().nan_to_num() * torch.randn(value.shape, generator=generator)
            )
    path = tmp_path / "run" / "checkpoints" / "other.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    shutil.copy(run / "config.yaml", tmp_path / "run" / "config.yaml")
    return path


def test_compare_pairs_va_models_on_the_same_videos(task_runs, tmp_path: Path, capsys) -> None:
    run = task_runs("va")
    other = tmp_path / "other"
    run_eval(perturbed_checkpoint(run, tmp_path), other)
    mine = run / "eval"
    assert compare_main([str(mine), str(other), "--out", str(tmp_path / "cmp"),
                         "--samples", "300"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "va_score" in out
    assert (
        "val_rest va_score (mean CCC) by input resolution"
        in (tmp_path / "cmp" / "comparison.md").read_text()
    )
    comparison = read_rows(tmp_path / "cmp" / "comparison.csv")
    a_rows, b_rows = (read_rows(d / "predictions.csv") for d in (mine, other))
    for stream, split in enumerate(SPLITS):
        (row,) = [r for r in comparison if r["split"] == split and r["resolution"] == "native"]
        a_split, b_split = in_split(a_rows, split), in_split(b_rows, split)
        assert [(r["video"], r["frame"]) for r in a_split] == [
            (r["video"], r["frame"]) for r in b_split
        ]
        videos = sorted({r["video"] for r in a_split})
        differences = []
        for sample in draw_videos(len(videos), 300, seed=0, stream=stream):
            rows = [i for g in sample for i, r in enumerate(a_split) if r["video"] == videos[g]]
            a_score = csv_scores([a_split[i] for i in rows], "va", None, [])["va_score"]
            b_score = csv_scores([b_split[i] for i in rows], "va", None, [])["va_score"]
            differences.append(a_score - b_score)
        expected = np.quantile(differences, [0.025, 0.975])
        np.testing.assert_allclose([float(row["ci_low"]), float(row["ci_high"])], expected,
                                   atol=1e-6, err_msg=split)  # fmt: skip
    # a model of another task: refused, naming both files
    assert compare_main([str(mine), str(task_runs("au") / "eval"),
                         "--out", str(tmp_path / "cmp2")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"{mine / 'metrics.json'} evaluates a task=va model" in err
    assert "a task=au model" in err and "compare evaluations of one task" in err


def test_report_on_task_runs_reads_each_task_score(task_runs, tmp_path: Path) -> None:
    for task in TASKS:
        task_runs(task)
    root = task_runs("va").parent
    jobs = {job.name: job for job in write_report(root, out=tmp_path)}
    assert {name: job.task for name, job in jobs.items()} == {t: t for t in TASKS}
    for task in TASKS:
        job = jobs[task]
        assert job.status == "ok"
        native = metrics_of(root / task / "eval")["val_rest"]["native"]
        assert job.eval_score("native") == native[SCORE[task]]
        assert job.eval_interval("native") == tuple(native["ci95"][SCORE[task]])
        logged = json.loads((root / task / "metrics.json").read_text())["metrics"]
        assert job.scores["val_select"] == logged["val_select/score"]
    report = (tmp_path / "report.md").read_text()
    assert "not comparable across tasks" in report
    for task in TASKS:
        assert f"task={task}: Selected on val_select/score: **{task}**" in report
    rows = {r["job"]: r for r in read_rows(tmp_path / "jobs.csv")}
    assert {name: r["task"] for name, r in rows.items()} == {t: t for t in TASKS}
