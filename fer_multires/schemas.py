"""Typed configs: a schema for each config group, registered in Hydra's ConfigStore.

A schema is a dataclass whose fields are what a group's node may hold, with their types and
defaults. Hydra composes every node on top of its schema, so a wrong type
(``trainer.max_epochs=abc``) or an unknown key (``data.batchsize=8``) stops the command before
any work, naming the key, and a default is written once:

* ``data``, ``model`` and ``trainer`` (and the detectors, ``predict`` and ``eval.bootstrap``)
  take their schema from the signature of what they configure (:func:`schema_of`):
  ``FERDataModule``, ``FERModule``, Lightning's ``Trainer``, the detectors' and ``predict``'s
  settings. The default *is* the Python default; the YAML files under ``conf/`` hold only what
  differs (the paper's model and augmentation, a dataset's name, a machine's trainer).
* ``eval`` has its own dataclass, :class:`fer_multires.evaluation.config.EvalConfig`.

Range checks (a batch size >= 1, an odd window) stay with the code that uses a value; a schema
checks types and names.

Each group's schema is the config ``schema`` of that group (``conf/data/_common.yaml`` starts
from ``data/schema``), and the detectors and ``predict`` are complete options of their own
(``detector=mtcnn``, ``predict: default``). Importing this module registers them; every entry
point does so before Hydra composes.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from pytorch_lightning import Trainer

from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.config import EvalConfig
from fer_multires.inference.detect import HaarSettings, NoSettings
from fer_multires.inference.mtcnn import MtcnnSettings
from fer_multires.inference.runner import PredictSettings
from fer_multires.models.module import FERModule
from fer_multires.utils.config import schema_of

DataConfig = schema_of(
    FERDataModule,
    "DataConfig",
    __name__,
    exclude=("task",),  # the run's top-level task
    target_path="fer_multires.data.datamodule.FERDataModule",
)
ModelConfig = schema_of(
    FERModule,
    "ModelConfig",
    __name__,
    exclude=("num_classes", "class_names", "task", "au_pos_weights"),  # from the run and data
    loose=("class_weights",),  # auto: from the training data's class frequencies
    target_path="fer_multires.models.module.FERModule",
)
TrainerConfig = schema_of(
    Trainer,
    "TrainerConfig",
    __name__,
    exclude=("logger", "callbacks"),  # the logger and callbacks groups
    target_path="pytorch_lightning.Trainer",
)
PredictConfig = schema_of(PredictSettings, "PredictConfig", __name__)
MtcnnDetectorConfig = schema_of(
    MtcnnSettings, "MtcnnDetectorConfig", __name__, extra=[("name", str, "mtcnn")]
)
HaarDetectorConfig = schema_of(
    HaarSettings, "HaarDetectorConfig", __name__, extra=[("name", str, "haar")]
)
NoneDetectorConfig = schema_of(
    NoSettings, "NoneDetectorConfig", __name__, extra=[("name", str, "none")]
)
#: ``detector=NAME`` -> its schema, a complete option of the ``detector`` group.
DETECTOR_SCHEMAS: dict[str, type] = {
    "mtcnn": MtcnnDetectorConfig,
    "haar": HaarDetectorConfig,
    "none": NoneDetectorConfig,
}


def register_schemas(store: ConfigStore | None = None) -> None:
    """Put every schema into Hydra's ConfigStore (idempotent)."""
    store = store or ConfigStore.instance()
    store.store(group="data", name="schema", node=DataConfig)
    store.store(group="model", name="schema", node=ModelConfig)
    store.store(group="trainer", name="schema", node=TrainerConfig)
    store.store(group="eval", name="schema", node=EvalConfig)
    store.store(group="predict", name="default", node=PredictConfig)
    for name, schema in DETECTOR_SCHEMAS.items():
        store.store(group="detector", name=name, node=schema)


register_schemas()
