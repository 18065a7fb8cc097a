"""Experiment configurations: frozen dataclasses, presets, and type-checked ``key=value`` overrides.

Every experiment owns a frozen dataclass whose defaults are the *full* preset and whose
``quick()`` classmethod returns the quick preset (<= 60 s on a 2-core CPU). The command line
changes single fields with ``--set key=value``; the text is parsed against the field's type
annotation, so ``--set epochs=2.5`` or ``--set nosuchkey=1`` fail before anything runs.

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``Optional[T]``
(``none`` or ``null`` gives ``None``) and tuples (``tuple[int, ...]`` or fixed
``tuple[int, float]``; written ``256,128`` or ``(256, 128)``). Range checks belong in the
dataclass's ``__post_init__``; a ``ValueError`` raised there is reported as a
:class:`~deepnotes.core.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union

from deepnotes.core.errors import ConfigError

PRESETS = ("quick", "full")


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotation of every field of the config dataclass ``cls``."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def preset(cls: type, name: str) -> Any:
    """The preset ``name`` ("quick" or "full") of the config class ``cls``."""
    if name == "full":
        return cls()
    if name == "quick":
        quick = getattr(cls, "quick", None)
        return quick() if callable(quick) else cls()
    raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")


def parse_override(text: str) -> tuple[str, str]:
    """Split ``"key=value"`` into ``("key", "value")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {text!r}")
    return key.strip(), value.strip()


def apply_overrides(cfg: Any, overrides: Iterable[str] | Mapping[str, str]) -> Any:
    """Return a copy of the frozen config ``cfg`` with ``key=value`` overrides applied.

    Arguments:
        cfg: an instance of a config dataclass.
        overrides: strings ``"key=value"`` or a mapping from key to value text.

    Raises:
        ConfigError: unknown key (with close matches and the valid keys), a value that does not
            parse as the field's type, or a value rejected by the config's ``__post_init__``.

    Example:
        >>> cfg = apply_overrides(Config(), ["epochs=3", "lr=1e-3"])
    """
    types_ = field_types(type(cfg))
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    changes: dict[str, Any] = {}
    for key, text in pairs:
        if key not in types_:
            raise ConfigError(unknown_key_message(key, types_))
        changes[key] = parse_value(str(text), types_[key], key)
    return replace(cfg, **changes)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that reports a rejected value as a :class:`ConfigError`."""
    try:
        return dataclasses.replace(cfg, **changes)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid config for {type(cfg).__name__}: {err}") from err


def unknown_key_message(key: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}"


def parse_value(text: str, hint: Any, key: str = "value") -> Any:
    """Parse ``text`` as a value of the type ``hint``; raise ConfigError naming the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for option in non_none:
            try:
                return parse_value(text, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: cannot parse {text!r} as {_type_name(hint)}")
    if origin is Literal:
        for option in args:
            if str(option) == text:
                return option
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{key}: {text!r} is not one of {choices}")
    if origin is tuple:
        items = [s.strip() for s in text.strip("()[] ").split(",") if s.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(s, args[0], key) for s in items)
        if len(items) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} comma-separated values, got {text!r}")
        return tuple(parse_value(s, a, key) for s, a in zip(items, args, strict=True))
    if hint is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean (true/false), got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    if hint is str:
        return text
    raise ConfigError(
        f"{key}: fields of type {_type_name(hint)} cannot be set from the command line"
    )


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a JSON-friendly dict (tuples become lists)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a config of class ``cls`` from :func:`to_dict` output (e.g. a stored config.json)."""
    types_ = field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        raise ConfigError(f"stored config has keys {sorted(unknown)} unknown to {cls.__name__}")
    values = {}
    for key, value in data.items():
        try:
            values[key] = _restore(value, types_[key])
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"stored config: {key}={value!r} does not fit {_type_name(types_[key])}: {err}"
            ) from err
    return replace(cls(), **values)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _restore(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        non_none = [a for a in typing.get_args(hint) if a is not type(None)]
        return _restore(value, non_none[0]) if len(non_none) == 1 else value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_restore(v, args[0]) for v in value)
        return tuple(_restore(v, a) for v, a in zip(value, args, strict=True))
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is not None:
        return str(hint).replace("typing.", "")
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``; for use in ``__post_init__``."""
    if not condition:
        raise ConfigError(message)
