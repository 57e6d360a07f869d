"""The run directory: the one module that names its files and finds what a run holds.

A training run's directory (``run_dir``)::

    config.yaml          the composed config, resolved (written when training starts)
    .hydra/              Hydra's copy of the config and the command-line overrides
    checkpoints/         the best checkpoint(s) and last.ckpt (what ckpt_path=last resumes)
    metrics.json         the training's summary (its best checkpoint, scores, counts)
    initial_weights.json where the initial weights came from (model.pretrained: the name, the
                         Hub revision, the file and its sha256; written when training starts)
    error.txt            a failed run's overrides and error
    run.lock             held by the command running in it (train, evaluate, predict); names it
    eval/                the evaluation after training (eval_after_fit): an evaluation directory

An evaluation directory (``evaluate``'s output, or ``<run>/eval``) holds its ``metrics.json``
(the schema is :mod:`fer_multires.results`'), its tables and plots, and ``error.txt`` when it
failed. Every entry point finds a run's checkpoint, config, model input, evaluation and status
here, so a missing or foreign one gives the same error, naming the key and the file, wherever it
is passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from fer_multires.data.transforms import Normalize, check_sizes
from fer_multires.utils.checkpoints import require_checkpoint
from fer_multires.utils.io import read_lines, read_yaml
from fer_multires.utils.locks import current_holder, describe_holder

if TYPE_CHECKING:
    from fer_multires.results import TrainingResults

#: The run's composed, resolved config.
CONFIG_FILE = "config.yaml"
#: Hydra's folder: its own copy of the config, the command-line overrides, its settings.
HYDRA_DIR = ".hydra"
HYDRA_OVERRIDES = "overrides.yaml"
HYDRA_SETTINGS = "hydra.yaml"
#: The folder of a run's checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: The checkpoint refreshed after every validation; what ``ckpt_path=last`` resumes from.
LAST_CHECKPOINT = "last.ckpt"
#: A training's summary, or an evaluation's results.
METRICS_FILE = "metrics.json"
#: An evaluation's per-video (per-image) confusion matrices at every resolution and degradation:
#: what intervals and paired comparisons are recomputed from, without the model.
PER_VIDEO_FILE = "per_video.npz"
#: Where a run's initial weights came from (``models/pretrained.py``, ``WeightsSource``).
INITIAL_WEIGHTS_FILE = "initial_weights.json"
#: A failed run's (or evaluation's) error.
ERROR_FILE = "error.txt"
#: The folder of a run's evaluation after training.
EVAL_DIR = "eval"
#: The lock the command writing into a run (or output) directory holds; it names that process.
LOCK_FILE = "run.lock"
#: Entries that make a directory a run's (or an attempt at one).
RUN_MARKERS: tuple[str, ...] = (HYDRA_DIR, CONFIG_FILE, METRICS_FILE, CHECKPOINTS_DIR, ERROR_FILE)


def checkpoints_dir(run_dir: str | Path) -> Path:
    """Return the folder of a run's checkpoints."""
    return Path(run_dir) / CHECKPOINTS_DIR


def last_checkpoint_path(run_dir: str | Path) -> Path:
    """Return where a run's ``last.ckpt`` is (whether or not it exists)."""
    return checkpoints_dir(run_dir) / LAST_CHECKPOINT


def metrics_file(path: str | Path) -> Path:
    """Return the ``metrics.json`` of a run or evaluation directory (a file is returned as is)."""
    path = Path(path)
    return path / METRICS_FILE if path.is_dir() else path


def per_video_file(path: str | Path) -> Path:
    """Return the ``per_video.npz`` beside an evaluation's ``metrics.json`` (or in its folder)."""
    return metrics_file(path).parent / PER_VIDEO_FILE


def error_file(run_dir: str | Path) -> Path:
    """Return where a run's (or an evaluation's) error is written."""
    return Path(run_dir) / ERROR_FILE


def eval_dir(run_dir: str | Path) -> Path:
    """Return the folder of a run's evaluation after training."""
    return Path(run_dir) / EVAL_DIR


def lock_file(run_dir: str | Path) -> Path:
    """Return the lock file of a run (or output) directory (:mod:`fer_multires.run_guard`)."""
    return Path(run_dir) / LOCK_FILE


def initial_weights_file(run_dir: str | Path) -> Path:
    """Return where a run records where its initial weights came from."""
    return Path(run_dir) / INITIAL_WEIGHTS_FILE


def config_file(run_dir: str | Path) -> Path:
    """Return where a run's composed config is written."""
    return Path(run_dir) / CONFIG_FILE


def hydra_file(run_dir: str | Path, name: str) -> Path:
    """Return one of Hydra's files of a run (``CONFIG_FILE``, ``HYDRA_OVERRIDES``, ...)."""
    return Path(run_dir) / HYDRA_DIR / name


