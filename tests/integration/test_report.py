"""The sweep report (``python -m fer_multires.report``) on fake run directories.

The fake runs follow the layout that ``fer_multires.train`` writes (``.hydra/overrides.yaml``,
``config.yaml``, ``checkpoints/``, ``csv/version_*/metrics.csv``, ``metrics.json``, ``error.txt``)
and the evaluate output shape (``metrics.json`` = ``{split: {resolution: {...}}}``).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from unit.test_report import (
    job_name,
    multires_config,
    null_config,
    write_eval_output,
    write_hydra,
    write_training_run,
    write_yaml,
)

from fer_multires.report import ReportError, main, write_report
from fer_multires.sweeps.jobs import load_jobs
from fer_multires.sweeps.summary import choose_heatmap_metric, heatmap_cells

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FAILED_ERROR = "ValueError: data.multires.min_res=64 must not exceed data.multires.max_res=32"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A multirun: 2 jobs ok and evaluated, 1 ok, 1 failed, 1 crashed before any checkpoint."""
    root = tmp_path / "logs" / "demo" / "multiruns" / "2026-11-28_10-00-00"
    common = ["+experiment=demo", "trainer.max_epochs=3"]
    write_yaml(root / "multirun.yaml", {"hydra": {"mode": "MULTIRUN"}})

    def job(num: int, min_res: int, max_res: int) -> tuple[Path, list[str], dict]:
        overrides = [f"data.multires.min_res={min_res}", f"data.multires.max_res={max_res}"]
        path = root / job_name(num, *overrides)
        return path, [*common, *overrides], multires_config(min_res, max_res)

    run, overrides, config = job(0, 8, 64)
    write_training_run(run, overrides, config, {"val_select": 0.6, "val_rest": 0.55,
                                                "val_full": 0.56})  # fmt: skip
    write_eval_output(run / "eval", base=0.55, checkpoint=str(run / "checkpoints" / "last.ckpt"))
    run, overrides, config = job(1, 16, 128)
    write_training_run(run, overrides, config, {"val_select": 0.7, "val_rest": 0.5,
                                                "val_full": 0.52})  # fmt: skip
    write_eval_output(run / "eval", base=0.5)
    # Multi-resolution off: its own "off" row and column on the heatmap.
    run = root / job_name(2, "data.multires.enabled=false")
    write_training_run(run, [*common, "data.multires.enabled=false"],
                       multires_config(enabled=False),
                       {"val_select": 0.5, "val_rest": 0.45, "val_full": 0.46})  # fmt: skip
    # Failed before config.yaml was written: only Hydra's files and error.txt.
    run, overrides, config = job(3, 64, 32)
    write_hydra(run, overrides, config)
    (run / "error.txt").write_text(f"{' '.join(overrides)}\n{FAILED_ERROR}\n")
    # Crashed hard: neither checkpoint, nor metrics.json, nor error.txt.
    run, overrides, config = job(4, 32, 64)
    write_hydra(run, overrides, config)
    return root


