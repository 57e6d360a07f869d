"""The metrics.json schema of every task: entries per head, the task's score, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_multires.results import (
    SCORE_KEYS,
    EvalResults,
    ResultsError,
    SplitMetrics,
    TrainingResults,
    load_eval_results,
    load_results,
    load_training_results,
    score_key,
    task_score,
)
from fer_multires.task_metrics import va_sums
from fer_multires.tasks import AU_NAMES

CLASSES = ["a", "b", "c"]


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """ABAW's CCC in numpy, two-pass (np.cov with population moments)."""
    cov = np.cov(x, y, bias=True)
    return float(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))


def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def frames(seed: int = 0, n: int = 60):
    """Frames of every head: classes (some missing), valence-arousal (some NaN), AU labels."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    label[:5] = -1
    predicted = rng.integers(0, 3, n)
    target = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    target[5:12] = np.nan
    pred = (0.5 * np.nan_to_num(target) + rng.normal(0, 0.3, (n, 2))).astype(np.float32)
    au_target = rng.integers(0, 2, (n, 12))
    au_target[rng.random((n, 12)) < 0.1] = -1
    au_positive = rng.random((n, 12)) < 0.5
    return label, predicted, target, pred, au_target, au_positive


def heads_of(seed: int = 0) -> dict:
    """Each head's summed state of :func:`frames`, and the numpy reference metrics."""
    import torch

    label, predicted, target, pred, au_target, au_positive = frames(seed)
    kept = label >= 0
    confusion = np.zeros((3, 3), np.int64)
    np.add.at(confusion, (label[kept], predicted[kept]), 1)
    sums = va_sums(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    tp = ((au_target == 1) & au_positive).sum(0)
    fp = ((au_target == 0) & au_positive).sum(0)
    fn = ((au_target == 1) & ~au_positive).sum(0)
    annotated = ~np.isnan(target[:, 0])
    reference = {
        "ccc_valence": ccc(pred[annotated, 0].astype(float), target[annotated, 0].astype(float)),
        "ccc_arousal": ccc(pred[annotated, 1].astype(float), target[annotated, 1].astype(float)),
        "f1_per_au": dict(zip(AU_NAMES, f1(tp, fp, fn), strict=True)),
        "accuracy": float(np.mean(label[kept] == predicted[kept])),
        "n_expr": int(kept.sum()),
        "n_va": int(annotated.sum()),
        "n_au": int((au_target != -1).any(axis=1).sum()),
    }
    states = {"confusion": confusion, "va_sums": sums, "au_counts": np.stack([tp, fp, fn])}
    return {"states": states, "reference": reference, "frames": len(label)}


def test_from_heads_computes_each_head_as_numpy_does() -> None:
    data = heads_of()
    ref, states = data["reference"], data["states"]
    m = SplitMetrics.from_heads(frames=data["frames"], classes=CLASSES,
                                au_frames=ref["n_au"], **states)  # fmt: skip
    assert m.task == "mtl" and m.heads == ("expr", "va", "au")
    assert m.ccc_valence == pytest.approx(ref["ccc_valence"], abs=1e-12)
    assert m.ccc_arousal == pytest.approx(ref["ccc_arousal"], abs=1e-12)
    assert m.va_score == pytest.approx((ref["ccc_valence"] + ref["ccc_arousal"]) / 2, abs=1e-12)
    assert m.f1_per_au == pytest.approx(ref["f1_per_au"], abs=1e-15)
    assert m.au_score == pytest.approx(np.mean(list(ref["f1_per_au"].values())), abs=1e-15)
    assert m.accuracy == pytest.approx(ref["accuracy"], abs=1e-15)
    assert m.mtl_score == pytest.approx(m.va_score + m.f1_macro + m.au_score, abs=1e-15)
    assert (m.n, m.n_expr, m.n_va, m.n_au) == (60, ref["n_expr"], ref["n_va"], ref["n_au"])
    assert m.score == m.mtl_score == task_score(m, "mtl") == task_score(m.to_json(), "mtl")


@pytest.mark.parametrize(
    ("task", "keys"),
    [
        ("expr", ["accuracy", "f1_macro", "f1_per_class", "challenge_score", "n"]),
        ("va", ["ccc_valence", "ccc_arousal", "va_score", "n"]),
        ("au", ["f1_per_au", "au_score", "n"]),
        ("mtl", ["accuracy", "f1_macro", "f1_per_class", "challenge_score", "ccc_valence",
                 "ccc_arousal", "va_score", "f1_per_au", "au_score", "mtl_score", "n", "n_expr",
                 "n_va", "n_au"]),
    ],
)  # fmt: skip
def test_each_task_entry_has_its_heads_keys_and_round_trips(task: str, keys: list[str]) -> None:
    data = heads_of(1)
    states, ref = data["states"], data["reference"]
    given = {
        "expr": {"confusion": states["confusion"], "classes": CLASSES},
        "va": {"va_sums": states["va_sums"]},
        "au": {"au_counts": states["au_counts"], "au_frames": ref["n_au"]},
    }
    heads = ("expr", "va", "au") if task == "mtl" else (task,)
    kwargs = {k: v for head in heads for k, v in given[head].items()}
    m = SplitMetrics.from_heads(frames=data["frames"], **kwargs)
    assert m.task == task and list(m.to_json()) == keys
    # one head alone: n is the frames that head counts
    expected_n = {"expr": ref["n_expr"], "va": ref["n_va"], "au": ref["n_au"], "mtl": 60}[task]
    assert m.n == expected_n
    ci = {SCORE_KEYS[task]: (0.1, 0.2)}
    with_ci = m.with_interval(ci, 90)
    data_json = json.loads(json.dumps(with_ci.to_json()))
    assert data_json["ci90"] == {SCORE_KEYS[task]: [0.1, 0.2]}
    assert SplitMetrics.from_json(data_json) == with_ci
    assert task_score(data_json, task) == task_score(with_ci, task) == with_ci.score


def test_an_entry_of_two_heads_is_no_task() -> None:
    states = heads_of()["states"]
    with pytest.raises(ValueError, match="heads expr, va: not a task's"):
        SplitMetrics.from_heads(frames=60, confusion=states["confusion"], classes=CLASSES,
                                va_sums=states["va_sums"])  # fmt: skip


def test_score_keys_and_missing_score() -> None:
    assert [score_key(t) for t in ("expr", "va", "au", "mtl")] == [
        "challenge_score", "va_score", "au_score", "mtl_score",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="task='pose' is not a task"):
        score_key("pose")
    expr = SplitMetrics(0.5, 0.4, dict.fromkeys(CLASSES, 0.4), 0.433, 10)
    with pytest.raises(KeyError, match="a va entry without va_score"):
        task_score(expr, "va")


def eval_json(task: str, entry: dict, **extra) -> dict:
    return {"task": task, "checkpoint": "/x.ckpt", "classes": [], "resolutions": [8],
            **{s: {"native": entry, "8": entry} for s in ("val_select", "val_rest", "val_full")},
            **extra}  # fmt: skip


def test_eval_results_of_a_task_round_trip_and_read_its_score(tmp_path: Path) -> None:
    states = heads_of()["states"]
    entry = SplitMetrics.from_heads(frames=60, va_sums=states["va_sums"]).with_interval(
        {"va_score": (-0.1, 0.3)}, 95
    )
    data = eval_json("va", entry.to_json())
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    results = load_eval_results(tmp_path)
    assert results.task == "va" and results.score_key == "va_score"
    assert results.scores() == {"native": entry.va_score, "8": entry.va_score}
    assert results.intervals() == {"native": (-0.1, 0.3), "8": (-0.1, 0.3)}
    assert results.au_thresholds is None and "au_thresholds" not in results.to_json()
    again = EvalResults.from_json(json.loads(json.dumps(results.to_json())))
    assert again == results and next(iter(results.to_json())) == "task"
    au = SplitMetrics.from_heads(frames=60, au_counts=states["au_counts"], au_frames=50)
    thresholds = dict.fromkeys(AU_NAMES, 0.46875)
    data = eval_json("au", au.to_json(), au_thresholds=thresholds)
    results = EvalResults.from_json(data)
    assert results.au_thresholds == thresholds and results.to_json()["au_thresholds"] == thresholds
    assert results.scores("val_full") == {"native": au.au_score, "8": au.au_score}


def test_files_without_a_task_are_expression_results(tmp_path: Path) -> None:
    entry = SplitMetrics(0.5, 0.4, dict.fromkeys(CLASSES, 0.4), 0.433, 10).to_json()
    old = {s: {"native": entry} for s in ("val_select", "val_rest", "val_full")}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(old))
    results = load_eval_results(tmp_path / "eval")
    assert results.task == "expr" and results.scores() == {"native": 0.433}
    assert results.classes == CLASSES
    training = {"checkpoint": "/b.ckpt", "classes": CLASSES, "metrics": {"val_select/score": 0.4}}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(training))
    loaded = load_training_results(tmp_path / "run")
    assert loaded.task == "expr" and loaded.au_thresholds is None
    assert loaded.to_json() == {"task": "expr", **training}


def test_training_results_carry_their_task_and_au_thresholds(tmp_path: Path) -> None:
    thresholds = dict.fromkeys(AU_NAMES, 0.5)
    results = TrainingResults("/b.ckpt", [], {"val_select/score": 0.2, "val_full/f1_AU1": 0.3},
                              "au", thresholds)  # fmt: skip
    data = results.to_json()
    assert list(data) == ["task", "checkpoint", "classes", "au_thresholds", "metrics"]
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    assert load_results(tmp_path) == results and results.score("val_select") == 0.2


def test_unknown_task_in_a_file_is_an_error_naming_it(tmp_path: Path) -> None:
    entry = SplitMetrics(0.5, 0.4, dict.fromkeys(CLASSES, 0.4), 0.433, 10).to_json()
    (tmp_path / "metrics.json").write_text(json.dumps(eval_json("pose", entry)))
    with pytest.raises(ResultsError, match="metrics.json.*task='pose' is not a task"):
        load_results(tmp_path)