def hydra_record(output_dir: str | Path, *keys: str) -> Any:
    """Return a value Hydra recorded for a run in ``<output_dir>/.hydra/hydra.yaml``, or None.

    E.g. ``hydra_record(run_dir, "runtime", "cwd")``: the directory the run was started in,
    against which its relative paths (a relative ``data.root``, a relative ``ckpt_path``) are
    resolved; ``hydra_record(run_dir, "job", "name")``: which entry point wrote it.
    """
    data = read_yaml(hydra_file(output_dir, HYDRA_SETTINGS))
    try:
        for key in ("hydra", *keys):
            data = data[key]
    except (TypeError, KeyError):
        return None
    return data


def config_files(run_dir: str | Path) -> tuple[Path, Path]:
    """Return where a run's config may be, most trusted first.

    The resolved ``config.yaml``, then Hydra's copy (all a job that failed before writing the
    first has).
    """
    return config_file(run_dir), hydra_file(run_dir, CONFIG_FILE)


def is_run_dir(path: Path) -> bool:
    """Whether a directory holds any of :data:`RUN_MARKERS`."""
    return path.is_dir() and any((path / marker).exists() for marker in RUN_MARKERS)


# ------------------------------------------------------------------------------ checkpoints


def last_checkpoint(run_dir: str | Path, key: str = "ckpt_path") -> Path:
    """Return ``<run dir>/checkpoints/last.ckpt``, the checkpoint to resume a run from.

    Raises:
        FileNotFoundError: if the run has none; resuming never silently becomes a fresh start.
    """
    path = last_checkpoint_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}=last: nothing to resume, {path} does not exist. Pass the directory "
            "of the run to resume as run_dir=<dir> (its path is printed when a run starts)"
        )
    return path


def best_checkpoint_of_run(run_dir: str | Path) -> Path | None:
    """Return the best checkpoint a finished run names in its ``metrics.json``, if it exists.

    The recorded path is tried in the run's ``checkpoints/`` first, so a run directory that was
    moved or copied still finds its checkpoint.
    """
    # results reads metrics.json by this module's names: imported here, not at the top
    from fer_multires.results import ResultsError, load_training_results

    try:
        recorded = load_training_results(run_dir).checkpoint
    except ResultsError:
        return None
    if not recorded:
        return None
    for candidate in (checkpoints_dir(run_dir) / Path(recorded).name, Path(recorded)):
        if candidate.is_file():
            return candidate
    return None


def resolve_checkpoint(path: str | Path, key: str = "ckpt_path") -> Path:
    """Return the model to use: ``path``, a training run directory's best checkpoint, or a folder.

    A Hub-ready folder (``export.hub=true``) is returned as is; ``hf-hub:<org>/<repo>`` is its
    snapshot in the Hugging Face cache (:func:`fer_multires.models.hub.resolve_hub_folder`).

    Raises:
        FileNotFoundError: if the file does not exist, or the run directory names no checkpoint
            that exists.
        ValueError: for an ``hf-hub:`` name that is not cached (saying what to run).
    """
    from fer_multires.models.hub import resolve_hub_folder  # timm, torch: only when needed

    folder = resolve_hub_folder(str(path), key)
    if folder is not None:
        return folder
    path = Path(path)
    if path.is_dir():
        best = best_checkpoint_of_run(path)
        if best is None:
            raise FileNotFoundError(
                f"{key}: {path} is a directory without a {METRICS_FILE} naming an existing best "
                "checkpoint (an unfinished run?); pass a checkpoint file, e.g. "
                f"{last_checkpoint_path(path)}"
            )
        return best
    return require_checkpoint(path, key)


def run_config_of(ckpt_path: str | Path) -> Path | None:
    """Return the ``config.yaml`` of the run a checkpoint belongs to, or None.

    Looked for in the parent of the checkpoint's folder (``<run>/checkpoints/x.ckpt``), then in
    the checkpoint's own folder.
    """
    folder = Path(ckpt_path).resolve().parent
    for candidate in (config_file(folder.parent), config_file(folder)):
        if candidate.is_file():
            return candidate
    return None


def missing_run_config(ckpt_path: str | Path) -> str:
    """Return the words that say a checkpoint has no run config, and where it was looked for."""
    folder = Path(ckpt_path).resolve().parent
    return f"no {CONFIG_FILE} next to {ckpt_path} (looked in {folder.parent} and {folder})"


# ------------------------------------------------------------------------------ model input


