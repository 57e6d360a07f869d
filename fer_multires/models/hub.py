"""A trained model as a Hub-ready folder: written by ``export``, read by ``predict``, ``evaluate``.

The folder (``python -m fer_multires.export ckpt_path=RUN export.hub=true``)::

    model.safetensors   the model's weights (timm's state-dict keys), weights only
    config.json         timm's format (written by ``timm.models.save_for_hf``: ``architecture``,
                        ``num_classes`` (every head's outputs), ``label_names`` (the classes
                        for ``task=expr``, else every output's name), ``pretrained_cfg`` with the
                        input size, crop, interpolation and normalisation), plus our fields
                        under :data:`FIELDS_KEY`: the task, its heads (:func:`hub_heads`: each
                        head's columns of the output layer, their names and activation), the
                        expression classes in output order, the image settings
                        (``ModelInput``), the training's multi-resolution range, where its
                        initial weights came from, the evaluated scores and AU thresholds
    README.md           the model card: the task, its heads, the evaluation table when the run
                        has one

Upload it with ``hf upload <org>/<repo> <folder>``. Then ``ckpt_path=hf-hub:<org>/<repo>``
(read from the Hugging Face cache, offline: ``python -m fer_multires.weights fetch`` fills it)
or ``ckpt_path=<folder>`` work with ``predict`` and ``evaluate`` (whose data config then comes
from the command line, ``data=NAME data.root=PATH``, with the folder's image settings), and
``timm.create_model("hf-hub:<org>/<repo>", pretrained=True)`` builds the same classifier.
Nothing in it is a pickle: loading never runs code from the folder.

A folder written before tasks existed (``format_version`` 1, no ``heads``) is read as what it
is, an expression model; one whose ``task`` or ``heads`` do not fit its ``num_classes`` is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf

from fer_multires.data.transforms import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, VGGFACE2_MEAN_BGR
from fer_multires.inference.classifier import HEAD_ACTIVATIONS, head_columns
from fer_multires.models.pretrained import (
    HUB_CONFIG_FILE,
    HUB_PREFIX,
    read_initial_weights,
    resolve_weights,
)
from fer_multires.runs import ModelInput, find_evaluation, model_input_of_run
from fer_multires.tasks import DEFAULT_TASK, check_task, head_slices, num_outputs
from fer_multires.utils.checkpoints import checkpoint_class_names, checkpoint_task
from fer_multires.utils.io import write_text_atomic

if TYPE_CHECKING:
    from fer_multires.models.module import FERModule

#: The weights file of a folder (safetensors only: no pickles).
WEIGHTS_FILE = "model.safetensors"
#: The model card.
README_FILE = "README.md"
#: The key of our fields in ``config.json``.
FIELDS_KEY = "fer_multires"
#: The version of those fields' layout (2: ``task`` any of the tasks, ``heads``).
FORMAT_VERSION = 2
#: What a model of each task is, for the model card's title.
TASK_TITLES: dict[str, str] = {
    "expr": "facial expression classifier",
    "va": "valence-arousal estimator",
    "au": "action-unit detector",
    "mtl": "multi-task model (expressions, valence-arousal, action units)",
}
#: The model card's tags per task.
TASK_TAGS: dict[str, tuple[str, ...]] = {
    "expr": ("image-classification", "facial-expression-recognition"),
    "va": ("valence-arousal", "affect-recognition"),
    "au": ("action-unit-detection", "multi-label-classification"),
    "mtl": ("facial-expression-recognition", "valence-arousal", "action-unit-detection"),
}


def is_hub_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` and ``model.safetensors``."""
    path = Path(path)
    return path.is_dir() and (path / HUB_CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def resolve_hub_folder(ref: str, key: str = "ckpt_path") -> Path | None:
    """Return the folder ``ref`` names, or None if it names none (a run, a checkpoint file).

    Args:
        ref: ``hf-hub:<org>/<repo>[@<revision>]`` (the repository's snapshot in the Hugging
            Face cache; never fetched here) or a folder written by ``export``.
        key: the config key, for the messages.

    Raises:
        NotCachedError: for a repository that is not in the cache, saying what to run.
        PretrainedError: for a repository without ``model.safetensors``.
    """
    if ref.startswith(HUB_PREFIX):
        source = resolve_weights(ref, download=False, key=key)
        if source.filename != WEIGHTS_FILE:
            raise ValueError(
                f"{key}={ref}: the repository has {source.filename}, not {WEIGHTS_FILE}; a model "
                "to predict or evaluate with must be weights only (python -m fer_multires.export "
                "export.hub=true writes one)"
            )
        return Path(source.file).parent
    return Path(ref) if is_hub_folder(ref) else None


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class HubModel:
    """A folder's model, as ``config.json`` describes it.

    Attributes:
        folder: the folder (a snapshot in the Hugging Face cache for ``hf-hub:`` names).
        architecture: the timm architecture.
        class_names: the expression classes, in output order (none for ``task=va``, ``au``).
        model_input: the image settings its crops are prepared with.
        fields: all of our fields (:data:`FIELDS_KEY`).
        task: the model's task (none recorded: ``expr``).
    """

    folder: Path
    architecture: str
    class_names: list[str]
    model_input: ModelInput
    fields: dict[str, Any]
    task: str = DEFAULT_TASK

    @property
    def expected_scores(self) -> dict[str, Any] | None:
        """The run's evaluated scores per resolution (``ExpectedScore.to_json``), if any."""
        return self.fields.get("expected_scores")

    @property
    def au_thresholds(self) -> dict[str, Any] | None:
        """The AU thresholds of the run's evaluation (``AuThresholds.to_json``), if any."""
        return self.fields.get("au_thresholds")

    @property
    def initial_weights(self) -> dict[str, Any] | None:
        """Where the training started from (``initial_weights.json``), if recorded."""
        return self.fields.get("initial_weights")

    def load_module(self) -> FERModule:
        """Return the model as a ``FERModule`` of its task (eval mode, CPU), loaded strictly.

        Raises:
            ValueError: naming the folder, if the weights do not fit the architecture.
        """
        from safetensors.torch import load_file

        from fer_multires.models.module import FERModule

        module = FERModule(self.architecture, len(self.class_names), self.class_names,
                           task=self.task)  # fmt: skip
        try:
            module.model.load_state_dict(load_file(self.folder / WEIGHTS_FILE, device="cpu"))
        except RuntimeError as err:
            what = f"{len(self.class_names)} classes"
            if self.task != DEFAULT_TASK:
                what = f"task {self.task} ({num_outputs(self.task, len(self.class_names))} outputs)"
            raise ValueError(
                f"{self.folder / WEIGHTS_FILE} does not fit {self.architecture} with {what}: {err}"
            ) from err
        return module.eval()


def read_hub_model(folder: Path, key: str = "ckpt_path") -> HubModel:
    """Read a folder's ``config.json``.

    Raises:
        ValueError: naming ``key`` and the file, if it is not a folder ``export`` wrote.
    """
    path = folder / HUB_CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        fields = config[FIELDS_KEY]
        model = HubModel(
            folder,
            str(config["architecture"]),
            [str(c) for c in fields["classes"]],
            ModelInput.from_json(fields["model_input"]),
            dict(fields),
            check_task(str(fields.get("task") or DEFAULT_TASK), f"{FIELDS_KEY}.task"),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{key}: {path} is not the config of a model exported by python -m fer_multires.export "
            f"export.hub=true ({type(err).__name__}: {err}); a plain timm repository can be used "
            "as model.pretrained to train from"
        ) from err
    check_layout(model, int(config.get("num_classes", -1)), f"{key}: {path}")
    return model


def check_layout(model: HubModel, num_classes: int, where: str) -> None:
    """Refuse a folder whose output layer does not fit its task, classes and ``heads``.

    Raises:
        ValueError: starting with ``where``.
    """
    outputs = num_outputs(model.task, len(model.class_names))
    if num_classes != outputs:
        if model.task == DEFAULT_TASK:
            raise ValueError(f"{where}: num_classes={num_classes} but {len(model.class_names)} "
                             f"classes in {FIELDS_KEY}.classes")  # fmt: skip
        raise ValueError(f"{where}: num_classes={num_classes} but task {model.task} with "
                         f"{len(model.class_names)} classes has {outputs} outputs")  # fmt: skip
    heads = model.fields.get("heads")
    if heads is not None and heads != hub_heads(model.task, model.class_names):
        raise ValueError(
            f"{where}: {FIELDS_KEY}.heads={json.dumps(heads)} is not the layout of task "
            f"{model.task} ({json.dumps(hub_heads(model.task, model.class_names))})"
        )


def trained_class_names(model_path: Path, key: str = "ckpt_path") -> list[str]:
    """Return the classes a checkpoint or a Hub folder was trained for, in output order."""
    if is_hub_folder(model_path):
        return read_hub_model(model_path, key).class_names
    return checkpoint_class_names(model_path, key)


def trained_task(model_path: Path, key: str = "ckpt_path") -> str:
    """Return the task a checkpoint or a Hub folder was trained for, without its weights.

    ``expr`` where none is recorded (a model saved before tasks existed).
    """
    if is_hub_folder(model_path):
        return read_hub_model(model_path, key).task
    return checkpoint_task(model_path, key)


def load_trained(model_path: Path, key: str = "ckpt_path") -> FERModule:
    """Return the trained classifier of a checkpoint or a Hub folder (CPU)."""
    if is_hub_folder(model_path):
        return read_hub_model(model_path, key).load_module()
    from fer_multires.models.module import FERModule

    return FERModule.load_from_checkpoint(model_path, pretrained=None, map_location="cpu")


def initial_weights_of(model_path: Path, run_config: Path | None) -> dict[str, Any] | None:
    """Return where the model's training started from: its run's record, or its folder's."""
    if run_config is not None:
        return read_initial_weights(run_config.parent)
    if is_hub_folder(model_path):
        return read_hub_model(model_path).initial_weights
    return None


# ------------------------------------------------------------------------------ writing


def timm_data_config(model_input: ModelInput) -> dict[str, Any]:
    """Return timm's preprocessing config for the image settings (``save_for_hf``'s data_config).

    The evaluation resizes the shorter side to ``resize_size`` and centre-crops ``crop_size``
    (timm: ``crop_pct = crop / resize``), bilinear. The ``vggface2`` normalisation (BGR, 0-255,
    mean-subtracted) has no timm equivalent: its mean and scale are given in RGB order, and the
    model card says that the channels must be reversed.
    """
    if model_input.normalization == "vggface2":
        mean = tuple(m / 255.0 for m in reversed(VGGFACE2_MEAN_BGR))
        std = (1 / 255.0,) * 3
    else:
        mean, std = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
    size = model_input.crop_size
    return {
        "input_size": (3, size, size),
        "crop_pct": model_input.crop_size / model_input.resize_size,
        "crop_mode": "center",
        "interpolation": "bilinear",
        "mean": tuple(mean),
        "std": tuple(std),
    }


def multires_of_run(run_config: Path) -> dict[str, Any] | None:
    """Return the training's ``data.multires`` settings (None: multi-resolution was off)."""
    data = OmegaConf.load(run_config).get("data") or {}
    node = data.get("multires")
    if node is None:
        return None
    settings = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in settings.items() if not k.startswith("_")}


