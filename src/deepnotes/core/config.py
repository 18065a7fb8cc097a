"""Experiment configurations: frozen dataclasses, presets, and type-checked ``key=value`` overrides.

Every experiment owns a frozen dataclass whose defaults are the *full* preset and whose
``quick()`` classmethod returns the quick preset (<= 60 s on a 2-core CPU). The command line
changes single fields with ``--set key=value``; the text is parsed against the field's type
annotation, so ``--set epochs=2.5`` or ``--set nosuchkey=1`` fail before anything runs.

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``Optional[T]``
(``none`` or ``null`` gives ``None``) and tuples (``tuple[int, ...]`` or fixed
``tuple[int, float]``; written ``256,128``, ``(256, 128)`` or ``[256, 128]``, ``(256,)`` for one
item and ``()`` for none; unbalanced brackets or empty items are refused).

Rules every field gets here, once, so a config class only states its own ranges:

- a ``float`` (also inside ``Optional`` and tuples) parsed from text or restored from a stored
  ``config.json`` must be finite: ``inf``, ``nan`` and overflowing text such as ``1e309`` are
  refused with a message naming the key. A field that means "no limit" by infinity opts in with
  ``Annotated[float, ALLOW_INF]`` (then +-inf is accepted; ``nan`` never is);
- a value restored from ``config.json`` must have the field's JSON type (an ``int`` field does
  not take ``3.5``, ``"3"`` or ``true``);
- values echoed back in messages are shortened (:func:`~deepnotes.core.text.shorten`).

Range checks belong in the dataclass's ``__post_init__``, written with :func:`require` (and
:func:`require_fractions` for the shares of a data split); a ``ValueError`` raised there is
reported as a :class:`~deepnotes.core.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from deepnotes.core.errors import ConfigError
from deepnotes.core.text import shorten

PRESETS = ("quick", "full")

MESSAGE_LIMIT = 300
"""Longest config error message, in characters: a message built around a huge value (a tuple of
100,000 widths) is cut to this length plus a note of the full length."""


class _AllowInf:
    """The type of :data:`ALLOW_INF`."""

    def __repr__(self) -> str:
        return "ALLOW_INF"


ALLOW_INF = _AllowInf()
"""Annotation marker for a float field that may be infinite, e.g.
``max_norm: Annotated[float, ALLOW_INF] = math.inf`` (``inf`` meaning "no limit"). Without it
every float field must be finite. ``nan`` is refused either way: it fails every range check."""


class _PreciseError(ConfigError):
    """A parse error that says more than "cannot parse as T" (a float that is not finite, a
    malformed tuple); an ``Optional`` field reports it as it is."""


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotation of every field of the config dataclass ``cls``."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def preset(cls: type, name: str) -> Any:
    """The preset ``name`` ("quick" or "full") of the config class ``cls``."""
    if name == "full":
        return cls()
    if name == "quick":
        quick = getattr(cls, "quick", None)
        return quick() if callable(quick) else cls()
    raise ConfigError(f"unknown preset {_show(name)}; expected one of {', '.join(PRESETS)}")


def parse_override(text: str) -> tuple[str, str]:
    """Split ``"key=value"`` into ``("key", "value")``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {_show(text)}")
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
        message = f"invalid config for {type(cfg).__name__}: {err}"
        raise ConfigError(shorten(message, MESSAGE_LIMIT)) from err


