"""The batch classifier of face crops: a checkpoint with PyTorch, or an exported ONNX file.

Both prepare the crops exactly as the evaluation prepares its frames: an optional resize to
``data.image_size`` (as the dataset does when it reads an image), then the data module's
:meth:`BatchTransform.eval <fer_multires.data.batch_transforms.BatchTransform.eval>` (resize the
shorter side, centre crop, normalise), with the training run's sizes and normalisation. A
checkpoint takes them from its run's ``config.yaml``; an ONNX file carries them in its metadata
(:data:`METADATA_KEYS`), so it needs no other file.

A model of any task (:mod:`fer_multires.tasks`) gives, per crop, each of its heads' outputs
(:meth:`Classifier.heads`): ``expr`` the class probabilities (softmax), ``va`` valence and arousal
in [-1, 1] (``tanh``, applied by the model), ``au`` each AU's probability (sigmoid). The ONNX
file holds one output per head (:data:`HEAD_OUTPUTS`), named in its ``heads`` metadata.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_multires.data.batch_transforms import BatchTransform
from fer_multires.data.transforms import Normalize, resize
from fer_multires.runs import ModelInput, model_input_of_run
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, VA_NAMES, check_task, head_sizes
from fer_multires.utils.checkpoints import checkpoint_class_names

log = logging.getLogger(__name__)

#: ``predict.device`` values.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Prefix of the metadata keys of an exported ONNX file.
METADATA_PREFIX = "fer_multires."
#: The metadata an exported ONNX file carries (each under :data:`METADATA_PREFIX`), JSON values.
METADATA_KEYS: tuple[str, ...] = (
    "class_names", "model_input", "expected_scores", "checkpoint", "backbone", "task", "heads",
    "au_thresholds",
)  # fmt: skip
#: The ONNX output of each head. An expression model (``task=expr``) has the one output
#: ``logits``, as before tasks existed; the other tasks one output per head, these names.
HEAD_OUTPUTS: dict[str, str] = {"expr": "expr_logits", "va": "va", "au": "au_logits"}
#: The output of an expression model (``task=expr``).
EXPR_OUTPUT = "logits"
#: What turns each head's columns of the output layer into predictions (a Hub folder's model
#: gives those columns; ``FERModule.split_heads`` applies the ``tanh``).
HEAD_ACTIVATIONS: dict[str, str] = {"expr": "softmax", "va": "tanh", "au": "sigmoid"}
#: The same for the heads' ONNX outputs, whose graph applies the ``tanh`` already.
ONNX_ACTIVATIONS: dict[str, str] = {**HEAD_ACTIVATIONS, "va": "none (tanh applied in the graph)"}
#: Distinct crop sizes whose preprocessing operators are kept (bounded memory on long videos).
OPERATOR_CACHE_SIZES = 32


class CropPreprocessor:
    """Crops -> the model's input batch, exactly as the evaluation prepares its frames.

    Args:
        model_input: the training run's image settings.
    """

    def __init__(self, model_input: ModelInput) -> None:
        self.model_input = model_input
        self.normalize = Normalize(model_input.normalization)
        # One transform per crop size, least recently used dropped: a transform caches its
        # operators per image size, and a video's faces come in many sizes.
        self._transforms: OrderedDict[tuple[int, int], BatchTransform] = OrderedDict()

    def transform(self, height: int, width: int) -> BatchTransform:
        """Return the evaluation's batch transform for crops of one size."""
        key = (height, width)
        if key in self._transforms:
            self._transforms.move_to_end(key)
        else:
            m = self.model_input
            self._transforms[key] = BatchTransform(m.resize_size, m.crop_size, self.normalize)
            if len(self._transforms) > OPERATOR_CACHE_SIZES:
                self._transforms.popitem(last=False)
        return self._transforms[key]

    def __call__(self, crops: list[np.ndarray], device: torch.device) -> torch.Tensor:
        """Return the normalised float32 ``(N, 3, crop, crop)`` batch of ``(H, W, 3)`` crops."""
        size = self.model_input.crop_size
        out = torch.empty((len(crops), 3, size, size), dtype=torch.float32, device=device)
        images = [torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1) for c in crops]
        if self.model_input.image_size is not None:
            side = self.model_input.image_size
            images = [resize(img, side, side) for img in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault((int(img.shape[1]), int(img.shape[2])), []).append(i)
        for (height, width), rows in groups.items():
            batch = torch.stack([images[i] for i in rows]).to(device)
            out[rows] = self.transform(height, width).eval(batch)
        return out


def resolve_device(device: str, key: str = "predict.device") -> torch.device:
    """Return the torch device ``predict.device`` names (``auto``: CUDA when present).

    Raises:
        ValueError: naming ``key``, for an unknown device or ``cuda`` without a GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"{key}={device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{key}=cuda but torch sees no CUDA device; use cpu or auto")
    return torch.device(device)


def head_columns(task: str, class_names: list[str]) -> dict[str, list[str]]:
    """Return, per head of ``task``, the names of its outputs (classes, VA names, AU names)."""
    names = {"expr": list(class_names), "va": list(VA_NAMES), "au": list(AU_NAMES)}
    return {head: names[head] for head in TASK_HEADS[check_task(task)]}


def output_names(task: str) -> dict[str, str]:
    """Return the exported ONNX output of each head of ``task`` (:data:`HEAD_OUTPUTS`)."""
    if task == DEFAULT_TASK:
        return {"expr": EXPR_OUTPUT}
    return {head: HEAD_OUTPUTS[head] for head in TASK_HEADS[check_task(task)]}


def heads_metadata(task: str, class_names: list[str]) -> dict[str, dict[str, Any]]:
    """Return the ``heads`` metadata: per head its output, its columns and their activation."""
    outputs = output_names(task)
    return {
        head: {"output": outputs[head], "columns": columns, "activation": ONNX_ACTIVATIONS[head]}
        for head, columns in head_columns(task, class_names).items()
    }


def activate(heads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn each head's raw outputs into what ``predict`` writes, as float64.

    ``expr``: softmax over the classes; ``va``: as they are (already in [-1, 1]); ``au``: the
    sigmoid of each AU's logit.
    """
    out = {}
    for head, values in heads.items():
        tensor = torch.from_numpy(np.asarray(values)).double()
        if head == "expr":
            tensor = torch.softmax(tensor, dim=1)
        elif head == "au":
            tensor = torch.sigmoid(tensor)
        out[head] = tensor.numpy()
    return out


class Classifier:
    """Common part of the two classifiers: crops in, each head's outputs out.

    Attributes:
        class_names: the model's expression classes, in output order (none for ``va``, ``au``).
        model_input: the image settings its crops are prepared with.
        source: the checkpoint or ONNX file.
        device: where the preprocessing runs.
        expected_scores: ``{resolution key: val_rest score}`` from the run's evaluation, if any.
        task: the model's task (:data:`~fer_multires.tasks.TASKS`).
        au_thresholds: the AU thresholds stored with the model (``AuThresholds.to_json``), if any.
    """

    def __init__(
        self,
        class_names: list[str],
        model_input: ModelInput,
        source: Path,
        device: torch.device,
        expected_scores: dict[str, Any] | None = None,
        task: str = DEFAULT_TASK,
        au_thresholds: dict[str, Any] | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.model_input = model_input
        self.source = source
        self.device = device
        self.expected_scores = expected_scores
        self.task = check_task(task)
        self.au_thresholds = au_thresholds
        self.preprocess = CropPreprocessor(model_input)

    @property
    def head_sizes(self) -> dict[str, int]:
        """Per head, its number of outputs, in :data:`~fer_multires.tasks.TASK_HEADS` order."""
        return head_sizes(self.task, len(self.class_names))

    def raw_heads(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        """Return each head's float32 outputs on a prepared batch.

        Expression and AU logits; valence and arousal in [-1, 1].
        """
        raise NotImplementedError

    def heads(self, crops: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Return each head's float64 ``(N, outputs)`` for ``(H, W, 3)`` uint8 crops.

        ``expr``: class probabilities; ``va``: valence and arousal; ``au``: AU probabilities
        (:func:`activate`).
        """
        if not crops:
            return {head: np.zeros((0, size)) for head, size in self.head_sizes.items()}
        return activate(self.raw_heads(self.preprocess(crops, self.device)))

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """Return the ``(N, C)`` float64 softmax probabilities of ``(H, W, 3)`` uint8 crops.

        Raises:
            ValueError: for a model without an expression head (``task=va`` or ``au``).
        """
        if "expr" not in TASK_HEADS[self.task]:
            raise ValueError(f"{self.source}: a task={self.task} model has no expression classes")
        return self.heads(crops)["expr"]


class TorchClassifier(Classifier):
    """A fer_multires checkpoint or Hub-ready folder, run with PyTorch on ``device``.

    A folder (``export.hub=true``) carries its task, classes, image settings, evaluated scores
    and AU thresholds in its ``config.json``; a checkpoint takes its task from its
    hyperparameters (none: ``expr``) and the rest from its run.

    Raises:
        ValueError: if the checkpoint is not a fer_multires one or has no run config, or the
            folder is not one ``export`` wrote.
    """

    def __init__(self, ckpt_path: Path, device: torch.device, key: str = "ckpt_path") -> None:
        from fer_multires.models.hub import is_hub_folder, load_trained, read_hub_model

        if is_hub_folder(ckpt_path):
            hub = read_hub_model(ckpt_path, key)
            super().__init__(hub.class_names, hub.model_input, ckpt_path, device,
                             hub.expected_scores, hub.task, hub.au_thresholds)  # fmt: skip
            module = hub.load_module()
        else:
            class_names = checkpoint_class_names(ckpt_path, key)
            model_input, _ = model_input_of_run(ckpt_path, key)
            module = load_trained(ckpt_path, key)
            super().__init__(class_names, model_input, ckpt_path, device, task=module.task)
        self.model = module.eval().to(device)

    @torch.inference_mode()
    def raw_heads(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        """Return the model's heads (``FERModule.split_heads``)."""
        heads = self.model.split_heads(self.model(batch).float())
        return {head: values.cpu().numpy() for head, values in heads.items()}


def onnx_metadata(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Read the fer_multires metadata of an exported ONNX file.

    Raises:
        ValueError: naming ``key`` and the file, if it is not a fer_multires export.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others
        raise ValueError(f"{key}: {path} is not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in ("class_names", "model_input") if METADATA_PREFIX + k not in props]
    if missing:
        raise ValueError(
            f"{key}: {path} lacks the metadata {', '.join(METADATA_PREFIX + k for k in missing)}: "
            "export it with python -m fer_multires.export"
        )
    return {k: json.loads(props[METADATA_PREFIX + k]) for k in METADATA_KEYS
            if METADATA_PREFIX + k in props}  # fmt: skip


def onnx_providers(device: torch.device | str, key: str = "predict.device") -> list[str]:
    """Return the ONNX Runtime execution providers for a device.

    Raises:
        ValueError: naming ``key`` for ``cuda`` when ONNX Runtime has no CUDA provider.
    """
    import onnxruntime as ort

    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"{key}=cuda: this onnxruntime has no CUDAExecutionProvider (install "
                "onnxruntime-gpu), or run the .ckpt with PyTorch on the GPU"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxClassifier(Classifier):
    """An ONNX file written by ``python -m fer_multires.export``, run with ONNX Runtime.

    The crops are prepared with torch on the CPU (or on the GPU when ``device`` is cuda). A file
    without the ``task`` metadata (exported before tasks existed) is an expression model whose
    first output is its logits.

    Raises:
        ValueError: if the file is not a fer_multires export, or its ``heads`` metadata does not
            name its task's heads and outputs.
    """

    def __init__(self, onnx_path: Path, device: torch.device, key: str = "ckpt_path") -> None:
        import onnxruntime as ort

        meta = onnx_metadata(onnx_path, key)
        task = meta.get("task") or DEFAULT_TASK
        super().__init__(meta["class_names"], ModelInput.from_json(meta["model_input"]),
                         onnx_path, device, meta.get("expected_scores"), task,
                         meta.get("au_thresholds"))  # fmt: skip
        self.session = ort.InferenceSession(str(onnx_path), providers=onnx_providers(device))
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = self._head_outputs(meta.get("heads"), key)

    def _head_outputs(self, heads: dict[str, Any] | None, key: str) -> dict[str, str]:
        """Return each head's output name, checked against the task and the graph."""
        graph = [o.name for o in self.session.get_outputs()]
        if heads is None:  # exported before tasks existed
            return {"expr": graph[0]}
        expected = heads_metadata(self.task, self.class_names)
        fits = set(heads) == set(expected) and all(
            isinstance(heads[h], dict) and heads[h].get("columns") == expected[h]["columns"]
            and heads[h].get("output") in graph for h in expected
        )  # fmt: skip
        if not fits:
            raise ValueError(
                f"{key}: {self.source}: its {METADATA_PREFIX}heads metadata {json.dumps(heads)} "
                f"does not describe the task={self.task} model with outputs {graph}; expected "
                f"{json.dumps(expected)}"
            )
        return {head: heads[head]["output"] for head in expected}

    def raw_heads(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        """Return the exported model's heads, from its named outputs."""
        array = batch.detach().cpu().numpy()
        values = self.session.run(list(self.outputs.values()), {self.input_name: array})
        return {head: np.asarray(v, dtype=np.float32)
                for head, v in zip(self.outputs, values, strict=True)}  # fmt: skip


def load_classifier(path: Path, device: torch.device, key: str = "ckpt_path") -> Classifier:
    """Return the classifier of a checkpoint (``.ckpt``), a Hub folder or an ``.onnx`` file."""
    if path.suffix.lower() == ".onnx":
        return OnnxClassifier(path, device, key)
    return TorchClassifier(path, device, key)