def hub_heads(task: str, class_names: list[str]) -> dict[str, dict[str, Any]]:
    """Return the ``heads`` field: each head's place in the output layer.

    Per head, its ``[start, stop)`` columns, their names and the activation that turns them into
    predictions.
    """
    names = head_columns(task, class_names)
    return {
        head: {"columns": [part.start, part.stop], "names": names[head],
               "activation": HEAD_ACTIVATIONS[head]}
        for head, part in head_slices(task, len(class_names)).items()
    }  # fmt: skip


def output_labels(task: str, class_names: list[str]) -> list[str]:
    """Return timm's ``label_names``: each output's name (an expression model's: its classes)."""
    return [name for names in head_columns(task, class_names).values() for name in names]


def hub_fields(
    ckpt_path: Path,
    class_names: list[str],
    expected: dict | None,
    task: str = DEFAULT_TASK,
    au_thresholds: dict | None = None,
) -> dict[str, Any]:
    """Return our ``config.json`` fields for a checkpoint of a run."""
    from fer_multires import __version__

    model_input, run_config = model_input_of_run(ckpt_path)
    data = OmegaConf.load(run_config).get("data") or {}
    return {
        "format_version": FORMAT_VERSION,
        "task": task,
        "heads": hub_heads(task, class_names),
        "classes": list(class_names),
        "model_input": model_input.to_json(),
        "multires": multires_of_run(run_config),
        "dataset": data.get("dataset"),
        "initial_weights": read_initial_weights(run_config.parent),
        "expected_scores": expected,
        "au_thresholds": au_thresholds,
        "checkpoint": Path(ckpt_path).name,
        "fer_multires_version": __version__,
    }


