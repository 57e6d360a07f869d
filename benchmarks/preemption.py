"""Time lost per preemption on a real (local) Slurm cluster, with the default checkpoint intervals.

    python benchmarks/preemption.py [--epochs 3] [--train-videos 8] [--frames 25]
        [--cases baseline,usr1,requeue,kill] [--markdown /tmp/preemption_table.md]

Starts the one-node cluster (``scripts/slurm/up.sh``, idempotent) and submits, one after the
other, real ``sbatch`` jobs of the tiny CPU demo (``+experiment=demo_multires`` shrunk as the
tests shrink it: 24 px crops, batches of 8, one thread) with the default callbacks
(``callbacks.last_checkpoint``: ``every_n_minutes=10``, no step interval, signals USR1, USR2,
TERM). Each job but the baseline is interrupted in the middle of its second epoch:

* ``usr1``: ``scancel --signal=USR1 <job>``, Slurm's preemption warning. ``last.ckpt`` is saved
  at the next step's end and the job requeues itself.
* ``requeue``: ``scontrol requeue <job>``. Slurm sends SIGTERM (saved at the next step's end),
  then SIGKILL after ``KillWait``, and starts the job again.
* ``kill``: SIGKILL sent straight to the training process (``kill -9 <pid>``, as the OOM killer
  or a crash would end it, the node being this one); once the job has ended, ``scontrol requeue
  <job>`` starts it again, and the second attempt resumes from the newest ``last.ckpt`` (here the
  previous epoch's end). Not ``scancel --signal=KILL``: Slurm turns that into a cancel, which
  sends SIGTERM first (measured: the job saved ``last.ckpt`` and lost 0 steps, i.e. case
  ``requeue`` again), with or without ``--full``.

A test-only callback (:class:`Progress`, loaded with ``+callbacks.progress``) appends one JSON
line per event to a file: each training step's end with its global step, each checkpoint save,
the checkpoint a restart loaded and the hooks of the restart. The batch script adds its own start
and end. The benchmark also polls the training process (``/proc``) and the job's state
(``scontrol show job``). Every number is a difference of two such timestamps, never a guess.
Prints one JSON line per case, one with the cluster's knobs and one with the worst case the
defaults allow for a hard kill; ``--markdown`` also writes the table of docs/training.md.

On a shared two-core machine timings are noisy: the load average is in every JSON line.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from common import emit
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("FER_SLURM_STATE", "/var/tmp/fer_multires-slurm"))
BATCH_SIZE = 8
CASES = ("baseline", "usr1", "requeue", "kill")
#: What each case does to the running job (for the table).
ACTIONS = {
    "baseline": "none",
    "usr1": "`scancel --signal=USR1`",
    "requeue": "`scontrol requeue`",
    "kill": "SIGKILL to the training process, then `scontrol requeue`",
}
#: Slurm settings that decide how soon a requeued job starts again, and how a job is ended.
SLURM_KNOBS = (
    "SLURM_VERSION",
    "AuthInfo",
    "SchedulerType",
    "SchedulerParameters",
    "KillWait",
    "JobRequeue",
    "MinJobAge",
    "SlurmdTimeout",
    "ReturnToService",
    "BatchStartTimeout",
    "PrologFlags",
    "CompleteWait",
)


# --- inside the training job ------------------------------------------------------------------


def attempt() -> int:
    """Return this Slurm job's attempt, ``SLURM_RESTART_COUNT`` (0 for the first)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def process_start_time() -> float:
    """Return when this process started (wall clock, to a clock tick: 10 ms), from ``/proc``."""
    with open("/proc/self/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot)


class Progress(pl.Callback):
    """Benchmark-only: append a timestamped JSON line per training event to ``path``.

    Changes nothing in the training: it only writes a small file, once per step.

    Args:
        path: the events file (JSON lines; appended to by every attempt).
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._first_batch = True
        self.write("process_start", t=process_start_time())
        self.write("callbacks_built")
        atexit.register(self.write, "python_exit")

    def write(self, event: str, t: float | None = None, **fields: Any) -> None:
        """Append one event, stamped with the wall clock, the attempt and the process id."""
        record = {"event": event, "t": time.time() if t is None else t, "attempt": attempt()}
        record.update(pid=os.getpid(), **fields)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Record the start of ``trainer.fit`` (after the index, the model and the trainer)."""
        self.write("setup", stage=stage)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record the checkpoint a restart resumed from, once it is read and the weights set."""
        self.write("checkpoint_loaded", global_step=int(checkpoint["global_step"]))

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the start of Lightning's sanity validation."""
        self.write("sanity_start")

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the end of Lightning's sanity validation."""
        self.write("sanity_end")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the start of the training loop."""
        self.write("train_start", global_step=trainer.global_step)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Record the start of the attempt's first training step."""
        if self._first_batch:
            self._first_batch = False
            self.write("first_batch_start", global_step=trainer.global_step)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Record a training step's end with its global step (before ``last.ckpt`` may save)."""
        self.write(
            "step", global_step=trainer.global_step, epoch=trainer.current_epoch, batch=batch_idx
        )

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record a checkpoint save (``last.ckpt`` or the best one) at its global step."""
        self.write("save", global_step=trainer.global_step)


# --- the cluster ------------------------------------------------------------------------------


def start_cluster() -> dict[str, str]:
    """Start the local cluster (idempotent); return the environment its commands need."""
    proc = subprocess.run(
        [str(REPO / "scripts/slurm/up.sh")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"the local Slurm cluster did not start: {proc.stderr.strip()[-800:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_CONF"] = proc.stdout.strip().splitlines()[-1]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "benchmarks"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # the same threads in every job, on a shared machine
    return env


def slurm(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a Slurm command; with ``check``, exit naming it if it fails."""
    proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc


def job_fields(env: dict[str, str], job: str) -> dict[str, str]:
    """Return ``scontrol show job``'s fields of a job (empty once Slurm forgot it)."""
    proc = slurm(env, "scontrol", "show", "job", job, "--oneliner", check=False)
    return dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)


