from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_multires.compare import main
from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.results import SplitMetrics


def fake_eval(path: Path, scores: dict[str, float]) -> Path:
    path.mkdir(parents=True)

    def entry(score: float) -> SplitMetrics:
        return SplitMetrics(score, score, {c: score for c in EXPRESSIONS_7}, score, 10)

    metrics = {"val_rest": {k: entry(v).to_json() for k, v in scores.items()}}
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