def read_jobs_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def test_report_lists_every_job_with_its_status(sweep: Path) -> None:
    write_report(sweep)
    rows = read_jobs_csv(sweep / "jobs.csv")
    assert len(rows) == 5
    names = sorted(rows, key=lambda name: int(name.split("_")[0]))
    statuses = [rows[name]["status"] for name in names]
    assert statuses[:3] == ["ok", "ok", "ok"]
    assert statuses[3] == f"failed: {FAILED_ERROR}"
    assert statuses[4] == "no checkpoint"

    ok0, ok1, not_evaluated = (rows[name] for name in names[:3])
    assert ok0["val_select_score"] == "0.6000" and ok0["val_rest_score"] == "0.5500"
    assert ok0["val_full_score"] == "0.5600" and ok0["epochs"] == "3"
    assert ok0["overrides"] == (
        "+experiment=demo trainer.max_epochs=3 data.multires.min_res=8 data.multires.max_res=64"
    )
    # Evaluate scores: val_rest (index 1 of the splits) at 8, 16, 32 px and native.
    assert ok0["val_rest_score_native"] == "0.5400" and ok0["val_rest_score_8"] == "0.2400"
    assert ok1["val_rest_score_16"] == "0.4900"
    assert ok0["eval_dir"].endswith("/eval") and ok0["checkpoint"].endswith("best_epoch002.ckpt")
    assert not_evaluated["val_rest_score_native"] == "" and not_evaluated["eval_dir"] == ""
    assert not_evaluated["multires"] == "off"
    failed = rows[names[3]]
    assert (failed["min_res"], failed["max_res"], failed["val_rest_score"]) == ("64", "32", "")

    report = (sweep / "report.md").read_text()
    for name in names:
        assert name in report
    assert f"failed: {FAILED_ERROR}" in report and "| no checkpoint |" in report
    assert "5 jobs: 3 ok, 1 failed, 1 no checkpoint" in report
    assert f"**{names[1]}**" in report  # selected on val_select, not on val_rest
    for png in ("score_heatmap.png", "resolution_curves.png"):
        data = (sweep / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(sweep.glob(".*.tmp"))


def test_heatmap_places_jobs_by_min_and_max_res_and_off(sweep: Path) -> None:
    jobs = load_jobs(sweep)
    cells = {
        cell: [job.name[0] for job in cell_jobs] for cell, cell_jobs in heatmap_cells(jobs).items()
    }
    assert cells == {("8", "64"): ["0"], ("16", "128"): ["1"], ("off", "off"): ["2"],
                     ("64", "32"): ["3"], ("32", "64"): ["4"]}  # fmt: skip


def test_heatmap_shows_evaluate_scores_only_when_every_scored_job_has_them(sweep: Path) -> None:
    jobs = load_jobs(sweep)
    mixed = choose_heatmap_metric(jobs, "16")
    assert mixed.resolution is None and "1 of 3 scored jobs" in mixed.description
    assert mixed.value(jobs[0]) == 0.55  # training val_rest/score
    evaluated = [job for job in jobs if job.eval_dir is not None]
    metric = choose_heatmap_metric(evaluated, "16")
    assert metric.resolution == "16" and metric.value(evaluated[0]) == 0.54
    write_report(sweep, low_res="16")
    assert (
        "val_rest/score of the best checkpoint from training" in (sweep / "report.md").read_text()
    )


def test_out_folder_and_cli(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report_out"
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.report", str(sweep), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "5 jobs" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "jobs.csv", "report.md", "resolution_curves.png", "score_heatmap.png"
    ]  # fmt: skip
    assert not (sweep / "report.md").exists()


def test_cli_error_exit_code(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.report", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no such directory" in result.stderr and str(tmp_path / "nowhere") in result.stderr


def test_bad_resolution_is_an_error(sweep: Path) -> None:
    with pytest.raises(ReportError, match="--low-res"):
        write_report(sweep, low_res="tiny")


def test_evaluate_outputs_elsewhere_are_matched_by_checkpoint(sweep: Path, tmp_path: Path) -> None:
    """``--evals logs/eval``: evaluate's default output folders, matched by their ckpt_path."""
    jobs = {job.name[0]: job for job in load_jobs(sweep)}
    not_evaluated = jobs["2"]
    eval_root = tmp_path / "logs" / "eval"
    # metrics.json names the checkpoint, as fer_multires.evaluate writes it.
    write_eval_output(eval_root / "runs" / "2026-11-28_12-00-00", base=0.45,
                      checkpoint=not_evaluated.checkpoint)  # fmt: skip
    # Without that key: ckpt_path from Hydra's overrides, relative to the cwd evaluate ran in.
    ckpt = Path(jobs["1"].checkpoint).relative_to(tmp_path)
    newer = eval_root / "runs" / "2026-11-28_14-00-00"
    write_eval_output(newer, base=0.35, overrides=[f"ckpt_path={ckpt}"], cwd=tmp_path)
    # An output of a checkpoint outside the sweep is not attached to any job.
    write_eval_output(eval_root / "runs" / "2026-11-28_13-00-00", base=0.1,
                      checkpoint="/elsewhere/best.ckpt")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.report", str(sweep), "--evals", str(eval_root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = read_jobs_csv(sweep / "jobs.csv")
    assert rows[not_evaluated.name]["val_rest_score_native"] == "0.4400"
    assert rows[not_evaluated.name]["eval_dir"].endswith("2026-11-28_12-00-00")
    assert rows[jobs["0"].name]["val_rest_score_native"] == "0.5400"  # its own eval/ still used
    # Job 1 now has two evaluate outputs; the newer one (written last) is used.
    assert rows[jobs["1"].name]["val_rest_score_native"] == "0.3400"
    assert rows[jobs["1"].name]["eval_dir"] == str(newer.resolve())
    with pytest.raises(ReportError, match="--evals"):
        write_report(sweep, eval_roots=[tmp_path / "missing"])


def target_config(min_res: int = 8, max_res: int = 128) -> dict:
    """The config.yaml of a run since data.multires became a ``_target_`` node (or null)."""
    config = multires_config(min_res, max_res)
    multires = config["data"]["multires"]
    del multires["enabled"]
    config["data"]["multires"] = {
        "_target_": "fer_multires.data.transforms.MultiResolution",
        **multires,
    }
    return config


def test_new_config_shape_target_node_and_null(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    scores = {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55}
    on = ["data.multires.min_res=16", "data.multires.max_res=64"]
    write_training_run(root / job_name(0, *on), on, target_config(16, 64), scores)
    write_training_run(root / "1_data.multires=null", ["data.multires=null"], null_config(),
                       scores)  # fmt: skip
    on_job, off_job = load_jobs(root)
    assert on_job.multires.cell() == ("16", "64") and on_job.multires.enabled is True
    assert (on_job.multires.p, on_job.multires.sampling) == (1.0, "pow2")
    assert off_job.multires.cell() == ("off", "off") and off_job.multires.min_res is None
    write_report(root)
    rows = read_jobs_csv(root / "jobs.csv")
    assert rows[on_job.name]["multires"] == "on" and rows[on_job.name]["min_res"] == "16"
    assert rows[off_job.name]["multires"] == "off" and rows[off_job.name]["min_res"] == ""


def test_quoted_ckpt_path_override_is_read_as_hydra_reads_it(sweep: Path, tmp_path: Path) -> None:
    """A checkpoint path holding ``=`` and ``,`` has to be quoted on evaluate's command line."""
    jobs = {job.name[0]: job for job in load_jobs(sweep)}
    ckpt = Path(jobs["2"].checkpoint).relative_to(tmp_path)
    eval_root = tmp_path / "logs" / "eval"
    write_eval_output(eval_root / "runs" / "x", base=0.45, overrides=[f"ckpt_path='{ckpt}'"],
                      cwd=tmp_path)  # fmt: skip
    write_report(sweep, eval_roots=[eval_root])
    rows = read_jobs_csv(sweep / "jobs.csv")
    assert rows[jobs["2"].name]["val_rest_score_native"] == "0.4400"


def test_resolution_is_the_former_name_of_low_res(sweep: Path) -> None:
    assert main([str(sweep), "--resolution", "16"]) == 0
    assert "no evaluate score at 16 px" in (sweep / "report.md").read_text()
    assert main([str(sweep), "--low-res", "8-32"]) == 0
    assert (
        "no evaluate score at the mean over the evaluated 8-32 px"
        in (sweep / "report.md").read_text()
    )