def cluster_knobs(env: dict[str, str]) -> dict[str, str]:
    """Return the ``scontrol show config`` settings that decide restarts (:data:`SLURM_KNOBS`)."""
    out = slurm(env, "scontrol", "show", "config").stdout
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SLURM_KNOBS:
            found[key.strip()] = value.strip()
    return found


class JobWatcher(threading.Thread):
    """Poll a job's state (``scontrol``) and its training processes (``/proc``) in the background.

    Records the wall-clock time of every change of ``JobState``/``Restarts`` and the time each
    training process was first seen gone (or a zombie).
    """

    def __init__(self, env: dict[str, str], job: str, events: Path) -> None:
        super().__init__(daemon=True)
        self.env, self.job, self.events = env, job, events
        self.states: list[tuple[float, str, int]] = []
        self.exits: dict[int, float] = {}
        self._pids: set[int] = set()
        self._done = threading.Event()

    def stop(self) -> None:
        """End the polling."""
        self._done.set()
        self.join()

    def _poll_pids(self) -> None:
        for record in read_events(self.events):
            if record["event"] == "process_start":
                self._pids.add(record["pid"])
        for pid in self._pids - set(self.exits):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    gone = f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                gone = True
            if gone:
                self.exits[pid] = time.time()

    def run(self) -> None:
        """Poll: processes every 20 ms, the job's state every 0.2 s."""
        next_state = 0.0
        while not self._done.is_set():
            self._poll_pids()
            now = time.monotonic()
            if now >= next_state:
                next_state = now + 0.2
                fields = job_fields(self.env, self.job)
                state = (fields.get("JobState", "?"), int(fields.get("Restarts", "0") or 0))
                if not self.states or self.states[-1][1:] != state:
                    self.states.append((time.time(), *state))
            time.sleep(0.02)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Return the events written so far (a line being written is left for the next read)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def wait_for(what: str, check: Any, timeout_s: float, log: Path, poll_s: float = 0.02) -> Any:
    """Poll ``check`` until it returns something true; exit with the job's log on a timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    sys.exit(f"timed out after {timeout_s} s waiting for {what}\n{tail}")


# --- one job ----------------------------------------------------------------------------------


def train_overrides(data_root: Path, root: Path, epochs: int, events: Path) -> list[str]:
    """Return the tests' tiny CPU demo (``tests/conftest.py``) with :class:`Progress` added."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import train_overrides as test_overrides

    mine = ("trainer.max_epochs=", "model.scheduler.T_max=")
    overrides = [o for o in test_overrides(data_root, root) if not o.startswith(mine)]
    return [
        *overrides,
        f"trainer.max_epochs={epochs}",
        # a schedule over the run (the tests' T_max=4 is for their 1-4 epoch runs)
        f"model.scheduler.T_max={epochs}",
        "logger=none",
        "+callbacks.progress._target_=preemption.Progress",
        f"+callbacks.progress.path={events}",
    ]