def heads_lines(fields: dict[str, Any]) -> list[str]:
    """Return the model card's lines on the output layer: each head's columns and activation."""
    task = fields.get("task") or DEFAULT_TASK
    if task == DEFAULT_TASK:
        return [f"- classes, in output order: {', '.join(fields['classes'])}"]
    lines = ["- outputs, side by side in one layer (`num_classes` in `config.json`):"]
    for head, info in fields["heads"].items():
        start, stop = info["columns"]
        lines.append(f"  - `{head}`, columns {start}-{stop - 1}: {', '.join(info['names'])} "
                     f"(activation: {info['activation']})")  # fmt: skip
    thresholds = fields.get("au_thresholds")
    if "au" in fields["heads"]:
        if thresholds:
            values = ", ".join(f"{au} {t:g}" for au, t in thresholds["values"].items())
            lines.append(f"- an AU is active when its probability is at least its threshold, "
                         f"chosen on val_select: {values}")  # fmt: skip
        else:
            lines.append("- an AU is active when its probability is at least 0.5 (no evaluation "
                         "chose thresholds)")  # fmt: skip
    return lines


def task_score_lines(fields: dict[str, Any]) -> list[str]:
    """Return the model card's evaluation of a task other than ``expr``: its score per size."""
    from fer_multires.inference.expected import ExpectedScore
    from fer_multires.results import SCORE_NAMES
    from fer_multires.utils.tables import markdown_table

    task = fields["task"]
    expected = fields.get("expected_scores")
    if not expected:
        return [f"No evaluation of the {SCORE_NAMES[task]}: the run has none "
                "(`python -m fer_multires.evaluate`).", ""]  # fmt: skip
    points = ExpectedScore.from_json(expected)
    rows = [[r, s] for r, s in zip(points.resolutions, points.scores, strict=True)]
    return [
        f"## Resolution robustness ({SCORE_NAMES[task]}, {points.split})",
        "",
        "The largest resolution is the frames' native size.",
        "",
        *markdown_table(["resolution", f"{points.split} score"], rows, digits=3),
        "",
    ]


