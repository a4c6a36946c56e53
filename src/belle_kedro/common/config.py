"""Typed settings: each parameters block becomes one frozen dataclass, built once.

Every default lives in ``conf/base/parameters_<pipeline>.yml``; a settings class has no
defaults of its own. A node receives a raw block from Kedro, calls :func:`build` with
the dotted name the user writes (``clean.matching.minhash``), and hands the typed object
to domain code, which never sees the dict. :func:`build` refuses, naming the dotted key:

* a missing or unknown key;
* a value of the wrong type (``int``, ``float``, ``str``, ``bool``, ``None`` where the
  annotation allows it, ``Literal`` choices, ``tuple``/``list`` items, ``dict`` values,
  nested settings classes);
* a cross-field rule of the class, raised from its ``check`` method as
  :class:`InvalidSetting` (``permutations must be ≥ rows_per_band``).

Fields carry help text (``setting("…")``); an error for a missing key quotes it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

S = TypeVar("S")


class ParameterError(ValueError):
    """A parameter block that does not match its settings class; names the dotted key."""


class InvalidSetting(ValueError):
    """Raised by a settings class's ``check``: ``key`` (relative) and what is wrong."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key
        self.message = message


def setting(help: str) -> Any:
    """A settings field with its help text and no default (base YAML holds defaults)."""
    return dataclasses.field(metadata={"help": help})


class Settings:
    """Base of every settings class (a frozen dataclass); ``check`` holds its rules."""

    def check(self) -> None:
        """Cross-field rules; raise :class:`InvalidSetting` naming the key."""


_SCALAR_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(value) for value in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(hint))
    if origin in (tuple, list):
        return "a list"
    if dataclasses.is_dataclass(hint) or origin in (dict, Mapping):
        return "a mapping"
    return _SCALAR_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _wrong(where: str, hint: Any, value: Any) -> ParameterError:
    return ParameterError(
        f"{where} must be {_type_name(hint)}, got {value!r} ({type(value).__name__})"
    )


def _is_scalar(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the scalar type ``hint`` (YAML's bool is no number)."""
    if hint is bool or hint is str or hint is type(None):
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise TypeError(f"unsupported settings annotation {hint!r}")


def _convert_union(value: Any, hint: Any, where: str) -> Any:
    options = [option for option in get_args(hint) if option is not type(None)]
    if value is not None and len(options) == 1:
        # ``X | None``: X's own error names the inner key (``published.label``).
        return _convert(value, options[0], where)
    for option in get_args(hint):
        try:
            return _convert(value, option, where)
        except ParameterError:
            continue
    raise _wrong(where, hint, value)


def _convert_sequence(value: Any, hint: Any, where: str) -> Any:
    if not isinstance(value, list | tuple):
        raise _wrong(where, hint, value)
    args = get_args(hint)
    item = args[0] if args else Any
    items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if get_origin(hint) is tuple else items


def _convert_mapping(value: Any, hint: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _wrong(where, hint, value)
    args = get_args(hint)
    item = args[1] if len(args) == 2 else Any
    return {str(k): _convert(v, item, f"{where}.{k}") for k, v in value.items()}


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against (and shaped by) the annotation ``hint``."""
    origin = get_origin(hint)
    if hint is Any:
        converted = value
    elif origin in (Union, types.UnionType):
        converted = _convert_union(value, hint, where)
    elif origin is Literal:
        # 1 == True in Python: the type must match too.
        if not any(value == a and type(value) is type(a) for a in get_args(hint)):
            raise _wrong(where, hint, value)
        converted = value
    elif dataclasses.is_dataclass(hint) and isinstance(hint, type):
        converted = build(hint, value, where)
    elif origin in (tuple, list):
        converted = _convert_sequence(value, hint, where)
    elif origin in (dict, Mapping) or hint in (dict, Mapping):
        converted = _convert_mapping(value, hint, where)
    elif _is_scalar(value, hint):
        converted = float(value) if hint is float else value
    else:
        raise _wrong(where, hint, value)
    return converted


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type[S], values: Any, where: str) -> S:
    """The settings object ``cls`` from the parameters block ``values`` at ``where``.

    Every error is a :class:`ParameterError` whose message starts with the dotted key.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a settings dataclass")
    # A block whose sub-block names are open (a registry's) builds itself.
    custom = getattr(cls, "from_parameters", None)
    if custom is not None:
        return typing.cast(S, custom(values, where))
    if not isinstance(values, Mapping):
        raise ParameterError(
            f"{where} must be a mapping of settings, got {values!r} "
            f"({type(values).__name__})"
        )
    fields = [field for field in dataclasses.fields(cls) if field.init]
    names = [field.name for field in fields]
    unknown = sorted(str(key) for key in set(values) - set(names))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(f'{where}.{key}' for key in unknown)}; "
            f"{where} takes {', '.join(names)}"
        )
    missing = [field for field in fields if field.name not in values]
    if missing:
        described = "; ".join(
            f"{where}.{field.name}: {field.metadata.get('help', '')}"
            for field in missing
        )
        raise ParameterError(
            f"missing parameter(s) {', '.join(f'{where}.{f.name}' for f in missing)} "
            f"(declared with its default in conf/base/parameters_<pipeline>.yml; "
            f"{described})"
        )
    hints = _hints(cls)
    converted = {
        name: _convert(values[name], hints[name], f"{where}.{name}") for name in names
    }
    instance = cls(**converted)
    if isinstance(instance, Settings):
        try:
            instance.check()
        except InvalidSetting as problem:
            raise ParameterError(f"{where}.{problem.key} {problem.message}") from None
    return instance
