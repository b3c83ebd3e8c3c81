from decimal import Decimal as D

import msgspec
import pytest

from naive_mp.core.settings import Filters, Settings, SettingError, setting_value, with_overrides


@pytest.mark.parametrize("changes, key", [
    ({"chunks": 0}, "chunks"),
    ({"budget": D("0")}, "budget"),
    ({"budget": D("-5")}, "budget"),
    ({"buy_down_interval": D("-0.1")}, "buy_down_interval"),
    ({"buy_down_interval": D("1")}, "buy_down_interval"),
    ({"rebuy_interval": D("1.5")}, "rebuy_interval"),
    ({"profit_target": D("-1")}, "profit_target"),
    ({"fee": D("-0.001")}, "fee"),
    ({"fee": D("1")}, "fee"),
])
def test_invalid_settings_name_the_key(changes, key):
    with pytest.raises(SettingError) as error:
        Settings(**changes)
    assert error.value.key == key and str(error.value).startswith(key)


def test_book_defaults():
    s = Settings()
    assert (s.chunks, s.budget, s.profit_target, s.rebuy_interval) == (5, D("100"), D("-0.0012"), D("0.001"))


@pytest.mark.parametrize("key, text, expected", [
    ("chunks", "3", 3),
    ("budget", " 250.5 ", D("250.5")),
    ("profit_target", "-0.0012", D("-0.0012")),
])
def test_setting_values_parse_exactly(key, text, expected):
    assert setting_value(key, text) == expected


@pytest.mark.parametrize("key, text, message", [
    ("chunks", "2.5", "whole number"),
    ("budget", "lots", "not a decimal"),
    ("fee", "nan", "not a finite"),
    ("colour", "1", "unknown setting"),
])
def test_bad_setting_values(key, text, message):
    with pytest.raises(SettingError, match=message):
        setting_value(key, text)


def test_overrides_are_validated():
    with pytest.raises(SettingError, match="budget"):
        with_overrides(Settings(), {"budget": "-1"})
    assert with_overrides(Settings(), {"chunks": "2"}).chunks == 2


def test_decoding_validates_too():
    with pytest.raises(msgspec.ValidationError, match="chunks"):
        msgspec.json.decode(b'{"chunks": 0}', type=Settings)


@pytest.mark.parametrize("values, key", [
    ({"tick_size": D("0"), "step_size": D("1")}, "tick_size"),
    ({"tick_size": D("1"), "step_size": D("-1")}, "step_size"),
    ({"tick_size": D("1"), "step_size": D("1"), "min_notional": D("-1")}, "min_notional"),
])
def test_invalid_filters(values, key):
    with pytest.raises(SettingError) as error:
        Filters(**values)
    assert error.value.key == key