def model_card(architecture: str, fields: dict[str, Any], run_dir: Path) -> str:
    """Return ``README.md``: what the model is, its input, its evaluation, how to use it."""
    from fer_multires.evaluation.outputs import resolution_table
    from fer_multires.models.pretrained import describe_initial_weights
    from fer_multires.results import load_eval_results

    m = fields["model_input"]
    multires = fields.get("multires")
    task = fields.get("task") or DEFAULT_TASK
    what = TASK_TITLES[task]
    if task == DEFAULT_TASK:
        what += f" ({', '.join(fields['classes'])})"
    lines = [
        "---",
        "library_name: timm",
        "pipeline_tag: image-classification",
        f"tags: [{', '.join(TASK_TAGS[task])}, fer_multires]",
        "---",
        "",
        f"# {architecture}: {what}",
        "",
        f"Trained with fer_multires {fields['fer_multires_version']} (task `{task}`) on "
        f"`{fields.get('dataset') or 'unknown'}`.",
        "",
        *heads_lines(fields),
        f"- input: an aligned face crop; shorter side resized to {m['resize_size']} px, centre "
        f"crop {m['crop_size']} px, bilinear, normalisation `{m['normalization']}`"
        + (f", images first resized to {m['image_size']} px" if m.get("image_size") else ""),
        "- multi-resolution training: "
        + (
            f"faces degraded to {multires.get('min_res')}-{multires.get('max_res')} px "
            f"(p={multires.get('p')}, sampling {multires.get('sampling')})"
            if multires
            else "off"
        ),
        f"- initial weights: {describe_initial_weights(fields.get('initial_weights'))}",
        "",
    ]
    if m["normalization"] == "vggface2":
        lines += [
            "> The `vggface2` normalisation feeds BGR channels (0-255, mean-subtracted); timm's "
            "preprocessing config cannot say so: reverse the channels before timm's transforms.",
            "",
        ]
    if task != DEFAULT_TASK:
        lines += task_score_lines(fields)
    elif (evaluation := find_evaluation(run_dir)) is not None:
        lines += resolution_table(load_eval_results(evaluation))
        lines += ["val_rest: the honest estimate (validation videos not used for model selection).",
                  ""]  # fmt: skip
    else:
        lines += ["No evaluation: the run has none (`python -m fer_multires.evaluate`).", ""]
    timm_use = "classifier (prepare faces as above)."
    if task != DEFAULT_TASK:
        timm_use = ("model; its outputs are the heads' raw columns above (apply each head's "
                    "activation; valence and arousal: tanh).")  # fmt: skip
    lines += [
        "## Use",
        "",
        "```bash",
        "python -m fer_multires.weights fetch hf-hub:<org>/<repo>      # once, with internet",
        "python -m fer_multires.predict ckpt_path=hf-hub:<org>/<repo> input=photo.jpg",
        "python -m fer_multires.evaluate ckpt_path=hf-hub:<org>/<repo> data=affwild2 "
        "data.root=/data/affwild2",
        "```",
        "",
        f'With timm alone: `timm.create_model("hf-hub:<org>/<repo>", pretrained=True)` builds the '
        f"{timm_use}",
        "",
        f"Files: `{WEIGHTS_FILE}` (weights only), `{HUB_CONFIG_FILE}` (timm's config; our "
        f"fields under `{FIELDS_KEY}`), `{README_FILE}`.",
    ]
    return "\n".join(lines) + "\n"


