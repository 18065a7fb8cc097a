"""Tests for deepnotes.core.config: parsing ``key=value`` overrides, presets, dict round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pytest

from deepnotes.core.config import (
    ALLOW_INF,
    MESSAGE_LIMIT,
    apply_overrides,
    field_types,
    from_dict,
    parse_override,
    parse_value,
    preset,
    require,
    require_fractions,
    to_dict,
)
from deepnotes.core.errors import ConfigError, UsageError


@dataclass(frozen=True)
class ToyConfig:
    """A small config exercising every supported field type."""

    epochs: int = 10
    lr: float = 0.1
    shuffle: bool = True
    name: str = "toy"
    optimizer: Literal["sgd", "adam"] = "sgd"
    patience: Optional[int] = None  # noqa: UP045 - Optional[...] is a supported spelling
    width: int | None = 4
    hidden: tuple[int, ...] = (256, 128)
    pair: tuple[int, float] = (1, 0.5)

    def __post_init__(self) -> None:
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    @classmethod
    def quick(cls) -> ToyConfig:
        return cls(epochs=2, hidden=(8,))


@dataclass(frozen=True)
class NoQuickConfig:
    size: int = 3


@dataclass
class MutableConfig:
    size: int = 3


@dataclass(frozen=True)
class InfConfig:
    """A field that means "no limit" by infinity opts in with ALLOW_INF."""

    limit: Annotated[float, ALLOW_INF] = math.inf


# ----------------------------------------------------------------------------- parse_value


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("3", int, 3),
        ("-12", int, -12),
        ("2.5", float, 2.5),
        ("1e-3", float, 1e-3),
        ("4", float, 4.0),
        ("hello world", str, "hello world"),
        ("", str, ""),
        ("true", bool, True),
        ("True", bool, True),
        ("yes", bool, True),
        ("on", bool, True),
        ("1", bool, True),
        ("false", bool, False),
        ("FALSE", bool, False),
        ("no", bool, False),
        ("off", bool, False),
        ("0", bool, False),
        ("adam", Literal["sgd", "adam"], "adam"),
        ("2", Literal[1, 2, 3], 2),
        ("none", Optional[int], None),  # noqa: UP045
        ("null", Optional[int], None),  # noqa: UP045
        ("NONE", int | None, None),
        ("7", Optional[int], 7),  # noqa: UP045
        ("0.25", float | None, 0.25),
        ("none", Optional[Literal["a", "b"]], None),  # noqa: UP045
        ("b", Optional[Literal["a", "b"]], "b"),  # noqa: UP045
        ("256,128", tuple[int, ...], (256, 128)),
        ("(256, 128)", tuple[int, ...], (256, 128)),
        ("[1, 2, 3]", tuple[int, ...], (1, 2, 3)),
        ("5", tuple[int, ...], (5,)),
        ("()", tuple[int, ...], ()),
        ("0.5, 0.25", tuple[float, ...], (0.5, 0.25)),
        ("3, 0.5", tuple[int, float], (3, 0.5)),
        ("(3,0.5)", tuple[int, float], (3, 0.5)),
        ("1,2", Optional[tuple[int, ...]], (1, 2)),  # noqa: UP045
        ("none", Optional[tuple[int, ...]], None),  # noqa: UP045
    ],
)
def test_parse_value_accepts_valid_text(text: str, hint: object, expected: object) -> None:
    value = parse_value(text, hint, "k")
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, tuple):
        assert [type(v) for v in value] == [type(v) for v in expected]


FINITE = "expected a finite number (magnitude at most 1.8e+308)"


@pytest.mark.parametrize(
    ("text", "expected_message"),
    [
        ("inf", f"lr: {FINITE}, got 'inf'"),
        ("-inf", f"lr: {FINITE}, got '-inf'"),
        ("Infinity", f"lr: {FINITE}, got 'Infinity'"),
        ("1e309", f"lr: {FINITE}, got '1e309' (too large: it overflows to inf)"),
        ("-2e308", f"lr: {FINITE}, got '-2e308' (too large: it overflows to inf)"),
        ("nan", f"lr: {FINITE}, got 'nan' (not a number)"),
    ],
)
def test_parse_value_float_must_be_finite(text: str, expected_message: str) -> None:
    """Issue 11: lr=inf and lr=1e309 were accepted and the run later reported "diverged"."""
    with pytest.raises(ConfigError) as info:
        parse_value(text, float, "lr")
    assert str(info.value) == expected_message


@pytest.mark.parametrize(
    "hint",
    [float | None, Optional[float], tuple[float, ...], tuple[int, float]],  # noqa: UP045
)
def test_finite_rule_holds_inside_optional_and_tuples(hint: object) -> None:
    text = "1,inf" if typing.get_origin(hint) is tuple else "inf"
    with pytest.raises(ConfigError, match=rf"^k: {re.escape(FINITE)}, got 'inf'$"):
        parse_value(text, hint, "k")


def test_allow_inf_annotation_opts_a_field_into_infinity_but_never_nan() -> None:
    hint = Annotated[float, ALLOW_INF]
    assert parse_value("inf", hint, "max_norm") == math.inf
    assert parse_value("-inf", hint, "max_norm") == -math.inf
    assert parse_value("1e309", hint, "max_norm") == math.inf
    assert parse_value("2.5", hint, "max_norm") == 2.5
    with pytest.raises(ConfigError, match=r"max_norm: expected a number or \+-inf, got 'nan'"):
        parse_value("nan", hint, "max_norm")
    assert parse_value("inf", Optional[hint], "max_norm") == math.inf  # noqa: UP045
    assert parse_value("none", Optional[hint], "max_norm") is None  # noqa: UP045
    # other metadata does not open the door
    with pytest.raises(ConfigError, match="expected a finite number"):
        parse_value("inf", Annotated[float, "doc"], "x")


def test_apply_overrides_refuses_infinite_values_with_the_key() -> None:
    for text in ("inf", "1e309", "nan"):
        with pytest.raises(ConfigError, match=rf"^lr: {re.escape(FINITE)}, got '{text}'"):
            apply_overrides(ToyConfig(), [f"lr={text}"])
    with pytest.raises(ConfigError, match=r"^pair: expected a finite number"):
        apply_overrides(ToyConfig(), ["pair=1,inf"])
    assert apply_overrides(InfConfig(), ["limit=inf"]).limit == math.inf
    assert field_types(InfConfig)["limit"] == Annotated[float, ALLOW_INF]


TUPLE_FORM = 'expected comma-separated values written "256,128" or "(256, 128)" ("()" for none)'


@pytest.mark.parametrize(
    "text", ["(", ")", "", " ", "[", "(1,2", "1,2)", "[1,2)", "((1,2))", "(1,(2))", "1,,2", ",",
             "(,)", ",1", "(1,,)", "1 2,"]
)  # fmt: skip
def test_malformed_tuple_is_an_error_naming_key_and_form(text: str) -> None:
    """Issue 11: ``--set "hidden=("`` was read as an empty tuple."""
    with pytest.raises(ConfigError) as info:
        parse_value(text, tuple[int, ...], "hidden")
    message = str(info.value)
    if text == "1 2,":  # a well-formed tuple whose item is not an integer
        assert message == "hidden: expected an integer, got '1 2'"
    else:
        assert message == f"hidden: {TUPLE_FORM}, got {text!r}"


def test_malformed_tuple_through_apply_overrides_and_optional() -> None:
    with pytest.raises(ConfigError, match=re.escape(f"hidden: {TUPLE_FORM}, got '('")):
        apply_overrides(ToyConfig(), ["hidden=("])
    with pytest.raises(ConfigError, match=re.escape(f"k: {TUPLE_FORM}, got '(1'")):
        parse_value("(1", Optional[tuple[int, ...]], "k")  # noqa: UP045
    with pytest.raises(ConfigError, match=re.escape('written "0.1,0.5" or "(0.1, 0.5)"')):
        parse_value("0.1,,0.5", tuple[float, ...], "k")  # the example follows the type
    with pytest.raises(
        ConfigError,
        match=re.escape(
            'pair: expected comma-separated values written "256,0.1" or "(256, 0.1)", got'
        ),
    ):
        apply_overrides(ToyConfig(), ["pair=(1"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("(256,)", (256,)), ("256,", (256,)), ("[]", ()), (" ( ) ", ()), ("[ 1 , 2 ]", (1, 2))],
)
def test_tuple_forms_accepted(text: str, expected: tuple[int, ...]) -> None:
    assert parse_value(text, tuple[int, ...], "hidden") == expected


@pytest.mark.parametrize(
    ("text", "hint", "expected_message"),
    [
        ("2.5", int, "expected an integer, got '2.5'"),
        ("abc", int, "expected an integer, got 'abc'"),
        ("", int, "expected an integer, got ''"),
        ("fast", float, "expected a number, got 'fast'"),
        ("maybe", bool, "expected a boolean (true/false), got 'maybe'"),
        ("2", bool, "expected a boolean (true/false), got '2'"),
        ("rmsprop", Literal["sgd", "adam"], "'rmsprop' is not one of 'sgd', 'adam'"),
        ("abc", int | None, "cannot parse 'abc' as int | None"),
        ("1,x", tuple[int, ...], "expected an integer, got 'x'"),
        ("1,2,3", tuple[int, float], "expected 2 comma-separated values, got '1,2,3'"),
        ("1", tuple[int, float], "expected 2 comma-separated values, got '1'"),
    ],
)
def test_parse_value_rejects_wrong_type_naming_key_and_text(
    text: str, hint: object, expected_message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_value(text, hint, "my_key")
    assert str(info.value) == f"my_key: {expected_message}"


def test_parse_value_optional_error_names_inner_type() -> None:
    with pytest.raises(ConfigError) as info:
        parse_value("abc", Optional[int], "patience")  # noqa: UP045
    assert "int" in str(info.value).split(" as ", 1)[1]


def test_parse_value_unsupported_type_names_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_value("1,2", list[int], "layers")
    message = str(info.value)
    assert message.startswith("layers: fields of type list")
    assert message.endswith("cannot be set from the command line")


def test_parse_value_none_not_accepted_without_optional() -> None:
    with pytest.raises(ConfigError, match=r"epochs: expected an integer, got 'none'"):
        parse_value("none", int, "epochs")


def test_config_error_is_a_usage_error_and_value_error() -> None:
    assert issubclass(ConfigError, UsageError)
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- parse_override


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", "3")),
        ("  lr = 1e-3 ", ("lr", "1e-3")),
        ("name=a=b", ("name", "a=b")),
        ("name=", ("name", "")),
    ],
)
def test_parse_override_splits_on_first_equals(text: str, expected: tuple[str, str]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["epochs", "", "=3", "  =3"])
def test_parse_override_without_key_or_equals_raises(text: str) -> None:
    with pytest.raises(ConfigError, match="expects key=value") as info:
        parse_override(text)
    assert repr(text) in str(info.value)


# ----------------------------------------------------------------------------- apply_overrides


def test_field_types_resolves_annotations() -> None:
    types_ = field_types(ToyConfig)
    assert list(types_) == [f.name for f in dataclasses.fields(ToyConfig)]
    assert types_["epochs"] is int
    assert types_["hidden"] == tuple[int, ...]
    assert types_["patience"] == Optional[int]  # noqa: UP045


def test_field_types_rejects_non_dataclass() -> None:
    with pytest.raises(TypeError, match="expected a dataclass type"):
        field_types(int)
    with pytest.raises(TypeError, match="expected a dataclass type"):
        field_types(ToyConfig())


def test_apply_overrides_from_strings() -> None:
    base = ToyConfig()
    cfg = apply_overrides(
        base,
        [
            "epochs=3",
            "lr=1e-3",
            "shuffle=false",
            "name=run one",
            "optimizer=adam",
            "patience=5",
            "width=none",
            "hidden=(64, 32, 16)",
            "pair=2,0.75",
        ],
    )
    assert cfg == ToyConfig(
        epochs=3,
        lr=1e-3,
        shuffle=False,
        name="run one",
        optimizer="adam",
        patience=5,
        width=None,
        hidden=(64, 32, 16),
        pair=(2, 0.75),
    )
    assert base == ToyConfig()  # the original is not modified
    assert cfg is not base


def test_apply_overrides_from_mapping_and_no_overrides() -> None:
    cfg = apply_overrides(ToyConfig(), {"epochs": "4", "lr": 0.5})
    assert (cfg.epochs, cfg.lr) == (4, 0.5)
    assert apply_overrides(ToyConfig(), []) == ToyConfig()


def test_apply_overrides_later_value_wins() -> None:
    assert apply_overrides(ToyConfig(), ["epochs=2", "epochs=7"]).epochs == 7


def test_apply_overrides_unknown_key_suggests_close_match_and_lists_keys() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(ToyConfig(), ["epoch=3"])
    message = str(info.value)
    assert "unknown config key 'epoch'" in message
    assert "Did you mean 'epochs'?" in message
    valid = sorted(f.name for f in dataclasses.fields(ToyConfig))
    assert f"Valid keys: {', '.join(valid)}" in message


def test_apply_overrides_unknown_key_without_close_match_has_no_hint() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(ToyConfig(), {"zzzzzzzz": "1"})
    message = str(info.value)
    assert "unknown config key 'zzzzzzzz'" in message
    assert "Did you mean" not in message
    assert "Valid keys: epochs, hidden, lr" in message


def test_apply_overrides_wrong_type_names_key_and_text() -> None:
    with pytest.raises(ConfigError, match=r"epochs: expected an integer, got '2\.5'"):
        apply_overrides(ToyConfig(), ["epochs=2.5"])


def test_apply_overrides_value_rejected_by_require_is_config_error() -> None:
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0"):
        apply_overrides(ToyConfig(), ["epochs=0"])


def test_apply_overrides_value_error_in_post_init_becomes_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(ToyConfig(), ["lr=-1"])
    assert "invalid config for ToyConfig" in str(info.value)
    assert "lr must be positive, got -1.0" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_require() -> None:
    require(True, "never raised")
    with pytest.raises(ConfigError, match=r"^the message$"):
        require(False, "the message")


def test_frozen_config_stays_frozen_after_override() -> None:
    cfg = apply_overrides(ToyConfig(), ["epochs=3"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 4  # type: ignore[misc]


# ----------------------------------------------------------------------------- presets


def test_preset_full_and_quick() -> None:
    assert preset(ToyConfig, "full") == ToyConfig()
    quick = preset(ToyConfig, "quick")
    assert quick == ToyConfig(epochs=2, hidden=(8,))
    assert quick != ToyConfig()


def test_preset_quick_without_quick_method_is_the_default() -> None:
    assert preset(NoQuickConfig, "quick") == NoQuickConfig()


@pytest.mark.parametrize("name", ["fast", "Quick", ""])
def test_preset_unknown_name_raises(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        preset(ToyConfig, name)
    assert f"unknown preset {name!r}" in str(info.value)
    assert "quick, full" in str(info.value)


# ----------------------------------------------------------------------------- to_dict / from_dict


def test_to_dict_is_json_friendly() -> None:
    cfg = ToyConfig(patience=3, width=None, hidden=(5, 6), pair=(2, 0.5))
    data = to_dict(cfg)
    assert data == {
        "epochs": 10,
        "lr": 0.1,
        "shuffle": True,
        "name": "toy",
        "optimizer": "sgd",
        "patience": 3,
        "width": None,
        "hidden": [5, 6],
        "pair": [2, 0.5],
    }
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    "cfg",
    [
        ToyConfig(),
        ToyConfig.quick(),
        ToyConfig(patience=7, width=None, hidden=(), pair=(3, 2.0), shuffle=False),
        ToyConfig(lr=2.0, optimizer="adam", name="x y", hidden=(1, 2, 3, 4)),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(cfg: ToyConfig) -> None:
    restored = from_dict(ToyConfig, json.loads(json.dumps(to_dict(cfg))))
    assert restored == cfg
    assert isinstance(restored.hidden, tuple)
    assert isinstance(restored.pair, tuple)
    assert type(restored.lr) is float


def test_from_dict_converts_integral_float_and_keeps_defaults() -> None:
    cfg = from_dict(ToyConfig, {"lr": 2, "pair": [4, 1]})
    assert cfg == ToyConfig(lr=2.0, pair=(4, 1.0))
    assert type(cfg.lr) is float
    assert type(cfg.pair[1]) is float
    assert cfg.epochs == ToyConfig().epochs


def test_from_dict_unknown_keys_raise() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(ToyConfig, {"epochs": 3, "bogus": 1, "another": 2})
    assert "['another', 'bogus']" in str(info.value)
    assert "ToyConfig" in str(info.value)


def test_from_dict_rejected_value_is_config_error() -> None:
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        from_dict(ToyConfig, {"epochs": 0})


def test_non_frozen_dataclass_is_also_handled_by_from_dict() -> None:
    assert from_dict(MutableConfig, {"size": 9}) == MutableConfig(size=9)


def test_from_dict_wrong_length_fixed_tuple_is_config_error() -> None:
    with pytest.raises(ConfigError, match="pair"):
        from_dict(ToyConfig, {"pair": [1, 2.0, 3]})


# ----------------------------------------------------------------------------- long values

LONG = "9" * 50_000 + "x" * 50_000  # 100,000 characters


@pytest.mark.parametrize(
    ("override", "start"),
    [
        (f"epochs={LONG}", "epochs: expected an integer, got '99999"),
        (f"lr={LONG}", "lr: expected a number, got '99999"),
        (f"shuffle={LONG}", "shuffle: expected a boolean (true/false), got '99999"),
        (f"optimizer={LONG}", "optimizer: '99999"),
        (f"hidden=1,{LONG}", "hidden: expected an integer, got '99999"),
        (f"hidden=({LONG}", "hidden: expected comma-separated values"),
        (f"pair=1,2,{LONG}", "pair: expected 2 comma-separated values, got '1,2,9999"),
        (f"patience={LONG}", "patience: cannot parse '99999"),
        (f"{LONG}=1", "unknown config key '99999"),
        (LONG, "--set expects key=value, got '99999"),
        (f"epochs=-{'9' * 4000}", "epochs must be >= 1, got -99999"),  # a require message
    ],
)
def test_a_huge_value_is_shortened_in_the_message(override: str, start: str) -> None:
    """Issue 11: a bad value of 100,000 characters was echoed back in full."""
    with pytest.raises(ConfigError) as info:
        apply_overrides(ToyConfig(), [override])
    message = str(info.value)
    assert message.startswith(start)
    assert len(message) < MESSAGE_LIMIT + 300, len(message)
    assert "characters)" in message  # shortening says how long the value was


def test_from_dict_and_preset_shorten_huge_values() -> None:
    for bad in ({"epochs": LONG}, {LONG: 1}):
        with pytest.raises(ConfigError) as info:
            from_dict(ToyConfig, bad)
        assert len(str(info.value)) < 400
    with pytest.raises(ConfigError) as info:
        preset(ToyConfig, LONG)
    assert len(str(info.value)) < 200


@dataclass(frozen=True)
class WidthsConfig:
    widths: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if min(self.widths) < 1:
            raise ValueError(f"widths must be >= 1, got {self.widths}")


def test_a_value_error_about_a_huge_value_is_cut() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(WidthsConfig(), [f"widths={','.join(['0'] * 50_000)}"])
    message = str(info.value)
    assert message.startswith("invalid config for WidthsConfig: widths must be >= 1, got (0, 0")
    assert len(message) <= MESSAGE_LIMIT + 30 and "characters)" in message


def test_require_cuts_a_long_message() -> None:
    with pytest.raises(ConfigError) as info:
        require(False, "widths must be > 0, got " + str(tuple(range(100_000))))
    message = str(info.value)
    assert message.startswith("widths must be > 0, got (0, 1, 2")
    assert len(message) <= MESSAGE_LIMIT + 30


# ----------------------------------------------------------------------------- stored values


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"lr": math.inf}, "lr=inf does not fit float: expected a finite number"),
        ({"lr": -math.inf}, "lr=-inf does not fit float: expected a finite number"),
        ({"lr": math.nan}, "lr=nan does not fit float: expected a finite number"),
        ({"lr": 10**400}, "does not fit float: expected a finite number"),
        ({"pair": [1, math.inf]}, "pair=[1, inf] does not fit tuple[int, float]"),
        ({"epochs": 3.5}, "epochs=3.5 does not fit int: expected an integer, got a number"),
        ({"epochs": "3"}, "epochs='3' does not fit int: expected an integer, got a string"),
        ({"epochs": True}, "epochs=True does not fit int: expected an integer, got a boolean"),
        ({"lr": "0.1"}, "lr='0.1' does not fit float: expected a number, got a string"),
        ({"lr": False}, "lr=False does not fit float: expected a number, got a boolean"),
        ({"shuffle": 1}, "shuffle=1 does not fit bool: expected a boolean, got an integer"),
        ({"name": 3}, "name=3 does not fit str: expected a string, got an integer"),
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop' does not fit Literal['sgd', 'adam']"),
        ({"hidden": "1,2"}, "hidden='1,2' does not fit tuple[int, ...]: expected a list"),
        ({"hidden": [1, 2.5]}, "hidden=[1, 2.5] does not fit tuple[int, ...]"),
        ({"patience": "none"}, "patience='none' does not fit int | None"),
        ({"epochs": None}, "epochs=None does not fit int: expected an integer, got null"),
    ],
)
def test_from_dict_refuses_values_of_the_wrong_type_or_not_finite(
    data: dict, expected: str
) -> None:
    """Issue 11: a config.json written by hand (or by an older run) with ``Infinity`` or a wrong
    type was restored as it was; it is now a ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        from_dict(ToyConfig, json.loads(json.dumps(data)))
    assert expected in str(info.value)
    assert str(info.value).startswith("stored config: ")


