from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_multires.compare import main
from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.results import SplitMetrics


def entry(score: float) -> dict:
    return SplitMetrics(score, score, {c: score for c in EXPRESSIONS_7}, score, 10).to_json()


def fake_eval(
    path: Path, scores: dict[str, float], degradations: dict[str, dict[str, float]] | None = None
) -> Path:
    path.mkdir(parents=True)
    metrics = {"val_rest": {k: entry(v) for k, v in scores.items()}}
    if degradations:
        metrics["degradations"] = {
            kernel: {"val_rest": {k: entry(v) for k, v in by_res.items()}}
            for kernel, by_res in {"bilinear": scores, **degradations}.items()
        }
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_multires_helping_at_low_resolution_is_reported(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.5, "16": 0.6, "64": 0.8, "native": 0.85})
    b = fake_eval(tmp_path / "b", {"8": 0.2, "16": 0.3, "64": 0.8, "native": 0.86})
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| 8 px | 0.500 | 0.200 | +0.300 |" in out
    assert (
        "multires holds up better at low resolution than baseline: mean val_rest score +0.300"
        in out
    )
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0
    assert "+0.300" in (tmp_path / "out" / "comparison.md").read_text()


def test_no_gain_is_said_plainly(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    b = fake_eval(tmp_path / "b", {"8": 0.25, "native": 0.8})
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 0
    assert "does NOT help at low resolution" in capsys.readouterr().out


def test_missing_evaluation_is_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2})
    assert main([str(a), str(tmp_path / "nothing")]) == 1
    assert "no metrics.json" in capsys.readouterr().err


@pytest.mark.parametrize("names", ["one", "a,b,c"])
def test_names_must_be_two(tmp_path: Path, names: str) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path), "--names", names])


def test_each_degradation_both_evaluated_gets_its_verdict(tmp_path: Path, capsys) -> None:
    a = fake_eval(
        tmp_path / "a",
        {"8": 0.5, "native": 0.8},
        {"jpeg": {"8": 0.3, "native": 0.8}, "blur": {"8": 0.6, "native": 0.8}},
    )
    b = fake_eval(tmp_path / "b", {"8": 0.2, "native": 0.8},
                  {"jpeg": {"8": 0.4, "native": 0.8}})  # fmt: skip
    out = tmp_path / "out"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "jpeg: multires does NOT help at low resolution on this data: mean val_rest score -0.100"
        in printed
    )
    assert "blur" not in printed  # only b lacks it: nothing to compare
    report = (out / "comparison.md").read_text()
    assert (
        "## Degradation: jpeg (not the training's)" in report
        and "| 8 px | 0.300 | 0.400 | -0.100 |" in report
    )
    assert (out / "comparison_jpeg.png").stat().st_size > 0 and not (
        out / "comparison_blur.png"
    ).exists()


def test_an_evaluation_compared_with_itself_is_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    assert main([str(a), str(a / "metrics.json"), "--out", str(tmp_path)]) == 1
    assert "is compared with itself: give two models' evaluations" in capsys.readouterr().err
    assert not (tmp_path / "comparison.md").exists()


def test_evaluations_of_different_data_are_refused(tmp_path: Path, capsys) -> None:
    """An Aff-Wild2 evaluation against a FERPlus one used to get a verdict."""
    a = fake_eval(tmp_path / "a", {"8": 0.2, "native": 0.8})
    b = fake_eval(tmp_path / "b", {"8": 0.3, "native": 0.7})
    data = json.loads((b / "metrics.json").read_text())
    data["val_rest"]["8"]["n"] = 12  # other videos
    (b / "metrics.json").write_text(json.dumps(data))
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "evaluate different data (val_rest samples at 8: 10 against 12)" in err
    for key, value in (("dataset", "ferplus"), ("classes", ["Neutral", "Happiness"])):
        data = json.loads((a / "metrics.json").read_text())
        other = json.loads((a / "metrics.json").read_text())
        data[key], other[key] = "affwild2" if key == "dataset" else list(EXPRESSIONS_7), value
        (a / "metrics.json").write_text(json.dumps(data))
        (b / "metrics.json").write_text(json.dumps(other))
        assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
        assert f"evaluate different data ({key}:" in capsys.readouterr().err
    assert not (tmp_path / "comparison.md").exists()


def test_evaluations_with_no_resolution_in_common_are_an_error(tmp_path: Path, capsys) -> None:
    a = fake_eval(tmp_path / "a", {"8": 0.2, "16": 0.3})
    b = fake_eval(tmp_path / "b", {"32": 0.5})
    assert main([str(a), str(b), "--out", str(tmp_path)]) == 1
    assert "share no evaluated resolution: nothing to compare" in capsys.readouterr().err