def unknown_key_message(key: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {_show(key)}.{hint} Valid keys: {', '.join(valid)}"


def parse_value(text: str, hint: Any, key: str = "value") -> Any:
    """Parse ``text`` as a value of the type ``hint``; raise ConfigError naming the key.

    A float must be finite unless ``hint`` is ``Annotated[float, ALLOW_INF]``; a tuple must be
    well formed (see the module docstring).
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        if args[0] is float and any(meta is ALLOW_INF for meta in hint.__metadata__):
            return _parse_float(text, key, allow_inf=True)
        return parse_value(text, args[0], key)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        reason: ConfigError | None = None
        for option in non_none:
            try:
                return parse_value(text, option, key)
            except _PreciseError as err:
                reason = err
            except ConfigError:
                continue
        if reason is not None:
            raise reason
        raise ConfigError(f"{key}: cannot parse {_show(text)} as {_type_name(hint)}")
    if origin is Literal:
        for option in args:
            if str(option) == text:
                return option
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{key}: {_show(text)} is not one of {choices}")
    if origin is tuple:
        items = _tuple_items(text, hint, key)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(s, args[0], key) for s in items)
        if len(items) != len(args):
            raise ConfigError(
                f"{key}: expected {len(args)} comma-separated values, got {_show(text)}"
            )
        return tuple(parse_value(s, a, key) for s, a in zip(items, args, strict=True))
    if hint is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean (true/false), got {_show(text)}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {_show(text)}") from None
    if hint is float:
        return _parse_float(text, key, allow_inf=False)
    if hint is str:
        return text
    raise ConfigError(
        f"{key}: fields of type {_type_name(hint)} cannot be set from the command line"
    )


def _parse_float(text: str, key: str, *, allow_inf: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{key}: expected a number, got {_show(text)}") from None
    problem = _float_problem(value, allow_inf=allow_inf)
    if problem is not None:
        if math.isnan(value):
            why = " (not a number)"
        elif text.strip().lstrip("+-").lower() not in ("inf", "infinity"):
            why = " (too large: it overflows to inf)"
        else:
            why = ""
        raise _PreciseError(f"{key}: {problem}, got {_show(text)}{why}")
    return value


def _float_problem(value: float, *, allow_inf: bool) -> str | None:
    """What a float field expects, when ``value`` is outside it: finite (or +-inf with
    ``allow_inf``), never ``nan``."""
    if math.isfinite(value) or (allow_inf and not math.isnan(value)):
        return None
    if allow_inf:
        return "expected a number or +-inf"
    return f"expected a finite number (magnitude at most {sys.float_info.max:.1e})"


def _tuple_items(text: str, hint: Any, key: str) -> list[str]:
    """The item texts of a tuple written ``a,b``, ``(a, b)`` or ``[a, b]`` (``(a,)``: one item,
    ``()``: none); ConfigError for unbalanced brackets, nested brackets or empty items."""
    body = text.strip()
    bracketed = body[:1] in ("(", "[")
    if bracketed:
        closing = ")" if body[0] == "(" else "]"
        if len(body) < 2 or body[-1] != closing:
            raise _malformed_tuple(text, hint, key)
        body = body[1:-1].strip()
    if any(c in body for c in "()[]"):
        raise _malformed_tuple(text, hint, key)
    if not body:
        if bracketed:
            return []
        raise _malformed_tuple(text, hint, key)
    items = [s.strip() for s in body.split(",")]
    if len(items) > 1 and items[-1] == "":
        items.pop()  # "(256,)": one item, as in Python
    if any(s == "" for s in items):
        raise _malformed_tuple(text, hint, key)
    return items


_EXAMPLES = {int: ("256", "128"), float: ("0.1", "0.5"), bool: ("true", "false"), str: ("a", "b")}


def _malformed_tuple(text: str, hint: Any, key: str) -> _PreciseError:
    args = typing.get_args(hint)
    variable = len(args) == 2 and args[1] is Ellipsis
    if variable:
        parts = list(_EXAMPLES.get(_base(args[0]), ("a", "b")))
    else:
        parts = [_EXAMPLES.get(_base(a), ("a", "b"))[0] for a in args]
    empty = ' ("()" for none)' if variable else ""
    return _PreciseError(
        f'{key}: expected comma-separated values written "{",".join(parts)}" or '
        f'"({", ".join(parts)})"{empty}, got {_show(text)}'
    )


def _base(hint: Any) -> Any:
    """``hint`` without its ``Annotated`` metadata."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _show(value: Any) -> str:
    """``repr(value)`` shortened for a message."""
    return shorten(repr(value))


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a JSON-friendly dict (tuples become lists)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a config of class ``cls`` from :func:`to_dict` output (e.g. a stored config.json).

    Keys missing from ``data`` keep the class defaults. Every value must have its field's JSON
    type (ints for ``int``, numbers for ``float``, lists for tuples, ...) and a float must be
    finite (unless the field allows infinity, see :data:`ALLOW_INF`).
    """
    types_ = field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        listed = shorten(sorted(unknown), MESSAGE_LIMIT // 2)
        raise ConfigError(f"stored config has keys {listed} unknown to {cls.__name__}")
    values = {}
    for key, value in data.items():
        try:
            values[key] = _restore(value, types_[key])
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"stored config: {key}={_show(value)} does not fit {_type_name(types_[key])}: {err}"
            ) from err
    return replace(cls(), **values)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _restore(value: Any, hint: Any) -> Any:
    """``value`` (from JSON) as a value of the type ``hint``; ValueError when it does not fit."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        if args[0] is float and any(meta is ALLOW_INF for meta in hint.__metadata__):
            return _restore_float(value, allow_inf=True)
        return _restore(value, args[0])
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _restore(value, option)
            except (ValueError, TypeError) as err:
                problems.append(str(err))
        raise ValueError("; ".join(problems) or "expected null")
    if origin is Literal:
        for option in args:
            if type(value) is type(option) and value == option:
                return option
        raise ValueError(f"expected one of {', '.join(repr(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {_json_name(type(value))}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_restore(v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_restore(v, a) for v, a in zip(value, args, strict=True))
    if hint is float:
        return _restore_float(value, allow_inf=False)
    if hint in (int, bool, str):
        if type(value) is not hint:
            raise ValueError(f"expected {_json_name(hint)}, got {_json_name(type(value))}")
        return value
    return value


def _restore_float(value: Any, *, allow_inf: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_json_name(type(value))}")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the float range
        value = math.inf if value > 0 else -math.inf
    problem = _float_problem(value, allow_inf=allow_inf)
    if problem is not None:
        raise ValueError(problem)
    return value


def _json_name(kind: type) -> str:
    names = {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}
    names.update({type(None): "null", list: "a list", dict: "an object"})
    return names.get(kind, kind.__name__)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _type_name(typing.get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is not None:
        return str(hint).replace("typing.", "")
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``; for use in ``__post_init__``.

    Write the condition so that ``nan`` fails it (``0 <= m < 1``, not ``not m < 0``): comparisons
    with ``nan`` are false. The message is cut to :data:`MESSAGE_LIMIT` characters.
    """
    if not condition:
        raise ConfigError(shorten(message, MESSAGE_LIMIT))


def require_fractions(fractions: Mapping[str, float], *, below: float = 1.0) -> None:
    """Require the named shares of a data split to be in (0, 1) and sum to less than ``below``
    (so that the remaining part, usually the training set, is not empty).

    Arguments:
        fractions: field name -> value, e.g. ``{"val_fraction": 0.2, "test_fraction": 0.2}``.
        below: the sum must be smaller than this (e.g. 0.9 to leave 10% unused).

    Example:
        >>> require_fractions({"val_fraction": cfg.val_fraction, "test_fraction": 0.2})
    """
    values = list(fractions.values())
    total = math.fsum(values)
    given = ", ".join(f"{k}={v:g}" for k, v in fractions.items())
    if len(values) == 1:
        rule = f"{next(iter(fractions))} must be in (0, {min(below, 1.0):g})"
    else:
        rule = f"{' and '.join(fractions)} must each be in (0, 1) and sum to less than {below:g}"
        given += f" (sum {total:g})"
    require(all(0 < v < 1 for v in values) and total < below, f"{rule}, got {given}")
