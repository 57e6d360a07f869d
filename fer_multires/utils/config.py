"""Where the Hydra configs live, and small helpers around them."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these annotations

import hydra
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def config_dir() -> str:
    """Return the absolute path of the Hydra config tree.

    A wheel ships the configs inside the package (``fer_multires/conf``); a source checkout or an
    editable install has them at the repository root (``conf/``).

    Raises:
        FileNotFoundError: if neither exists.
    """
    for candidate in (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    searched = f"{_PACKAGE_DIR / 'conf'} or {_PACKAGE_DIR.parent / 'conf'}"
    raise FileNotFoundError(f"fer_multires configs not found in {searched}")


CONFIG_DIR = config_dir()


#: Longest sweep-job directory name; file systems refuse names over 255 bytes.
MAX_JOB_DIRNAME = 200


def required(cfg: Any, key: str, usage: str) -> Any:
    """Return ``cfg.<key>``, a key every entry point that takes it checks this one way.

    Args:
        cfg: the entry point's config.
        key: a top-level key (``ckpt_path``, ``input``).
        usage: how to set it, for the error (``python -m fer_multires.x key=PATH``).

    Raises:
        ValueError: naming the key and ``usage``, if it is left at ``???`` or null.
    """
    if OmegaConf.is_missing(cfg, key) or cfg.get(key) is None:
        raise ValueError(f"{key} is required: {usage}")
    return cfg.get(key)


def require_numbers(settings: Any, node: str) -> None:
    """Check that every field of a settings dataclass is a number (not a bool).

    Raises:
        ValueError: naming ``<node>.<field>`` and the value.
    """
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{node}.{field.name}={value!r} must be a number")


def job_dirname(num: int | str, overrides: str) -> str:
    """Name a sweep job's directory after its number and overrides, within a safe length.

    Names longer than :data:`MAX_JOB_DIRNAME` are cut and end in a hash of the full override
    string, so they stay unique. Used as ``${fer_job_dirname:...}`` in ``conf/hydra``.
    """
    name = f"{num}_{overrides}" if overrides else str(num)
    if len(name) <= MAX_JOB_DIRNAME:
        return name
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:10]
    return f"{name[: MAX_JOB_DIRNAME - 11]}_{digest}"


OmegaConf.register_new_resolver("fer_job_dirname", job_dirname, replace=True)


# --------------------------------------------------------------------------------------------
# Config keys in error messages: named at the config boundary only
# --------------------------------------------------------------------------------------------

#: The last line of Hydra's InstantiationException message: the failing node's key.
_FULL_KEY = re.compile(r"\nfull_key: (\S+)\s*$")


def name_key(key: str, message: str) -> str:
    """Return an error message that names its config key.

    Library code raises plain messages that start with the parameter's name
    (``p=1.5 must be in [0, 1]``); the code that maps a config node onto those parameters adds
    the node's key in front (``data.multires.p=1.5 must be in [0, 1]``). A message that already
    names a key under ``key`` is returned unchanged.

    Args:
        key: the config node, e.g. ``data.multires``.
        message: the library's message.
    """
    if not key or message.startswith((f"{key}.", f"{key}:")):
        return message
    return f"{key}.{message}"


def _rename(err: ValueError, key: str) -> ValueError:
    """Prefix the message of ``err`` with ``key`` in place (see :func:`name_key`)."""
    if len(err.args) == 1 and isinstance(err.args[0], str):
        err.args = (name_key(key, err.args[0]),)
    return err


@contextmanager
def config_node(key: str) -> Iterator[None]:
    """Name the config node ``key`` in a ValueError raised within (see :func:`name_key`).

    The error keeps its type and traceback; only its message changes.
    """
    try:
        yield
    except ValueError as err:
        _rename(err, key)
        raise


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, with an invalid value reported under its config key.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException`` whose message
    ends in ``full_key: <node>``. A ValueError (an invalid value) comes out as itself instead,
    its message naming the key: ``data.multires.p=1.5 must be in [0, 1]``.

    Args:
        config: the node to instantiate.
        **kwargs: passed on to ``hydra.utils.instantiate``.

    Raises:
        ValueError: for an invalid value, naming its config key.
    """
    try:
        return hydra.utils.instantiate(config, **kwargs)
    except InstantiationException as err:
        cause, found = err.__cause__, _FULL_KEY.search(str(err))
        if not isinstance(cause, ValueError) or found is None:
            raise
        raise _rename(cause, found.group(1)) from None


# --------------------------------------------------------------------------------------------
# Deprecated command-line overrides (removed in the next release)
# --------------------------------------------------------------------------------------------

_MULTIRES_ENABLED = re.compile(r"\+{0,2}data\.multires\.enabled=(?P<value>.*)", re.DOTALL)
#: Any override of a key inside ``data.multires``.
_MULTIRES_KEY = re.compile(r"[+~]{0,2}data\.multires\.")
#: What ``data.multires.enabled=false`` becomes.
MULTIRES_OFF = "data.multires=null"


