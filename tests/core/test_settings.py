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


def test_chunks_are_bounded_by_what_the_processes_carry():
    assert Settings(chunks=1000).chunks == 1000
    with pytest.raises(SettingError, match=r"chunks: must be at most 1000 \(each trader is an OS process\)"):
        with_overrides(Settings(), {"chunks": "9" * 30})
    with pytest.raises(msgspec.ValidationError, match="chunks"):  # the state store decodes Settings
        msgspec.json.decode(b'{"chunks": 1001}', type=Settings)


@pytest.mark.parametrize("key, text", [("budget", "1.1E+18"), ("profit_target", "9e30"),
                                       ("fee", "1e-19"), ("buy_down_interval", "1e-30")])
def test_decimal_settings_are_bounded(key, text):
    with pytest.raises(SettingError, match=rf"{key}: .* between 1E-18 and 1E\+18"):
        with_overrides(Settings(), {key: text})


@pytest.mark.parametrize("key", ["tick_size", "step_size", "min_qty", "min_notional"])
def test_filters_are_bounded(key):
    with pytest.raises(SettingError, match=rf"{key}: .* between 1E-18 and 1E\+18"):
        Filters(**{"tick_size": D(1), "step_size": D(1), key: D("1e-19")})


@pytest.mark.parametrize("price", [D(2**63 - 1), D(2**63 - 1).scaleb(-18), D("1e-18")])
def test_formulas_never_overflow_at_the_bounds(price):
    """The widest settings and filters with any tape price: the plan is computed, never DivisionImpossible."""
    from naive_mp.core.formulas import plan_cycle
    from naive_mp.core.money import is_multiple

    settings = Settings(chunks=1, budget=D("1e18"), profit_target=D("1e18"), fee=D("0.999999999999999999"),
                        buy_down_interval=D(0), rebuy_interval=D(0))
    filters = Filters(tick_size=D("1e-18"), step_size=D("1e-18"))
    plan = plan_cycle(price, settings, filters)
    assert plan.buy_price > 0 and plan.quantity > 0 and plan.sell_price > plan.buy_price
    assert is_multiple(plan.sell_price, filters.tick_size) and is_multiple(plan.quantity, filters.step_size)
