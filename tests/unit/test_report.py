"""The sweep report (``python -m fer_multires.report``) on fake run directories.

The fake runs follow the layout that ``fer_multires.train`` writes (``.hydra/overrides.yaml``,
``config.yaml``, ``checkpoints/``, ``csv/version_*/metrics.csv``, ``metrics.json``, ``error.txt``)
and the evaluate output shape (``metrics.json`` = ``{split: {resolution: {...}}}``).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fer_multires.data.labels import EXPRESSIONS_7
from fer_multires.report import ReportError, main, write_report
from fer_multires.sweeps.discovery import find_eval_outputs, find_runs
from fer_multires.sweeps.jobs import load_jobs

SPLITS = ("val_select", "val_rest", "val_full")

RESOLUTIONS = ("native", "8", "12", "16", "24", "32", "48", "64", "96")


def multires_config(min_res: int = 8, max_res: int = 128, enabled: bool = True) -> dict:
    return {
        "task_name": "demo",
        "seed": 42,
        "data": {
            "batch_size": 64,
            "multires": {
                "enabled": enabled,
                "p": 1.0,
                "min_res": min_res,
                "max_res": max_res,
                "sampling": "pow2",
            },
        },
    }


def write_yaml(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_hydra(run: Path, overrides: list[str], config: dict, job_name: str = "train") -> None:
    """What Hydra writes when a job starts (before any training code runs)."""
    write_yaml(run / ".hydra" / "overrides.yaml", overrides)
    write_yaml(run / ".hydra" / "config.yaml", config)
    write_yaml(run / ".hydra" / "hydra.yaml", {"hydra": {"job": {"name": job_name}}})


def write_metrics_csv(run: Path, scores: dict[str, float], epochs: int) -> None:
    """Lightning CSVLogger rows: per epoch a validation row and a training row."""
    header = ["epoch", "step", "train/loss_epoch", *(f"{s}/score" for s in SPLITS)]
    rows = [["", "0", "", "", "", ""]]
    for epoch in range(epochs):
        # The last epoch is the best: its scores are `scores`, earlier ones lower.
        shift = 0.1 * (epochs - 1 - epoch)
        rows.append([epoch, 5 * (epoch + 1), "", *(scores[s] - shift for s in SPLITS)])
        rows.append([epoch, 5 * (epoch + 1), 1.5, "", "", ""])
    path = run / "csv" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def write_training_run(
    run: Path, overrides: list[str], config: dict, scores: dict[str, float], epochs: int = 3
) -> None:
    """A finished training run: config, checkpoints, CSV log and metrics.json."""
    write_hydra(run, overrides, config)
    write_yaml(run / "config.yaml", config)
    (run / "checkpoints").mkdir()
    best = run / "checkpoints" / f"best_epoch{epochs - 1:03d}.ckpt"
    for ckpt in (best, run / "checkpoints" / "last.ckpt"):
        ckpt.write_bytes(b"fake")
    write_metrics_csv(run, scores, epochs)
    metrics = {f"{s}/score": v for s, v in scores.items()}
    metrics |= {f"val_full/f1_{c}": 0.5 for c in EXPRESSIONS_7}
    payload = {"checkpoint": str(best), "classes": list(EXPRESSIONS_7), "metrics": metrics}
    (run / "metrics.json").write_text(json.dumps(payload))


def eval_entry(score: float) -> dict:
    f1 = {c: score for c in EXPRESSIONS_7}
    return {"accuracy": score, "f1_macro": score, "f1_per_class": f1, "challenge_score": score,
            "n": 100}  # fmt: skip


def write_eval_output(
    directory: Path,
    base: float,
    overrides: list[str] | None = None,
    cwd: Path | None = None,
    checkpoint: str | None = None,
) -> dict[str, dict[str, float]]:
    """An evaluate output: metrics.json with a score rising with resolution, and its CSV.

    Like ``fer_multires.evaluate``'s, metrics.json also holds context keys next to the splits.
    """
    scores = {
        split: {r: round(base - 0.01 * k - (0.3 if r == "8" else 0.0), 4)
                for r in RESOLUTIONS for k in [SPLITS.index(split)]}
        for split in SPLITS
    }  # fmt: skip
    metrics: dict = {"classes": list(EXPRESSIONS_7), "resolutions": [8, 12, 16, 24, 32, 48, 64, 96]}
    if checkpoint is not None:
        metrics["checkpoint"] = checkpoint
    metrics |= {s: {r: eval_entry(v) for r, v in per.items()} for s, per in scores.items()}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    hydra = {"job": {"name": "evaluate"}, "runtime": {"cwd": str(cwd or directory)}}
    write_yaml(directory / ".hydra" / "hydra.yaml", {"hydra": hydra})
    write_yaml(directory / ".hydra" / "overrides.yaml", overrides or [])
    with (directory / "resolution_robustness.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "resolution", "accuracy", "f1_macro", "challenge_score", "n"])
        for split, per in scores.items():
            writer.writerows([split, r, v, v, v, 100] for r, v in per.items())
    return scores


def job_name(num: int, *overrides: str) -> str:
    return f"{num}_{','.join(sorted(overrides))}"


@pytest.mark.parametrize("case", ["missing", "empty", "unrelated"])
def test_no_runs_is_an_error_naming_the_directory(tmp_path: Path, case: str, capsys) -> None:
    target = tmp_path / "target"
    if case != "missing":
        target.mkdir()
    if case == "unrelated":
        (target / "notes.txt").write_text("hello")
        (target / "data" / "frames").mkdir(parents=True)
    with pytest.raises(ReportError, match=str(target)):
        write_report(target)
    assert main([str(target)]) != 0
    assert str(target) in capsys.readouterr().err
    assert not (target / "report.md").exists()


def test_single_run_and_directory_of_runs(tmp_path: Path) -> None:
    runs = tmp_path / "logs" / "demo" / "runs"
    scores = {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55}
    for stamp in ("2026-11-28_10-00-00", "2026-11-28_11-00-00"):
        write_training_run(runs / stamp, ["+experiment=demo"], multires_config(), scores)
    single = runs / "2026-11-28_10-00-00"
    jobs = write_report(single)
    assert [job.name for job in jobs] == [single.name]
    assert (single / "report.md").is_file()
    assert len(write_report(runs)) == 2
    # From higher up, job names are paths relative to the directory given.
    names = [job.name for job in write_report(tmp_path / "logs", out=tmp_path / "r")]
    assert names == ["demo/runs/2026-11-28_10-00-00", "demo/runs/2026-11-28_11-00-00"]


def test_incomplete_job_takes_scores_from_the_csv_log(tmp_path: Path) -> None:
    run = tmp_path / "run"
    scores = {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55}
    write_training_run(run, ["+experiment=demo"], multires_config(), scores, epochs=2)
    (run / "metrics.json").unlink()
    (job,) = load_jobs(run)
    assert job.status.startswith("incomplete")
    assert job.scores == pytest.approx(scores) and job.epochs == 2
    assert job.checkpoint.endswith("last.ckpt")


def test_evaluate_outputs_are_found_inside_runs_and_are_not_runs(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "a"
    write_training_run(run, ["+experiment=demo"], multires_config(),
                       {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55})  # fmt: skip
    write_eval_output(run / "eval_old", base=0.3)
    newest = run / "eval" / "best"
    write_eval_output(newest, base=0.4)
    past = time.time() - 100
    os.utime(run / "eval_old" / "metrics.json", (past, past))
    # A standalone evaluate output next to the runs is not a training run.
    write_eval_output(tmp_path / "runs" / "b_eval", base=0.2)
    assert find_eval_outputs(run) == [newest, run / "eval_old"]
    assert find_runs(tmp_path / "runs") == [run]
    (job,) = load_jobs(tmp_path / "runs")
    assert job.eval_dir == newest.resolve() and job.eval_count == 2
    assert job.eval_score("native") == 0.39
    write_report(tmp_path / "runs")
    assert "(newest of 2)" in (tmp_path / "runs" / "report.md").read_text()


def test_outputs_of_the_other_entry_points_are_not_runs(tmp_path: Path) -> None:
    """A log folder's predict outputs were listed as training runs (status: no checkpoint)."""
    run = tmp_path / "logs" / "train" / "runs" / "a"
    write_training_run(run, ["+experiment=demo"], multires_config(),
                       {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55})  # fmt: skip
    for entry in ("predict", "export", "pack", "stats"):
        other = tmp_path / "logs" / entry / "runs" / "b"
        write_hydra(other, ["ckpt_path=x"], {"task_name": entry}, job_name=entry)
        (other / "config.yaml").write_text(f"task_name: {entry}\n")
    assert find_runs(tmp_path / "logs") == [run]
    assert [job.run_dir for job in load_jobs(tmp_path / "logs")] == [run]