def test_from_dict_restores_an_allowed_infinity() -> None:
    assert from_dict(InfConfig, json.loads(json.dumps({"limit": math.inf}))).limit == math.inf
    with pytest.raises(ConfigError, match="expected a number or \\+-inf"):
        from_dict(InfConfig, json.loads(json.dumps({"limit": math.nan})))


# ----------------------------------------------------------------------------- require_fractions


@pytest.mark.parametrize(
    ("val", "test"),
    [(0.0, 0.2), (1.0, 0.2), (math.nan, 0.2), (-0.1, 0.2), (0.5, 0.5), (0.7, 0.4), (0.2, math.inf)],
)
def test_require_fractions_refuses_empty_full_nan_negative_and_overfull(
    val: float, test: float
) -> None:
    with pytest.raises(ConfigError) as info:
        require_fractions({"val_fraction": val, "test_fraction": test})
    message = str(info.value)
    assert message.startswith(
        "val_fraction and test_fraction must each be in (0, 1) and sum to less than 1, got "
        f"val_fraction={val:g}, test_fraction={test:g} (sum "
    )


def test_require_fractions_accepts_valid_shares_and_states_its_bound() -> None:
    require_fractions({"val_fraction": 0.2, "test_fraction": 0.2})
    require_fractions({"val_fraction": 0.49, "test_fraction": 0.5})
    require_fractions({"val_fraction": 0.999})
    with pytest.raises(
        ConfigError, match=r"^val_fraction must be in \(0, 1\), got val_fraction=1$"
    ):
        require_fractions({"val_fraction": 1.0})
    with pytest.raises(ConfigError, match=r"sum to less than 0.9, got a=0.5, b=0.45 \(sum 0.95\)"):
        require_fractions({"a": 0.5, "b": 0.45}, below=0.9)