def _deprecated_multires(arg: str) -> bool | None:
    """Return the value of a deprecated ``data.multires.enabled=true|false``, else None.

    Warns about every ``data.multires.enabled`` override; one with another value (a sweep, an
    interpolation) is not rewritten, and Hydra rejects it.
    """
    found = _MULTIRES_ENABLED.fullmatch(arg)
    if found is None:
        return None
    value = {"true": True, "false": False}.get(found["value"].strip().lower())
    if value is None:
        log.warning("%s is deprecated: use %s to turn multi-resolution off (only =true and "
                    "=false are rewritten)", arg, MULTIRES_OFF)  # fmt: skip
    elif value:
        log.warning("%s is deprecated and will be removed in the next release: "
                    "multi-resolution is on wherever data.multires is set (off: %s); dropped",
                    arg, MULTIRES_OFF)  # fmt: skip
    else:
        log.warning("%s is deprecated and will be removed in the next release: use %s "
                    "(rewritten to it)", arg, MULTIRES_OFF)  # fmt: skip
    return value


def rewrite_deprecated_overrides(argv: list[str] | None = None) -> list[str]:
    """Rewrite the deprecated ``data.multires.enabled`` overrides, with a warning for each.

    ``data.multires`` is a ``_target_`` node (on) or null (off), so Hydra would reject
    ``data.multires.enabled`` before any code of ours runs. ``data.multires.enabled=false``
    becomes ``data.multires=null``, placed after any other ``data.multires.*`` override (which
    then still applies, to a node that is switched off); ``data.multires.enabled=true`` is
    dropped (a node is on). Call this before the Hydra entry point. Deprecated in this release;
    removed in the next.

    Args:
        argv: the command line, changed in place (default: ``sys.argv``); ``argv[0]`` is the
            program and is left alone.

    Returns:
        ``argv``.
    """
    argv = sys.argv if argv is None else argv
    kept: list[str] = []
    off_at: int | None = None
    for arg in argv[1:]:
        value = _deprecated_multires(arg)
        if value is None:
            kept.append(arg)
        else:  # the last one wins, as in Hydra
            off_at = None if value else len(kept)
    if off_at is not None:
        later = [i + 1 for i in range(off_at, len(kept)) if _MULTIRES_KEY.match(kept[i])]
        kept.insert(max(later, default=off_at), MULTIRES_OFF)
    argv[1:] = kept
    return argv


# ------------------------------------------------------------------------------ schemas

#: The types a schema field keeps; any other annotation becomes ``Any`` (checked by the code).
PLAIN_TYPES: tuple[type, ...] = (bool, int, float, str)


def field_type(hint: Any) -> Any:
    """Return the OmegaConf type of a parameter annotated ``hint``.

    ``int``, ``float``, ``bool``, ``str``, their ``| None`` and lists of them are kept;
    everything else (unions of several types, objects, callables) is ``Any``: OmegaConf would
    otherwise convert a value to one member of the union (``10`` to ``10.0``).
    """
    if hint in PLAIN_TYPES:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner, *others) = [arg for arg in args if arg is not type(None)]
        kept = field_type(inner)
        return Optional[kept] if not others and kept is not Any else Any  # noqa: UP045
    if origin in (list, Sequence) and len(args) == 1 and args[0] in PLAIN_TYPES:
        return List[args[0]]  # noqa: UP006
    return Any


def schema_field(default: Any) -> dataclasses.Field:
    """A dataclass field with ``default`` (a list through a factory; none given: required)."""
    if default is inspect.Parameter.empty:
        return dataclasses.field(default="???")
    if isinstance(default, list | tuple):
        return dataclasses.field(default_factory=lambda: list(default))
    return dataclasses.field(default=default)


def schema_of(
    target: Callable[..., Any],
    name: str,
    module: str,
    *,
    exclude: Sequence[str] = (),
    target_path: str | None = None,
    extra: Sequence[tuple[str, Any, Any]] = (),
    loose: Sequence[str] = (),
) -> type:
    """Return a dataclass whose fields are ``target``'s keyword parameters.

    Args:
        target: a class (its ``__init__``) or a dataclass.
        name: the schema's class name.
        module: the module that binds the schema to ``name`` (so a pickled config finds it).
        exclude: parameters the config does not hold (passed by the code).
        target_path: the ``_target_`` the node instantiates, or None for a plain node.
        extra: further ``(name, type, default)`` fields.
        loose: parameters typed ``Any`` in the config, whatever their annotation (the config
            holds another form, e.g. ``model.class_weights: auto``).
    """
    hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    fields: list[tuple[str, Any, dataclasses.Field]] = []
    if target_path is not None:
        fields.append(("_target_", str, dataclasses.field(default=target_path)))
    for param in inspect.signature(target).parameters.values():
        if param.name in exclude or param.kind not in (param.POSITIONAL_OR_KEYWORD,
                                                         param.KEYWORD_ONLY):  # fmt: skip
            continue
        hint = Any if param.name in loose else field_type(hints.get(param.name, Any))
        fields.append((param.name, hint, schema_field(param.default)))
    fields.extend((key, hint, schema_field(default)) for key, hint, default in extra)
    schema = dataclasses.make_dataclass(name, fields)
    schema.__module__ = module
    schema.__doc__ = f"The config node of {target.__module__}.{target.__qualname__}."
    return schema