def null_config() -> dict:
    """The config.yaml of a run without multi-resolution: ``data.multires: null``."""
    config = multires_config()
    config["data"]["multires"] = None
    return config


@pytest.mark.parametrize(
    ("overrides", "cell"),
    [
        (["data.multires=null"], ("off", "off")),
        (["data.multires.min_res=64", "data.multires=null"], ("off", "off")),
        (["~data.multires"], ("off", "off")),
        (["data.multires.enabled=false"], ("off", "off")),  # deprecated, still read
        (["+data.multires.min_res=16", "data.multires.max_res=32"], ("16", "32")),
        (["data.multires.min_res=8", "data.multires.min_res=16", "data.multires.max_res=32"],
         ("16", "32")),  # the last override wins, as in Hydra
        (["data.multires.min_res=${oc.env:RES}", "data.multires.max_res=32"], None),
    ],
)  # fmt: skip
def test_failed_job_reads_multires_from_its_overrides(
    tmp_path: Path, overrides: list[str], cell: tuple[str, str] | None
) -> None:
    """A job that failed before Hydra wrote a config: only its command line tells."""
    run = tmp_path / "0_job"
    run.mkdir()
    (run / "error.txt").write_text(f"{' '.join(overrides)}\nValueError: bad\n")
    (job,) = load_jobs(run)
    assert job.status == "failed: ValueError: bad"
    assert job.multires.cell() == cell