def submit(env: dict[str, str], root: Path, name: str, command: list[str]) -> str:
    """Submit ``srun <command>`` as a requeueable batch job that stamps its start and end."""
    root.mkdir(parents=True, exist_ok=True)
    events = shlex.quote(str(root / "events.jsonl"))
    stamp = (
        'printf \'{"event": "%s", "t": %s, "attempt": %s, "rc": %s}\\n\' "$1" '
        f'"$(date +%s.%N)" "${{SLURM_RESTART_COUNT:-0}}" "${{2:-null}}" >> {events}'
    )
    script = root / f"{name}.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name=preempt-{name}\n"
        f"#SBATCH --output={root}/{name}-%j.out\n"
        "#SBATCH --open-mode=append\n"
        "#SBATCH --time=30\n"
        "#SBATCH --requeue\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=1\n"
        f"stamp() {{ {stamp}; }}\n"
        "stamp batch_start\n"
        f"cd {shlex.quote(str(REPO))}\n"
        f"srun {shlex.join(command)}\n"
        "rc=$?\n"
        "stamp batch_end $rc\n"
        "exit $rc\n"
    )
    return slurm(env, "sbatch", "--parsable", str(script)).stdout.strip().split(";")[0]


def requeue_when_ended(env: dict[str, str], job: str, log: Path) -> float:
    """``scontrol requeue`` a job once it has ended (after a hard kill); return when accepted."""

    def attempt_requeue() -> float | None:
        state = job_fields(env, job).get("JobState", "")
        if state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            return None
        if slurm(env, "scontrol", "requeue", job, check=False).returncode != 0:
            return None
        return time.time()

    return wait_for(f"job {job} to end and be requeued", attempt_requeue, 60, log, 0.05)


