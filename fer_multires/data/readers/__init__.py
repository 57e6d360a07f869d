"""Dataset readers: one module per dataset format, each producing the same compact index.

Every reader returns a :class:`~fer_multires.data.readers.index.DatasetIndex` of parallel numpy
arrays (labels in canonical class names, see :mod:`fer_multires.data.labels`) and counts what
it skipped by name; nothing is dropped silently. ``data.dataset`` names one of :data:`READERS`.
"""

from collections.abc import Callable

from fer_multires.data.readers.affectnet import read_affectnet
from fer_multires.data.readers.affwild2 import read_affwild2
from fer_multires.data.readers.fer2013 import read_fer2013
from fer_multires.data.readers.ferplus import read_ferplus
from fer_multires.data.readers.folder import read_folder
from fer_multires.data.readers.index import DatasetIndex
from fer_multires.data.readers.rafdb import read_rafdb

#: Each dataset's reader, by its ``data.dataset`` name.
READERS: dict[str, Callable[..., DatasetIndex]] = {
    "affwild2": read_affwild2,
    "rafdb": read_rafdb,
    "fer2013": read_fer2013,
    "ferplus": read_ferplus,
    "affectnet": read_affectnet,
    "folder": read_folder,
}
