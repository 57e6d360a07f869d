"""ONNX export: one file, dynamic batch, metadata, parity with PyTorch, and predict running it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import astronaut, compose_entry, write_moving_video
from PIL import Image

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.data.synthetic.real_faces import composite, write_clip
from fer_multires.export import export
from fer_multires.inference import onnx_export
from fer_multires.inference.classifier import onnx_metadata
from fer_multires.inference.expected import ExpectedScore
from fer_multires.inference.onnx_export import ParityError, describe_parity, parity_batch
from fer_multires.models.module import FERModule
from fer_multires.results import ResultsError, load_eval_results
from fer_multires.runs import ModelInput, resolve_checkpoint
from fer_multires.tasks import AU_NAMES
from integration.test_predict import (
    AU_THRESHOLDS,
    TASK_LAYOUT,
    copy_with_evaluation,
    read_csv,
    run_predict,
    task_classes,
    task_inputs,  # noqa: F401 - the fixture
)

CLASSES = list(EXPRESSIONS_7)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> dict:
    """The run exported through the CLI."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_multires.export", f"ckpt_path={trained_run}",
         f"export.out={out}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"path": out, "stdout": proc.stdout}


def test_export_writes_one_file_with_metadata(trained_run, exported) -> None:
    path = exported["path"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no .data, no temp
    assert f"wrote {path}" in exported["stdout"]
    assert "parity with PyTorch: largest absolute difference" in exported["stdout"]
    onnx.checker.check_model(str(path))
    meta = onnx_metadata(path)
    assert meta["class_names"] == CLASSES
    assert ModelInput.from_json(meta["model_input"]) == ModelInput(28, 24, "imagenet")
    evaluated = ExpectedScore.from_results(load_eval_results(trained_run / "eval"))
    assert ExpectedScore.from_json(meta["expected_scores"]).scores == evaluated.scores
    assert meta["backbone"] == "seresnet18"


def test_exported_model_has_a_dynamic_batch_and_matches_pytorch(trained_run, exported) -> None:
    session = ort.InferenceSession(str(exported["path"]), providers=["CPUExecutionProvider"])
    model = FERModule.load_from_checkpoint(
        resolve_checkpoint(trained_run), pretrained=None, map_location="cpu"
    ).eval()
    batch = parity_batch(ModelInput(28, 24, "imagenet"), 5, seed=7)
    with torch.inference_mode():
        reference = model(batch).numpy()
    for rows in (1, 3, 5):
        (logits,) = session.run(None, {"images": batch[:rows].numpy()})
        np.testing.assert_allclose(logits, reference[:rows], atol=1e-3, rtol=1e-3)
        assert (logits.argmax(1) == reference[:rows].argmax(1)).all()


def test_parity_failure_is_an_error_with_the_largest_difference(
    trained_run, tmp_path, monkeypatch
) -> None:
    real = onnx_export.onnx_logits

    def off_by_a_bit(path: Path, batch: torch.Tensor) -> np.ndarray:
        logits = real(path, batch)
        logits[0, 2] += 0.05
        return logits

    monkeypatch.setattr(onnx_export, "onnx_logits", off_by_a_bit)
    out = tmp_path / "bad.onnx"
    cfg = compose_entry("export", [f"ckpt_path={trained_run}", f"export.out={out}"], tmp_path)
    with pytest.raises(ParityError, match=r"largest absolute difference 0\.05.*row 0, class 2"):
        export(cfg)
    assert not list(tmp_path.glob("*.onnx"))  # neither the output nor its temporary file


def test_export_errors(trained_run, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ckpt_path: checkpoint .*missing\.ckpt"):
        export(compose_entry("export", [f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path))
    bad_out = [f"ckpt_path={trained_run}", f"export.out={tmp_path / 'model.pt'}"]
    with pytest.raises(ValueError, match=r"export.out=.*model\.pt must end in \.onnx"):
        export(compose_entry("export", bad_out, tmp_path))


def test_unwritable_destination_is_an_error_before_the_export(trained_run, tmp_path,
                                                              monkeypatch) -> None:  # fmt: skip
    """It was found only after the export and its parity check had run."""
    import fer_multires.export as entry

    def never(*args, **kwargs):
        raise AssertionError("the export ran before the destination was checked")

    monkeypatch.setattr(entry, "export_checkpoint", never)
    (tmp_path / "taken").write_text("a file where the folder should be")
    out = tmp_path / "taken" / "model.onnx"
    overrides = [f"ckpt_path={trained_run}", f"export.out={out}"]
    with pytest.raises(
        PermissionError, match=rf"export.out: cannot write into {tmp_path / 'taken'}"
    ):
        export(compose_entry("export", overrides, tmp_path))


def test_predict_with_the_onnx_file_gives_the_ckpts_predictions(
    trained_run, exported, tmp_path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut()).save(folder / "astronaut.jpg")
    write_moving_video(folder / "clip.avi", frames=6)
    write_clip(folder / "six.mp4", [16, 24, 32, 40, 56, 72], frames=8, speed=0.5, seed=1)
    crowd, _ = composite([14, 20, 30, 45, 60], 640, 480, seed=2)
    Image.fromarray(crowd).save(folder / "crowd.png")
    rng = np.random.default_rng(5)
    for i in range(6):  # random faces: predictions that differ from one another
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(
            folder / f"n{i}.png"
        )
    run_predict(trained_run, folder, tmp_path / "ckpt")
    proc = subprocess.run(  # the ONNX model through the CLI, as the README writes it
        [sys.executable, "-m", "fer_multires.predict", f"ckpt_path={exported['path']}",
         f"input={folder}", f"run_dir={tmp_path / 'onnx'}", "predict.device=cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_ckpt = read_csv(tmp_path / "ckpt" / "predictions.csv")
    by_onnx = read_csv(tmp_path / "onnx" / "predictions.csv")
    assert {r["source"] for r in by_ckpt} >= {"astronaut.jpg", "clip.avi", "crowd.png", "six.mp4"}
    assert sum(r["source"] == "crowd.png" for r in by_onnx) == 5  # 14 to 60 px wide
    assert len({r["track"] for r in by_onnx if r["source"] == "six.mp4"}) == 6
    key = ("source", "frame", "track", "x", "y", "w", "h", "score", "left_eye_x", "predicted",
           "expected_score")  # fmt: skip
    assert [tuple(r[k] for k in key) for r in by_onnx] == [
        tuple(r[k] for k in key) for r in by_ckpt
    ]
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in by_ckpt])
    np.testing.assert_allclose(
        [[float(r[f"p_{c}"]) for c in CLASSES] for r in by_onnx], probs, atol=1e-5
    )
    # and on pre-cropped faces, whose predictions vary
    run_predict(trained_run, folder, tmp_path / "ckpt_none", "detector=none")
    run_predict(exported["path"], folder, tmp_path / "onnx_none", "detector=none")
    a = read_csv(tmp_path / "ckpt_none" / "predictions.csv")
    b = read_csv(tmp_path / "onnx_none" / "predictions.csv")
    assert len(a) == 1 + 6 + 6 + 1 + 8
    assert [r["predicted"] for r in a] == [r["predicted"] for r in b]
    assert read_csv(tmp_path / "onnx" / "sources.csv") == read_csv(
        tmp_path / "ckpt" / "sources.csv"
    )


def test_corrupt_run_evaluation_stops_the_export_naming_it(trained_run, tmp_path) -> None:
    import re
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    metrics = run / "eval" / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:50])
    cfg = compose_entry("export", [f"ckpt_path={run}", f"export.out={tmp_path / 'm.onnx'}"],
                        tmp_path)  # fmt: skip
    with pytest.raises(ResultsError, match=rf"{re.escape(str(metrics))}: cannot read results"):
        export(cfg)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.onnx"))


#: Exports with the parity check held up, so the test can send SIGTERM while the file is written.
SLOW_EXPORT = """
import sys, time
from pathlib import Path
from fer_multires.inference import onnx_export
from fer_multires.runs import resolve_checkpoint

def held(*args, **kwargs):
    print("writing", flush=True)
    time.sleep(120)

onnx_export.check_parity = held
onnx_export.export_checkpoint(resolve_checkpoint(Path(sys.argv[1])), Path(sys.argv[2]))
"""


def test_sigterm_during_the_export_leaves_no_temporary_file(trained_run, tmp_path) -> None:
    import signal

    out = tmp_path / "export" / "model.onnx"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EXPORT, str(trained_run), str(out)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert [p.name for p in out.parent.iterdir()] == [f".model.{proc.pid}.tmp.onnx"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert list(out.parent.iterdir()) == []


# ------------------------------------------------------------- valence-arousal, AUs, multi-task


@pytest.fixture(scope="module")
def task_exported(task_runs, tmp_path_factory):
    """A function ``task -> (run, onnx file, what the export printed)``: a copy of the task's run
    with an evaluation, exported once per task: ``mtl`` through the CLI, the others through the
    entry point's ``export(cfg)`` in this process (seconds less each)."""
    done: dict[str, tuple[Path, Path, str]] = {}

    def exported(task: str) -> tuple[Path, Path, str]:
        if task not in done:
            base = tmp_path_factory.mktemp(f"export_{task}")
            run = copy_with_evaluation(task_runs(task), base / "run", task)
            out = base / "model.onnx"
            args = [f"ckpt_path={run}", f"export.out={out}"]
            if task == "mtl":
                proc = subprocess.run([sys.executable, "-m", "fer_multires.export", *args],
                                      capture_output=True, text=True, timeout=300)  # fmt: skip
                assert proc.returncode == 0, proc.stderr[-3000:]
                printed = proc.stdout
            else:
                result = export(compose_entry("export", args, base)).onnx
                printed = f"parity with PyTorch: {describe_parity(result.parity)}"
            done[task] = (run, out, printed)
        return done[task]

    return exported


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_task_onnx_has_an_output_per_head_matching_pytorch(task_exported, task) -> None:
    run, path, stdout = task_exported(task)
    names = {"expr": "expr_logits", "va": "va", "au": "au_logits"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [names[h] for h in TASK_LAYOUT[task]]
    meta = onnx_metadata(path)
    assert meta["task"] == task and meta["class_names"] == task_classes(task)
    assert {h: (m["output"], m["columns"]) for h, m in meta["heads"].items()} == {
        h: (names[h], {"expr": CLASSES, "va": ["valence", "arousal"], "au": list(AU_NAMES)}[h])
        for h in TASK_LAYOUT[task]
    }  # fmt: skip
    expected = ExpectedScore.from_json(meta["expected_scores"])
    assert (expected.task, expected.resolutions, expected.scores) == (task, (8, 16, 24), (
        0.1, 0.3, 0.4))  # fmt: skip
    if task == "va":
        assert meta["au_thresholds"] is None
    else:
        assert meta["au_thresholds"]["values"] == AU_THRESHOLDS
    model = FERModule.load_from_checkpoint(resolve_checkpoint(run), pretrained=None,
                                           map_location="cpu").eval()  # fmt: skip
    batch = parity_batch(ModelInput(28, 24, "imagenet"), 5, seed=7)
    with torch.inference_mode():
        raw = model(batch).numpy()
    for rows in (1, 5):
        outputs = session.run(None, {"images": batch[:rows].numpy()})
        for (head, part), got in zip(TASK_LAYOUT[task].items(), outputs, strict=True):
            want = np.tanh(raw[:rows, part]) if head == "va" else raw[:rows, part]
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=head)
    assert "parity with PyTorch: " in stdout
    if task == "mtl":
        assert "expr: largest absolute difference" in stdout and "; au: largest" in stdout


@pytest.mark.parametrize("task", ["va", "au", "mtl"])
def test_predict_with_the_task_onnx_gives_the_ckpts_predictions(task_exported, task_inputs, task,
                                                                tmp_path) -> None:  # fmt: skip
    run, path, _ = task_exported(task)
    run_predict(run, task_inputs, tmp_path / "ckpt", "detector=none", "predict.smoothing=3")
    run_predict(path, task_inputs, tmp_path / "onnx", "detector=none", "predict.smoothing=3")
    by_ckpt = read_csv(tmp_path / "ckpt" / "predictions.csv")
    by_onnx = read_csv(tmp_path / "onnx" / "predictions.csv")
    assert len(by_ckpt) == 7 and list(by_onnx[0]) == list(by_ckpt[0])
    numbers = {c for c in by_ckpt[0] if c.startswith("p_") or c in ("valence", "arousal",
                                                                     "confidence")}  # fmt: skip
    for ckpt_row, onnx_row in zip(by_ckpt, by_onnx, strict=True):
        for column, value in ckpt_row.items():
            if column in numbers:
                assert float(onnx_row[column]) == pytest.approx(float(value), abs=1e-5), column
            else:  # the AU decisions, the expected score (from the file's metadata), ...
                assert onnx_row[column] == value, column
    assert by_onnx[-1]["expected_score"] != "" and by_onnx[-2]["expected_score"] != ""


def test_an_onnx_file_exported_before_tasks_is_an_expression_model(exported, task_exported,
                                                                   tmp_path) -> None:  # fmt: skip
    """No task, heads or au_thresholds metadata: the first output holds the class logits."""
    from fer_multires.inference.classifier import OnnxClassifier

    old = onnx.load(str(exported["path"]))
    kept = [p for p in old.metadata_props if p.key.split(".")[-1] not in
            ("task", "heads", "au_thresholds")]  # fmt: skip
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(tmp_path / "old.onnx"))
    cpu = torch.device("cpu")
    classifier = OnnxClassifier(tmp_path / "old.onnx", cpu)
    assert classifier.task == "expr" and classifier.outputs == {"expr": "logits"}
    crops = [np.random.default_rng(i).integers(0, 256, (30, 30, 3), dtype=np.uint8)
             for i in range(3)]  # fmt: skip
    np.testing.assert_array_equal(
        classifier.probabilities(crops), OnnxClassifier(exported["path"], cpu).probabilities(crops)
    )
    # metadata naming heads the file does not have is refused, naming the file
    mtl = onnx.load(str(task_exported("mtl")[1]))
    for prop in mtl.metadata_props:
        if prop.key == "fer_multires.task":
            prop.value = '"va"'
    onnx.save(mtl, str(tmp_path / "wrong.onnx"))
    with pytest.raises(ValueError, match=r"ckpt_path: .*wrong\.onnx: its fer_multires\.heads"):
        OnnxClassifier(tmp_path / "wrong.onnx", cpu)