@dataclass(frozen=True)
class ModelInput:
    """How the training run prepared its images, hence how a face crop must be prepared.

    Its defaults are the one home of the ``data`` node's (``FERDataModule``'s signature, hence
    the ``data`` schema, refers to them), used too for a run config that lacks a key (an older
    run).

    Attributes:
        resize_size: ``data.resize_size``, the shorter side after resizing.
        crop_size: ``data.crop_size``, the side of the centre crop the model sees.
        normalization: ``data.normalization`` (``imagenet`` or ``vggface2``).
        image_size: ``data.image_size``: images resized to this square when read, or None.
    """

    resize_size: int = 256
    crop_size: int = 224
    normalization: str = "imagenet"
    image_size: int | None = None

    def __post_init__(self) -> None:
        check_sizes(self.resize_size, self.crop_size)
        Normalize(self.normalization)  # raises for an unknown preset

    def to_json(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInput:
        """Read :meth:`to_json`'s dict (or a run config's ``data`` node); absent keys: defaults."""
        defaults = cls.__dataclass_fields__
        size = data.get("image_size")
        return cls(
            int(data.get("resize_size", defaults["resize_size"].default)),
            int(data.get("crop_size", defaults["crop_size"].default)),
            str(data.get("normalization", defaults["normalization"].default)),
            None if size is None else int(size),
        )


def model_input_of_run(ckpt_path: str | Path, key: str = "ckpt_path") -> tuple[ModelInput, Path]:
    """Read the :class:`ModelInput` of a checkpoint's training run (``<run>/config.yaml``).

    Returns:
        The settings and the run config they came from.

    Raises:
        ValueError: naming ``key``, if the checkpoint has no run config or it has no data node.
    """
    run_config = run_config_of(ckpt_path)
    if run_config is None:
        raise ValueError(
            f"{key}: {missing_run_config(ckpt_path)}: the training's image sizes and "
            "normalisation are unknown; pass the run directory or a checkpoint inside it, or "
            "an ONNX file exported from the run"
        )
    data = OmegaConf.load(run_config).get("data")
    if data is None:
        raise ValueError(f"{key}: {run_config} has no data node")
    values = {name: data.get(name) for name in ModelInput.__dataclass_fields__ if name in data}
    return ModelInput.from_json(values), run_config


# ------------------------------------------------------------------------------ evaluations


def find_evaluation(run_dir: str | Path) -> Path | None:
    """Return the evaluation ``metrics.json`` a training run holds, or None.

    Looked for in ``<run>/eval/`` (``eval_after_fit``), then in the run directory itself (an
    evaluation directory passed as the run; a training's own ``metrics.json`` is passed over).

    Raises:
        ResultsError: naming the file, for a ``metrics.json`` that exists but cannot be read or
            parsed (a missing one is not an error).
    """
    from fer_multires.results import EvalResults, load_results

    for candidate in (metrics_file(eval_dir(run_dir)), Path(run_dir) / METRICS_FILE):
        if candidate.exists() and isinstance(load_results(candidate), EvalResults):
            return candidate
    return None


# ------------------------------------------------------------------------------ status


def shorten(message: str, limit: int = 200) -> str:
    """Cut a message to ``limit`` characters, ending in ``...`` when cut."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


def error_message(run_dir: Path) -> str:
    """Return the first line of the error in ``error.txt`` (its first line is the overrides)."""
    path = error_file(run_dir)
    lines = read_lines(path)
    message = next((line.strip() for line in lines[1:] if line.strip()), "")
    return shorten(message or (lines[0].strip() if lines else "") or f"{path.name} is empty")


def eval_error_message(run_dir: Path) -> str | None:
    """Return why the end-of-training evaluation failed (``eval/error.txt``), or None."""
    path = error_file(eval_dir(run_dir))
    if not path.is_file():
        return None
    message = next((line.strip() for line in read_lines(path) if line.strip()), "")
    return shorten(message or f"{EVAL_DIR}/{path.name} is empty")


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Return a run's checkpoint files, sorted."""
    return sorted(checkpoints_dir(run_dir).glob("*.ckpt"))


def run_status(run_dir: Path, results: TrainingResults | None, eval_error: str | None) -> str:
    """Return a training run's status: the first of these that applies.

    ``failed: <error>`` (training's ``error.txt``), ``eval failed: <error>`` (``eval/error.txt``),
    ``ok`` (or ``ok (no checkpoint saved)``), ``running: <process>`` (its lock is held),
    ``incomplete: ...`` (stopped, killed, or an unreadable ``metrics.json``), ``no checkpoint``.
    """
    if error_file(run_dir).is_file():
        return f"failed: {error_message(run_dir)}"
    if eval_error is not None:
        return f"eval failed: {eval_error}"
    if results is not None:
        return "ok" if checkpoint_files(run_dir) else "ok (no checkpoint saved)"
    holder = current_holder(lock_file(run_dir))
    if holder is not None:
        return f"running: {describe_holder(holder)}"
    if checkpoint_files(run_dir):
        if metrics_file(run_dir).is_file():
            return f"incomplete: {shorten(unreadable_results(run_dir))}"
        return (
            "incomplete: checkpoints but no metrics.json (stopped or killed; resume it with "
            "ckpt_path=last)"
        )
    return "no checkpoint"


def unreadable_results(run_dir: Path) -> str:
    """Why a run's ``metrics.json`` cannot be read (it exists)."""
    from fer_multires.results import ResultsError, load_training_results

    try:
        load_training_results(run_dir)
    except ResultsError as err:
        return str(err)
    return f"{metrics_file(run_dir)} is not a training summary"


def read_training_results(run_dir: Path) -> TrainingResults | None:
    """Return the run's ``metrics.json``, or None when it has none (it did not finish)."""
    from fer_multires.results import ResultsError, load_training_results

    try:
        return load_training_results(run_dir)
    except ResultsError:
        return None