def run_case(
    env: dict[str, str], case: str, base: Path, data_root: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Submit one job, interrupt it as ``case`` says, wait for its end; return its timestamps."""
    root = base / case
    events = root / "events.jsonl"
    command = [
        sys.executable,
        "-m",
        "fer_multires.train",
        *train_overrides(data_root, root, args.epochs, events),
    ]
    job = submit(env, root, case, command)
    log = root / f"{case}-{job}.out"
    watcher = JobWatcher(env, job, events)
    watcher.start()
    steps_per_epoch = args.train_videos * args.frames // BATCH_SIZE
    interrupt_at = steps_per_epoch + steps_per_epoch // 2  # the middle of the second epoch
    record: dict[str, Any] = {"case": case, "job": job, "steps_per_epoch": steps_per_epoch}
    if case != "baseline":

        def reached() -> bool:
            return any(
                e["event"] == "step" and e["attempt"] == 0 and e["global_step"] >= interrupt_at
                for e in read_events(events)
            )

        wait_for(f"{case} to reach step {interrupt_at}", reached, 300, log, 0.01)
        record["t_interrupt"] = time.time()
        if case == "usr1":
            slurm(env, "scancel", "--signal=USR1", job)
        elif case == "requeue":
            slurm(env, "scontrol", "requeue", job)
        else:
            os.kill(first(read_events(events), "process_start", 0)["pid"], signal.SIGKILL)
        record["t_interrupt_returned"] = time.time()
        if case == "kill":
            record["t_requeue_accepted"] = requeue_when_ended(env, job, log)

    def finished() -> bool:
        # the last attempt's batch script has ended (attempt 0 of an interrupted job may end too)
        ends = [e for e in read_events(events) if e["event"] == "batch_end"]
        if not ends or (case != "baseline" and ends[-1]["attempt"] < 1):
            return False
        state = job_fields(env, job).get("JobState", "")
        return state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")

    wait_for(f"{case} (job {job}) to finish", finished, 900, log, 0.2)
    watcher.stop()
    record.update(
        state=job_fields(env, job).get("JobState"),
        restarts=int(job_fields(env, job).get("Restarts", "0") or 0),
        events=read_events(events),
        job_states=watcher.states,
        process_exits=watcher.exits,
        log=str(log),
    )
    return record


# --- the numbers ------------------------------------------------------------------------------


def first(events: list[dict[str, Any]], event: str, attempt_no: int, **match: Any) -> dict:
    """Return the first event named ``event`` of an attempt whose fields match ``match``."""
    for e in events:
        wanted = e["event"] == event and e["attempt"] == attempt_no
        if wanted and all(e.get(k) == v for k, v in match.items()):
            return e
    raise LookupError(f"no {event} event in attempt {attempt_no} matching {match}")


def last(events: list[dict[str, Any]], event: str, attempt_no: int, **match: Any) -> dict:
    """Return the last event named ``event`` of an attempt whose fields match ``match``."""
    return first(list(reversed(events)), event, attempt_no, **match)


LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]\[([\w.]+)\]\[\w+\] - (.*)")


def log_times(log: Path) -> list[tuple[float, str, str]]:
    """Return ``(time, logger, message)`` of every line of the training's log format."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp, ms, name, message = match.groups()
            t = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
            found.append((t, name, message))
    return found


def after(logged: list[tuple[float, str, str]], python_start: float) -> dict[str, float] | None:
    """Split a restart's start with its log: imports and config, then the data index.

    Returns:
        ``imports_and_config_s`` (process start to the "resuming from" message) and
        ``data_index_s`` (to the data module's summary), or None when the log lacks them.
    """
    resumed = [t for t, name, m in logged if t >= python_start - 1 and "resuming from" in m]
    data = [t for t, name, m in logged if name.endswith("datamodule") and m.startswith("data:")]
    data = [t for t in data if resumed and t >= resumed[0]]
    if not resumed or not data:
        return None
    return {
        "imports_and_config_s": round(resumed[0] - python_start, 2),
        "data_index_s": round(data[0] - resumed[0], 2),
    }


def summarize(record: dict[str, Any], baseline_total_s: float | None) -> dict[str, Any]:
    """Turn one case's timestamps into the reported numbers (seconds, steps)."""
    ev = record["events"]
    steps0 = [e for e in ev if e["event"] == "step" and e["attempt"] == 0]
    final = max(e["attempt"] for e in ev)
    total_s = last(ev, "batch_end", final)["t"] - first(ev, "batch_start", 0)["t"]
    pairs = itertools.pairwise(steps0)
    step_times = [b["t"] - a["t"] for a, b in pairs if a["epoch"] == b["epoch"]]
    out: dict[str, Any] = {
        "case": record["case"],
        "action": ACTIONS[record["case"]],
        "job": record["job"],
        "final_state": record["state"],
        "restarts": record["restarts"],
        "steps_per_epoch": record["steps_per_epoch"],
        "median_step_s": round(sorted(step_times)[len(step_times) // 2], 4),
        "job_wall_s": round(total_s, 2),
    }
    if record["case"] == "baseline":
        return out
    t_int = record["t_interrupt"]
    pid0 = first(ev, "process_start", 0)["pid"]
    t_exit = record["process_exits"][pid0]
    left_running = [t for t, state, _ in record["job_states"] if t > t_int and state != "RUNNING"]
    done_before = [e for e in steps0 if e["t"] <= t_int]
    last0 = steps0[-1]
    loaded = first(ev, "checkpoint_loaded", 1)
    resumed = loaded["global_step"]
    saved = last(ev, "save", 0, global_step=resumed)
    # training time of attempt 0 that the checkpoint it resumed from does not hold: from that
    # save to the last progress (the kill, or the end of the last step)
    t_progress_end = t_int if record["case"] == "kill" else last0["t"]
    lost_s = max(0.0, t_progress_end - saved["t"])
    start1 = first(ev, "batch_start", 1)["t"]
    t_first = first(ev, "first_batch_start", 1)["t"]
    redone = last0["global_step"] - resumed
    # time attempt 1 spent redoing steps: from its first step's start to the end of the step
    # attempt 0 had reached
    redo_s = first(ev, "step", 1, global_step=last0["global_step"])["t"] - t_first if redone else 0
    if record["case"] == "kill":
        late = [e for e in ev if e["event"] == "save" and e["attempt"] == 0 and e["t"] > t_int]
        if late or redone < 1:
            sys.exit(f"kill: the training process saved after SIGKILL ({late}): not a hard kill")
    python1 = first(ev, "process_start", 1)["t"]
    logged = log_times(Path(record["log"]))
    restart = {
        "srun_to_python_s": python1 - start1,
        "imports_config_index_model_s": first(ev, "callbacks_built", 1)["t"] - python1,
        "trainer_to_fit_s": first(ev, "setup", 1)["t"] - first(ev, "callbacks_built", 1)["t"],
        "checkpoint_load_s": loaded["t"] - first(ev, "setup", 1)["t"],
        "restore_and_sanity_val_s": first(ev, "train_start", 1)["t"] - loaded["t"],
        "to_first_step_s": t_first - first(ev, "train_start", 1)["t"],
    }
    out.update(
        interrupted_after_step=done_before[-1]["global_step"],
        interrupted_in_epoch=done_before[-1]["epoch"],
        last_step_before_exit=last0["global_step"],
        resumed_from_step=resumed,
        steps_redone=redone,
        work_lost_s=round(lost_s, 2),
        redo_s=round(redo_s, 2),
        interrupt_to_process_exit_s=round(t_exit - t_int, 2),
        interrupt_to_attempt_end_s=round(min(left_running) - t_int, 2) if left_running else None,
        process_exit_to_second_attempt_s=round(start1 - t_exit, 2),
        restart_to_first_step_s=round(t_first - start1, 2),
        restart_breakdown_s={k: round(v, 2) for k, v in restart.items()},
        # from the training's own log: the imports and Hydra's config come before the resume
        # message, the data index between it and the data module's summary
        restart_log_split_s=after(logged, python1),
        interrupt_to_first_resumed_step_s=round(t_first - t_int, 2),
        overhead_vs_baseline_s=(
            None if baseline_total_s is None else round(total_s - baseline_total_s, 2)
        ),
        job_states=[[round(t - t_int, 2), s, r] for t, s, r in record["job_states"]],
    )
    exits = [e["t"] for e in ev if e["event"] == "python_exit" and e["attempt"] == 0]
    if exits:  # where the exit's time goes: our code and Hydra, then the interpreter's shutdown
        out["interrupt_to_python_exit_s"] = round(exits[0] - t_int, 2)
        out["python_exit_to_process_gone_s"] = round(t_exit - exits[0], 2)
    if "t_requeue_accepted" in record:
        out["requeue_issued_after_interrupt_s"] = round(record["t_requeue_accepted"] - t_int, 2)
        out["requeue_to_second_attempt_s"] = round(start1 - record["t_requeue_accepted"], 2)
    return out


def default_intervals() -> dict[str, Any]:
    """Return ``callbacks.last_checkpoint``'s defaults (``conf/callbacks/default.yaml``)."""
    cfg = OmegaConf.load(REPO / "conf/callbacks/default.yaml").last_checkpoint
    return {
        "every_n_train_steps": cfg.every_n_train_steps,
        "every_n_minutes": cfg.every_n_minutes,
        "signals": list(cfg.signals),
        "requeue_signals": list(cfg.requeue_signals),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table of docs/training.md: one column per interrupted case."""
    cases = [r for r in rows if r["case"] != "baseline"]
    lines = [
        "| | " + " | ".join(f"{r['case']}: {r['action']}" for r in cases) + " |",
        "|---|" + "---:|" * len(cases),
    ]
    labels = (
        ("interrupted after step (epoch)", lambda r: f"{r['interrupted_after_step']} "
         f"({r['interrupted_in_epoch']})"),
        ("resumed from step", lambda r: r["resumed_from_step"]),
        ("steps redone", lambda r: r["steps_redone"]),
        ("work lost (s)", lambda r: r["work_lost_s"]),
        ("interrupt to training process exit (s)", lambda r: r["interrupt_to_process_exit_s"]),
        ("  of which Python's shutdown (atexit to gone)",
         lambda r: r.get("python_exit_to_process_gone_s", "no atexit: killed")),
        ("interrupt to Slurm ending the attempt (s)", lambda r: r["interrupt_to_attempt_end_s"]),
        ("process exit to second attempt's start (s)",
         lambda r: r["process_exit_to_second_attempt_s"]),
        ("second attempt's start to first resumed step (s)",
         lambda r: r["restart_to_first_step_s"]),
        ("  of which Python start to model built (imports, config, index, model)",
         lambda r: r["restart_breakdown_s"]["imports_config_index_model_s"]),
        ("    of which imports and Hydra config",
         lambda r: (r["restart_log_split_s"] or {}).get("imports_and_config_s")),
        ("    of which data index", lambda r: (r["restart_log_split_s"] or {}).get("data_index_s")),
        ("  of which checkpoint load", lambda r: r["restart_breakdown_s"]["checkpoint_load_s"]),
        ("  of which restore and sanity validation",
         lambda r: r["restart_breakdown_s"]["restore_and_sanity_val_s"]),
        ("interrupt to first resumed step (s)", lambda r: r["interrupt_to_first_resumed_step_s"]),
        ("time redoing lost steps (s)", lambda r: r["redo_s"]),
        ("wall-clock overhead vs the uninterrupted job (s)",
         lambda r: r["overhead_vs_baseline_s"]),
    )  # fmt: skip
    for label, value in labels:
        lines.append(f"| {label} | " + " | ".join(str(value(r)) for r in cases) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the cases one after the other and print their numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25, help="frames per video")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fer_preemption_bench"))
    parser.add_argument("--markdown", type=Path, help="also write the docs/training.md table here")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; choose from {', '.join(CASES)}")
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the jobs are interrupted in the second epoch")

    env = start_cluster()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = args.workdir / stamp
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_image_tree

    data_root = make_image_tree(
        base / "data", train_videos=args.train_videos, val_videos=5, frames=args.frames
    )
    knobs = cluster_knobs(env)
    emit({"benchmark": "preemption", "cluster": knobs, "defaults": default_intervals(),
          "workdir": str(base), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
          "job": {"torch_threads": 1, "cpus_per_task": 1, "epochs": args.epochs,
                  "train_frames": args.train_videos * args.frames,
                  "batch_size": BATCH_SIZE}})  # fmt: skip

    rows = []
    baseline_total = None
    for case in cases:
        record = run_case(env, case, base, data_root, args)
        (base / case / "record.json").write_text(json.dumps(record, indent=1))
        row = summarize(record, baseline_total)
        if case == "baseline":
            baseline_total = row["job_wall_s"]
        rows.append(row)
        emit({"benchmark": "preemption", **row})

    defaults = default_intervals()
    kills = [r for r in rows if r["case"] == "kill"]
    if kills and defaults["every_n_minutes"]:
        k = kills[0]
        interval_s = 60.0 * defaults["every_n_minutes"]
        restart_s = k["interrupt_to_first_resumed_step_s"]
        emit(
            {
                "benchmark": "preemption",
                "case": "kill_worst_case_with_defaults",
                "every_n_minutes": defaults["every_n_minutes"],
                "every_n_train_steps": defaults["every_n_train_steps"],
                # a hard kill just before the next timed save (checked at step ends)
                "max_work_lost_s": f"{interval_s:.0f} + one step (or the epoch so far, if shorter)",
                "max_steps_lost_at_measured_step_time": int(interval_s / k["median_step_s"]) + 1,
                "measured_step_s": k["median_step_s"],
                "plus_measured_restart_s": restart_s,
                "worst_case_overhead_s": round(interval_s + k["median_step_s"] + restart_s, 1),
            }
        )
    if args.markdown:
        args.markdown.write_text(markdown_table(rows))


if __name__ == "__main__":
    if re.fullmatch(r"[0-9]+", os.environ.get("SLURM_JOB_ID", "")):
        sys.exit("run this on a login node, not inside a Slurm job")
    main()