def test_config_wins_over_overrides_for_the_new_shape(tmp_path: Path) -> None:
    """A config that records data.multires: null is off, whatever key an override set."""
    run = tmp_path / "run"
    overrides = ["data.multires.min_res=16", "data.multires=null"]
    write_training_run(run, overrides, null_config(), {"val_select": 0.6, "val_rest": 0.5,
                                                        "val_full": 0.55})  # fmt: skip
    (job,) = load_jobs(run)
    assert job.multires.cell() == ("off", "off")


def test_jobs_with_the_same_label_keep_one_curve_each(tmp_path: Path) -> None:
    from fer_multires.sweeps.jobs import Job, Multires
    from fer_multires.sweeps.summary import curves

    def job(name: str, score: float) -> Job:
        return Job(name=name, run_dir=tmp_path / name.split("/")[-1], overrides=["a=1"],
                   status="ok", multires=Multires(),
                   eval_scores={"val_rest": {"8": score, "native": score}})  # fmt: skip

    lines = curves([job("sweep1/0_a=1", 0.1), job("sweep2/0_a=1", 0.2)], common=[])
    assert list(lines.values()) == [{"8": 0.1, "native": 0.1}, {"8": 0.2, "native": 0.2}]


def test_degradations_get_a_table_of_their_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scores = {"val_select": 0.6, "val_rest": 0.5, "val_full": 0.55}
    for name, jpeg in (("a", 0.2), ("b", None)):
        run = runs / name
        write_training_run(run, [f"job={name}"], multires_config(), scores)
        write_eval_output(run / "eval", 0.8)
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        kernels = {"bilinear": {"val_rest": metrics["val_rest"]}}
        if jpeg is not None:
            kernels["jpeg"] = {"val_rest": {r: eval_entry(jpeg) for r in metrics["val_rest"]}}
        metrics["degradations"] = kernels
        (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    write_report(runs)
    report = (runs / "report.md").read_text()
    assert (
        "## Degradations (val_rest challenge score, the mean over the evaluated 8-32 px)" in report
    )
    assert "| job | bilinear | jpeg |" in report
    assert "| a | 0.7300 | 0.2000 |" in report and "| b | 0.7300 | - |" in report


def seeded_run(root: Path, num: int, experiment: str, seed: int, val_rest: float) -> Path:
    """A job of ``-m seed=... +experiment=...``: its config records the seed and its folder.

    As train writes them: Hydra's copy unresolved (``data.seed: ${seed}``), ``config.yaml``
    resolved; a seed of 0 equals the synthetic set's own seed there.
    """
    overrides = [f"seed={seed}", f"+experiment={experiment}"]
    run = root / job_name(num, *overrides)
    config = multires_config(8, 64 if experiment == "paper_multires" else 128)
    config |= {"seed": seed, "run_dir": str(run), "paths": {"output_dir": str(run)}}
    config["data"] |= {"seed": "${seed}", "val_select_seed": 0, "synthetic": {"seed": 0}}
    config["callbacks"] = {"model_checkpoint": {"dirpath": str(run / "checkpoints")}}
    write_training_run(run, overrides, config, {"val_select": 0.6, "val_rest": val_rest,
                                                "val_full": 0.6})  # fmt: skip
    config["data"]["seed"] = seed
    write_yaml(run / "config.yaml", config)
    write_eval_output(run / "eval", base=val_rest)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    for entry in metrics["val_rest"].values():
        score = entry["challenge_score"]
        entry["ci95"] = {"challenge_score": [score - 0.05, score + 0.04]}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_runs_differing_only_in_seed_are_aggregated(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    scores = {1: 0.50, 2: 0.56, 3: 0.53}
    for num, (seed, score) in enumerate(scores.items()):
        seeded_run(root, num, "paper_multires", seed, score)
    seeded_run(root, 3, "paper_baseline", 1, 0.40)
    seeded_run(root, 4, "paper_baseline", 2, 0.44)
    jobs = write_report(root)
    report = (root / "report.md").read_text()
    assert (
        "| runs (overrides but seed) | seeds | val_rest (training) | val_rest @native | "
        "val_rest @8-32 px |" in report
    )
    values = list(scores.values())
    training = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n=3)"
    # the evaluation's val_rest native score is the base; the 8-32 px mean of the fake curve
    low = [np.mean([v - 0.01 - (0.3 if r == "8" else 0.0) for r in ("8", "12", "16", "24", "32")])
           for v in values]  # fmt: skip
    low_text = f"{np.mean(low):.3f} ± {np.std(low, ddof=1):.3f} (n=3)"
    native = [round(v - 0.01, 4) for v in values]
    per_run = "; ".join(
        f"seed {s}: {v:.3f} [{v - 0.05:.3f}, {v + 0.04:.3f}]"
        for s, v in zip(scores, native, strict=True)
    )
    native_text = f"{np.mean(native):.3f} ± {np.std(native, ddof=1):.3f} (n=3)"
    row = f"| +experiment=paper_multires | 1, 2, 3 | {training} | {native_text} | {low_text} | "
    assert row + per_run + " |" in report
    assert "| +experiment=paper_baseline | 1, 2 | 0.420 ± 0.028 (n=2) |" in report
    with (root / "jobs.csv").open(newline="") as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    groups = {r["seed_group"] for name, r in rows.items() if "paper_multires" in name}
    assert groups == {"1"} and {r["seed"] for r in rows.values()} == {"1", "2", "3"}
    assert len(jobs) == 5


@pytest.mark.parametrize("hydra_copy", [True, False])
def test_runs_differing_in_more_than_the_seed_are_not_grouped(tmp_path: Path, hydra_copy) -> None:
    root = tmp_path / "multirun"
    runs = [seeded_run(root, i, "paper_multires", seed, 0.5) for i, seed in enumerate((0, 1))]
    if not hydra_copy:  # a job without Hydra's copy: the resolved config.yaml alone
        for run in runs:
            (run / ".hydra" / "config.yaml").unlink()
    write_report(root)
    grouped = (
        "| +experiment=paper_multires | 0, 1 | 0.500 ± 0.000 (n=2) |"
        in (root / "report.md").read_text()
    )
    # seed 0 equals the synthetic set's seed: only the unresolved copy tells that it is not ${seed}
    assert grouped == hydra_copy
    for name in ("config.yaml", ".hydra/config.yaml"):
        if (runs[1] / name).exists():
            config = yaml.safe_load((runs[1] / name).read_text())
            config["data"]["batch_size"] = 32
            write_yaml(runs[1] / name, config)
    write_report(root)
    assert "## Seeds" not in (root / "report.md").read_text()


def va_run(root: Path, num: int, select: float, rest: float) -> Path:
    """A finished task=va run with its evaluation: va_score everywhere instead of the challenge
    score (the evaluation's val_rest at R px: ``rest`` minus a little below native)."""
    run = root / job_name(num, "task=va", f"model.head_lr={num}")
    config = {**multires_config(), "task": "va"}
    scores = {"val_select": select, "val_rest": rest, "val_full": (select + rest) / 2}
    write_training_run(run, ["task=va", f"model.head_lr={num}"], config, scores)
    metrics = {f"{s}/score": v for s, v in scores.items()}
    metrics |= {f"{s}/va_score": v for s, v in scores.items()}
    payload = {"task": "va", "checkpoint": str(next((run / "checkpoints").glob("best*"))),
               "classes": [], "metrics": metrics}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(payload))

    def entry(score: float) -> dict:
        return {"ccc_valence": score + 0.1, "ccc_arousal": score - 0.1, "va_score": score,
                "n": 100, "ci95": {"va_score": [score - 0.05, score + 0.05]}}  # fmt: skip

    evaluation = {"task": "va", "classes": [], "resolutions": [8, 16, 32]}
    for split in SPLITS:
        evaluation[split] = {r: entry(rest - (0.0 if r == "native" else 0.1 * (32 / int(r))))
                             for r in ("8", "16", "32", "native")}  # fmt: skip
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    return run


def test_a_sweep_of_va_runs_is_ranked_by_va_score(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    va_run(root, 0, select=0.30, rest=0.20)
    va_run(root, 1, select=0.45, rest=0.25)
    jobs = write_report(root)
    assert [job.task for job in jobs] == ["va", "va"]
    best = jobs[1]
    assert best.scores == pytest.approx({"val_select": 0.45, "val_rest": 0.25, "val_full": 0.35})
    assert best.eval_score("native") == 0.25 and best.eval_interval("native") == (0.2, 0.3)
    assert best.eval_score("8") == pytest.approx(0.25 - 0.4)
    report = (root / "report.md").read_text()
    assert f"Selected on val_select/score: **{best.name}** (val_select 0.4500)" in report
    assert "Scores are va_score, the mean of the CCCs of valence and arousal." in report
    assert "val_rest va_score (mean CCC), the mean over the evaluated 8-32 px (evaluations)" in (
        report
    )
    assert "| task |" not in report  # one task: no task column
    with (root / "jobs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["task"] for r in rows] == ["va", "va"]
    assert rows[1]["val_rest_score_native"] == "0.2500"