def write_hub_folder(ckpt_path: Path, out: Path) -> Path:
    """Write a checkpoint of a run as a Hub-ready folder, checked by reading it back.

    The folder is written beside ``out`` under a temporary name and renamed into place (an
    existing folder is replaced) only after its model gives exactly the checkpoint's logits.

    Args:
        ckpt_path: a fer_multires checkpoint inside its run.
        out: the folder to write.

    Raises:
        ValueError: if the checkpoint has no run config, or the folder read back differs.
        ResultsError: if the run's evaluation cannot be read (its scores go into the folder).
    """
    from timm.models import save_for_hf

    from fer_multires.inference.expected import load_au_thresholds, load_expected_score
    from fer_multires.inference.onnx_export import parity_batch

    class_names = checkpoint_class_names(ckpt_path)
    run_dir = model_input_of_run(ckpt_path)[1].parent
    module = load_trained(ckpt_path)
    task = module.task
    expected = load_expected_score(None, run_dir, task=task)
    thresholds = load_au_thresholds(None, run_dir) if "au" in module.heads else None
    fields = hub_fields(
        ckpt_path, class_names, None if expected is None else expected.to_json(), task,
        None if thresholds is None or not thresholds.origin else thresholds.to_json(),
    )  # fmt: skip
    model_input = ModelInput.from_json(fields["model_input"])
    model = module.model.eval().to(memory_format=torch.contiguous_format)  # safetensors needs it
    architecture = model.pretrained_cfg.get("architecture") or module.hparams["backbone"]
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    labels = output_labels(task, class_names)
    try:
        save_for_hf(model, str(tmp), model_config={"label_names": labels, FIELDS_KEY: fields},
                    safe_serialization=True, data_config=timm_data_config(model_input))  # fmt: skip
        write_text_atomic(tmp / README_FILE, model_card(architecture, fields, run_dir))
        check_round_trip(
            model, read_hub_model(tmp).load_module().model, parity_batch(model_input, 4)
        )
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_round_trip(model: torch.nn.Module, loaded: torch.nn.Module, batch: torch.Tensor) -> None:
    """Refuse a folder whose model does not give exactly the checkpoint's logits."""
    with torch.inference_mode():
        expected, got = model(batch), loaded(batch)
    if not torch.equal(expected, got):
        raise ValueError(
            f"the exported folder's model differs from the checkpoint's (largest logit "
            f"difference {(expected - got).abs().max().item():.3g})"
        )


def replace_folder(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``, replacing an existing folder only once ``new`` is complete."""
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
